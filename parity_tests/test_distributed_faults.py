"""Data-parallel runs end to end, both backends: ``train()`` and ``weight-decay run --workers``,
a worker killed mid-run, a bug planted in a worker, a worker that stops answering, Ctrl-C and
SIGTERM, and bad input refused before any process starts.

Each test here starts 2 workers through the project's own entry points (the
``wd_<backend>.distributed`` modules), and checks afterwards, with the launcher's bookkeeping
and ``os.kill(pid, 0)``, that none is left.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from parity_tests.conftest import require_backends
from parity_tests.processes import processes_with
from parity_tests.test_distributed import DATA, EPOCHS, LR, assert_gone
from wd_core import SyntheticData, reference
from wd_core import workers as workers_module
from wd_core.errors import InputError
from wd_core.history import History
from wd_core.tolerances import assert_close
from wd_core.workers import FOLDER_PREFIX, launched_pids, running_workers
from weight_decay.cli import main

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--num-train", str(DATA["num_train"]), "--num-val", str(DATA["num_val"]),
        "--num-inputs", str(DATA["num_inputs"]), "--batch-size", str(DATA["batch_size"])]
#: The issue's bound: a dead worker stops the whole run within this.
STOP_WITHIN_S = 60
#: ``sitecustomize.py`` of a folder put on the workers' path: worker 1 (torch's ``RANK``,
#: JAX's ``JAX_PROCESS_ID``) runs a step with a bug in it, in place of its chunk of epochs.
PLANTED_BUG = """
import os

if os.environ.get("RANK") == "1" or os.environ.get("JAX_PROCESS_ID") == "1":
    import wd_core.driver

    _drive = wd_core.driver.drive

    def drive(run_epochs, *args, **kwargs):
        def planted_step(state, first, count):
            return 1 / 0

        return _drive(planted_step, *args, **kwargs)

    wd_core.driver.drive = drive
"""


def planted_bug(folder: Path) -> Path:
    """A folder whose ``sitecustomize.py`` plants :data:`PLANTED_BUG` in any Python process
    started with it on its path."""
    folder.mkdir()
    (folder / "sitecustomize.py").write_text(PLANTED_BUG)
    return folder


def _distributed(backend):
    """``wd_<name>.distributed`` of ``backend`` (the ``wd_torch``/``wd_jax`` module that
    ``parity_tests/conftest.py`` parametrizes ``backend`` with, or its name)."""
    import importlib

    name = backend if isinstance(backend, str) else backend.__name__
    return importlib.import_module(f"{name if name.startswith('wd_') else 'wd_' + name}"
                                   f".distributed")


def _name(backend) -> str:
    return backend.__name__.removeprefix("wd_")


def assert_file_matches_reference(path) -> History:
    """The History in ``path`` (a float64 run of ``DATA`` with lambda 3) has the float64
    reference's parameters and losses; returns it."""
    history = History.from_json(path)
    oracle = reference.train(SyntheticData(**DATA), lambd=3.0, lr=LR, max_epochs=EPOCHS)
    for name in ("w", "b", "train_loss", "val_loss"):
        assert_close(getattr(history, name), getattr(oracle, name), "float64", name)
    return history


def test_engines_are_available(backend):
    """The multi-process tests fail, not skip, without gloo or jax.distributed."""
    if _name(backend) == "torch":
        import torch.distributed as dist

        assert dist.is_available() and dist.is_gloo_available()
    else:
        import jax

        assert callable(jax.distributed.initialize)
        assert hasattr(jax.config, "jax_cpu_collectives_implementation")


def test_torch_command_line_run_equals_the_reference(tmp_path, capsys):
    require_backends("torch")
    out = tmp_path / "run.json"
    started = len(launched_pids())
    status = main(["run", "--backend", "torch", "--workers", "2", "--strategy", "zero",
                   "--accumulation-steps", "2", "--method", "scratch", "--dtype", "float64",
                   "--lr", str(LR), "--epochs", str(EPOCHS), *TINY, "--out", str(out)])
    assert status == 0
    assert_gone(launched_pids()[started:])
    assert len(launched_pids()) - started == 2
    history = assert_file_matches_reference(out)
    assert {k: history.config[k] for k in ("workers", "strategy", "accumulation_steps")} == {
        "workers": 2, "strategy": "zero", "accumulation_steps": 2}


