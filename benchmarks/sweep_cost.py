"""How much a sweep over many lambdas costs compared with one lambda (wall-clock ratio).

The claim measured: with lambda vectorized (torch: columns of one weight matrix; JAX:
``vmap``), ``sweep`` over 64 lambdas costs at most ``MAX_RATIO`` times ``sweep`` over one
lambda. ``python -m benchmarks`` reports it as information only (``extras.sweep_cost``, on
the chapter's data for ``EPOCHS`` epochs): the ratio falls as the single run gets slower, so
the sweep target is the matrix-product rate of a sweep at scale (:mod:`benchmarks.gemm`).
The calls (many lambdas, one lambda, ``train`` with one lambda) are warmed up, then sampled
round-robin (:func:`benchmarks.timing.measure_interleaved`). Each call returns numpy
Histories, so the device has finished when the clock is read.

Used by ``python -m benchmarks`` (the ``extras.sweep_cost`` entries of its JSON) and by
``weight-decay sweep --measure``.
"""

from __future__ import annotations

import importlib

from wd_core.errors import MissingFrameworkError

from .implementation import no_sync
from .timing import Candidate, measure_interleaved
from .workloads import chapter

#: The benchmark row's bound: many lambdas may cost this many times one lambda.
MAX_RATIO = 3.0
NUM_LAMBDAS = 64
#: Epochs of the chapter's run in ``extras.sweep_cost`` (the 10 of the earlier chapter
#: workload, so that the figure stays comparable).
EPOCHS = 10


def measure_sweep_cost(backend, data, *, lambdas, lambd, repeats: int, **options) -> dict:
    """Time ``backend.sweep`` over ``lambdas`` against ``sweep`` over ``[lambd]`` and
    ``train(lambd=lambd)`` (``backend``: the ``wd_torch`` or ``wd_jax`` module; ``options``:
    the keywords all three take, e.g. method, lr, max_epochs, dtype, device, implementation).

    Returns ``one`` / ``many`` / ``train`` (:class:`benchmarks.timing.Timing`), ``ratio``
    (median many / median one), ``max_ratio`` and ``ok`` (``ratio <= max_ratio``).
    """
    calls = {
        "one": lambda: backend.sweep(data, lambdas=[lambd], **options),
        "many": lambda: backend.sweep(data, lambdas=lambdas, **options),
        "train": lambda: backend.train(data, lambd=lambd, **options),
    }
    timings = measure_interleaved([Candidate((name,), call, no_sync)
                                   for name, call in calls.items()], repeats)
    result = {name: timings[(name,)] for name in calls}
    ratio = result["many"].median_s / result["one"].median_s
    return {**result, "ratio": ratio, "max_ratio": MAX_RATIO, "ok": ratio <= MAX_RATIO}


def sweep_cost(frameworks, device: str, repeats: int, dtype: str = "float32") -> list[dict]:
    """One JSON entry per backend for the chapter's workload: ``NUM_LAMBDAS`` lambdas against
    one, or why it was not measured."""
    workload = chapter(EPOCHS)
    data = workload.data()
    lambdas = [2 * workload.lambd * i / (NUM_LAMBDAS - 1) for i in range(NUM_LAMBDAS)]
    found = []
    for name in (b for b in frameworks if b in ("torch", "jax")):
        entry = {"name": f"chapter sweep ({EPOCHS} epochs): {NUM_LAMBDAS} lambdas vs 1 lambda",
                 "framework": name, "device": device}
        try:
            backend = importlib.import_module(f"wd_{name}")
        except MissingFrameworkError as err:
            found.append({**entry, "measured": False,
                          "reason": f"wd_{name} is not available ({err})"})
            continue
        cost = measure_sweep_cost(backend, data, lambdas=lambdas, lambd=workload.lambd,
                                  method="concise", lr=workload.lr, max_epochs=workload.epochs,
                                  dtype=dtype, device=device, repeats=repeats)
        many = cost["many"]
        found.append({**entry, "measured": True, "median_s_1": cost["one"].median_s,
                      "median_s_many": many.median_s, "min_s_many": many.min_s,
                      "max_s_many": many.max_s, "num_lambdas": NUM_LAMBDAS,
                      "ratio": cost["ratio"]})
    return found
