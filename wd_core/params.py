"""The shared initial parameters, drawn once in float64 for every implementation."""

from __future__ import annotations

import functools

import numpy as np

from wd_core.data import STREAM_INIT, rng_for
from wd_core.errors import InputError
from wd_core.validation import POSITIVE_INT, as_float_array, check_number, check_seed

INIT_STD = 0.01


def init_params(num_inputs: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``w ~ N(0, 0.01**2)`` of shape (num_inputs, 1) and ``b = 0`` of shape (1,), float64."""
    num_inputs = check_number("num_inputs", num_inputs, POSITIVE_INT)
    w = INIT_STD * rng_for(check_seed(seed), STREAM_INIT).standard_normal((num_inputs, 1))
    return w, np.zeros(1)


@functools.lru_cache(maxsize=8)
def _shared_init(num_inputs: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`init_params`, drawn once per (num_inputs, seed) and read-only: what a run starts
    from when it is given no ``init`` (nothing downstream writes to it)."""
    w, b = init_params(num_inputs, seed)
    w.flags.writeable = b.flags.writeable = False
    return w, b


def resolve_init(num_inputs: int, seed: int, init) -> tuple[np.ndarray, np.ndarray]:
    """The run's initial ``(w, b)``, float64: ``init_params`` (shared, read-only) when ``init``
    is None, else copies of ``init``.

    Raises ``InputError`` unless ``init`` is a pair of finite arrays of shapes
    (num_inputs, 1) and (1,).
    """
    if init is None:
        return _shared_init(num_inputs, seed)
    try:
        w, b = init
    except (TypeError, ValueError):
        raise InputError(f"init must be None or a pair (w, b), got {type(init).__name__}") from None
    w, b = as_float_array("init w", w).copy(), as_float_array("init b", b).copy()
    if w.shape != (num_inputs, 1) or b.shape != (1,):
        raise InputError(
            f"init has shapes w{w.shape}, b{b.shape}; accepted: w({num_inputs}, 1), b(1,)"
        )
    if not (np.isfinite(w).all() and np.isfinite(b).all()):
        raise InputError("init contains NaN or infinite values; accepted: finite arrays")
    return w, b
