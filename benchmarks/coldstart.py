"""Cold start: seconds from starting a new Python process to its first result, per backend.

The parent starts ``python -m benchmarks.coldstart BACKEND`` and reads the clock when the
child's result line arrives (interpreter start, imports, data, compilation and the chapter's
run: ``train(method="concise")``, or ``reference.train`` for numpy). The child reports its own
split: ``import_s`` (importing the backend) and ``first_result_s`` (from its first line of
code to the result).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time

BACKENDS = ("numpy", "torch", "jax")
TIMEOUT_S = 300


def child(backend: str) -> dict:
    """Run in the new process: import the backend, run the chapter once, time both."""
    start = time.perf_counter()
    from wd_core import SyntheticData, reference

    if backend == "numpy":
        train = reference.train
    else:
        module = __import__(f"wd_{backend}")
        train = module.train
    imported = time.perf_counter()
    data = SyntheticData(num_train=20, num_val=100, num_inputs=200, batch_size=5, seed=0)
    kwargs = {} if backend == "numpy" else {"method": "concise"}
    history = train(data, lambd=3.0, lr=0.01, max_epochs=10, **kwargs)
    done = time.perf_counter()
    return {"import_s": imported - start, "first_result_s": done - start,
            "val_loss": float(history.val_loss[-1])}


def measure(backend: str, repeats: int) -> dict:
    """Median/min/max over ``repeats`` new processes, with the child's own split."""
    totals, splits = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        with subprocess.Popen([sys.executable, "-m", f"{__package__}.coldstart", backend],
                              stdout=subprocess.PIPE, text=True) as proc:
            line = proc.stdout.readline()
            totals.append(time.perf_counter() - start)
            proc.communicate(timeout=TIMEOUT_S)
        if proc.returncode != 0 or not line.strip():
            raise RuntimeError(f"cold start of {backend} failed (exit status {proc.returncode})")
        splits.append(json.loads(line))
    return {
        "backend": backend, "repeats": repeats,
        "median_s": statistics.median(totals), "min_s": min(totals), "max_s": max(totals),
        "import_s": statistics.median(s["import_s"] for s in splits),
        "first_result_s": statistics.median(s["first_result_s"] for s in splits),
    }


if __name__ == "__main__":
    print(json.dumps(child(sys.argv[1])), flush=True)
