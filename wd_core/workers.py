"""Start, supervise and stop the local worker processes of a data-parallel run.

Standard library only (no framework is imported here). The supervisor (:func:`launch`) runs
``python -m <module> <job file>`` once per worker, each in its own process group, with the
environment variables that name its place in the cluster (the ones the engines' own launchers
set: ``torchrun``'s ``RANK``/``WORLD_SIZE``/``MASTER_ADDR``/``MASTER_PORT``, or JAX's
coordinator address, process count and id), so a worker started here runs exactly the code a
worker started by ``torchrun`` or on another machine runs. The worker side is :func:`serve`.

The rules it keeps:

* a worker that fails stops the whole run: the others are killed at once (their whole
  process groups) and :class:`WorkerError` names the worker and the cause: the first
  exception a worker raised of its own (with its traceback; an engine's error that only says
  a peer went away does not count, :func:`reports_lost_peer`), unless a worker had died
  without a word before it (killed by a signal, out of memory, an exit status), which is then
  the cause; else the first lost-peer error. A worker that stops answering (no heartbeat for
  :data:`HEARTBEAT_TIMEOUT_S`: stopped, or hung holding the interpreter) is named as soon as
  the heartbeat is overdue, before its peers' collectives time out;
* Ctrl-C (``KeyboardInterrupt`` in the supervisor) or an exception raised by ``progress`` kills
  every worker and propagates; a worker whose supervisor disappears kills itself
  (``PR_SET_PDEATHSIG`` on Linux, and a watchdog thread everywhere);
* no worker outlives :func:`launch`, and neither does its temporary folder: every process is
  killed if still running and reaped, and the folder removed, before it returns or raises
  (the folders of earlier supervisors that were killed outright are removed by the next
  launch). :func:`running_workers` is the bookkeeping.

Rank 0's result comes back as a pickle in the launch's temporary folder; progress, heartbeats
and errors come back as JSON lines on a pipe per worker. The engines' own timeouts
(:data:`STARTUP_TIMEOUT_S`, :data:`COLLECTIVE_TIMEOUT_S`) bound how long a worker waits for a
peer that is gone when no supervisor kills it (``torchrun``, several machines).

Every worker process ends through :func:`end_process`, whoever started it (:func:`serve`
under this supervisor; the command line under ``torchrun`` or started by hand): the engine's
runtime left after a finished run, output flushed, ``os._exit`` with the status.
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import re
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

from wd_core.errors import InputError

#: Exit status of the command line when a worker failed (one line on stderr names it).
EXIT_WORKER_FAILED = 4
#: Seconds every worker has to join the cluster (rendezvous, JAX's initialization).
STARTUP_TIMEOUT_S = 60
#: Seconds a collective waits for a peer before it fails (torch's process-group timeout,
#: JAX's heartbeat timeout). The engines' defaults are 10 to 30 minutes.
COLLECTIVE_TIMEOUT_S = 30
#: After worker 0 has finished cleanly, the others have this long to finish too.
EXIT_GRACE_S = 30
#: How often the supervisor looks at its workers.
POLL_S = 0.05
#: A worker sends a heartbeat this often (a thread of its own, from :func:`serve` on) ...
HEARTBEAT_S = 1.0
#: ... and one silent for this long (after its first message; before it, the
#: :data:`STARTUP_TIMEOUT_S`) has stopped answering: the run is stopped, naming it. Shorter
#: than the engines' timeouts, so that a hung worker is named before its peers time out.
HEARTBEAT_TIMEOUT_S = 20.0
#: When the first failure seen is a worker's report that a peer went away, the supervisor
#: waits this long for the cause (another worker's exception or death) before it names one.
LOST_PEER_WAIT_S = 2.0
#: The temporary folder of a launch: this prefix, the supervisor's pid, a dash.
FOLDER_PREFIX = "wd-workers-"

CHANNEL_ENV = "WD_WORKER_CHANNEL"
SUPERVISOR_ENV = "WD_SUPERVISOR_PID"
RESULT_ENV = "WD_WORKER_RESULT"

#: rank -> pid of the workers of the launch in progress (one launch at a time).
_RUNNING: dict[int, int] = {}
#: Every worker pid this process has started, in order.
_LAUNCHED: list[int] = []


class WorkerError(RuntimeError):
    """A worker of a data-parallel run failed; the run was stopped and gave no result.

    Attributes: ``rank``, ``workers``, ``cause`` (one line), ``traceback`` (the worker's own
    traceback of the exception it raised, as Python prints it; ``""`` when it raised none:
    killed, stopped answering), ``input_error`` (the worker refused its input: an
    ``InputError``, whose one line says it all), ``log`` (the end of the worker's output).
    """

    def __init__(self, rank: int, workers: int, cause: str, log: str = "", *,
                 traceback: str = "", input_error: bool = False):
        super().__init__(f"worker {rank} of {workers} failed: {cause}")
        self.rank, self.workers, self.cause, self.log = rank, workers, cause, log
        self.traceback, self.input_error = traceback, input_error


@dataclass(frozen=True)
class Cluster:
    """This process's place in a run: ``rank`` of ``world_size`` processes, and the address
    (``host``, ``port``) of rank 0's rendezvous (torch's store, JAX's coordinator)."""

    rank: int
    world_size: int
    host: str
    port: int

    @property
    def address(self) -> str:
        """``host:port``."""
        return f"{self.host}:{self.port}"


def cluster_from_env(names: dict, env=None) -> Cluster | None:
    """The :class:`Cluster` that the environment variables ``names`` describe, or None when
    none of them is set.

    ``names`` maps ``rank``, ``world_size`` and either ``address`` (``host:port``) or ``host``
    and ``port`` to variable names. ``InputError`` naming the variable when one is missing or
    not a number.
    """
    env = os.environ if env is None else env
    if not any(name in env for name in names.values()):
        return None
    values = {}
    for key, name in names.items():
        if name not in env:
            raise InputError(f"environment variable {name} is not set; a data-parallel worker "
                             f"needs {', '.join(names.values())}")
        values[key] = env[name]
    if "address" in values:
        host, _, port = values.pop("address").rpartition(":")
        values.update(host=host, port=port)
    parsed = {}
    for key in ("rank", "world_size", "port"):
        try:
            parsed[key] = int(values[key])
        except ValueError:
            raise InputError(f"{key} from the environment is not an integer: "
                             f"{values[key]!r}") from None
    if not 0 <= parsed["rank"] < parsed["world_size"]:
        raise InputError(f"rank {parsed['rank']} is not in 0..{parsed['world_size'] - 1}")
    return Cluster(parsed["rank"], parsed["world_size"], values["host"], parsed["port"])


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that is free now (the system's choice for port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def running_workers() -> dict[int, int]:
    """rank -> pid of the worker processes of the launch in progress (empty between runs)."""
    return dict(_RUNNING)


def launched_pids() -> list[int]:
    """Every worker pid that a launch in this process has started (all reaped by now unless
    a launch is in progress)."""
    return list(_LAUNCHED)


def visible_gpu_count() -> int:
    """NVIDIA GPUs this machine shows (``/proc/driver/nvidia/gpus``, Linux), as many as
    ``CUDA_VISIBLE_DEVICES`` lets through when it is set; 0 elsewhere. No framework (and no
    GPU memory) is touched."""
    try:
        count = len(os.listdir("/proc/driver/nvidia/gpus"))
    except OSError:
        return 0
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        count = min(count, len([v for v in visible.split(",") if v.strip()]))
    return count


def default_threads(workers: int) -> int:
    """Threads per worker when the user set none: the CPUs shared out, at least 1."""
    return max(1, (os.cpu_count() or 1) // workers)


def launch(module: str, job, workers: int, *, env_for_rank, progress=None,
           host: str = "127.0.0.1", timeout_s: float | None = None):
    """Run ``python -m module <job file>`` as ``workers`` local processes; return rank 0's result.

    Args:
        module: a module whose ``__main__`` calls :func:`serve`.
        job: any picklable value, handed to every worker's ``run``.
        env_for_rank: ``env_for_rank(cluster) -> dict`` of the environment variables that tell
            the worker of ``cluster`` (a :class:`Cluster` on ``host`` and a free port) where it
            is (the engine's launcher's names).
        progress: ``None`` or ``progress(epoch)``, called in this thread for each epoch that
            rank 0 reports.
        timeout_s: ``None``, or the seconds after which the run is stopped (``TimeoutError``).

    Raises :class:`WorkerError` when a worker fails; ``KeyboardInterrupt``, ``TimeoutError``
    and whatever ``progress`` raises propagate. Every worker has been killed (if needed) and
    reaped when this returns or raises.
    """
    port = free_port(host)
    remove_stale_folders()
    with tempfile.TemporaryDirectory(prefix=f"{FOLDER_PREFIX}{os.getpid()}-") as folder:
        folder = Path(folder)
        job_path = folder / "job.pickle"
        result_path = folder / "result.pickle"
        job_path.write_bytes(pickle.dumps(job, protocol=pickle.HIGHEST_PROTOCOL))
        group = _Group(workers)
        try:
            for rank in range(workers):
                env = _worker_env(env_for_rank(Cluster(rank, workers, host, port)), workers)
                if rank == 0:
                    env[RESULT_ENV] = str(result_path)
                group.start(rank, [sys.executable, "-m", module, str(job_path)], env,
                            folder / f"worker{rank}.log")
            group.supervise(progress, timeout_s)
        finally:
            group.stop()
        if not result_path.exists():
            raise WorkerError(0, workers, "finished without writing a result")
        return pickle.loads(result_path.read_bytes())


def _worker_env(cluster_env: dict, workers: int) -> dict:
    env = dict(os.environ)
    # The workers import what this process imports, from wherever it was found.
    paths = [p or os.getcwd() for p in sys.path if os.path.isdir(p or ".")]
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env.setdefault("OMP_NUM_THREADS", str(default_threads(workers)))
    env[SUPERVISOR_ENV] = str(os.getpid())
    env.update(cluster_env)
    return env


class _Group:
    """The worker processes of one launch, their pipes and logs."""

    def __init__(self, workers: int):
        self.workers = workers
        self.procs: dict[int, subprocess.Popen] = {}
        self.logs: dict[int, Path] = {}
        self.selector = selectors.DefaultSelector()
        self.pending: dict[int, bytes] = {}
        self.errors: dict[int, dict] = {}
        self.started: dict[int, float] = {}
        self.heard: dict[int, float] = {}
        self.exited: dict[int, float] = {}
        self.progress = None

    def start(self, rank: int, argv: list, env: dict, log: Path) -> None:
        read_fd, write_fd = os.pipe()
        env = {**env, CHANNEL_ENV: str(write_fd)}
        self.logs[rank] = log
        try:
            with open(log, "wb") as out:
                self.procs[rank] = subprocess.Popen(
                    argv, env=env, stdin=subprocess.DEVNULL, stdout=out,
                    stderr=subprocess.STDOUT, pass_fds=(write_fd,), start_new_session=True)
        except BaseException:
            os.close(read_fd)
            raise
        finally:
            os.close(write_fd)
        _RUNNING[rank] = self.procs[rank].pid
        _LAUNCHED.append(self.procs[rank].pid)
        self.started[rank] = time.monotonic()
        os.set_blocking(read_fd, False)
        self.selector.register(read_fd, selectors.EVENT_READ, rank)
        self.pending[read_fd] = b""

    def supervise(self, progress, timeout_s=None) -> None:
        """Relay progress until every worker has exited 0; raise WorkerError on a failure."""
        self.progress = progress
        clean_since = None
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"the {self.workers} workers did not finish within "
                                   f"{timeout_s:g} s; stopped")
            self._read(POLL_S)
            codes = self._poll()
            if any(code not in (None, 0) for code in codes.values()):
                raise self._failure()
            silent = self._silent(codes)
            if silent is not None:
                raise silent
            if all(code == 0 for code in codes.values()):
                self._read_until(time.monotonic() + 2.0)  # to the end of every pipe
                return
            if codes[0] == 0:  # rank 0 has its result; the others must follow soon
                clean_since = clean_since or time.monotonic()
                if time.monotonic() - clean_since > EXIT_GRACE_S:
                    rank = min(r for r, code in codes.items() if code is None)
                    raise WorkerError(rank, self.workers,
                                      f"still running {EXIT_GRACE_S} s after worker 0 "
                                      f"finished", self._log_tail(rank))

    def _poll(self) -> dict:
        """rank -> exit status (None: running), noting when each exit was first seen."""
        codes = {rank: proc.poll() for rank, proc in self.procs.items()}
        now = time.time()  # the clock of the workers' reports, for the order of events
        for rank, code in codes.items():
            if code is not None:
                self.exited.setdefault(rank, now)
        return codes

    def _silent(self, codes) -> WorkerError | None:
        """The error of the running worker that has stopped answering, if one has: no
        message for :data:`HEARTBEAT_TIMEOUT_S` (none yet: :data:`STARTUP_TIMEOUT_S`)."""
        now = time.monotonic()
        for rank, code in codes.items():
            if code is not None:
                continue
            limit = HEARTBEAT_TIMEOUT_S if rank in self.heard else STARTUP_TIMEOUT_S
            since = self.heard.get(rank, self.started[rank])
            if now - since > limit:
                return WorkerError(rank, self.workers,
                                   f"stopped answering: no heartbeat for {now - since:.0f} s "
                                   f"(the process is stopped, or hung holding the "
                                   f"interpreter)", self._log_tail(rank))
        return None

    def _read_until(self, deadline: float) -> None:
        while self.selector.get_map():
            self._read(max(0.0, deadline - time.monotonic()))
            if time.monotonic() >= deadline:
                break

    def _read(self, timeout: float) -> None:
        for key, _ in self.selector.select(timeout):
            fd, rank = key.fd, key.data
            try:
                chunk = os.read(fd, 65536)
            except BlockingIOError:
                continue
            if not chunk:
                self.selector.unregister(fd)
                os.close(fd)
                chunk = b"\n"
            *lines, self.pending[fd] = (self.pending[fd] + chunk).split(b"\n")
            for line in lines:
                if line.strip():
                    self._message(rank, json.loads(line))

    def _message(self, rank: int, message: dict) -> None:
        self.heard[rank] = time.monotonic()
        if "error" in message:
            self.errors.setdefault(rank, message)
        elif "progress" in message and self.progress is not None:
            self.progress(message["progress"])

    def _failure(self) -> WorkerError:
        """The cause of a failed run (the module docstring's order), after reading what the
        workers still say for 0.3 s, or up to :data:`LOST_PEER_WAIT_S` while all that is
        known is that peers went away (the cause is then still on its way)."""
        deadline = time.monotonic() + 0.3
        longest = time.monotonic() + LOST_PEER_WAIT_S
        while True:
            self._read_until(deadline)
            codes = self._poll()
            known = any(not e.get("lost_peer") for e in self.errors.values()) or any(
                code not in (None, 0) and r not in self.errors for r, code in codes.items())
            if known or time.monotonic() >= longest:
                break
            deadline = min(longest, time.monotonic() + POLL_S)

        def raised_at(rank):
            return self.errors[rank].get("time", 0.0)

        own = [r for r, e in self.errors.items() if not e.get("lost_peer")]
        failed = [r for r, code in codes.items() if code not in (None, 0)]
        # died without a word: the first exit seen; of those seen together, a SIGKILL first
        silent = sorted((r for r in failed if r not in self.errors),
                        key=lambda r: (self.exited[r], codes[r] != -signal.SIGKILL))
        first_own = min(own, key=raised_at) if own else None
        if silent and (first_own is None or self.exited[silent[0]] < raised_at(first_own)):
            rank = silent[0]
            cause = (_signal_cause(-codes[rank]) if codes[rank] < 0
                     else f"exited with status {codes[rank]}")
            return WorkerError(rank, self.workers, cause, self._log_tail(rank))
        rank = first_own if first_own is not None else min(self.errors, key=raised_at)
        error = self.errors[rank]
        return WorkerError(rank, self.workers, error["error"], self._log_tail(rank),
                           traceback=error.get("traceback", ""),
                           input_error=bool(error.get("input_error")))

    def _log_tail(self, rank: int, lines: int = 30) -> str:
        try:
            text = self.logs[rank].read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        """Kill every worker still running (its whole process group) and reap them all."""
        for proc in self.procs.values():
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGKILL)
        for proc in self.procs.values():
            proc.wait()
        for fd in list(self.selector.get_map()):
            self.selector.unregister(fd)
            os.close(fd)
        self.selector.close()
        _RUNNING.clear()


def remove_stale_folders(root=None) -> list[str]:
    """Remove the temporary folders of launches whose supervisor is gone (killed outright:
    SIGKILL, a crash), this user's only; return their paths. A folder whose pid is alive,
    possibly reused by another process, is left."""
    root = Path(tempfile.gettempdir() if root is None else root)
    removed = []
    pattern = re.compile(re.escape(FOLDER_PREFIX) + r"(\d+)-")
    try:
        entries = list(root.iterdir())
    except OSError:
        return removed
    for entry in entries:
        match = pattern.match(entry.name)
        if match is None or _pid_alive(int(match.group(1))):
            continue
        try:
            if entry.lstat().st_uid != os.getuid() or not entry.is_dir():
                continue
        except OSError:
            continue
        shutil.rmtree(entry, ignore_errors=True)
        removed.append(str(entry))
    return removed


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _signal_cause(number: int) -> str:
    try:
        name = signal.Signals(number).name
    except ValueError:
        name = f"signal {number}"
    if number == signal.SIGKILL:
        return f"killed by {name} (from outside: kill -9, or the out-of-memory killer)"
    return f"killed by {name}"


# ---- the worker side ---------------------------------------------------------------------


def supervised() -> bool:
    """True in a worker that :func:`launch` started (False under ``torchrun`` and the like)."""
    return SUPERVISOR_ENV in os.environ


def serve(run, *, leave=None, lost_peer=None) -> None:
    """The ``__main__`` of a worker module: ``run(job, progress) -> result``.

    Reads the job from the file named by ``sys.argv[1]``; ``progress`` reports an epoch to
    the supervisor (given to rank 0 only; the others get None). Rank 0's result is written
    for the supervisor. A thread sends a heartbeat every :data:`HEARTBEAT_S`. The process
    ends through :func:`end_process`: after a success with ``leave()`` (the engine's runtime
    left) and status 0; after an exception, whose traceback is printed and sent to the
    supervisor with one line, with status 1 (``lost_peer(err)`` says whether the exception
    only reports a peer that went away).
    """
    channel = _Channel.from_env()
    _watch_supervisor(channel)
    try:
        job = pickle.loads(Path(sys.argv[1]).read_bytes())
        report = channel.progress if RESULT_ENV in os.environ else None
        result = run(job, report)
        if RESULT_ENV in os.environ:
            path = Path(os.environ[RESULT_ENV])
            tmp = path.with_suffix(".partial")
            tmp.write_bytes(pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL))
            os.replace(tmp, path)
    except BaseException as err:  # a worker reports everything, Ctrl-C included
        channel.send(error_report(err, lost_peer))
        traceback.print_exc()
        end_process(1)
    end_process(0, leave)


