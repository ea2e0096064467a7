"""Subcommands of ``weight-decay``, in the order ``--help`` lists them.

Each module has ``add_parser(subparsers)`` and ``execute(args) -> int``; a new subcommand is a
new module added to :data:`COMMANDS`.
"""

from __future__ import annotations

from weight_decay.commands import bench, demo, plot, port_check, run, sweep

COMMANDS = (run, demo, sweep, plot, bench, port_check)
