"""``weight-decay sweep``: one run per lambda, vectorized; a table and a sweep JSON file.

Lambdas are given as a list (``--lambdas 0,0.3,1,3``) or a grid (``--num 64 --max 10``: 0 and
63 log-spaced values up to 10, :func:`wd_core.sweeps.lambda_grid`). Exit status 0, or 3 (one
warning line) when some lambda's run diverged. ``--measure`` times the sweep against one
lambda instead (:func:`benchmarks.sweep_cost.measure_sweep_cost`).
"""

from __future__ import annotations

import sys

from wd_core.atomic import check_output_folder
from wd_core.sweeps import lambda_grid, write_sweep
from weight_decay.backends import load_backend
from weight_decay.commands.options import (
    add_data_options,
    add_training_options,
    data_from_args,
    lambda_list,
    positive_float,
    positive_int,
    training_options,
)
from weight_decay.progress import epoch_callback, progress_bar


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "sweep", help="train once per lambda (vectorized); write the Histories as JSON")
    add_training_options(parser)
    lambdas = parser.add_mutually_exclusive_group()
    lambdas.add_argument("--lambdas", type=lambda_list,
                         help="comma-separated lambdas, e.g. 0,0.3,1,3")
    lambdas.add_argument("--num", type=positive_int,
                         help="a grid of NUM lambdas: 0, then NUM-1 log-spaced values from "
                              "--max/1000 to --max (default: a grid of 16)")
    parser.add_argument("--max", type=positive_float, default=10.0, dest="max_lambda",
                        help="the largest lambda of the --num grid (default 10)")
    add_data_options(parser)
    parser.add_argument("--out", help="write the sweep here (JSON); default: print the table")
    parser.add_argument("--measure", action="store_true",
                        help="time this sweep against one lambda (median of --repeats) instead")
    parser.add_argument("--repeats", type=positive_int, default=7)
    parser.set_defaults(execute=execute)


def sweep_lambdas(args) -> list[float]:
    """The lambdas of the command line: ``--lambdas``, or the ``--num``/``--max`` grid, or the
    default grid of 16."""
    if args.lambdas is not None:
        return args.lambdas
    return [float(v) for v in lambda_grid(args.num or 16, args.max_lambda)]


def format_sweep_table(histories) -> str:
    """A markdown table, one row per lambda: final losses and the size of ``w``."""
    lines = ["| lambd | train loss | val loss | l2_norm | diverged |", "|---:|---:|---:|---:|---|"]
    for h in histories:
        lines.append(f"| {h.config['lambd']:g} | {h.train_loss[-1]:.6e} | {h.val_loss[-1]:.6e} "
                     f"| {h.l2_norm:.6e} | "
                     f"{'epoch ' + str(h.diverged_epoch) if h.diverged else 'no'} |")
    return "\n".join(lines)


def best_line(histories) -> str:
    """Which lambda has the smallest final validation loss (diverged runs excluded)."""
    finite = [h for h in histories if not h.diverged]
    if not finite:
        return "every run diverged"
    best = min(finite, key=lambda h: h.val_loss[-1])
    return (f"lowest validation loss after {len(best.val_loss)} epochs: "
            f"lambd={best.config['lambd']:g} (val loss {best.val_loss[-1]:.6g})")


def execute(args) -> int:
    if args.out:
        check_output_folder(args.out)
    lambdas = sweep_lambdas(args)
    backend = load_backend(args.backend)
    data = data_from_args(args)
    if args.measure:
        return _measure(args, backend, data, lambdas)
    desc = f"{args.backend} {args.method} sweep of {len(lambdas)}"
    with progress_bar(args.max_epochs, desc=desc, unit="epoch", quiet=args.quiet) as bar:
        histories = backend.sweep(data, lambdas=lambdas, progress=epoch_callback(bar),
                                  **training_options(args))
    if args.out:
        write_sweep(histories, args.out)
    print(f"{args.backend} {args.method} sweep over {len(lambdas)} lambdas: {data!r}, "
          f"lr={args.lr:g}, {args.max_epochs} epochs, {args.dtype}\n")
    print(format_sweep_table(histories))
    print()
    print(best_line(histories) + (f" -> {args.out}" if args.out else ""))
    diverged = [h for h in histories if h.diverged]
    if diverged:
        names = ", ".join(f"{h.config['lambd']:g}" for h in diverged)
        print(f"weight-decay: warning: {len(diverged)} of {len(histories)} runs diverged (loss "
              f"not finite), lambd = {names}", file=sys.stderr)
        return 3
    return 0


def _measure(args, backend, data, lambdas) -> int:
    from wd_benchmarks.sweep_cost import measure_sweep_cost

    options = training_options(args)
    result = measure_sweep_cost(backend, data, lambdas=lambdas, lambd=3.0, repeats=args.repeats,
                                **options)
    ms = {k: result[k].median_s * 1e3 for k in ("one", "many", "train")}
    print(f"{args.backend} {args.method} {options['implementation']} {args.dtype}: sweep of "
          f"{len(lambdas)} lambdas "
          f"{ms['many']:.3f} ms, sweep of 1 lambda {ms['one']:.3f} ms, train {ms['train']:.3f} ms "
          f"(medians of {args.repeats}); ratio {result['ratio']:.2f} "
          f"(bound {result['max_ratio']:g}: {'ok' if result['ok'] else 'exceeded'})")
    return 0
