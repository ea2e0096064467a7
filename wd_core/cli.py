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
    return run_guarded(build_parser(), argv, lambda args: args.execute(args))


def run_guarded(parser: argparse.ArgumentParser, argv, execute, prog: str = "weight-decay"):
    """Parse ``argv`` with ``parser`` (a :class:`OneLineParser`) and return ``execute(args)``.

    Bad input (a usage error, ``ValueError``, ``TypeError``, ``ImportError``, ``OSError``,
    :class:`DeviceUnavailableError`) prints one line ``<prog>: error: ...`` on stderr and
    returns 2; Ctrl-C prints ``<prog>: interrupted`` and returns 130.
    """
    try:
        return execute(parser.parse_args(argv))
    except (UsageError, ValueError, TypeError, ImportError, OSError,
            DeviceUnavailableError) as err:
        print(f"{prog}: error: {' '.join(str(err).split())}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
