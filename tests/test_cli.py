"""The weight-decay command: run, sweep, plot, demo; progress bars; Ctrl-C; determinism; and
one-line errors with exit status 2.

Commands run in-process through ``main([...])`` where a separate process adds nothing; a
subprocess is used where the process boundary is the point (a real traceback would reach
stderr, a real SIGINT, byte-identical output from another process, a hidden framework).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from wd_core import History, SyntheticData, reference
from wd_core.sweeps import read_sweep
from weight_decay.cli import main

SMALL = ["--num-train", "6", "--num-val", "4", "--num-inputs", "5", "--batch-size", "3"]
SMALL_DATA = SyntheticData(num_train=6, num_val=4, num_inputs=5, batch_size=3)


def run_cli(*args, code=None):
    command = ([sys.executable, "-c", code] if code
               else [sys.executable, "-m", "weight_decay", *args])
    return subprocess.run(command, capture_output=True, text=True)


def one_error_line(capsys) -> str:
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("weight-decay: error: ") and "Traceback" not in captured.err
    return lines[0]


# ---- run and determinism -------------------------------------------------------------------

@pytest.mark.parametrize("backend", ["torch", "jax"])
def test_run_is_byte_identical_across_processes_and_matches_the_reference(tmp_path, backend):
    args = ["run", "--backend", backend, "--method", "scratch", "--lambd", "3", "--lr", "0.01",
            "--epochs", "4", "--dtype", "float64", "--seed", "2", "--device", "cpu"]
    result = run_cli(*args, "--out", str(tmp_path / "a.json"))
    assert result.returncode == 0, result.stderr
    assert main([*args, "--out", str(tmp_path / "b.json")]) == 0
    first, second = (tmp_path / "a.json").read_bytes(), (tmp_path / "b.json").read_bytes()
    assert first == second  # the same seed: the same bytes, from two processes
    history = History.from_json(tmp_path / "a.json")
    oracle = reference.train(SyntheticData(seed=2), lambd=3.0, lr=0.01, max_epochs=4)
    np.testing.assert_allclose(history.w, oracle.w, rtol=1e-12, atol=1e-14)
    assert history.config["backend"] == backend and history.config["seed"] == 2


def test_diverged_run_warns_and_exits_3(tmp_path, capsys):
    out = tmp_path / "d.json"
    assert main(["run", "--backend", "torch", "--lr", "10", "--lambd", "0", "--quiet",
                 "--out", str(out)]) == 3
    err = capsys.readouterr().err
    assert "diverged" in err and len(err.strip().splitlines()) == 1
    import wd_jax  # the other framework in float32 (float64 overflows later)

    other = wd_jax.train(SyntheticData(), method="concise", lambd=0.0, lr=10.0, max_epochs=10)
    assert History.from_json(out).diverged_epoch == other.diverged_epoch == 2


# ---- sweep ---------------------------------------------------------------------------------

@pytest.mark.parametrize("backend", ["torch", "jax"])
def test_sweep_writes_one_history_per_lambda(tmp_path, capsys, backend):
    out = tmp_path / "sweep.json"
    assert main(["sweep", "--backend", backend, "--lambdas", "3,0,0.5", "--dtype", "float64",
                 "--epochs", "3", "--lr", "0.1", *SMALL, "--epoch-params", "--out", str(out)]) == 0
    histories = read_sweep(out)
    oracles = [reference.train(SMALL_DATA, lambd=lambd, lr=0.1, max_epochs=3, epoch_params=True)
               for lambd in (3.0, 0.0, 0.5)]
    for history, oracle in zip(histories, oracles, strict=True):
        assert history.config["lambd"] == oracle.config["lambd"]
        np.testing.assert_allclose(history.epoch_w, oracle.epoch_w, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(history.val_loss, oracle.val_loss, rtol=1e-12)
    best = min(oracles, key=lambda h: h.val_loss[-1])
    out_text = capsys.readouterr().out
    assert f"lambd={best.config['lambd']:g} (val loss {best.val_loss[-1]:.6g})" in out_text
    assert f"| 0.5 | {oracles[2].train_loss[-1]:.6e} |" in out_text


def test_sweep_grid_is_zero_then_log_spaced(tmp_path):
    out = tmp_path / "grid.json"
    assert main(["sweep", "--backend", "torch", "--num", "5", "--max", "10", *SMALL,
                 "--epochs", "1", "--out", str(out)]) == 0
    assert json.loads(out.read_text())["lambdas"] == pytest.approx([0, 0.01, 0.1, 1, 10],
                                                                   rel=1e-14)


def test_sweep_with_a_diverging_lambda_warns_and_exits_3(tmp_path, capsys):
    out = tmp_path / "sweep.json"
    assert main(["sweep", "--backend", "jax", "--lambdas", "0,2000", "--lr", "0.1",
                 "--epochs", "60", "--dtype", "float64", *SMALL, "--out", str(out)]) == 3
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["weight-decay: warning: 1 of 2 runs diverged (loss not finite), lambd = 2000"]
    oracle = reference.train(SMALL_DATA, lambd=2000.0, lr=0.1, max_epochs=60)
    ok, bad = read_sweep(out)
    assert bad.diverged and bad.diverged_epoch == oracle.diverged_epoch and not ok.diverged


def test_sweep_measure_reports_a_ratio(capsys):
    assert main(["sweep", "--backend", "torch", "--num", "4", "--epochs", "1", "--repeats", "1",
                 *SMALL, "--measure"]) == 0
    assert "sweep of 4 lambdas" in capsys.readouterr().out


def test_sweep_measure_times_the_implementation_asked_for(capsys, monkeypatch):
    import wd_torch

    seen = []
    for name in ("sweep", "train"):
        real = getattr(wd_torch, name)

        def recording(*args, _real=real, **kwargs):
            seen.append(kwargs["implementation"])
            return _real(*args, **kwargs)

        monkeypatch.setattr(wd_torch, name, recording)
    assert main(["sweep", "--backend", "torch", "--num", "4", "--epochs", "1", "--repeats", "1",
                 *SMALL, "--measure", "--fused"]) == 0
    assert seen and set(seen) == {"fused"}
    assert "concise fused float32" in capsys.readouterr().out


# ---- plot ----------------------------------------------------------------------------------

def test_plot_overlays_both_backends_runs(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    from weight_decay.commands.plot import figure_for
    from weight_decay.plotting import lines_by_gid

    paths = []
    for backend in ("torch", "jax"):
        paths.append(tmp_path / f"{backend}.json")
        assert main(["run", "--backend", backend, "--lambd", "3", "--epochs", "3", *SMALL,
                     "--out", str(paths[-1])]) == 0
    assert main(["plot", *map(str, paths), "--out", str(tmp_path / "fig.png")]) == 0
    assert (tmp_path / "fig.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    lines = lines_by_gid(figure_for(paths))
    oracle = reference.train(SMALL_DATA, lambd=3.0, lr=0.01, max_epochs=3)
    for backend in ("torch", "jax"):
        [(epochs, val)] = [xy for key, xy_list in lines.items() for xy in xy_list
                           if key.startswith(f"val:{backend} concise")]
        np.testing.assert_array_equal(epochs, [1, 2, 3])
        np.testing.assert_allclose(val, oracle.val_loss, rtol=1e-5)


def test_plot_of_a_sweep_is_the_regularization_path(tmp_path):
    pytest.importorskip("matplotlib")
    from weight_decay.commands.plot import figure_for
    from weight_decay.plotting import lines_by_gid

    out = tmp_path / "sweep.json"
    assert main(["sweep", "--backend", "torch", "--lambdas", "0,1,3", "--epochs", "2", *SMALL,
                 "--dtype", "float64", "--out", str(out)]) == 0
    assert main(["plot", str(out), "--out", str(tmp_path / "path.png")]) == 0
    lines = lines_by_gid(figure_for([out]))
    [(lambdas, val), (_, norm)] = lines["trained:torch concise float64, 2 epochs"]
    oracles = [reference.train(SMALL_DATA, lambd=lambd, lr=0.01, max_epochs=2)
               for lambd in (0.0, 1.0, 3.0)]
    np.testing.assert_array_equal(lambdas, [0, 1, 3])
    np.testing.assert_allclose(val, [h.val_loss[-1] for h in oracles], rtol=1e-12)
    np.testing.assert_allclose(norm, [h.l2_norm for h in oracles], rtol=1e-12)
    assert "ridge" in lines


@pytest.mark.parametrize("backend", ["torch", "jax"])
@pytest.mark.parametrize(("argv", "expected"), [
    (["--optimizer", "sgd", "--momentum", "0.5", "--nesterov"],
     {"family": "sgd", "momentum": 0.5, "nesterov": True}),
    (["--optimizer", "adamw", "--betas", "0.8,0.99"], {"family": "adamw", "betas": (0.8, 0.99)}),
])
def test_run_with_an_optimizer_matches_the_other_framework(tmp_path, capsys, backend, argv,
                                                           expected):
    from wd_core.optimizers import OptimizerSpec
    from wd_core.tolerances import assert_close

    other = pytest.importorskip({"torch": "wd_jax", "jax": "wd_torch"}[backend])
    out = tmp_path / "run.json"
    assert main(["run", "--backend", backend, "--lambd", "3", "--epochs", "3", *SMALL, *argv,
                 "--epoch-params", "--out", str(out)]) == 0
    history = History.from_json(out)
    spec = OptimizerSpec(**expected)
    assert history.config["optimizer"] == spec.to_config()
    assert spec.label() in capsys.readouterr().out
    # The other framework in float64 (each is proven against torch.optim in parity_tests).
    oracle = other.train(SMALL_DATA, method="concise", lambd=3.0, lr=0.01, max_epochs=3,
                         dtype="float64", optimizer=spec, epoch_params=True)
    kind = "float32_adam" if spec.family == "adamw" else "float32"
    assert_close(history.epoch_w, oracle.epoch_w, kind)
    assert_close(history.train_loss, oracle.train_loss, kind)


# ---- demo ----------------------------------------------------------------------------------

def test_demo_prints_the_chapter_table_and_writes_the_figures(tmp_path, capsys):
    assert main(["demo", "--figures", str(tmp_path / "demo")]) == 0
    out = capsys.readouterr().out
    chapter, optimizers = out.split("The concise model with other optimizers")
    rows = [line for line in chapter.splitlines() if line.startswith("| ") and "---" not in line]
    assert len(rows) == 1 + 2 * (1 + 4)
    assert "All 8 framework rows agree with the float64 reference" in chapter
    rows = [line for line in optimizers.splitlines() if line.startswith("| ") and "---" not in line]
    assert len(rows) == 1 + 2 * 2 * (1 + 2)  # momentum SGD and AdamW x lambda 0, 3
    assert "All 8 framework rows agree with torch.optim in float64" in optimizers
    oracle = reference.train(SyntheticData(), lambd=3.0, lr=0.01, max_epochs=10)
    assert f"{oracle.l2_penalty:.6e}" in out
    pngs = [tmp_path / "demo" / "lambda_0.png", tmp_path / "demo" / "lambda_3.png"]
    assert out.strip().splitlines()[-1] == f"figures: {pngs[0]}, {pngs[1]}"
    if pytest.importorskip("matplotlib"):
        from matplotlib.image import imread

        assert all(imread(p).shape[:2] == (420, 640) for p in pngs)


def test_demo_figure_shows_the_chapter_runs(capsys):
    pytest.importorskip("matplotlib")
    from weight_decay.commands.demo import chapter_rows
    from weight_decay.plotting import lines_by_gid, loss_curves

    rows = chapter_rows(SMALL_DATA, backends=["jax"], dtype="float32", lr=0.01, max_epochs=3)
    history = [r["history"] for r in rows if r["implementation"] == "jax concise"
               and r["lambd"] == 0][0]
    oracle = reference.train(SMALL_DATA, lambd=0.0, lr=0.01, max_epochs=3)
    lines = lines_by_gid(loss_curves([history]))
    [(_, train)] = lines["train:jax concise float32 lambda=0"]
    np.testing.assert_allclose(train, oracle.train_loss, rtol=1e-5)


def test_demo_without_matplotlib_still_prints_the_table(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    assert main(["demo", "--backends", "torch", "--epochs", "2", *SMALL,
                 "--figures", str(tmp_path)]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith("figures not written: ") and "pip install 'weight-decay[plot]'" in last


# ---- progress bars -------------------------------------------------------------------------

class FakeBar:
    """Stands in for tqdm.tqdm; records what the command asked of it."""

    made = []

    def __init__(self, total, **kwargs):
        self.total, self.kwargs, self.n = total, kwargs, 0
        FakeBar.made.append(self)

    def update(self, n=1):
        self.n += n

    def close(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass


@pytest.mark.parametrize(("command", "backend"), [("run", "torch"), ("sweep", "jax")])
def test_a_bar_counts_epochs_on_a_terminal_and_none_with_quiet(monkeypatch, capsys, command,
                                                                 backend):
    pytest.importorskip("tqdm")
    monkeypatch.setattr("tqdm.tqdm", FakeBar)
    monkeypatch.setattr(FakeBar, "made", [])
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    args = [command, "--backend", backend, "--epochs", "7", *SMALL]
    assert main(args) == 0
    (bar,) = FakeBar.made
    assert bar.total == 7 and bar.n == 7 and bar.kwargs["unit"] == "epoch"
    assert bar.kwargs["delay"] == 1.0 and bar.kwargs["file"] is sys.stderr
    assert main([*args, "--quiet"]) == 0
    assert len(FakeBar.made) == 1


def test_demo_bar_counts_framework_runs(monkeypatch, capsys):
    pytest.importorskip("tqdm")
    monkeypatch.setattr("tqdm.tqdm", FakeBar)
    monkeypatch.setattr(FakeBar, "made", [])
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    assert main(["demo", "--backends", "torch", "--epochs", "2", *SMALL, "--no-figures"]) == 0
    (bar,) = FakeBar.made
    # 2 lambdas x 2 methods, then 2 optimizers x 2 lambdas x (torch.optim oracle + torch)
    assert bar.total == bar.n == 4 + 8 and bar.kwargs["unit"] == "run"
    assert "other optimizers" in capsys.readouterr().out
    assert main(["demo", "--backends", "torch", "--epochs", "2", *SMALL, "--no-figures",
                 "--no-optimizers"]) == 0
    assert FakeBar.made[-1].total == FakeBar.made[-1].n == 4
    assert "other optimizers" not in capsys.readouterr().out


def test_demo_without_torch_says_why_the_optimizer_rows_are_missing(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "torch", None)
    monkeypatch.delitem(sys.modules, "wd_torch", raising=False)
    assert main(["demo", "--backends", "jax", "--epochs", "2", *SMALL, "--no-figures"]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith("optimizer rows not shown (their oracle is torch.optim): ")
    assert "pip install 'weight-decay[torch]'" in last


def test_no_bar_when_stdout_is_not_a_terminal(monkeypatch):
    from weight_decay.progress import epoch_callback, progress_bar

    monkeypatch.setattr(sys.stdout, "isatty", lambda: False)
    bar = progress_bar(5, desc="x")
    assert epoch_callback(bar) is None


# ---- Ctrl-C --------------------------------------------------------------------------------

INTERRUPT_AT_WRITE = """
import os, signal, sys
real_fsync = os.fsync
def fsync_then_ctrl_c(fd):
    real_fsync(fd)
    os.kill(os.getpid(), signal.SIGINT)   # Ctrl-C after the data are written, before replace
    signal.pthread_sigmask(signal.SIG_BLOCK, [])  # give the handler a chance to run
