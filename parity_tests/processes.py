"""The processes of this machine as /proc lists them, for the tests that start workers."""

from __future__ import annotations

import os
from pathlib import Path

#: Fields of /proc/PID/stat after the command name, counted from 0 (proc(5): state, ppid,
#: pgrp, session, ...; starttime, in clock ticks after boot, is the 20th).
STAT_FIELDS = {"ppid": 1, "session": 3, "start": 19}


def _stat(pid) -> list[str] | None:
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None


def processes_with(field: str, value: int) -> list[int]:
    """The pids whose /proc stat ``field`` (``"ppid"`` or ``"session"``) equals ``value``."""
    index = STAT_FIELDS[field]
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat(entry.name)
            if fields is not None and int(fields[index]) == value:
                found.append(int(entry.name))
    return found


def descendants(pid: int) -> dict[int, int]:
    """Every process whose chain of parents leads to ``pid`` (now), with its start time: a
    pid and its start time name one process, even after the pid is reused."""
    found, todo = {}, [pid]
    while todo:
        for child in processes_with("ppid", todo.pop()):
            fields = _stat(child)
            if child not in found and fields is not None:
                found[child] = int(fields[STAT_FIELDS["start"]])
                todo.append(child)
    return found


def still_running(started: dict[int, int]) -> list[int]:
    """The pids of ``started`` (pid -> start time, as :func:`descendants` gives) whose
    process is still there: the same pid with the same start time."""
    return [pid for pid, start in started.items()
            if (fields := _stat(pid)) is not None
            and int(fields[STAT_FIELDS["start"]]) == start]


def alive(pids) -> list[int]:
    """Those of ``pids`` that ``os.kill(pid, 0)`` still finds (a pid now of another user's
    process is not this test's)."""
    found = []
    for pid in pids:
        try:
            os.kill(pid, 0)
            found.append(pid)
        except (ProcessLookupError, PermissionError):
            pass
    return found
