"""``weight-decay bench``: the benchmarks, ``python -m benchmarks`` with the same options."""

from __future__ import annotations

from wd_benchmarks.cli import add_arguments, check_request
from wd_benchmarks.cli import execute as run_benchmarks


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "bench", help="time idiomatic loops, train() and fused paths (python -m benchmarks)",
        allow_abbrev=False)
    add_arguments(parser)
    parser.set_defaults(execute=execute)


def execute(args) -> int:
    return run_benchmarks(check_request(args))
