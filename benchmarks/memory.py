"""Memory that does not grow with epochs x d: peak RSS of child processes.

Two measurements, each in new processes so that nothing else is in their memory:

* **Runs.** ``python -m benchmarks.memory BACKEND --epochs E ...`` trains once with
  ``wd_<backend>.train(method="concise")`` (the defaults: ``implementation="idiomatic"``,
  ``epoch_params=False``) on ``d = 200,000`` inputs, for a short and a long number of epochs.
  Each child's peak resident set size is read from ``os.wait4`` (``ru_maxrss`` of that child
  alone) after it exits, by a small launcher process (:data:`LAUNCHER`). The target: the
  long run's peak within ``RSS_RATIO`` (1.2) times the short run's. Keeping the parameters
  after every epoch would add at least ``(long - short) * d * 4`` bytes (float32; the History
  holds float64), reported as ``growth_if_kept_bytes`` beside the peaks: the sizes are chosen
  so that this is well above ``RSS_RATIO - 1`` times the short run's peak, so that the check
  can fail.
* **The issue's sweep.** ``python -m weight_decay sweep --backend torch --num 64 --epochs
  20000 --out FILE --quiet`` (the chapter's data, d = 200) as a child (a process, not an
  import: the benchmarks never import the app), killed after ``timeout_s``: its seconds (wall
  clock, from start to exit), exit status, peak RSS and the size of the file it wrote. The
  targets: under ``SWEEP_SECONDS`` (120) and ``SWEEP_FILE_MB`` (100 MB, 10**6 bytes).

Sizes (:data:`FULL`, :data:`QUICK`, :data:`ISSUE`): the issue asks for n = 1,024 and 2,000
vs 10 epochs at d = 200,000. There an epoch reads ``X`` (1,024 x 200,000 float32: 819 MB)
three or more times (steps, losses) and the data are made in float64 (1.7 GB, about 6 s per
process here): the 2,000-epoch runs take about 6 (torch) and 8 (JAX) minutes on two cores.
So the default ``memory`` group keeps d = 200,000 and takes ``n`` = 32 (batch 16, 16
validation rows):
an epoch is two steps and two loss evaluations over 26 MB of ``X``, and the argument is
unchanged, since what would grow is ``epochs x d`` (the per-epoch parameters), not ``n``: 2,000
epochs of float32 ``w`` are 1.6 GB, about three times the short run's whole peak. The opt-in
group ``memory-n1024`` (:data:`ISSUE`) runs the issue's sizes themselves (batch 256).
``--quick`` runs 200 epochs at n = 32 (160 MB would be added, about a third of the short run's
peak) and a sweep of 500 epochs.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

RSS_RATIO = 1.2
SWEEP_SECONDS = 120.0
SWEEP_FILE_MB = 100.0
#: ``ru_maxrss`` unit: kibibytes on Linux, bytes on macOS.
MAXRSS_BYTES = 1 if sys.platform == "darwin" else 1024
BACKENDS = ("torch", "jax")


@dataclass(frozen=True)
class MemoryCase:
    """The sizes of the memory group: the runs, and the issue's CLI sweep."""

    num_train: int
    num_val: int
    num_inputs: int
    batch_size: int
    short_epochs: int
    long_epochs: int
    sweep_num: int
    sweep_epochs: int
    run_timeout_s: float
    sweep_timeout_s: float

    def growth_if_kept_bytes(self) -> int:
        """The least that keeping ``w`` (float32) after every epoch would add to the long
        run over the short one."""
        return (self.long_epochs - self.short_epochs) * self.num_inputs * 4


FULL = MemoryCase(num_train=32, num_val=16, num_inputs=200_000, batch_size=16, short_epochs=10,
                  long_epochs=2000, sweep_num=64, sweep_epochs=20_000, run_timeout_s=600,
                  sweep_timeout_s=150)
