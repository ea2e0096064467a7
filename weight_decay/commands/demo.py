"""``weight-decay demo``: the chapter's table, every backend against the float64 reference.

A second table trains the concise model with momentum SGD and with AdamW
(:mod:`weight_decay.optimizer_demo`), every backend against ``torch.optim`` in float64.

It also writes the chapter's two figures (training and validation loss against the epoch for
lambda 0 and lambda 3, the concise runs of every backend overlaid) into ``--figures`` (default
``results/demo/``) and prints their paths; without matplotlib it says how to install it.
"""

from __future__ import annotations

from pathlib import Path

from wd_core import reference
from wd_core.errors import InputError, MissingFrameworkError
from wd_core.tolerances import run_kind
from wd_core.validation import DTYPES, METHODS
from weight_decay.backends import BACKENDS, load_backend
from weight_decay.commands.options import (
    add_data_options,
    add_quiet_option,
    data_from_args,
    nonnegative_float,
)
from weight_decay.demo_table import format_table, row, verdict_line
from weight_decay.optimizer_demo import ORACLE_BACKEND, optimizer_rows, runs_per_call
from weight_decay.progress import progress_bar

CHAPTER_LAMBDAS = (0.0, 3.0)
FIGURES_FOLDER = Path("results") / "demo"
FIGURE_METHOD = "concise"


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "demo", help="the chapter's table (lambda 0 and 3), then momentum SGD and AdamW")
    parser.add_argument("--backends", default=",".join(BACKENDS),
                        help="comma-separated, from: torch, jax (default: both)")
    parser.add_argument("--dtype", choices=DTYPES, default="float32")
    parser.add_argument("--lr", type=nonnegative_float, default=0.01)
    parser.add_argument("--epochs", type=int, default=10, dest="max_epochs")
    add_data_options(parser)
    parser.add_argument("--figures", type=Path, default=FIGURES_FOLDER, metavar="FOLDER",
                        help=f"write the chapter's two figures here (default: {FIGURES_FOLDER}; "
                             f"created if missing)")
    parser.add_argument("--no-figures", action="store_true", help="write no figures")
    parser.add_argument("--no-optimizers", action="store_true",
                        help="leave out the second table (momentum SGD and AdamW)")
    add_quiet_option(parser)
    parser.set_defaults(execute=execute)


def chapter_rows(data, *, backends, dtype, lr, max_epochs, progress=None):
    """One row per lambda x (reference, then backend x method), :mod:`weight_decay.demo_table` rows.

    ``progress``: ``None`` or a callable called with no argument after each framework run.
    """
    kind = run_kind(dtype)
    rows = []
    for lambd in CHAPTER_LAMBDAS:
        oracle = reference.train(data, lambd=lambd, lr=lr, max_epochs=max_epochs)
        rows.append(row("reference", "float64", lambd, oracle))
        for name in backends:
            backend = load_backend(name)
            for method in METHODS:
                history = backend.train(data, method=method, lambd=lambd, lr=lr,
                                        max_epochs=max_epochs, dtype=dtype)
                rows.append(row(f"{name} {method}", dtype, lambd, history,
                                oracle=oracle, kind=kind))
                if progress is not None:
                    progress()
    return rows


def torch_optim_available() -> str | None:
    """``None`` when the optimizer rows can run, else why not (their oracle is torch.optim).

    Only a torch that is not installed leaves the rows out (the line says so); a torch that
    fails to import (:class:`~wd_core.errors.BrokenFrameworkError`) stops the command with
    the cause."""
    try:
        load_backend(ORACLE_BACKEND)
    except MissingFrameworkError as err:
        return f"optimizer rows not shown (their oracle is torch.optim): {err}"
    return None


def execute(args) -> int:
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    if not backends:
        raise InputError(f"--backends {args.backends!r} names no backend; accepted: torch, jax")
    for name in backends:
        load_backend(name)
    data = data_from_args(args)
    skipped = "optimizer rows not asked for" if args.no_optimizers else torch_optim_available()
    total = len(CHAPTER_LAMBDAS) * len(backends) * len(METHODS)
    total += 0 if skipped else runs_per_call(backends)
    optimizer_table = []
    with progress_bar(total, desc="demo", unit="run", quiet=args.quiet) as bar:
        rows = chapter_rows(data, backends=backends, dtype=args.dtype, lr=args.lr,
                            max_epochs=args.max_epochs, progress=bar.update)
        if not skipped:
            optimizer_table = optimizer_rows(data, backends=backends, dtype=args.dtype,
                                             lr=args.lr, max_epochs=args.max_epochs,
                                             progress=bar.update)
    print(f"D2L 3.7 weight decay: {data!r}, lr={args.lr:g}, {args.max_epochs} epochs; "
          f"losses are data losses (no penalty) after the last epoch.\n")
    print(format_table(rows))
    print()
    print(verdict_line(rows))
    print()
    if optimizer_table:
        print("The concise model with other optimizers (lambd is their weight_decay on w; the "
              "oracle is torch.optim in float64):\n")
        print(format_table(optimizer_table, oracle_column="matches torch.optim"))
        print()
        print(verdict_line(optimizer_table, "torch.optim in float64"))
    elif not args.no_optimizers:
        print(skipped)
    if not args.no_figures:
        print(figures_line(rows, args.figures))
    return 0 if all(r["agrees"] is not False for r in rows + optimizer_table) else 1


def write_figures(rows, folder) -> list[Path]:
    """The chapter's figures, ``lambda_0.png`` and ``lambda_3.png`` in ``folder``: the loss
    curves of every backend's concise run with that lambda (the same data as the table)."""
    from weight_decay import plotting

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for lambd in CHAPTER_LAMBDAS:
        histories = [r["history"] for r in rows
                     if r["lambd"] == lambd and r["implementation"].endswith(FIGURE_METHOD)]
        figure = plotting.loss_curves(
            histories, title=f"D2L 3.7, lambda = {lambd:g}: training and validation loss")
        paths.append(plotting.save_figure(figure, folder / f"lambda_{lambd:g}.png"))
    return paths


def figures_line(rows, folder) -> str:
    """Write the figures; the line that names them (or says how to get matplotlib)."""
    try:
        paths = write_figures(rows, folder)
    except MissingFrameworkError as err:
        return f"figures not written: {err}"
    return "figures: " + ", ".join(str(p) for p in paths)