def test_jax_train_reports_progress_and_equals_one_process():
    (wd_jax,) = require_backends("jax")
    seen = []
    data = SyntheticData(**DATA)
    kwargs = {"method": "concise", "lambd": 3.0, "lr": LR, "max_epochs": EPOCHS}
    started = len(launched_pids())
    history = _distributed("jax").train(data, workers=2, progress=seen.append, **kwargs)
    assert_gone(launched_pids()[started:])
    assert seen == list(range(EPOCHS))
    single = wd_jax.train(data, **kwargs)
    for name in ("w", "b", "train_loss", "val_loss"):
        assert_close(getattr(history, name), getattr(single, name), "float32", name)
    assert (history.config["workers"], history.config["strategy"]) == (2, "ddp")


@pytest.mark.parametrize(("how", "cause"), [
    (signal.SIGKILL, "killed by SIGKILL (from outside: kill -9, or the out-of-memory killer)"),
    (signal.SIGSTOP, "stopped answering: no heartbeat for "),
], ids=["killed", "stopped"])
def test_a_killed_or_stopped_worker_is_named(backend, how, cause, tmp_path, capsys,
                                             monkeypatch):
    """Worker 1 is killed (SIGKILL) or stopped (SIGSTOP: hung) once the run has finished its
    first chunk of epochs: exit status 4, one line naming worker 1 (not the peer that waits
    for it) and the cause, within 60 s for a kill and once the heartbeat has been missing for
    the timeout (3 s here) for a stop, well before the engines' own timeouts (30-60 s); the
    earlier result file whole, no worker left (a stopped one is killed too)."""
    from weight_decay.commands import run as run_command

    monkeypatch.setattr(workers_module, "HEARTBEAT_TIMEOUT_S", 3.0)
    out = tmp_path / "run.json"
    out.write_text("earlier result\n")
    hit = []

    def signal_worker_1(epoch):
        if not hit:
            hit.append(running_workers()[1])
            os.kill(hit[0], how)

    monkeypatch.setattr(run_command, "epoch_callback", lambda bar: signal_worker_1)
    started = len(launched_pids())
    begin = time.monotonic()
    with pytest.raises(SystemExit) as exit_info:
        main(["run", "--backend", _name(backend), "--workers", "2", "--epochs", "1000000", *TINY,
              "--out", str(out)])
    elapsed = time.monotonic() - begin
    assert exit_info.value.code == 4
    assert hit, "the run never reported an epoch"
    assert elapsed < (STOP_WITHIN_S if how == signal.SIGKILL else 25)
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        f"weight-decay: error: worker 1 of 2 failed: {cause}"), lines
    assert out.read_text() == "earlier result\n"
    assert not list(tmp_path.glob(".run.json.*"))
    assert_gone(launched_pids()[started:])
    assert running_workers() == {}


def test_a_bug_in_a_worker_reaches_the_terminal_with_its_traceback(backend, tmp_path, capsys,
                                                                  monkeypatch):
    """A ZeroDivisionError in worker 1's step: the worker's own traceback (its frames, down to
    the planted line) on the command's stderr, then one line naming worker 1; exit 4, no
    result, no process left."""
    monkeypatch.syspath_prepend(str(planted_bug(tmp_path / "plant")))  # the workers' path
    out = tmp_path / "run.json"
    started = len(launched_pids())
    with pytest.raises(SystemExit) as exit_info:
        main(["run", "--backend", _name(backend), "--workers", "2", "--epochs", "3", *TINY,
              "--out", str(out)])
    assert exit_info.value.code == 4
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == ("weight-decay: error: worker 1 of 2 failed: ZeroDivisionError: division "
                       "by zero")
    assert err[0] == "weight-decay: worker 1 of 2 raised an exception; its traceback:"
    assert err[1] == "Traceback (most recent call last):"
    frames = "\n".join(err)
    for where in ("wd_core/parallel.py", "in train_worker", "wd_core/driver.py",
                  "sitecustomize.py", "in planted_step", "return 1 / 0"):
        assert where in frames, frames
    assert err[-2] == "ZeroDivisionError: division by zero"
    assert not out.exists()
    assert_gone(launched_pids()[started:])


