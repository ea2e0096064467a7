"""The ``weight-decay`` command (also ``python -m weight_decay``).

Each subcommand is a module of :mod:`weight_decay.commands` with ``add_parser(subparsers)``
and ``execute(args) -> int``, listed in :data:`COMMANDS`; a new subcommand is a new module
added there. Bad input (:class:`wd_core.errors.InputError`, argparse usage
errors) ends with one line on stderr and exit status 2; any other exception is a bug and
keeps its traceback (exit status 1). SIGTERM is taken as Ctrl-C while the command runs (exit
status 130): whatever it started is stopped and cleaned up, nothing half-written is left.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import threading

from wd_core.errors import InputError, run_command
from weight_decay.commands import bench, demo, plot, port_check, run, sweep

#: The subcommands, in the order ``--help`` lists them.
COMMANDS = (run, demo, sweep, plot, bench, port_check)


class UsageError(InputError):
    """An argparse usage error, raised instead of argparse's usage-and-exit."""


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
    """Run the command line; return the exit status (0 ok, 2 bad input, 130 interrupted by
    Ctrl-C or SIGTERM, others per command)."""
    parser = build_parser()
    with terminate_as_interrupt():
        return run_command("weight-decay", lambda: parser.parse_args(argv),
                           lambda args: args.execute(args))


@contextlib.contextmanager
def terminate_as_interrupt():
    """While the block runs, SIGTERM raises ``KeyboardInterrupt`` in the main thread (as
    Ctrl-C does), so that the command stops its workers and removes its temporary files; the
    previous handler is restored afterwards. Nothing changes outside the main thread."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt("SIGTERM")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)


if __name__ == "__main__":
    raise SystemExit(main())
