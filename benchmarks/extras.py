"""Further measurements that depend on optional parts of the project.

``sweep_cost``: where a backend exports ``sweep`` (``wd_jax.sweep``, ``wd_torch.sweep``), the
time of one whole chapter sweep call over ``NUM_LAMBDAS`` lambdas against the same call with
one lambda (median over the repeats, interleaved, warm-up apart), and their ratio. A backend
without it is listed with the reason.
"""

from __future__ import annotations

import importlib

import numpy as np

from benchmarks.implementation import no_sync
from benchmarks.timing import Candidate, measure_interleaved
from benchmarks.workloads import chapter

NUM_LAMBDAS = 64


def _sweep_function(backend: str):
    try:
        module = importlib.import_module(f"wd_{backend}")
    except ImportError as err:
        return None, f"wd_{backend} is not available ({err})"
    sweep = getattr(module, "sweep", None)
    if not callable(sweep):
        return None, f"wd_{backend} has no sweep()"
    return sweep, None


def sweep_cost(frameworks, device: str, repeats: int) -> list[dict]:
    """One entry per backend: ``ratio = median(64 lambdas) / median(1 lambda)``, or a reason."""
    workload = chapter()
    data = workload.data()
    lambdas = np.linspace(0.0, 2 * workload.lambd, NUM_LAMBDAS)
    found = []
    for backend in (b for b in frameworks if b in ("torch", "jax")):
        sweep, reason = _sweep_function(backend)
        entry = {"name": f"chapter sweep: {NUM_LAMBDAS} lambdas vs 1 lambda",
                 "framework": backend, "device": device}
        if sweep is None:
            found.append({**entry, "measured": False, "reason": reason})
            continue

        def call(values, sweep=sweep):
            return lambda: sweep(data, lambdas=values, method="concise", lr=workload.lr,
                                 max_epochs=workload.epochs, device=device)

        candidates = [Candidate((backend, 1), call([workload.lambd]), no_sync),
                      Candidate((backend, NUM_LAMBDAS), call(lambdas), no_sync)]
        try:
            timings = measure_interleaved(candidates, repeats)
        except Exception as err:  # a sweep under construction must not sink the benchmark
            found.append({**entry, "measured": False,
                          "reason": f"{type(err).__name__}: {' '.join(str(err).split())[:160]}"})
            continue
        one, many = timings[(backend, 1)], timings[(backend, NUM_LAMBDAS)]
        found.append({**entry, "measured": True, "median_s_1": one.median_s,
                      "median_s_many": many.median_s, "min_s_many": many.min_s,
                      "max_s_many": many.max_s, "num_lambdas": NUM_LAMBDAS,
                      "ratio": many.median_s / one.median_s})
    return found