os.fsync = fsync_then_ctrl_c
from weight_decay.cli import main
raise SystemExit(main(sys.argv[1:]))
"""


def test_ctrl_c_while_the_result_is_written_keeps_the_previous_file(tmp_path):
    out = tmp_path / "run.json"
    out.write_text("previous\n")
    result = subprocess.run(
        [sys.executable, "-c", INTERRUPT_AT_WRITE, "run", "--backend", "torch", "--epochs", "2",
         *SMALL, "--out", str(out)], capture_output=True, text=True)
    assert result.returncode == 130, result.stderr
    assert result.stderr.strip().splitlines() == ["weight-decay: interrupted"]
    assert out.read_text() == "previous\n" and os.listdir(tmp_path) == ["run.json"]


ANNOUNCE_TRAINING = """
import sys
import wd_torch
real_train = wd_torch.train
def announced_train(*args, **kwargs):
    print("training", flush=True)
    return real_train(*args, **kwargs)
wd_torch.train = announced_train
from weight_decay.cli import main
raise SystemExit(main(sys.argv[1:]))
"""


def test_ctrl_c_during_training_leaves_no_file(tmp_path):
    out = tmp_path / "run.json"
    process = subprocess.Popen(
        [sys.executable, "-c", ANNOUNCE_TRAINING, "run", "--backend", "torch",
         "--epochs", "2000000", "--num-train", "4", "--num-val", "2", "--num-inputs", "2",
         "--batch-size", "4", "--out", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert process.stdout.readline() == "training\n"  # imports done, the loop is starting
    time.sleep(0.5)
    assert process.poll() is None, "the run ended before it could be interrupted"
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 130, stderr
    assert stderr.strip().splitlines() == ["weight-decay: interrupted"]
    assert os.listdir(tmp_path) == []


# ---- bad input: one line on stderr, exit 2, no traceback -----------------------------------

@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["frobnicate"], "invalid choice: 'frobnicate'"),
        (["run", "--backend", "torch", "--bogus"], "unrecognized arguments: --bogus"),
        (["sweep", "--backend", "jax", "--lambdas", "1", "--frob"],
         "unrecognized arguments: --frob"),
        (["run", "--backend", "mxnet"], "invalid choice: 'mxnet'"),
        (["run", "--backend", "jax", "--lambd", "-1"], "'-1' is not a finite number >= 0"),
        (["run", "--backend", "jax", "--lambd", "abc"], "'abc' is not a number"),
        (["run", "--backend", "jax", "--lr", "nan"], "'nan' is not a finite number >= 0"),
        (["sweep", "--backend", "jax", "--lambdas", "0,abc,3"], "'abc' in '0,abc,3' is not a "
                                                                "number"),
        (["sweep", "--backend", "jax", "--lambdas", "0,-1"], "'-1' in '0,-1' is not a finite "
                                                             "number >= 0"),
        (["sweep", "--backend", "jax", "--lambdas", "1,inf"], "'inf' in '1,inf' is not a finite"),
        (["sweep", "--backend", "jax", "--lambdas", ""], "'' names no lambda"),
        (["sweep", "--backend", "jax", "--lambdas", " , "], "' , ' names no lambda"),
        (["sweep", "--backend", "jax", "--num", "0"], "'0' is not an integer >= 1"),
        (["sweep", "--backend", "jax", "--num", "4", "--max", "0"], "'0' is not a finite number "
                                                                    "> 0"),
        (["sweep", "--backend", "jax", "--num", "4", "--lambdas", "1"], "not allowed with"),
        (["run", "--backend", "jax", "--epochs", "0"], "'0' is not an integer >= 1"),
        (["run", "--backend", "jax", "--momentum", "0.9"], "--momentum needs --optimizer"),
        (["run", "--backend", "jax", "--optimizer", "rmsprop"], "invalid choice: 'rmsprop'"),
        (["run", "--backend", "torch", "--optimizer", "adamw", "--momentum", "0.9"],
         "momentum=0.9 does not apply to optimizer family 'adamw'"),
        (["run", "--backend", "torch", "--optimizer", "adam", "--betas", "0.9"],
         "'0.9' is not two numbers b1,b2"),
        (["run", "--backend", "jax", "--optimizer", "adam", "--betas", "0.9,1.5"],
         "betas[1] must be a finite number >= 0 and < 1, got 1.5"),
        (["run", "--backend", "jax", "--optimizer", "sgd", "--nesterov"],
         "nesterov=True requires momentum > 0"),
        (["sweep", "--backend", "torch", "--epochs", "0"], "'0' is not an integer >= 1"),
        (["run", "--backend", "jax", "--dtype", "float16"], "invalid choice: 'float16'"),
        (["sweep", "--backend", "torch", "--dtype", "float16"], "invalid choice: 'float16'"),
        (["run", "--backend", "torch", "--device", "tpu"], "unknown device 'tpu'"),
        (["run", "--backend", "torch", "--batch-size", "50"], "batch_size=50 is larger"),
        (["run", "--backend", "torch", "--out", "/no/such/folder/run.json"],
         "output folder '/no/such/folder'"),
        (["sweep", "--backend", "jax", "--out", "/no/such/folder/sweep.json"],
         "output folder '/no/such/folder'"),
        (["plot", "/no/such/run.json", "--out", "fig.png"], "No such file or directory"),
        (["plot", "x.json"], "the following arguments are required: --out"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(capsys, args, fragment):
    assert main(args) == 2
    assert fragment in one_error_line(capsys)


@pytest.mark.parametrize("exception", ["TypeError", "ValueError", "OSError"])
def test_a_bug_is_not_bad_input_it_exits_1_with_its_traceback(exception):
    """An exception that is not the project's input error (here a deliberately broken
    internal function) is a bug: the traceback reaches stderr and the status is 1."""
    code = ("import wd_core.data, weight_decay.cli\n"
            "def broken(self, *args):\n"
            f"    raise {exception}('internal failure')\n"
            "wd_core.data.SyntheticData.batch_schedule = broken\n"
            "raise SystemExit(weight_decay.cli.main(['run', '--backend', 'torch']))")
    result = run_cli(code=code)
    assert result.returncode == 1, result.stderr
    assert "Traceback (most recent call last)" in result.stderr
    assert result.stderr.strip().splitlines()[-1] == f"{exception}: internal failure"


def test_a_bug_propagates_from_main_in_process(monkeypatch):
    def broken(self, *args):
        raise TypeError("internal failure")

    monkeypatch.setattr(SyntheticData, "batch_schedule", broken)
    with pytest.raises(TypeError, match="internal failure"):
        main(["run", "--backend", "jax", *SMALL])


def test_bad_input_in_a_real_process_prints_no_traceback():
    result = run_cli("sweep", "--backend", "jax", "--lambdas", "0,-3")
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.splitlines() == [
        "weight-decay: error: argument --lambdas: '-3' in '0,-3' is not a finite number >= 0"]


@pytest.mark.parametrize(("content", "fragment"), [
    ("{not json", "is not JSON"),
    ('{"format": "weight-decay/history", "w": [1]}', "not a weight-decay History: missing"),
    ('{"some": "thing"}', "neither a weight-decay History nor a sweep"),
    ("\x89PNG\r\n\x1a\n\x00\x00", "is not JSON"),
])
def test_plot_of_a_file_that_is_not_a_history_is_one_line(tmp_path, capsys, content, fragment):
    path = tmp_path / "bad.json"
    path.write_text(content)
    assert main(["plot", str(path), "--out", str(tmp_path / "fig.png")]) == 2
    line = one_error_line(capsys)
    assert fragment in line and "bad.json" in line
    assert not (tmp_path / "fig.png").exists()


def test_plot_refuses_runs_mixed_with_sweeps(tmp_path, capsys):
    reference.train(SMALL_DATA, lambd=1.0, lr=0.1, max_epochs=1).to_json(tmp_path / "run.json")
    from wd_core.sweeps import write_sweep

    write_sweep([reference.train(SMALL_DATA, lambd=1.0, lr=0.1, max_epochs=1)],
                tmp_path / "sweep.json")
    assert main(["plot", str(tmp_path / "run.json"), str(tmp_path / "sweep.json"),
                 "--out", str(tmp_path / "fig.png")]) == 2
    assert "mix run and sweep files" in one_error_line(capsys)


def test_plot_without_matplotlib_names_the_install_command(tmp_path, capsys, monkeypatch):
    reference.train(SMALL_DATA, lambd=1.0, lr=0.1, max_epochs=1).to_json(tmp_path / "run.json")
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    assert main(["plot", str(tmp_path / "run.json"), "--out", str(tmp_path / "f.png")]) == 2
    assert one_error_line(capsys).endswith("install it with: pip install 'weight-decay[plot]'")


@pytest.mark.parametrize("command", ["run", "sweep"])
@pytest.mark.parametrize("backend", ["torch", "jax"])
def test_cuda_without_gpu_is_one_line_and_exit_2(capsys, backend, command):
    import importlib

    module = importlib.import_module(f"wd_{backend}")
    from wd_core import DeviceUnavailableError

    try:
        module.train(SMALL_DATA, method="concise", lambd=1, lr=0.01, max_epochs=1,
                     device="cuda")
    except DeviceUnavailableError:
        pass
    else:
        pytest.skip("a GPU is present")
    assert main([command, "--backend", backend, "--device", "cuda", *SMALL]) == 2
    assert "'cuda' was asked for" in one_error_line(capsys)


@pytest.mark.parametrize("command", ["run", "sweep"])
def test_missing_backend_is_one_line_with_install_hint(command):
    code = ("import sys; sys.modules['torch'] = None; from weight_decay.cli import main; "
            f"raise SystemExit(main(['{command}', '--backend', 'torch']))")
    result = run_cli(code=code)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "weight-decay: error: wd_torch needs PyTorch, which is not installed; install it with: "
        "pip install 'weight-decay[torch]'"
    ]


def demo_blocks_in_the_docs() -> list[str]:
    """The demo's output as the docs show it: the README's block (the chapter's table), then
    docs/optimizers.md's block (the second table and the figures line)."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    pieces = []
    for page, opening in (("README.md", "D2L 3.7 weight decay:"),
                          ("docs/optimizers.md", "The concise model with other optimizers")):
        text = (root / page).read_text()
        block = text.split("```\n" + opening, 1)[1].split("```", 1)[0]
        pieces.append((opening + block).strip())
    return "\n\n".join(pieces).splitlines()


def test_the_readme_shows_what_the_demo_prints(capsys):
    """The demo blocks of the README and docs/optimizers.md are a real run: the same rows and
    closing lines, and numbers equal within the tolerance that judged each row (the last
    digits of a float32 value may differ on another CPU)."""
    shown = demo_blocks_in_the_docs()
    assert main(["demo", "--no-figures", "--quiet"]) == 0
    printed = capsys.readouterr().out.strip().splitlines()
    assert shown[-1].startswith("figures: ")
    shown = shown[:-1]
    assert len(shown) == len(printed)
    for readme_line, printed_line in zip(shown, printed, strict=True):
        if not readme_line.startswith("| ") or "---" in readme_line:
            assert readme_line == printed_line
            continue
        readme_cells, printed_cells = (line.split("|")[1:-1] for line in
                                       (readme_line, printed_line))
        assert readme_cells[:3] + readme_cells[7:] == printed_cells[:3] + printed_cells[7:]
        if readme_cells[3].strip() != "train loss":  # a row, not the header
            from wd_core.tolerances import TOLERANCES, run_kind

            rtol = TOLERANCES[run_kind(readme_cells[1].strip(),
                                       adam="adam" in readme_cells[0])][0]
            np.testing.assert_allclose([float(c) for c in readme_cells[3:7]],
                                       [float(c) for c in printed_cells[3:7]], rtol=rtol)


@pytest.mark.parametrize("command", ["run", "sweep"])
@pytest.mark.parametrize("backend", ["torch", "jax"])
def test_fused_flag_runs_the_fast_path_and_matches_the_reference(tmp_path, backend, command):
    out = tmp_path / "out.json"
    lambdas = ["--lambd", "2"] if command == "run" else ["--lambdas", "2"]
    assert main([command, "--backend", backend, *lambdas, "--epochs", "3", "--lr", "0.1",
                 "--dtype", "float64", "--fused", *SMALL, "--out", str(out)]) == 0
    history = History.from_json(out) if command == "run" else read_sweep(out)[0]
    oracle = reference.train(SMALL_DATA, lambd=2.0, lr=0.1, max_epochs=3)
    assert history.config["implementation"] == "fused" and history.epoch_w is None
    np.testing.assert_allclose(history.w, oracle.w, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(history.val_loss, oracle.val_loss, rtol=1e-12)


def test_fused_with_an_optimizer_is_bad_input(capsys):
    assert main(["run", "--backend", "torch", "--fused", "--optimizer", "adamw", *SMALL]) == 2
    assert "implementation='fused' runs plain SGD" in one_error_line(capsys)
