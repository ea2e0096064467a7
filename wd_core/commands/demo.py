"""``weight-decay demo``: the chapter's table, every backend against the float64 reference.

It also writes the chapter's two figures (training and validation loss against the epoch for
lambda 0 and lambda 3, the concise runs of every backend overlaid) into ``--figures`` (default
``results/demo/``) and prints their paths; without matplotlib it says how to install it.
"""

from __future__ import annotations

from pathlib import Path

from wd_core import reference
from wd_core.backends import BACKENDS, load_backend
from wd_core.commands.options import (
    add_data_options,
    add_quiet_option,
    data_from_args,
    nonnegative_float,
)
from wd_core.progress import progress_bar
from wd_core.tolerances import TOLERANCES, is_close
from wd_core.validation import DTYPES, METHODS

CHAPTER_LAMBDAS = (0.0, 3.0)
FIGURES_FOLDER = Path("results") / "demo"
FIGURE_METHOD = "concise"
COMPARED_FIELDS = ("w", "b", "train_loss", "val_loss")


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("demo", help="print the chapter's table (lambda 0 and 3)")
    parser.add_argument("--backends", default=",".join(BACKENDS),
                        help="comma-separated, from: torch, jax (default: both)")
    parser.add_argument("--dtype", choices=DTYPES, default="float32")
    parser.add_argument("--lr", type=nonnegative_float, default=0.01)
    parser.add_argument("--epochs", type=int, default=10, dest="max_epochs")
    add_data_options(parser)
    parser.add_argument("--figures", type=Path, default=FIGURES_FOLDER, metavar="FOLDER",
                        help=f"write the chapter's two figures here (default: {FIGURES_FOLDER}; "
                             f"created if missing)")
    parser.add_argument("--no-figures", action="store_true", help="print the table only")
    add_quiet_option(parser)
    parser.set_defaults(execute=execute)


def agrees_with(history, oracle, dtype: str) -> bool:
    """True when every compared field of ``history`` matches ``oracle`` within the tolerance
    of ``dtype`` (``"float64"`` or the float32 whole-run entry of the table)."""
    kind = "float64" if dtype == "float64" else "float32"
    if history.diverged or oracle.diverged:
        return history.diverged_epoch == oracle.diverged_epoch
    return all(is_close(getattr(history, f), getattr(oracle, f), kind) for f in COMPARED_FIELDS)


def chapter_rows(data, *, backends, dtype, lr, max_epochs, progress=None):
    """One row per lambda x (reference, then backend x method): dicts for :func:`format_table`.

    ``progress``: ``None`` or a callable called with no argument after each framework run.
    """
    rows = []
    for lambd in CHAPTER_LAMBDAS:
        oracle = reference.train(data, lambd=lambd, lr=lr, max_epochs=max_epochs)
        rows.append(_row("reference", "float64", lambd, oracle, agrees=None))
        for name in backends:
            backend = load_backend(name)
            for method in METHODS:
                history = backend.train(data, method=method, lambd=lambd, lr=lr,
                                        max_epochs=max_epochs, dtype=dtype)
                rows.append(_row(f"{name} {method}", dtype, lambd, history,
                                 agrees=agrees_with(history, oracle, dtype)))
                if progress is not None:
                    progress()
    return rows


def _row(name, dtype, lambd, history, agrees):
    return {
        "history": history,
        "implementation": name, "dtype": dtype, "lambd": lambd,
        "train_loss": history.train_loss[-1], "val_loss": history.val_loss[-1],
        "l2_penalty": history.l2_penalty, "l2_norm": history.l2_norm, "agrees": agrees,
    }


def format_table(rows) -> str:
    """A markdown table of :func:`chapter_rows`."""
    lines = [
        "| implementation | dtype | lambd | train loss | val loss | l2_penalty | l2_norm "
        "| matches reference |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        verdict = {None: "(oracle)", True: "yes", False: "NO"}[r["agrees"]]
        lines.append(
            f"| {r['implementation']} | {r['dtype']} | {r['lambd']:g} | {r['train_loss']:.6e} "
            f"| {r['val_loss']:.6e} | {r['l2_penalty']:.6e} | {r['l2_norm']:.6e} | {verdict} |"
        )
    return "\n".join(lines)


def verdict_line(rows, dtype: str) -> str:
    """The closing line: do all framework rows agree with the reference?"""
    kind = "float64" if dtype == "float64" else "float32"
    rtol = TOLERANCES[kind][0]
    framework = [r for r in rows if r["agrees"] is not None]
    failed = [r for r in framework if not r["agrees"]]
    if failed:
        names = ", ".join(f"{r['implementation']} (lambd={r['lambd']:g})" for r in failed)
        return f"MISMATCH: {len(failed)} of {len(framework)} framework rows differ from the " \
               f"float64 reference beyond rtol {rtol:g}: {names}"
    return (f"All {len(framework)} framework rows agree with the float64 reference "
            f"(w, b and both loss curves) within rtol {rtol:g} ({kind} tolerance).")


def execute(args) -> int:
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    if not backends:
        raise ValueError(f"--backends {args.backends!r} names no backend; accepted: torch, jax")
    for name in backends:
        load_backend(name)
    data = data_from_args(args)
    total = len(CHAPTER_LAMBDAS) * len(backends) * len(METHODS)
    with progress_bar(total, desc="demo", unit="run", quiet=args.quiet) as bar:
        rows = chapter_rows(data, backends=backends, dtype=args.dtype, lr=args.lr,
                            max_epochs=args.max_epochs, progress=bar.update)
    print(f"D2L 3.7 weight decay: {data!r}, lr={args.lr:g}, {args.max_epochs} epochs; "
          f"losses are data losses (no penalty) after the last epoch.\n")
    print(format_table(rows))
    print()
    print(verdict_line(rows, args.dtype))
    if not args.no_figures:
        print(figures_line(rows, args.figures))
    return 0 if all(r["agrees"] is not False for r in rows) else 1


def write_figures(rows, folder) -> list[Path]:
    """The chapter's figures, ``lambda_0.png`` and ``lambda_3.png`` in ``folder``: the loss
    curves of every backend's concise run with that lambda (the same data as the table)."""
    from wd_core import plotting

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
    except ImportError as err:
        return f"figures not written: {err}"
    return "figures: " + ", ".join(str(p) for p in paths)
