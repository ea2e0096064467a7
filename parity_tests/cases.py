"""The inputs the parity suite runs on: data shapes, seeds, lambdas, and one-step scales.

Every case is stable for every lambda of :data:`LAMBDAS` (``lr * (lambd + max eigenvalue of a
batch's X^T X / batch_size) < 2``), so a disagreement is a difference in the mathematics, never
two divergent runs.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from wd_core import SyntheticData


@dataclass(frozen=True)
class RunCase:
    """One data shape, seed and schedule; ``data()`` is built once per process."""

    name: str
    num_train: int
    num_val: int
    num_inputs: int
    batch_size: int
    seed: int
    lr: float
    max_epochs: int

    def data(self) -> SyntheticData:
        return _data(self.num_train, self.num_val, self.num_inputs, self.batch_size, self.seed)


@functools.cache
def _data(num_train, num_val, num_inputs, batch_size, seed) -> SyntheticData:
    return SyntheticData(num_train=num_train, num_val=num_val, num_inputs=num_inputs,
                         batch_size=batch_size, seed=seed)


RUN_CASES = {
    case.name: case
    for case in (
        # D2L 3.7: 20 x 200, four batches of five per epoch, 40 steps (d above n).
        RunCase("chapter", 20, 100, 200, 5, 0, 0.01, 10),
        # 23 rows in batches of 5: every epoch ends on a batch of 3.
        RunCase("ragged", 23, 7, 9, 5, 4, 0.05, 6),
        # one row per step, 60 steps.
        RunCase("batch1", 12, 10, 30, 1, 1, 0.01, 5),
        # the whole training set every step (gradient descent), d below n.
        RunCase("full_batch", 16, 20, 6, 16, 2, 0.1, 20),
        # d = 8 n, batches of 3 with a ragged last batch of 2.
        RunCase("d_above_n", 8, 12, 64, 3, 3, 0.01, 8),
    )
}

#: lambda 0 (no decay), the chapter's 3, and two values drawn once from a seeded uniform(0.05, 8).
DRAWN_LAMBDAS = tuple(
    float(v) for v in np.round(np.random.default_rng(20261125).uniform(0.05, 8.0, 2), 4)
)
LAMBDAS = (0.0, 3.0, *DRAWN_LAMBDAS)
METHODS = ("scratch", "concise")
DTYPES = ("float32", "float64")


def as_dtype(dtype: str, *arrays) -> list[np.ndarray]:
    """``arrays`` rounded to ``dtype`` and returned as float64 (what a backend will see)."""
    return [np.asarray(a, dtype=dtype).astype(np.float64) for a in arrays]


def assert_computed_in(dtype: str, *arrays) -> None:
    """A float32 result must be made of float32 values (a run secretly computed in float64
    would pass every closeness test against the float64 oracle); float64: nothing to check."""
    if dtype == "float32":
        for array in arrays:
            array = np.asarray(array)
            np.testing.assert_array_equal(array, array.astype(np.float32).astype(np.float64),
                                          err_msg="not float32 values")


def step_scale(w, b, X, y, *, lr, lambd) -> tuple[np.ndarray, np.ndarray]:
    """Magnitudes of the terms one step adds, for ``w`` (d, 1) and ``b`` (1,).

    A framework computes ``w - lr * (g_w + lambd * w)`` with ``g_w = X^T (X w + b - y) / n``;
    its rounding error is bounded by a few ``u`` times ``|w| + lr * (|X|^T (|X||w| + |b| + |y|)
    / n + lambd |w|)``, which can be far larger than ``|w'|`` when the step nearly cancels
    (``lr*lambd`` close to 1). The bias likewise, with ``mean(|X||w| + |b| + |y|)``.
    """
    aX, aw, ab, ay = (np.abs(np.asarray(a, dtype=np.float64)) for a in (X, w, b, y))
    r_terms = aX @ aw + ab + ay
    n = aX.shape[0]
    return aw + lr * (aX.T @ r_terms / n + lambd * aw), ab + lr * np.mean(r_terms, axis=0)


#: The documented range of the one-step property: shapes, entries, lr and lr*lambd.
STEP_ROWS = (1, 3, 8)
STEP_INPUTS = (1, 4, 16)
STEP_DATA_BOUND = 3.0  # |X|, |y| <= 3
STEP_PARAM_BOUND = 2.0  # |w|, |b| <= 2
STEP_MIN_MAGNITUDE = 1e-6  # every entry is 0 or at least this large (no float32 subnormals)
STEP_LR_RANGE = (1e-4, 1.0)
STEP_DECAY_RANGE = (0.0, 1.0)  # lr * lambd: from no decay to w' = 0 - lr * g_w


def random_step_inputs(rng: np.random.Generator, n: int, d: int):
    # Uniform entries: 0 and magnitudes below STEP_MIN_MAGNITUDE have probability ~0.
    """``(w, b, X, y)`` uniform over the documented range (the measurement's draw)."""
    w = rng.uniform(-STEP_PARAM_BOUND, STEP_PARAM_BOUND, (d, 1))
    b = rng.uniform(-STEP_PARAM_BOUND, STEP_PARAM_BOUND, (1,))
    X = rng.uniform(-STEP_DATA_BOUND, STEP_DATA_BOUND, (n, d))
    y = rng.uniform(-STEP_DATA_BOUND, STEP_DATA_BOUND, (n, 1))
    return w, b, X, y
