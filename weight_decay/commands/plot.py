"""``weight-decay plot``: a figure from run or sweep JSON files.

Run files (``weight-decay run --out``) give loss curves, all of them overlaid; sweep files
(``weight-decay sweep --out``) give the regularization path, all sweeps overlaid, beside the
ridge closed form. Needs the ``plot`` extra (matplotlib).
"""

from __future__ import annotations

from wd_core.atomic import check_output_folder
from wd_core.errors import InputError
from wd_core.sweeps import read_results
from weight_decay import plotting


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "plot", help="loss curves of runs, or the regularization path of sweeps, as an image")
    parser.add_argument("files", nargs="+", metavar="FILE",
                        help="History JSON (run) or sweep JSON files; not both kinds at once")
    parser.add_argument("--out", required=True, help="image file to write, e.g. fig.png")
    parser.add_argument("--title", help="figure title (default: from the files)")
    parser.set_defaults(execute=execute)


def figure_for(paths, *, title=None):
    """The Figure for ``paths``: loss curves for runs, a regularization path for sweeps."""
    results = [read_results(path) for path in paths]
    kinds = {kind for kind, _ in results}
    if kinds == {"run"}:
        return plotting.loss_curves([h for _, (h,) in results], title=title)
    if kinds == {"sweep"}:
        return plotting.regularization_path([hs for _, hs in results], title=title)
    raise InputError(f"{', '.join(map(repr, map(str, paths)))} mix run and sweep files; "
                     f"plot runs and sweeps separately")


def execute(args) -> int:
    check_output_folder(args.out)
    figure = figure_for(args.files, title=args.title)
    path = plotting.save_figure(figure, args.out)
    print(f"wrote {path}")
    return 0
