"""The one tolerance table of the project (derivation: ``docs/parity.md``, "Tolerances").

Each entry is ``(rtol, atol_scale)``: two arrays agree when, element by element,

    |actual - expected| <= rtol * |expected| + atol_scale * rtol * scale,

with ``scale = max|expected|`` unless the caller passes the scale of the operands that
produced ``expected`` (a step ``(1 - lr*lambd) w - lr*g_w`` can cancel to far below its
terms, and its rounding error is relative to the terms, not to their difference). The absolute
floor judges entries that pass near zero (a weight crossing zero) at the scale of the array.

Why these numbers (unit roundoff ``u``: 1.1e-16 in float64, 6.0e-8 in float32). Measured worst
cases, in the table's own units, are printed by ``python -m parity_tests.measure_tolerances``:

* ``float64`` (1e-12): one step is two dot products of length n + d and three roundings;
  a run of S steps is bounded by ``S * (n + d) * u``, below 1e-10 for every run the suite makes
  (S <= 900). The update contracts, so rounding does not pile up: measured worst 1.4e-16 for
  one step and 6.7e-16 for a whole run, so 1e-12 leaves three orders of magnitude.
* ``float32_step`` (1e-6 = ~16 u): one step from the same float32 inputs, judged against the
  size of the terms it adds (``|w| + lr*(|g_w| terms + lambd*|w|)``); worst case
  ``(n + d) * u``, measured worst 1.1e-7 over the documented range.
* ``float32`` (1e-5): a whole run with each framework's own gradients and summation order. The
  per-step rounding of ~u is carried (not contracted) along the null space of the training
  matrix (181 of 200 directions in the chapter when lambd = 0), and cancellation in the
  residual ``X w + b - y`` (its terms are 185 times larger than it at the end of the chapter's
  lambd = 0 run) inflates the relative error of the training loss. Measured worst 3.0e-7
  (parameters, with the floor) and 1.3e-6 (a loss element alone), so 1e-5; the smallest
  deliberate 0.1% breakage moves a run by 3.6e-5 (decay x1.001 at lambd = 0.35).
* ``float32_adam`` (1e-4, atol 1e-5): division by ``sqrt(v) + eps`` amplifies rounding in
  small ``v``.
"""

from __future__ import annotations

import numpy as np

TOLERANCES = {
    "float64": (1e-12, 1.0),
    "float32_step": (1e-6, 1.0),
    "float32": (1e-5, 1.0),
    "float32_adam": (1e-4, 0.1),
}


def run_kind(dtype: str, *, adam: bool = False) -> str:
    """The entry that judges a whole run in ``dtype``: ``"float64"``; in float32
    ``"float32"``, or ``"float32_adam"`` for an Adam-family optimizer."""
    if dtype == "float64":
        return "float64"
    return "float32_adam" if adam else "float32"


def tolerance(kind: str) -> tuple[float, float]:
    """``(rtol, atol)`` of ``kind`` for arrays of unit scale (see :func:`assert_close`)."""
    rtol, atol_scale = TOLERANCES[kind]
    return rtol, atol_scale * rtol


def _scale(expected: np.ndarray, scale) -> float:
    if scale is not None:
        return float(np.max(np.abs(scale)))
    return float(np.max(np.abs(expected))) if expected.size else 0.0


def is_close(actual, expected, kind: str, *, scale=None) -> bool:
    """True when ``actual`` agrees with ``expected`` under the ``kind`` tolerance."""
    try:
        assert_close(actual, expected, kind, scale=scale)
    except AssertionError:
        return False
    return True


def assert_close(actual, expected, kind: str, err_msg: str = "", *, scale=None) -> None:
    """``numpy.testing.assert_allclose`` with the table's rtol and a scale-relative atol.

    ``scale``: an array (or number) whose largest magnitude sets the absolute floor; default
    ``expected`` itself.
    """
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    rtol, atol_scale = TOLERANCES[kind]
    np.testing.assert_allclose(
        actual, expected, rtol=rtol, atol=atol_scale * rtol * _scale(expected, scale),
        err_msg=err_msg,
    )


def required_rtol(actual, expected, *, atol_scale: float = 1.0, scale=None) -> float:
    """The smallest ``rtol`` with which :func:`assert_close` would pass (``inf`` for NaN).

    ``max |actual - expected| / (|expected| + atol_scale * scale)`` element-wise: the measured
    error in the table's own units, so that it can be set beside an entry of ``TOLERANCES``.
    """
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    if actual.shape != expected.shape or not np.isfinite(actual).all():
        return float("inf")
    floor = atol_scale * _scale(expected, scale)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.abs(actual - expected) / (np.abs(expected) + floor)
    ratio = np.where(actual == expected, 0.0, ratio)
    return float(np.max(ratio)) if ratio.size else 0.0
