"""Subcommands of ``weight-decay``: one module each, with ``add_parser(subparsers)`` and
``execute(args) -> int``. The list (in the order ``--help`` shows it) is
:data:`weight_decay.cli.COMMANDS`; this package imports none of them, so that a helper module
here (``options``) can be imported on its own.
"""
