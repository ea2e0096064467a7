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
    """Return ``value`` if it is one of ``accepted``, else raise."""
    if value not in accepted:
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
