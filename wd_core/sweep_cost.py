"""How much a sweep over many lambdas costs compared with one lambda (wall-clock ratio).

The claim measured: with lambda vectorized (torch: columns of one weight matrix; JAX:
``vmap``), ``sweep`` over 64 lambdas costs at most 3x ``sweep`` over one lambda. Each timed call
returns numpy Histories, so the device has finished when the clock is read.
"""

from __future__ import annotations

import os
import statistics
import time

from wd_core.backends import load_backend
from wd_core.data import SyntheticData
from wd_core.sweeps import lambda_grid
from wd_core.validation import check_positive_int

#: The benchmark row's bound: many lambdas may cost this many times one lambda.
MAX_RATIO = 3.0


def _timings(call, repeats: int) -> list[float]:
    call()  # warm-up: compilation, caches, lazy imports
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        seconds.append(time.perf_counter() - start)
    return seconds


def _summary(seconds: list[float]) -> dict:
    return {"median_s": statistics.median(seconds), "min_s": min(seconds),
            "max_s": max(seconds)}


def measure_sweep_cost(backend: str = "jax", *, num_lambdas: int = 64, method: str = "concise",
                       repeats: int = 7, dtype: str = "float32", device=None, data=None,
                       lr: float = 0.01, max_epochs: int = 10, max_lambda: float = 10.0) -> dict:
    """Time ``sweep`` with ``num_lambdas`` lambdas against ``sweep`` with one (and ``train``).

    Each of the three calls is warmed up once, then timed ``repeats`` times, alternating
    nothing else in between. ``data=None`` is the chapter's ``SyntheticData()`` (20 x 200,
    batches of 5, 10 epochs at lr 0.01); the many lambdas are
    ``lambda_grid(num_lambdas, max_lambda)``, the one lambda is 3.

    Returns a dict: ``backend``, ``method``, ``dtype``, ``device``, ``num_lambdas``,
    ``repeats``, ``one`` / ``many`` / ``train`` (each ``median_s``, ``min_s``, ``max_s``),
    ``ratio`` (median many / median one), ``ratio_vs_train`` (median many / median train),
    ``max_ratio`` (3.0), ``ok`` (``ratio <= max_ratio``), ``cpu_count`` and
    ``load_average`` (before, after).
    """
    module = load_backend(backend)
    load_before = _load_average()
    num_lambdas = check_positive_int("num_lambdas", num_lambdas)
    repeats = check_positive_int("repeats", repeats)
    data = SyntheticData() if data is None else data
    many = [float(v) for v in lambda_grid(num_lambdas, max_lambda)]
    common = {"method": method, "lr": lr, "max_epochs": max_epochs, "dtype": dtype,
              "device": device}
    one_s = _timings(lambda: module.sweep(data, lambdas=[3.0], **common), repeats)
    many_s = _timings(lambda: module.sweep(data, lambdas=many, **common), repeats)
    train_s = _timings(lambda: module.train(data, lambd=3.0, **common), repeats)
    ratio = statistics.median(many_s) / statistics.median(one_s)
    return {
        "backend": backend, "method": method, "dtype": dtype, "device": device or "cpu",
        "num_lambdas": num_lambdas, "repeats": repeats,
        "one": _summary(one_s), "many": _summary(many_s), "train": _summary(train_s),
        "ratio": ratio,
        "ratio_vs_train": statistics.median(many_s) / statistics.median(train_s),
        "max_ratio": MAX_RATIO, "ok": ratio <= MAX_RATIO,
        "cpu_count": os.cpu_count(), "load_average": (load_before, _load_average()),
    }


def _load_average():
    """The 1-minute load average (``None`` where the OS has none): other work on the CPUs
    slows multi-threaded small matmuls far more than single-threaded ones."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None
