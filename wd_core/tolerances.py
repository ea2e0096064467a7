"""The one tolerance table of the project (derivation in README, "Tolerances").

Each entry is ``(rtol, atol_scale)``: two arrays agree when
``|actual - expected| <= rtol * |expected| + atol_scale * rtol * max|expected|``, i.e. an
element-wise relative test plus an absolute floor relative to the array's own scale, so that
entries that pass near zero (a weight crossing zero) are judged at the scale of the array.
"""

from __future__ import annotations

import numpy as np

TOLERANCES = {
    # float64 everywhere: ~40-1000 steps of O(d) sums, error ~ steps * d * 1e-16.
    "float64": (1e-12, 1.0),
    # float32 with the same gradients: one step, a few roundings of 6e-8.
    "float32_step": (1e-6, 1.0),
    # float32, each framework's own gradients and summation order, a whole run.
    "float32": (1e-5, 1.0),
    # float32 Adam family: division by sqrt(v) + eps amplifies rounding in small v.
    "float32_adam": (1e-4, 0.1),
}


def tolerance(kind: str) -> tuple[float, float]:
    """``(rtol, atol)`` of ``kind`` for arrays of unit scale (see :func:`assert_close`)."""
    rtol, atol_scale = TOLERANCES[kind]
    return rtol, atol_scale * rtol


def is_close(actual, expected, kind: str) -> bool:
    """True when ``actual`` agrees with ``expected`` under the ``kind`` tolerance."""
    try:
        assert_close(actual, expected, kind)
    except AssertionError:
        return False
    return True


def assert_close(actual, expected, kind: str, err_msg: str = "") -> None:
    """``numpy.testing.assert_allclose`` with the table's rtol and a scale-relative atol."""
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    rtol, atol_scale = TOLERANCES[kind]
    scale = float(np.max(np.abs(expected))) if expected.size else 0.0
    np.testing.assert_allclose(
        actual, expected, rtol=rtol, atol=atol_scale * rtol * scale, err_msg=err_msg
    )
