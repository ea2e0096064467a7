"""One step of each backend x method x dtype is the chapter's update rule.

    w' = (1 - lr*lambd) w - lr * g_w,   b' = b - lr * g_b,   with (g_w, g_b) = reference.grads

The expected step is written out here from the reference's float64 gradients (and checked
against ``reference.sgd_step`` too). ``hypothesis`` draws the inputs over the documented range
of :mod:`parity_tests.cases`: n in {1, 3, 8} rows and d in {1, 4, 16} inputs (a few shapes, so
that JAX's eager dispatch compiles each once), |X|, |y| <= 3, |w|, |b| <= 2, every entry 0 or
at least 1e-6 in magnitude, 1e-4 <= lr <= 1 and 0 <= lr*lambd <= 1; lambd = 0 and
lr*lambd = 1 - 1e-6 are always among the examples. Entries stay clear of float32's subnormal
numbers (below 1.2e-38): XLA on the CPU flushes them to zero and torch does not, a setting of
the hardware, not a difference in the mathematics.

The inputs are rounded to the dtype before the oracle sees them, so the comparison measures
the step's own rounding (``"float32_step"``, relative to the size of the terms the step adds:
:func:`parity_tests.cases.step_scale`), not the rounding of its inputs.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from parity_tests.cases import (
    DTYPES,
    METHODS,
    STEP_DATA_BOUND,
    STEP_DECAY_RANGE,
    STEP_INPUTS,
    STEP_LR_RANGE,
    STEP_MIN_MAGNITUDE,
    STEP_PARAM_BOUND,
    STEP_ROWS,
    as_dtype,
    assert_computed_in,
    random_step_inputs,
    step_scale,
)
from wd_core import reference
from wd_core.tolerances import assert_close

STEP_KIND = {"float32": "float32_step", "float64": "float64"}


def _uniform(shape, bound):
    magnitude = st.just(0.0) | st.floats(STEP_MIN_MAGNITUDE, bound)
    signed = st.tuples(magnitude, st.sampled_from([-1.0, 1.0])).map(lambda m_s: m_s[0] * m_s[1])
    return arrays(np.float64, shape, elements=signed)


@st.composite
def step_inputs(draw):
    """``(w, b, X, y)`` of shapes (d, 1), (1,), (n, d), (n, 1) in the documented range."""
    n = draw(st.sampled_from(STEP_ROWS))
    d = draw(st.sampled_from(STEP_INPUTS))
    return (draw(_uniform((d, 1), STEP_PARAM_BOUND)), draw(_uniform((1,), STEP_PARAM_BOUND)),
            draw(_uniform((n, d), STEP_DATA_BOUND)), draw(_uniform((n, 1), STEP_DATA_BOUND)))


def chapter_rule(w, b, X, y, *, lr, lambd):
    """The update written out from ``reference.grads`` (float64)."""
    g_w, g_b = reference.grads(w, b, X, y)
    return (1 - lr * lambd) * w - lr * g_w, b - lr * g_b


FIXED = random_step_inputs(np.random.default_rng(7), 5, 11)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("method", METHODS)
@settings(max_examples=15, deadline=None, derandomize=True)  # the same draws every run
@given(inputs=step_inputs(), lr=st.floats(*STEP_LR_RANGE),
       decay=st.sampled_from([0.0, 1 - 1e-6]) | st.floats(*STEP_DECAY_RANGE))
@example(inputs=FIXED, lr=0.01, decay=0.0)  # lambd = 0: no decay at all
@example(inputs=FIXED, lr=0.3, decay=1 - 1e-6)  # lr*lambd close to 1: w' ~ -lr * g_w
@example(inputs=FIXED, lr=0.01, decay=0.03)  # the chapter's lr = 0.01, lambd = 3
def test_one_step_is_the_update_rule(backend, method, dtype, inputs, lr, decay):
    w, b, X, y = as_dtype(dtype, *inputs)
    lambd = decay / lr
    got = backend.sgd_step(w, b, X, y, method=method, lambd=lambd, lr=lr, dtype=dtype)
    assert_computed_in(dtype, *got)
    rule = chapter_rule(w, b, X, y, lr=lr, lambd=lambd)
    oracle = reference.sgd_step(w, b, X, y, lr=lr, lambd=lambd)
    scales = step_scale(w, b, X, y, lr=lr, lambd=lambd)
    for name, actual, by_rule, by_oracle, scale in zip("wb", got, rule, oracle, scales,
                                                       strict=True):
        assert actual.shape == by_rule.shape
        assert_close(actual, by_rule, STEP_KIND[dtype], scale=scale,
                     err_msg=f"{name}' of {backend.__name__} {method} {dtype}, lr={lr}, "
                             f"lambd={lambd} against (1 - lr*lambd) w - lr*g_w")
        assert_close(by_oracle, by_rule, "float64", scale=scale)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("method", METHODS)
def test_bias_is_never_decayed(backend, method, dtype):
    # X = 0 and y = b make both data gradients exactly zero: only the decay moves anything.
    w = np.linspace(-1.0, 1.0, 6).reshape(-1, 1)
    b = np.array([0.75])
    X, y = np.zeros((4, 6)), np.full((4, 1), 0.75)
    w_new, b_new = backend.sgd_step(w, b, X, y, method=method, lambd=3.0, lr=0.1, dtype=dtype)
    np.testing.assert_array_equal(b_new, b)
    assert_close(w_new, 0.7 * w, STEP_KIND[dtype])
