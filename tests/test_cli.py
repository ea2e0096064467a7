"""The weight-decay command: run, demo, and one-line errors with exit status 2."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from wd_core import History, SyntheticData, reference
from wd_core.cli import main


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "wd_core", *args], capture_output=True,
                          text=True)


@pytest.mark.parametrize("backend", ["torch", "jax"])
def test_run_writes_a_history_that_matches_the_reference(tmp_path, backend):
    out = tmp_path / "run.json"
    result = run_cli("run", "--backend", backend, "--method", "scratch", "--lambd", "3",
                     "--lr", "0.01", "--epochs", "4", "--dtype", "float64", "--seed", "2",
                     "--device", "cpu", "--out", str(out))
    assert result.returncode == 0, result.stderr
    history = History.from_json(out)
    oracle = reference.train(SyntheticData(seed=2), lambd=3.0, lr=0.01, max_epochs=4)
    np.testing.assert_allclose(history.w, oracle.w, rtol=1e-12, atol=1e-14)
    assert history.config["backend"] == backend and history.config["seed"] == 2


def test_demo_prints_the_chapter_table(capsys):
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| ") and "---" not in line]
    assert len(rows) == 1 + 2 * (1 + 4)
    assert "All 8 framework rows agree with the float64 reference" in out
    oracle = reference.train(SyntheticData(), lambd=3.0, lr=0.01, max_epochs=10)
    assert f"{oracle.l2_penalty:.6e}" in out


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["frobnicate"], "invalid choice: 'frobnicate'"),
        (["run", "--backend", "torch", "--bogus"], "unrecognized arguments: --bogus"),
        (["run", "--backend", "mxnet"], "invalid choice: 'mxnet'"),
        (["run", "--backend", "jax", "--lambd", "-1"], "'-1' is not a finite number >= 0"),
        (["run", "--backend", "jax", "--lambd", "abc"], "'abc' is not a number"),
        (["run", "--backend", "jax", "--lr", "nan"], "'nan' is not a finite number >= 0"),
        (["run", "--backend", "jax", "--epochs", "0"], "'0' is not an integer >= 1"),
        (["run", "--backend", "jax", "--dtype", "float16"], "invalid choice: 'float16'"),
        (["run", "--backend", "torch", "--device", "tpu"], "unknown device 'tpu'"),
        (["run", "--backend", "torch", "--batch-size", "50"], "batch_size=50 is larger"),
        (["run", "--backend", "torch", "--out", "/no/such/folder/run.json"],
         "output folder '/no/such/folder'"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args, fragment):
    result = run_cli(*args)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert fragment in lines[0] and "Traceback" not in result.stderr


@pytest.mark.parametrize("backend", ["torch", "jax"])
def test_cuda_without_gpu_is_one_line_and_exit_2(backend):
    import importlib

    module = importlib.import_module(f"wd_{backend}")
    from wd_core import DeviceUnavailableError

    try:
        module.train(SyntheticData(), method="concise", lambd=1, lr=0.01, max_epochs=1,
                     device="cuda")
    except DeviceUnavailableError:
        pass
    else:
        pytest.skip("a GPU is present")
    result = run_cli("run", "--backend", backend, "--device", "cuda")
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert "'cuda' was asked for" in result.stderr


def test_missing_backend_is_one_line_with_install_hint():
    code = ("import sys; sys.modules['torch'] = None; from wd_core.cli import main; "
            "raise SystemExit(main(['run', '--backend', 'torch']))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "weight-decay: error: wd_torch needs PyTorch, which is not installed; install it with: "
        "pip install 'weight-decay[torch]'"
    ]


def test_diverged_run_warns_and_exits_3(tmp_path):
    result = run_cli("run", "--backend", "torch", "--lr", "10", "--lambd", "0",
                     "--out", str(tmp_path / "d.json"))
    assert result.returncode == 3
    assert "diverged" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert History.from_json(tmp_path / "d.json").diverged_epoch == 2
