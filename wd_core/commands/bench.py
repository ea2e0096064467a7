"""``weight-decay bench``: the benchmarks, ``python -m benchmarks`` with the same options."""

from __future__ import annotations


def add_parser(subparsers) -> None:
    from benchmarks.cli import add_arguments

    parser = subparsers.add_parser(
        "bench", help="time idiomatic loops, train() and fused paths (python -m benchmarks)")
    add_arguments(parser)
    parser.set_defaults(execute=execute)


def execute(args) -> int:
    from benchmarks.cli import check_request
    from benchmarks.cli import execute as run_benchmarks

    return run_benchmarks(check_request(args))
