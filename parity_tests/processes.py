"""The processes of this machine as /proc lists them, for the tests that start workers."""

from __future__ import annotations

import os
from pathlib import Path

#: Fields of /proc/PID/stat after the command name, counted from 0 (proc(5): state, ppid,
#: pgrp, session, ...).
STAT_FIELDS = {"ppid": 1, "session": 3}


def processes_with(field: str, value: int) -> list[int]:
    """The pids whose /proc stat ``field`` (``"ppid"`` or ``"session"``) equals ``value``."""
    index = STAT_FIELDS[field]
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rpartition(")")[2].split()[index]) == value:
                found.append(int(entry.name))
    return found


def descendants(pid: int) -> set[int]:
    """Every process whose chain of parents leads to ``pid`` (now)."""
    found, todo = set(), [pid]
    while todo:
        for child in processes_with("ppid", todo.pop()):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def alive(pids) -> list[int]:
    """Those of ``pids`` that ``os.kill(pid, 0)`` still finds."""
    found = []
    for pid in pids:
        try:
            os.kill(pid, 0)
            found.append(pid)
        except ProcessLookupError:
            pass
    return found