@pytest.mark.parametrize(("name", "how"), [("jax", signal.SIGINT), ("torch", signal.SIGTERM)],
                         ids=["jax-SIGINT", "torch-SIGTERM"])
def test_an_interrupted_command_leaves_nothing(name, how, tmp_path):
    """SIGINT (Ctrl-C) or SIGTERM to the command (its workers are in their own process groups,
    so only the supervisor gets it): exit 130, every worker gone, no result file, no
    temporary folder (the run's TMPDIR is empty)."""
    require_backends(name)
    out, scratch = tmp_path / "run.json", tmp_path / "tmp"
    scratch.mkdir()
    env = {**os.environ, "TMPDIR": str(scratch), "PYTHONPATH": os.pathsep.join(
        [str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen(
        [sys.executable, "-m", "weight_decay", "run", "--backend", name, "--workers", "2",
         "--epochs", "1000000", *TINY, "--out", str(out)], cwd=tmp_path, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        workers = _wait_for_workers(proc)
        time.sleep(1.0)
        assert [p.name for p in scratch.iterdir()][0].startswith(f"{FOLDER_PREFIX}{proc.pid}-")
        proc.send_signal(how)
        _, err = proc.communicate(timeout=STOP_WITHIN_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    assert err.strip().splitlines()[-1] == "weight-decay: interrupted"
    assert not out.exists()
    assert list(scratch.iterdir()) == []
    assert_gone(workers)


def _wait_for_workers(proc, count: int = 2, within_s: float = 60) -> list[int]:
    """The pids of the ``count`` workers ``proc`` starts, once they all run."""
    deadline = time.monotonic() + within_s
    workers = []
    while len(workers) < count and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
        workers = processes_with("ppid", proc.pid)
    assert len(workers) == count, f"workers not started: {workers}"
    return workers


BAD = [
    ({"workers": 0}, "workers must be a positive integer"),
    ({"workers": 2.0}, "workers must be a positive integer"),
    ({"strategy": "pipeline"}, "unknown strategy 'pipeline'"),
    ({"accumulation_steps": 0}, "accumulation_steps must be a positive integer"),
    ({"accumulation_steps": DATA["batch_size"] + 1}, "larger than a batch"),
    ({"device": "cuda"}, "needs a GPU for every worker"),
    ({"device": "cuda:1"}, "names one GPU"),
]


@pytest.mark.parametrize(("change", "message"), BAD, ids=[str(c) for c, _ in BAD])
def test_bad_input_is_refused_before_any_process_starts(backend, change, message):
    kwargs = {"method": "concise", "lambd": 3.0, "lr": LR, "max_epochs": EPOCHS, "workers": 2,
              **change}
    started = len(launched_pids())
    with pytest.raises(InputError, match=message):
        _distributed(backend).train(SyntheticData(**DATA), **kwargs)
    assert len(launched_pids()) == started


@pytest.mark.parametrize("strategy", ["zero", "fsdp"])
def test_a_torch_strategy_is_refused_by_jax(strategy):
    require_backends("jax")
    with pytest.raises(InputError, match=f"strategy '{strategy}' does not apply to backend"):
        _distributed("jax").train(SyntheticData(**DATA), method="concise", lambd=3.0, lr=LR,
                                  max_epochs=EPOCHS, workers=2, strategy=strategy)


@pytest.mark.parametrize("args", [
    ["--workers", "0"],
    ["--workers", "2", "--strategy", "pipeline"],
    ["--workers", "2", "--accumulation-steps", "0"],
    ["--workers", "2", "--accumulation-steps", "6"],
    ["--workers", "2", "--device", "cuda"],
    ["--workers", "2", "--fused"],
    ["--workers", "2", "--strategy", ""],
    ["--strategy", "ddp"],
    ["--accumulation-steps", "2"],
], ids=" ".join)
def test_bad_command_lines_exit_2_with_one_line(backend, args, capsys, tmp_path):
    started = len(launched_pids())
    status = main(["run", "--backend", _name(backend), *args, *TINY,
                   "--out", str(tmp_path / "r.json")])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1 and err[0].startswith("weight-decay: error: "), err
    assert len(launched_pids()) == started
    assert not (tmp_path / "r.json").exists()
