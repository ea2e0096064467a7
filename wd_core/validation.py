"""Checks at the public boundary, shared by the reference and both backends.

Each check raises ``ValueError`` (or ``TypeError`` for a value of the wrong kind) whose
message names the bad value and what is accepted.
"""

from __future__ import annotations

import math
from numbers import Real

import numpy as np

METHODS = ("scratch", "concise")
DTYPES = ("float32", "float64")


def check_positive_int(name: str, value) -> int:
    """Return ``value`` as an int if it is an integer >= 1, else raise."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be a positive integer, got {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be a positive integer (>= 1), got {value!r}")
    return int(value)


def check_nonnegative_float(name: str, value) -> float:
    """Return ``value`` as a float if it is finite and >= 0, else raise."""
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{name} must be a finite number >= 0, got {value!r}")
    value = float(value)
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return value


def check_choice(name: str, value, accepted: tuple[str, ...]) -> str:
    """Return ``value`` if it is one of the strings ``accepted``, else raise ``ValueError``."""
    if not isinstance(value, str) or value not in accepted:
        raise ValueError(f"unknown {name} {value!r}; accepted: {', '.join(accepted)}")
    return value


def check_hyperparameters(*, lambd, lr, max_epochs) -> tuple[float, float, int]:
    """Validate the training hyper-parameters; return them as (float, float, int)."""
    return (
        check_nonnegative_float("lambd", lambd),
        check_nonnegative_float("lr", lr),
        check_positive_int("max_epochs", max_epochs),
    )


def check_device_name(device) -> str:
    """Normalise a device name: ``None`` -> ``"cpu"``; accepts cpu, cuda, cuda:N."""
    if device is None:
        return "cpu"
    if isinstance(device, str):
        if device == "cpu" or device == "cuda":
            return device
        prefix, _, index = device.partition(":")
        if prefix == "cuda" and index.isdigit():
            return device
    raise ValueError(f"unknown device {device!r}; accepted: None, 'cpu', 'cuda', 'cuda:N'")


def check_seed(seed) -> int:
    """Return ``seed`` as an int if it is an integer >= 0 (not a bool), else raise."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
    return int(seed)


def as_float_array(name: str, value) -> np.ndarray:
    """``value`` as a float64 numpy array (not copied when it already is one); ``ValueError``
    naming ``name`` unless it holds real numbers (ints or floats: booleans, complex numbers,
    strings and objects are refused).
    """
    try:
        array = np.asarray(value)
    except (TypeError, ValueError, RuntimeError) as err:
        raise ValueError(f"{name} is not an array of numbers: {err}") from None
    if array.dtype.kind not in "iuf":
        raise ValueError(f"{name} has dtype {array.dtype}; accepted: real numbers (int, float)")
    return np.asarray(array, dtype=np.float64)


def check_step_arrays(w, b, X, y) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(w, b, X, y)`` as float64 arrays of shapes (d, 1), (1,), (n, d), (n, 1), n >= 1;
    ``ValueError`` naming the shapes otherwise."""
    X = as_float_array("X", X)
    if X.ndim != 2 or X.shape[0] < 1:
        raise ValueError(f"X has shape {X.shape}; accepted: (n, d) with n >= 1")
    n, d = X.shape
    w, b, y = (as_float_array(name, a) for name, a in (("w", w), ("b", b), ("y", y)))
    if w.shape != (d, 1) or b.shape != (1,) or y.shape != (n, 1):
        raise ValueError(
            f"shapes w{w.shape}, b{b.shape}, y{y.shape} do not fit X{X.shape}; "
            f"accepted: w({d}, 1), b(1,), y({n}, 1)"
        )
    return w, b, X, y
