"""The processes of this machine as /proc lists them, for the tests that start workers, and
:func:`run_launch`: commands started side by side with nothing of theirs left afterwards."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from dataclasses import dataclass
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


@dataclass
class Launch:
    """What :func:`run_launch` saw: each command's ``(returncode, stdout, stderr)``, the
    processes still running when the commands had ended (``left``), and whether the timeout
    stopped them (``timed_out``)."""

    results: list[tuple[int, str, str]]
    left: list[int]
    timed_out: bool


def run_launch(commands, folder: Path, env: dict, timeout_s: float, logs: Path) -> Launch:
    """Start every command in ``folder`` (each in a session of its own, output to the files
    ``<i>.out`` and ``<i>.err`` in ``logs``) and wait for all, noting every process they
    start; stop them at ``timeout_s``. Whatever happens, nothing is left afterwards: what
    still runs gets SIGTERM (torchrun then stops its workers), then every noted process
    SIGKILL, and the commands are reaped."""
    logs = [(logs / f"{i}.out", logs / f"{i}.err") for i in range(len(commands))]
    procs, seen, left, timed_out = [], {}, [], False
    try:
        for cmd, (out, err) in zip(commands, logs, strict=True):
            with out.open("w") as stdout, err.open("w") as stderr:
                procs.append(subprocess.Popen(cmd, cwd=folder, env=env, stdout=stdout,
                                              stderr=stderr, start_new_session=True))
        deadline = time.monotonic() + timeout_s
        while any(proc.poll() is None for proc in procs):
            for proc in procs:
                if proc.poll() is None:
                    seen.update(descendants(proc.pid))
            if time.monotonic() > deadline:
                timed_out = True
                break
            time.sleep(0.05)
        left = still_running(seen)
    finally:
        _stop(procs, seen)
    results = [(proc.returncode, out.read_text(errors="replace"),
                err.read_text(errors="replace"))
               for proc, (out, err) in zip(procs, logs, strict=False)]
    return Launch(results, left, timed_out)


def _stop(procs, seen) -> None:
    running = [proc for proc in procs if proc.poll() is None]
    for proc in running:
        proc.terminate()
    for proc in running:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(10)
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
    for pid in still_running(seen):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    for proc in procs:
        proc.wait()