def error_report(err: BaseException, lost_peer=None) -> dict:
    """What a worker tells about the exception ``err`` it raised: ``error`` (one line),
    ``traceback`` (Python's, this process's frames), ``lost_peer`` (``lost_peer(err)``: the
    engine's error for a peer that went away, a consequence, not a cause), ``input_error``
    (an ``InputError``) and ``time``."""
    text = "".join(traceback.format_exception(err))
    return {"error": one_line(err), "traceback": text[-MAX_TRACEBACK:],
            "lost_peer": reports_lost_peer(err, lost_peer),
            "input_error": isinstance(err, InputError), "time": time.time()}


#: Words (lower case) of the errors the engines raise in a worker whose peer went away, as
#: they reach Python: gloo's and nccl's, also when wrapped (DDP's communication hook re-raises
#: gloo's error as a ``RuntimeError``, JAX's gloo collectives raise a ``ValueError``).
LOST_PEER_WORDS = ("gloo", "nccl", "connection reset by peer", "connection closed by peer")


def reports_lost_peer(err: BaseException, lost_peer=None) -> bool:
    """Whether ``err`` only reports that a peer went away (a consequence of another worker's
    failure): ``lost_peer(err)`` (the engine's own error types), or its message names a
    collective's transport (:data:`LOST_PEER_WORDS`)."""
    if lost_peer is not None:
        with contextlib.suppress(Exception):
            if lost_peer(err):
                return True
    if isinstance(err, (KeyboardInterrupt, InputError)):
        return False
    text = str(err).lower()
    return any(word in text for word in LOST_PEER_WORDS)