#: The issue's own sizes (``--workloads memory-n1024``).
ISSUE = MemoryCase(num_train=1024, num_val=16, num_inputs=200_000, batch_size=256,
                   short_epochs=10, long_epochs=2000, sweep_num=64, sweep_epochs=20_000,
                   run_timeout_s=1800, sweep_timeout_s=150)
QUICK = MemoryCase(num_train=32, num_val=16, num_inputs=200_000, batch_size=16,
                   short_epochs=10, long_epochs=200, sweep_num=64, sweep_epochs=500,
                   run_timeout_s=300, sweep_timeout_s=60)


#: The launcher (``python -c``): runs the command given after its two arguments, kills it
#: after the timeout, and writes ``{"returncode", "seconds", "timed_out", "maxrss"}`` (from
#: ``os.wait4``) to the report file. A child's ``ru_maxrss`` starts at the resident size of
#: the process it was started from (Linux carries it across ``fork`` and ``exec``), so the
#: children are started from this small process, not from the benchmark's (which holds the
#: frameworks and the timed workloads' data).
LAUNCHER = """
import json, os, subprocess, sys, time
report, timeout, argv = sys.argv[1], float(sys.argv[2]), sys.argv[3:]
start = time.perf_counter()
proc = subprocess.Popen(argv)
timed_out = False
while True:
    pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
    if pid:
        break
    if time.perf_counter() - start > timeout and not timed_out:
        proc.kill()
        timed_out = True
    time.sleep(0.01)
seconds = time.perf_counter() - start
proc.returncode = os.waitstatus_to_exitcode(status)
with open(report, "w") as handle:
    json.dump({"returncode": proc.returncode, "seconds": seconds, "timed_out": timed_out,
               "maxrss": usage.ru_maxrss}, handle)
"""


def run_child(argv, *, timeout_s: float, cwd=None) -> dict:
    """Run ``argv`` through the :data:`LAUNCHER`; return ``returncode``, ``seconds`` (start to
    exit), ``timed_out`` (killed after ``timeout_s``), ``peak_rss_bytes`` (the child's own
    ``ru_maxrss``), ``stdout`` and the last line of ``stderr``."""
    with tempfile.TemporaryDirectory() as folder:
        report = Path(folder) / "report.json"
        launcher = [sys.executable, "-c", LAUNCHER, str(report), str(timeout_s), *argv]
        done = subprocess.run(launcher, capture_output=True, cwd=cwd, stdin=subprocess.DEVNULL,
                              timeout=timeout_s + 60, check=False)
        if not report.exists():
            raise RuntimeError(f"the launcher of {argv[:4]} failed (exit status "
                               f"{done.returncode}): {done.stderr.decode(errors='replace')}")
        result = json.loads(report.read_text())
    stderr = done.stderr.decode(errors="replace").strip().splitlines()
    return {"returncode": result["returncode"], "seconds": result["seconds"],
            "timed_out": result["timed_out"],
            "peak_rss_bytes": result["maxrss"] * MAXRSS_BYTES,
            "stdout": done.stdout.decode(errors="replace"),
            "stderr_tail": stderr[-1] if stderr else ""}


def run_command(backend: str, case: MemoryCase, epochs: int) -> list[str]:
    """The child's command line for one run."""
    return [sys.executable, "-m", f"{__package__}.memory", backend, "--epochs", str(epochs),
            "--num-train", str(case.num_train), "--num-val", str(case.num_val),
            "--num-inputs", str(case.num_inputs), "--batch-size", str(case.batch_size)]


def sweep_command(case: MemoryCase, out: Path) -> list[str]:
    """The issue's ``weight-decay sweep`` (torch, ``--num``, ``--epochs``) writing ``out``."""
    return [sys.executable, "-m", "weight_decay", "sweep", "--backend", "torch", "--num",
            str(case.sweep_num), "--epochs", str(case.sweep_epochs), "--out", str(out),
            "--quiet"]


