"""The processes of this machine as /proc lists them, for the tests that start workers."""

from __future__ import annotations

from pathlib import Path

#: Fields of /proc/PID/stat after the command name, counted from 0 (proc(5)).
STAT_FIELDS = {"ppid": 1, "session": 4}


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
