"""The ``weight-decay`` command (also ``python -m wd_core``).

Each subcommand lives in :mod:`wd_core.commands` and provides ``add_parser(subparsers)``
and ``execute(args) -> int``. Bad input ends with one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import sys

from wd_core.commands import COMMANDS
from wd_core.errors import DeviceUnavailableError

EXIT_BAD_INPUT = 2


class UsageError(Exception):
    """Raised instead of argparse's usage-and-exit, so the CLI prints one line."""


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors raise :class:`UsageError` (no usage block)."""

    def error(self, message):
        raise UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="weight-decay",
        description="Weight decay (D2L 3.7) in PyTorch and JAX + optax, against a float64 "
        "reference.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in COMMANDS:
        command.add_parser(subparsers)
    return parser


def main(argv=None) -> int:
    """Run the command line; return the exit status (0 ok, 2 bad input, others per command)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        return args.execute(args)
    except UsageError as err:
        return _fail(str(err))
    except (ValueError, TypeError, ImportError, OSError, DeviceUnavailableError) as err:
        return _fail(str(err))
    except KeyboardInterrupt:
        print("weight-decay: interrupted", file=sys.stderr)
        return 130


def _fail(message: str) -> int:
    first_line = " ".join(message.split())
    print(f"weight-decay: error: {first_line}", file=sys.stderr)
    return EXIT_BAD_INPUT


if __name__ == "__main__":
    raise SystemExit(main())
