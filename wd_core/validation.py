"""Checks at the public boundary, shared by the reference, both backends and the command lines.

Each check raises :class:`wd_core.errors.InputError` (:class:`~wd_core.errors.InputTypeError`
for a value of the wrong kind) whose message names the bad value and what is accepted. Code
below the public boundary trusts what these checks returned.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from numbers import Real

import numpy as np

from wd_core.errors import InputError, InputTypeError

METHODS = ("scratch", "concise")
DTYPES = ("float32", "float64")
BACKENDS = ("torch", "jax")


@dataclass(frozen=True)
class Range:
    """The numbers a setting accepts: finite, ``>= low`` (``> low`` when ``low_open``),
    ``< high``; integers only when ``integer``."""

    low: float | None = None
    low_open: bool = False
    high: float | None = None
    integer: bool = False

    def __str__(self) -> str:
        if self.integer:
            return "a positive integer" if self.low == 1 else f"an integer >= {self.low:g}"
        bounds = []
        if self.low is not None:
            bounds.append(f"{'>' if self.low_open else '>='} {self.low:g}")
        if self.high is not None:
            bounds.append(f"< {self.high:g}")
        return " ".join(["a finite number", " and ".join(bounds)]).strip()

    def holds(self, value) -> bool:
        """True when the number ``value`` is in the range."""
        if not math.isfinite(value):
            return False
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return self.high is None or value < self.high


FINITE = Range()
NONNEGATIVE = Range(low=0.0)
POSITIVE = Range(low=0.0, low_open=True)
POSITIVE_INT = Range(low=1, integer=True)
NONNEGATIVE_INT = Range(low=0, integer=True)


def is_number(value, *, integer: bool = False) -> bool:
    """A real (or, with ``integer``, an integral) Python or numpy number; never a bool."""
    kinds = (int, np.integer) if integer else Real
    return isinstance(value, kinds) and not isinstance(value, bool)


def check_number(name: str, value, within: Range = NONNEGATIVE):
    """``value`` as a float (an int for an integer range) if it lies ``within``, else raise.

    ``InputTypeError`` when it is not a number (a bool is not), ``InputError`` when it is
    out of range or not finite: ``"lr must be a finite number >= 0, got -0.1"``.
    """
    if not is_number(value, integer=within.integer):
        raise InputTypeError(f"{name} must be {within}, got {value!r}")
    value = int(value) if within.integer else float(value)
    if not within.holds(value):
        raise InputError(f"{name} must be {within}, got {value!r}")
    return value


def number_from_text(text: str, within: Range = NONNEGATIVE):
    """The number that command-line ``text`` names, if it lies ``within``; else ``InputError``
    naming the text: ``"'-1' is not a finite number >= 0"``."""
    try:
        value = int(text) if within.integer else float(text)
    except ValueError:
        raise InputError(f"{text!r} is not {'an integer' if within.integer else 'a number'}") \
            from None
    if not within.holds(value):
        accepted = f"an integer >= {within.low:g}" if within.integer else str(within)
        raise InputError(f"{text!r} is not {accepted}")
    return value


def check_choice(name: str, value, accepted: tuple[str, ...]) -> str:
    """Return ``value`` if it is one of the strings ``accepted``, else raise ``InputError``."""
    if not isinstance(value, str) or value not in accepted:
        raise InputError(f"unknown {name} {value!r}; accepted: {', '.join(accepted)}")
    return value


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
    raise InputError(f"unknown device {device!r}; accepted: None, 'cpu', 'cuda', 'cuda:N'")


def check_seed(seed) -> int:
    """Return ``seed`` as an int if it is an integer >= 0 (not a bool), else raise."""
    if not is_number(seed, integer=True) or seed < 0:
        raise InputError(f"seed must be an integer >= 0, got {seed!r}")
    return int(seed)


def as_float_array(name: str, value) -> np.ndarray:
    """``value`` as a float64 numpy array (not copied when it already is one); ``InputError``
    naming ``name`` unless it holds real numbers (ints or floats: booleans, complex numbers,
    strings and objects are refused).
    """
    try:
        array = np.asarray(value)
    except (TypeError, ValueError, RuntimeError) as err:
        raise InputError(f"{name} is not an array of numbers: {err}") from None
    if array.dtype.kind not in "iuf":
        raise InputError(f"{name} has dtype {array.dtype}; accepted: real numbers (int, float)")
    return np.asarray(array, dtype=np.float64)


def check_step_arrays(w, b, X, y) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(w, b, X, y)`` as float64 arrays of shapes (d, 1), (1,), (n, d), (n, 1), n >= 1;
    ``InputError`` naming the shapes otherwise."""
    X = as_float_array("X", X)
    if X.ndim != 2 or X.shape[0] < 1:
        raise InputError(f"X has shape {X.shape}; accepted: (n, d) with n >= 1")
    n, d = X.shape
    w, b, y = (as_float_array(name, a) for name, a in (("w", w), ("b", b), ("y", y)))
    if w.shape != (d, 1) or b.shape != (1,) or y.shape != (n, 1):
        raise InputError(
            f"shapes w{w.shape}, b{b.shape}, y{y.shape} do not fit X{X.shape}; "
            f"accepted: w({d}, 1), b(1,), y({n}, 1)"
        )
    return w, b, X, y
