"""Subcommands of ``weight-decay``: each module has ``add_parser`` and ``execute``."""

from wd_core.commands import demo, run

COMMANDS = (run, demo)