#: The end of a worker's traceback that reaches the supervisor (characters).
MAX_TRACEBACK = 20000


def end_process(status: int, leave=None):
    """End this worker process: the one exit path of every data-parallel worker, whoever
    started it. Never returns.

    ``leave`` (given after a finished run, on every worker) ends the process's part in the
    engine's runtime first (an exception there is printed and the status becomes 1 if it was
    0); then stdout and stderr are flushed and the process exits with ``status`` through
    ``os._exit``: no interpreter shutdown, whose exit hooks can wait for peers that are gone
    and whose teardown of a framework's C++ threads can abort a finished run (gloo:
    "terminate called without an active exception").
    """
    if leave is not None:
        try:
            leave()
        except BaseException:
            traceback.print_exc()
            status = status or 1
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(status)


def one_line(err: BaseException) -> str:
    """``Type: message`` on one line, at most 500 characters."""
    text = " ".join(str(err).split())
    line = f"{type(err).__name__}: {text}" if text else type(err).__name__
    return line if len(line) <= 500 else line[:497] + "..."


class _Channel:
    """JSON lines to the supervisor (nothing when there is none), from any thread."""

    def __init__(self, fd: int | None):
        self.fd = fd
        self.lock = threading.Lock()

    @classmethod
    def from_env(cls):
        fd = os.environ.get(CHANNEL_ENV)
        return cls(int(fd) if fd is not None else None)

    def send(self, message: dict) -> None:
        if self.fd is None:
            return
        data = (json.dumps(message) + "\n").encode()
        with self.lock, contextlib.suppress(OSError):
            while data:
                data = data[os.write(self.fd, data):]

    def progress(self, epoch: int) -> None:
        self.send({"progress": int(epoch)})


