"""Command line of ``python -m benchmarks`` (also ``weight-decay bench`` and ``make bench``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from wd_core.atomic import check_output_folder
from wd_core.errors import DeviceUnavailableError, InputError, PathError, run_command

from . import machine
from .arguments import OneLineParser, names, positive_int
from .report import (
    format_data_parallel,
    format_summary,
    format_table,
    format_targets,
    write_json,
)
from .runner import DEVICES, FRAMEWORKS, Options, cuda_report, run
from .workloads import DEFAULT_GROUPS, GROUPS

DEFAULT_OUT_DIR = Path("benchmarks") / "results"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The benchmark's options (shared with ``weight-decay bench``)."""
    parser.add_argument("--quick", action="store_true",
                        help="small sizes and fewer processes: under a minute")
    parser.add_argument("--repeats", type=positive_int, default=None,
                        help="timed samples per implementation (default 7, quick 5)")
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    parser.add_argument("--frameworks", type=names(FRAMEWORKS), default=FRAMEWORKS,
                        help="comma-separated, from: " + ", ".join(FRAMEWORKS))
    parser.add_argument("--workloads", type=names(GROUPS), default=DEFAULT_GROUPS,
                        dest="groups",
                        help="comma-separated, from: " + ", ".join(GROUPS) + " (default: all "
                             "but memory-n1024 and data-parallel)")
    parser.add_argument("--devices", type=names(DEVICES), default=DEVICES,
                        help="cpu and/or cuda (cuda is skipped, with the reason, without a GPU)")
    parser.add_argument("--no-cold-start", action="store_false", dest="cold_start")
    parser.add_argument("--no-plot", action="store_false", dest="plot")
    parser.add_argument("--out", type=Path, default=None,
                        help="write the JSON to this file (FILE.json; the PNG beside it as "
                             "FILE.png); not with --out-dir or --name")
    parser.add_argument("--out-dir", type=Path, default=None,
                        help=f"folder of the JSON and PNG (default {DEFAULT_OUT_DIR})")
    parser.add_argument("--name", default=None,
                        help="file stem (default: devices and machine, e.g. cpu-amd-epyc-2cpu)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="python -m benchmarks", allow_abbrev=False,
        description="Time SGD with weight decay: idiomatic loops, train(), fused paths; "
                    "CPU and CUDA; against the measured memory bandwidth.")
    add_arguments(parser)
    return parser


def options_from_args(args) -> Options:
    repeats = args.repeats if args.repeats is not None else (5 if args.quick else 7)
    return Options(quick=args.quick, repeats=repeats, dtype=args.dtype,
                   frameworks=args.frameworks, groups=args.groups, devices=args.devices,
                   cold_start=args.cold_start, quiet=args.quiet)


def file_stem(payload, quick: bool) -> str:
    """``<devices>-<machine>`` (``-quick`` for quick runs), e.g. ``cpu-amd-epyc-2cpu``."""
    devices = "-".join(payload["devices"])
    stem = f"{devices}-{machine.machine_tag(payload['machine'])}"
    return stem + ("-quick" if quick else "")


def check_request(args):
    """Everything that can be refused before minutes of timing; returns ``args``.

    ``--out`` must name a ``.json`` file and comes without ``--out-dir`` and ``--name``;
    ``--name`` must be a bare file stem; the output folder is created (``PathError`` if it
    cannot be) and must not hold a folder where the JSON or PNG would go; ``--devices cuda``
    alone needs a GPU (:class:`wd_core.DeviceUnavailableError` otherwise: nothing would be
    measured).
    """
    name = args.name
    if args.out is not None:
        if args.out_dir is not None or name is not None:
            raise InputError("--out FILE.json names the file itself; accepted: --out alone, "
                             "or --out-dir and/or --name")
        if args.out.suffix != ".json" or not args.out.stem:
            raise InputError(f"--out {str(args.out)!r} is not a .json file name; accepted: "
                             f"e.g. --out results/run.json (the PNG goes beside it)")
    if name is not None and (not name.strip() or Path(name).name != name or name in (".", "..")):
        raise InputError(f"--name {name!r} is not a file stem; accepted: a name without a "
                         f"folder, e.g. cpu-mybox (the folder is --out-dir)")
    folder, flag = ((args.out.parent, "--out") if args.out is not None
                    else (args.out_dir or DEFAULT_OUT_DIR, "--out-dir"))
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise PathError(f"{flag} {str(folder)!r}: {err.strerror}") from None
    if args.out is not None:
        check_output_folder(args.out)
        if args.plot:
            check_output_folder(args.out.with_suffix(".png"))
    elif name is not None:
        check_output_folder(folder / f"{name}.json")
    if "cpu" not in args.devices:
        cuda = cuda_report(args.frameworks)
        if not cuda["measured"]:
            raise DeviceUnavailableError(f"--devices cuda: {cuda['reason']}; nothing to measure")
    return args


def execute(args, argv=None) -> int:
    """Run with checked ``args``; print the tables; write JSON (and PNG) atomically."""
    payload = run(options_from_args(args), argv=argv)
    if args.out is not None:
        json_target = args.out
    else:
        stem = args.name or file_stem(payload, args.quick)
        json_target = (args.out_dir or DEFAULT_OUT_DIR) / f"{stem}.json"
    print()
    print(format_table(payload["rows"]))
    print()
    print(format_targets(payload["targets"]))
    print()
    parallel = format_data_parallel(payload)
    if parallel:
        print(parallel)
        print()
    print(format_summary(payload))
    json_path = write_json(json_target, payload)
    print(f"wrote {json_path}")
    if args.plot:
        from .plot import write_plot

        print(f"wrote {write_plot(json_target.with_suffix('.png'), payload)}")
    return 0


def main(argv=None) -> int:
    """``python -m benchmarks``: bad input is one line on stderr and exit status 2; an error
    during the timing itself keeps its traceback."""
    parser = build_parser()
    checked = run_command("python -m benchmarks", lambda: parser.parse_args(argv),
                          check_request)
    if isinstance(checked, int):
        return checked
    return execute(checked, argv=argv)
