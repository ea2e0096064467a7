"""``weight-decay run``: one training run, its History written as JSON.

Exit status 0, or 3 (one warning line on stderr) when the run diverged; a progress bar on a
terminal for runs longer than about a second unless ``--quiet``.
"""

from __future__ import annotations

import sys

from wd_core.atomic import check_output_folder
from weight_decay.backends import load_backend
from weight_decay.commands.options import (
    add_data_options,
    add_optimizer_options,
    add_training_options,
    data_from_args,
    nonnegative_float,
    optimizer_from_args,
    training_options,
)
from weight_decay.data_parallel import (
    add_data_parallel_options,
    data_parallel_requested,
    train_data_parallel,
)
from weight_decay.progress import epoch_callback, progress_bar


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("run", help="train once; write the History as JSON")
    add_training_options(parser)
    parser.add_argument("--lambd", type=nonnegative_float, default=3.0)
    add_optimizer_options(parser)
    add_data_options(parser)
    add_data_parallel_options(parser)
    parser.add_argument("--out", help="write the History here (JSON); default: print a summary")
    parser.set_defaults(execute=execute)


def execute(args) -> int:
    if args.out:
        check_output_folder(args.out)
    optimizer = optimizer_from_args(args)
    backend = load_backend(args.backend)
    data = data_from_args(args)
    finish = None
    with progress_bar(args.max_epochs, desc=f"{args.backend} {args.method}", unit="epoch",
                      quiet=args.quiet) as bar:
        if data_parallel_requested(args):
            history, finish = train_data_parallel(args, data, optimizer, epoch_callback(bar))
        else:
            history = backend.train(data, lambd=args.lambd, optimizer=optimizer,
                                    progress=epoch_callback(bar), **training_options(args))
    if finish is not None:  # a worker started by torchrun or by hand: this ends the process
        finish(lambda: report(args, optimizer, history))
    return report(args, optimizer, history)


def report(args, optimizer, history) -> int:
    """Write ``--out``, print the summary line (and the divergence warning); the exit status
    (0, or 3 for a diverged run). ``history`` None: a data-parallel worker other than worker 0,
    which has the result: one line saying so."""
    if history is None:
        print(f"weight-decay: this worker of {args.workers} is done; worker 0 has the result"
              + (f" ({args.out})" if args.out else ""))
        return 0
    if args.out:
        history.to_json(args.out)
    print(
        f"{args.backend} {args.method}{'' if optimizer is None else ' ' + optimizer.label()} "
        f"lambd={args.lambd:g}: "
        f"train loss {history.train_loss[-1]:.6g}, val loss {history.val_loss[-1]:.6g}, "
        f"l2_penalty {history.l2_penalty:.6g}, l2_norm {history.l2_norm:.6g}"
        + (f" -> {args.out}" if args.out else "")
    )
    if history.diverged:
        print(
            f"weight-decay: warning: the run diverged (loss not finite) at epoch "
            f"{history.diverged_epoch}; training stopped there",
            file=sys.stderr,
        )
        return 3
    return 0