def _watch_supervisor(channel: _Channel) -> None:
    """Die with the supervisor (SIGKILL on its death on Linux, and a watchdog thread), and
    send it a heartbeat every :data:`HEARTBEAT_S` from that thread."""
    supervisor = os.environ.get(SUPERVISOR_ENV)
    if supervisor is None:
        return
    supervisor = int(supervisor)
    if sys.platform.startswith("linux"):
        with contextlib.suppress(Exception):
            import ctypes

            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG

    def watch():
        while os.getppid() == supervisor:
            time.sleep(HEARTBEAT_S)
            channel.send({"alive": time.time()})
        os._exit(1)

    channel.send({"alive": time.time()})  # the first sign of life, before any work

    threading.Thread(target=watch, name="wd-supervisor-watchdog", daemon=True).start()


# ---- jobs --------------------------------------------------------------------------------


def portable_data(data):
    """``data`` for a job file: a :class:`wd_core.SyntheticData` as its constructor's
    arguments (every worker draws the same arrays from the seed, so none are copied), any
    other object as itself."""
    from wd_core.data import SyntheticData

    if type(data) is SyntheticData:
        return {"SyntheticData": data.arguments}
    return data


def data_from_portable(value):
    """The data that :func:`portable_data` described."""
    from wd_core.data import SyntheticData

    if isinstance(value, dict) and set(value) == {"SyntheticData"}:
        return SyntheticData(**value["SyntheticData"])
    return value
