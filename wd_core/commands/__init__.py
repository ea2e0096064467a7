"""Subcommands of ``weight-decay``: every module here with ``add_parser`` and ``execute``.

Modules are discovered, so a new subcommand is one new file; ``ORDER`` fixes the help order
of the known ones (others follow alphabetically).
"""

from __future__ import annotations

import importlib
import pkgutil

ORDER = ("run", "demo", "sweep", "plot", "bench")


def _discover():
    names = [m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_")]
    modules = [importlib.import_module(f"{__name__}.{name}") for name in names]
    commands = [m for m in modules if hasattr(m, "add_parser") and hasattr(m, "execute")]
    rank = {name: i for i, name in enumerate(ORDER)}
    return tuple(sorted(commands, key=lambda m: (rank.get(m.__name__.rsplit(".", 1)[1],
                                                          len(ORDER)), m.__name__)))


COMMANDS = _discover()
