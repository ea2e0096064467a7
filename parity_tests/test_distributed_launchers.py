"""The launches that the project's own supervisor does not watch, as on several machines but on
one: torchrun (``python -m torch.distributed.run --standalone``) starting the torch workers,
and two JAX processes started side by side with ``--coordinator-address`` and
``--process-id``. Each runs ``weight-decay run`` end to end; rank 0's file is checked against
the float64 reference, the other rank writes nothing and exits 0.

Every process is started in a session of its own; afterwards no process of those sessions
may be left (torchrun's workers included), and a test that fails kills them all.
"""

from __future__ import annotations

import os
import sys

import pytest

from parity_tests.conftest import require_backends
from parity_tests.processes import run_launch
from parity_tests.test_distributed import EPOCHS, LR
from parity_tests.test_distributed_faults import (
    ROOT,
    TINY,
    assert_file_matches_reference,
    planted_bug,
)
from wd_core.workers import free_port, launched_pids

RUN = ["-m", "weight_decay", "run", "--workers", "2", "--method", "scratch", "--dtype",
       "float64", "--lr", str(LR), "--epochs", str(EPOCHS), *TINY]
#: A launch that takes longer than this has hung (about 10 s is usual).
LAUNCH_TIMEOUT_S = 120


def _run_all(commands, tmp_path) -> list[tuple[int, str, str]]:
    """Start every command in ``tmp_path / "run"`` (:func:`parity_tests.processes.run_launch`)
    and return each one's ``(returncode, stdout, stderr)``. Fails if the launch hangs or one
    of the processes it started outlives it; none is left afterwards either way."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT),
                                                        os.environ.get("PYTHONPATH", "")])}
    (tmp_path / "run").mkdir()
    launch = run_launch(commands, tmp_path / "run", env, LAUNCH_TIMEOUT_S, logs=tmp_path)
    assert not launch.timed_out, f"the launch did not end within {LAUNCH_TIMEOUT_S} s"
    assert not launch.left, f"processes left behind: {launch.left}"
    return launch.results


def test_torchrun_starts_the_torch_workers(tmp_path):
    require_backends("torch")
    out = tmp_path / "run" / "run.json"
    [(status, stdout, stderr)] = _run_all([[
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
        *RUN, "--backend", "torch", "--strategy", "ddp", "--out", str(out)]], tmp_path)
    assert status == 0, stderr
    history = assert_file_matches_reference(out)
    assert history.config["workers"] == 2 and history.config["strategy"] == "ddp"
    assert sorted(p.name for p in out.parent.iterdir()) == ["run.json"]


def test_a_bug_in_a_torchrun_worker_shows_its_traceback_and_rank(tmp_path):
    """Worker 1 raises in its step (the planted bug): it prints its traceback and one line
    naming it and exits 4; worker 0, whose peer went away, prints one line (no traceback of
    the lost connection) and exits 4; torchrun fails; no file, no process left."""
    require_backends("torch")
    plant = planted_bug(tmp_path / "plant")
    out = tmp_path / "run" / "run.json"
    [(status, stdout, stderr)] = _run_all([[
        "env", f"PYTHONPATH={plant}{os.pathsep}{ROOT}", sys.executable, "-m",
        "torch.distributed.run", "--standalone", "--nproc-per-node", "2", *RUN, "--backend",
        "torch", "--out", str(out)]], tmp_path)
    assert status != 0
    assert "weight-decay: error: worker 1 of 2 failed: ZeroDivisionError: division by zero" in (
        stderr)
    assert "in planted_step" in stderr and "\nZeroDivisionError: division by zero\n" in stderr
    assert "weight-decay: error: worker 0 of 2 failed: " in stderr
    ends = [end for end in traceback_ends(stderr) if not end.startswith("torch.distributed")]
    assert ends == ["ZeroDivisionError: division by zero"], ends  # torchrun adds its own
    assert "exitcode  : 4" in stderr
    assert not out.exists()


def traceback_ends(text: str) -> list[str]:
    """The last line (``Type: message``) of each Python traceback printed in ``text``."""
    ends, inside = [], False
    for line in text.splitlines():
        if line == "Traceback (most recent call last):":
            inside = True
        elif inside and line and not line[0].isspace():
            ends.append(line)
            inside = False
    return ends


def test_the_stress_script_passes_its_runs():
    """``python -m parity_tests.stress_launches`` (30 runs by hand, docs/data_parallel.md):
    two torchrun launches under load here."""
    require_backends("torch")
    from parity_tests.stress_launches import stress

    lines = []
    assert stress(2, "torchrun", load=1, log=lines.append) == 2, "\n".join(lines)


@pytest.mark.parametrize("by", ["flags", "environment"])
def test_jax_processes_started_side_by_side(tmp_path, by):
    """Process 0 and process 1, each started on its own as on two machines, meet at the
    coordinator (the two flags, or ``JAX_COORDINATOR_ADDRESS`` and ``JAX_PROCESS_ID``)."""
    require_backends("jax")
    out = tmp_path / "run" / "run.json"
    address = f"127.0.0.1:{free_port()}"
    if by == "flags":
        commands = [[sys.executable, *RUN, "--backend", "jax", "--coordinator-address", address,
                     "--process-id", str(i), "--out", str(out)] for i in range(2)]
    else:
        commands = [["env", f"JAX_COORDINATOR_ADDRESS={address}", f"JAX_PROCESS_ID={i}",
                     sys.executable, *RUN, "--backend", "jax", "--out", str(out)]
                    for i in range(2)]
    results = _run_all(commands, tmp_path)
    for status, _, stderr in results:
        assert status == 0, stderr
    assert assert_file_matches_reference(out).config["workers"] == 2
    assert sorted(p.name for p in out.parent.iterdir()) == ["run.json"]
    assert results[1][1].strip().splitlines()[-1].startswith(
        "weight-decay: this worker of 2 is done; worker 0 has the result")


BAD_LAUNCHES = [
    ("jax", ["--coordinator-address", "nohost", "--process-id", "0"], {},
     "--coordinator-address 'nohost' is not HOST:PORT"),
    ("jax", ["--coordinator-address", "127.0.0.1:1"], {}, "needs both"),
    ("jax", ["--coordinator-address", "127.0.0.1:1", "--process-id", "2"], {},
     "--process-id 2 is not below --workers 2"),
    ("jax", [], {"JAX_COORDINATOR_ADDRESS": "nohost", "JAX_PROCESS_ID": "0"},
     "JAX_COORDINATOR_ADDRESS 'nohost' is not HOST:PORT"),
    ("jax", [], {"JAX_COORDINATOR_ADDRESS": "127.0.0.1:1", "JAX_PROCESS_ID": "one"},
     "JAX_PROCESS_ID"),
    ("jax", [], {"JAX_COORDINATOR_ADDRESS": "127.0.0.1:1", "JAX_PROCESS_ID": "2"},
     "JAX_PROCESS_ID 2 is not below --workers 2"),
    ("jax", [], {"JAX_COORDINATOR_ADDRESS": "127.0.0.1:1", "JAX_PROCESS_ID": "0",
                 "JAX_NUM_PROCESSES": "3"}, "JAX_NUM_PROCESSES=3 does not match --workers 2"),
    ("jax", [], {"JAX_PROCESS_ID": "0"}, "JAX_PROCESS_ID is set but JAX_COORDINATOR_ADDRESS"),
    ("jax", [], {"JAX_COORDINATOR_ADDRESS": "127.0.0.1:1"},
     "JAX_COORDINATOR_ADDRESS is set but JAX_PROCESS_ID"),
    ("jax", ["--coordinator-address", "", "--process-id", "0"],
     {"JAX_COORDINATOR_ADDRESS": "127.0.0.1:1"}, "--coordinator-address '' is not HOST:PORT"),
    ("torch", ["--process-id", "0"], {}, "are for --backend jax"),
]


@pytest.mark.parametrize(("name", "args", "env", "message"), BAD_LAUNCHES,
                         ids=[" ".join([b, *a, *e]) for b, a, e, _ in BAD_LAUNCHES])
def test_bad_launch_settings_exit_2_with_one_line(name, args, env, message, monkeypatch,
                                                  capsys, tmp_path):
    """Flags or environment that name no usable cluster: one line naming the value, exit 2,
    no process started, no file."""
    from weight_decay.cli import main

    for variable in ("JAX_COORDINATOR_ADDRESS", "JAX_PROCESS_ID", "JAX_NUM_PROCESSES"):
        monkeypatch.delenv(variable, raising=False)
    for variable, value in env.items():
        monkeypatch.setenv(variable, value)
    started = len(launched_pids())
    status = main(["run", "--backend", name, "--workers", "2", *args, *TINY,
                   "--out", str(tmp_path / "r.json")])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1 and message in err[0], err
    assert len(launched_pids()) == started and not (tmp_path / "r.json").exists()
