"""Timing: warm-up apart, synchronized clocks, repeats interleaved across implementations.

What one *sample* times: ``calls`` back-to-back calls of an implementation's ``run()`` (a whole
training run: every step of every epoch), each followed by its ``sync`` (the device is
synchronized before the clock is read), divided by ``calls``. ``calls`` is chosen once per
implementation so that a sample lasts at least ``min_sample_s`` (short runs are otherwise
below the clock's noise). The first call (compilation, caches, allocation) is timed alone as
``warmup_s`` and never enters the statistics. The samples of all implementations of a
workload are taken round-robin, so that load from other processes falls on all of them alike.
Before a sample whose framework (``key[0]``) differs from the previous one the clock waits
``SETTLE_S``: BLAS and OpenMP worker threads spin for a while after a call (OpenBLAS about
0.1 s), and on a 2-core machine one library's spinning threads would otherwise take a core
from the next library's sample.
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass, field

MIN_SAMPLE_S = 0.05
MAX_CALLS = 2000
SETTLE_S = 0.15


@dataclass
class Timing:
    """Seconds per ``run()`` call: median, min and max over ``repeats`` samples."""

    median_s: float
    min_s: float
    max_s: float
    warmup_s: float
    repeats: int
    calls_per_sample: int
    samples_s: list = field(default_factory=list)


@dataclass
class Candidate:
    """One implementation to time: ``run()`` returns a result that ``sync(result)`` waits on."""

    key: tuple
    run: object
    sync: object
    warmup_s: float = 0.0
    calls: int = 1
    samples: list = field(default_factory=list)
    result: object = None


def _timed(candidate: Candidate, calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        result = candidate.run()
        candidate.sync(result)
    elapsed = time.perf_counter() - start
    candidate.result = result
    return elapsed


def warm_up(candidate: Candidate, min_sample_s: float = MIN_SAMPLE_S) -> None:
    """Time the first call (``warmup_s``), then pick ``calls`` from a second, timed call."""
    candidate.warmup_s = _timed(candidate, 1)
    once = max(_timed(candidate, 1), 1e-9)
    candidate.calls = max(1, min(MAX_CALLS, math.ceil(min_sample_s / once)))


def measure_interleaved(candidates, repeats: int, *, min_sample_s: float = MIN_SAMPLE_S,
                        settle_s: float | None = None, on_sample=None) -> dict:
    """Warm up every candidate, then take ``repeats`` samples of each, round-robin.

    Returns ``{key: Timing}``; ``on_sample()`` is called after every sample (progress bars).
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    settle_s = SETTLE_S if settle_s is None else settle_s
    previous = [None]

    def settle(candidate):
        if previous[0] is not None and candidate.key[0] != previous[0]:
            time.sleep(settle_s)
        previous[0] = candidate.key[0]

    for candidate in candidates:
        settle(candidate)
        warm_up(candidate, min_sample_s)
    for _ in range(repeats):
        for candidate in candidates:
            settle(candidate)
            candidate.samples.append(_timed(candidate, candidate.calls) / candidate.calls)
            if on_sample is not None:
                on_sample()
    return {c.key: summarize(c.samples, c.warmup_s, c.calls) for c in candidates}


def summarize(samples, warmup_s: float, calls: int) -> Timing:
    """:class:`Timing` of per-call ``samples`` (seconds)."""
    samples = [float(s) for s in samples]
    return Timing(median_s=statistics.median(samples), min_s=min(samples), max_s=max(samples),
                  warmup_s=float(warmup_s), repeats=len(samples), calls_per_sample=calls,
                  samples_s=samples)