def _run_entry(backend, case, epochs):
    result = run_child(run_command(backend, case, epochs), timeout_s=case.run_timeout_s)
    entry = {"framework": backend, "epochs": epochs, **{k: result[k] for k in (
        "returncode", "seconds", "timed_out", "peak_rss_bytes")}, "train_s": None,
        "error": None}
    if result["returncode"] == 0:
        entry["train_s"] = json.loads(result["stdout"].strip().splitlines()[-1])["train_s"]
    else:
        entry["error"] = ("killed after the timeout" if result["timed_out"]
                          else result["stderr_tail"] or f"exit status {result['returncode']}")
    return entry


def measure_runs(frameworks, case: MemoryCase, log=print) -> list[dict]:
    """Short and long run of each backend in ``frameworks``: one entry per child."""
    entries = []
    for backend in (b for b in BACKENDS if b in frameworks):
        for epochs in (case.short_epochs, case.long_epochs):
            log(f"memory: {backend} train, d={case.num_inputs}, n={case.num_train}, "
                f"{epochs} epochs (child process)")
            entries.append(_run_entry(backend, case, epochs))
    return entries


def measure_sweep(case: MemoryCase, log=print) -> dict:
    """The issue's CLI sweep as a child, in a temporary folder (its file deleted after)."""
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "sweep.json"
        argv = sweep_command(case, out)
        log("memory: " + " ".join(["weight-decay", *argv[3:-3], "--out", "FILE", "--quiet"]))
        result = run_child(argv, timeout_s=case.sweep_timeout_s, cwd=folder)
        file_bytes = out.stat().st_size if out.exists() else None
    error = None
    if result["timed_out"]:
        error = f"killed after {case.sweep_timeout_s:g} s"
    elif result["returncode"] != 0:
        error = result["stderr_tail"] or f"exit status {result['returncode']}"
    return {"command": ["weight-decay", *argv[3:-3], "--out", "FILE", "--quiet"],
            "num": case.sweep_num, "epochs": case.sweep_epochs,
            "timeout_s": case.sweep_timeout_s, "file_bytes": file_bytes, "error": error,
            **{k: result[k] for k in ("returncode", "seconds", "timed_out", "peak_rss_bytes")}}


def case_for(quick: bool, issue_size: bool) -> MemoryCase:
    """:data:`ISSUE` when asked for (``memory-n1024``), else :data:`QUICK` or :data:`FULL`."""
    return ISSUE if issue_size else QUICK if quick else FULL


def measure(frameworks, case: MemoryCase, log=print) -> dict:
    """The ``memory`` entry of the JSON: ``case`` (sizes), ``runs``, ``sweep`` (None when
    torch is not among ``frameworks``)."""
    runs = measure_runs(frameworks, case, log)
    sweep = measure_sweep(case, log) if "torch" in frameworks else None
    return {"case": asdict(case), "growth_if_kept_bytes": case.growth_if_kept_bytes(),
            "runs": runs, "sweep": sweep}


def child(argv=None) -> dict:
    """In the child: make the data, train once, report the seconds of ``train`` alone."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.memory", allow_abbrev=False)
    parser.add_argument("backend", choices=BACKENDS)
    for name in ("epochs", "num-train", "num-val", "num-inputs", "batch-size"):
        parser.add_argument(f"--{name}", type=int, required=True)
    args = parser.parse_args(argv)
    import importlib

    from wd_core import SyntheticData

    from .workloads import LAMBD, stable_lr

    backend = importlib.import_module(f"wd_{args.backend}")
    data = SyntheticData(num_train=args.num_train, num_val=args.num_val,
                         num_inputs=args.num_inputs, batch_size=args.batch_size, seed=0)
    start = time.perf_counter()
    history = backend.train(data, method="concise", lambd=LAMBD,
                            lr=stable_lr(args.batch_size, args.num_inputs),
                            max_epochs=args.epochs)
    return {"train_s": time.perf_counter() - start, "epochs": len(history.train_loss),
            "val_loss": float(history.val_loss[-1])}


if __name__ == "__main__":
    print(json.dumps(child()), flush=True)
