"""Stress the launches the project does not supervise: run ``torchrun --standalone
--nproc-per-node 2 -m weight_decay run --backend torch --workers 2 --out run.json`` (the
chapter's run; or two JAX processes started side by side with ``--coordinator-address`` and
``--process-id``) N times while busy processes (one more than the CPUs) compete for the cores,
and count the runs that pass.

A run passes when every process it started exits 0 within the timeout, rank 0's file equals the
float64 reference within the float32 whole-run tolerance, and no process of the run is left
afterwards. A worker that aborts in the interpreter's shutdown after finishing ("terminate
called without an active exception": gloo's threads) fails its run; that is what the script is
for (before the workers' one exit path: 1 run in 12 failed so on this 2-core machine).

    python -m parity_tests.stress_launches --runs 30            # torchrun, under load
    python -m parity_tests.stress_launches --launcher jax --runs 10 --load 0

Not part of ``make test``; ``parity_tests/test_distributed_launchers.py`` runs it twice.
Prints one line per run and ``passed K of N``; exits 0 when every run passed, else 1.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from parity_tests.processes import run_launch
from wd_core import SyntheticData, reference
from wd_core.errors import InputError
from wd_core.history import History
from wd_core.tolerances import is_close
from wd_core.workers import free_port

ROOT = Path(__file__).resolve().parents[1]
#: The command's defaults: the chapter's run (concise, float32, lambda 3, lr 0.01, 10 epochs).
LAMBD, LR, EPOCHS = 3.0, 0.01, 10
RUN = ["-m", "weight_decay", "run", "--workers", "2"]
LAUNCHERS = ("torchrun", "jax")
#: A launch that takes longer than this has hung (about 10 s is usual, 30 s under load).
TIMEOUT_S = 180

BUSY = "while True:\n    pass\n"


def commands(launcher: str, out: Path) -> list[list[str]]:
    """The command lines of one launch (one for torchrun, one per process for JAX)."""
    if launcher == "torchrun":
        return [[sys.executable, "-m", "torch.distributed.run", "--standalone",
                 "--nproc-per-node", "2", *RUN, "--backend", "torch", "--out", str(out)]]
    address = f"127.0.0.1:{free_port()}"
    return [[sys.executable, *RUN, "--backend", "jax", "--coordinator-address", address,
             "--process-id", str(i), "--out", str(out)] for i in range(2)]


def launch_once(launcher: str, folder: Path, timeout_s: float = TIMEOUT_S) -> str | None:
    """Run one launch in ``folder``; None when it passed, else what went wrong (one line,
    then the end of the failing process's stderr). No process of it is left either way."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT),
                                                        os.environ.get("PYTHONPATH", "")])}
    out = folder / "run.json"
    launch = run_launch(commands(launcher, out), folder, env, timeout_s, logs=folder)
    if launch.timed_out:
        return f"did not end within {timeout_s:g} s"
    for status, _, stderr in launch.results:
        if status != 0:
            tail = "\n".join(stderr.splitlines()[-15:])
            return f"exit status {status}\n{tail}"
    if launch.left:
        return f"processes left behind: {launch.left}"
    try:
        history = History.from_json(out)
    except InputError as err:  # no file, or not a History
        return f"no result: {err}"
    oracle = reference.train(SyntheticData(), lambd=LAMBD, lr=LR, max_epochs=EPOCHS)
    for name in ("w", "b", "train_loss", "val_loss"):
        if not is_close(getattr(history, name), getattr(oracle, name), "float32"):
            return f"{name} differs from the float64 reference"
    return None


class Load:
    """``count`` busy processes (pure Python loops) while the block runs."""

    def __init__(self, count: int):
        self.count, self.procs = count, []

    def __enter__(self):
        self.procs = [subprocess.Popen([sys.executable, "-c", BUSY], stdin=subprocess.DEVNULL)
                      for _ in range(self.count)]
        return self

    def __exit__(self, *exc):
        for proc in self.procs:
            proc.kill()
        for proc in self.procs:
            proc.wait()


def stress(runs: int, launcher: str = "torchrun", load: int | None = None,
           log=print) -> int:
    """Run ``runs`` launches under ``load`` busy processes (default: one more than the CPUs);
    the number that passed. ``log`` gets one line per run."""
    if load is None:
        load = (os.cpu_count() or 1) + 1
    passed = 0
    with Load(load), tempfile.TemporaryDirectory(prefix="wd-stress-") as root:
        for i in range(runs):
            folder = Path(root) / f"run{i}"
            folder.mkdir()
            begin = time.monotonic()
            problem = launch_once(launcher, folder)
            seconds = time.monotonic() - begin
            passed += problem is None
            log(f"run {i + 1}/{runs}: " + ("passed" if problem is None else "FAILED: " + problem)
                + f" ({seconds:.1f} s)")
    return passed


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m parity_tests.stress_launches",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--launcher", choices=LAUNCHERS, default="torchrun")
    parser.add_argument("--load", type=int, default=None,
                        help="busy processes alongside (default: one more than the CPUs)")
    args = parser.parse_args(argv)
    passed = stress(args.runs, args.launcher, args.load)
    print(f"{args.launcher}: passed {passed} of {args.runs} "
          f"(load: {(os.cpu_count() or 1) + 1 if args.load is None else args.load} busy "
          f"processes)")
    return 0 if passed == args.runs else 1


if __name__ == "__main__":
    raise SystemExit(main())
