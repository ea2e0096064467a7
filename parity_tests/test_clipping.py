"""wd_jax.clipping against torch.nn.utils.clip_grad_norm_ / clip_grad_value_ themselves.

The oracle is torch: the same gradients are put in the ``.grad`` of torch parameters (only
the unmasked ones: torch clips the parameters that have a gradient), clipped in place, and
compared with the optax transform's updates. float64 must agree within rtol 1e-12, float32
within the one-step float32 tolerance (the norm is one reduction; the update one product).
The last tests check that ``docs/clipping.md`` states what ``parity_tests.measure_clipping``
measures.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from wd_core.errors import InputError, InputTypeError
from wd_core.tolerances import TOLERANCES, assert_close

jax = pytest.importorskip("jax")
torch = pytest.importorskip("torch")
import jax.numpy as jnp  # noqa: E402
import optax  # noqa: E402

from parity_tests import measure_clipping  # noqa: E402
from wd_jax.clipping import torch_clip_grad_norm, torch_clip_grad_value  # noqa: E402

SHAPES = {"w": (3, 4), "b": (4,), "scale": (), "k": (2, 3, 2)}
TORCH_DTYPES = {"float32": torch.float32, "float64": torch.float64}
KIND = {"float64": "float64", "float32": "float32_step"}
NORM_TYPES = [2.0, 1.0, 3.0, math.inf, 0.5, "inf"]
CHECKS = settings(max_examples=40, deadline=None, derandomize=True)
ROOT = Path(__file__).resolve().parents[1]


def draw_grads(seed: int, log10_scale: float) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(np.random.SeedSequence((11, seed)))
    return {k: 10.0 ** log10_scale * rng.standard_normal(s) for k, s in SHAPES.items()}


def torch_clipped(grads, clip, dtypes, mask=None):
    """``clip(parameters)`` on torch parameters holding ``grads`` (only where ``mask``);
    returns the gradients afterwards (the untouched ones for masked-out parameters) and
    what ``clip`` returned."""
    params = {}
    for name, g in grads.items():
        p = torch.zeros(g.shape, dtype=TORCH_DTYPES[dtypes[name]])
        if mask is None or mask[name]:
            p.grad = torch.tensor(g, dtype=p.dtype)
        params[name] = p
    # torch 2.13's clip_grad_value_ fails on no gradient at all (an empty foreach list);
    # clipping nothing leaves everything as it was
    with_grad = [p for p in params.values() if p.grad is not None]
    result = clip(params.values()) if with_grad else None
    return {k: p.grad.numpy().copy() if p.grad is not None else grads[k].astype(dtypes[k])
            for k, p in params.items()}, result


def jax_updates(tx, grads, dtypes, *, jit=False):
    with jax.enable_x64(True):
        updates = {k: jnp.asarray(g, dtype=dtypes[k]) for k, g in grads.items()}
        state = tx.init(updates)
        update = jax.jit(tx.update) if jit else tx.update
        new, _ = update(updates, state)
        for name, leaf in new.items():
            assert leaf.dtype == jnp.dtype(dtypes[name]) and leaf.shape == SHAPES[name]
        return {k: np.asarray(v) for k, v in new.items()}


def assert_same(mine, torch_grads, dtypes):
    for name in SHAPES:
        assert_close(mine[name], torch_grads[name], KIND[dtypes[name]], err_msg=name)


def torch_norm(norm_type):
    return lambda params, max_norm: torch.nn.utils.clip_grad_norm_(params, max_norm, norm_type)


# ---------------------------------------------------------------- clip_grad_norm_


@CHECKS
@given(seed=st.integers(0, 2**16), log10_scale=st.floats(-3, 2), norm_type=st.sampled_from(
    NORM_TYPES), max_norm=st.floats(0, 10), dtype=st.sampled_from(["float64", "float32"]))
@example(seed=0, log10_scale=2.0, norm_type=2.0, max_norm=1.0, dtype="float64")  # clipped
@example(seed=0, log10_scale=-3.0, norm_type=2.0, max_norm=1.0, dtype="float64")  # not
@example(seed=1, log10_scale=0.0, norm_type=math.inf, max_norm=0.0, dtype="float64")
def test_clip_grad_norm_matches_torch(seed, log10_scale, norm_type, max_norm, dtype):
    grads = draw_grads(seed, log10_scale)
    dtypes = dict.fromkeys(SHAPES, dtype)
    expected, _ = torch_clipped(grads, lambda p: torch.nn.utils.clip_grad_norm_(
        p, max_norm, norm_type), dtypes)
    assert_same(jax_updates(torch_clip_grad_norm(max_norm, norm_type), grads, dtypes),
                expected, dtypes)


@pytest.mark.parametrize("norm_type", NORM_TYPES[:5])
@pytest.mark.parametrize("where", ["above", "at", "below"])
def test_clip_grad_norm_at_and_near_the_threshold(norm_type, where):
    """max_norm just below, at and above the total norm: torch's ``1e-6`` and clamp,
    jitted."""
    grads = draw_grads(3, 0.0)
    dtypes = dict.fromkeys(SHAPES, "float64")
    norm = float(torch.nn.utils.get_total_norm(
        [torch.tensor(g) for g in grads.values()], norm_type))
    max_norm = {"above": norm * (1 - 1e-7), "at": norm, "below": norm + 2e-6}[where]
    expected, _ = torch_clipped(grads, lambda p: torch.nn.utils.clip_grad_norm_(
        p, max_norm, norm_type), dtypes)
    mine = jax_updates(torch_clip_grad_norm(max_norm, norm_type), grads, dtypes, jit=True)
    assert_same(mine, expected, dtypes)
    if where != "below":  # scaled by max_norm / (norm + 1e-6) < 1: never exactly the input
        assert not np.array_equal(mine["w"], grads["w"])
    else:
        np.testing.assert_array_equal(mine["w"], grads["w"])  # times exactly 1.0


@CHECKS
@given(seed=st.integers(0, 2**16), log10_scale=st.floats(-2, 2),
       norm_type=st.sampled_from(NORM_TYPES), keep=st.tuples(*[st.booleans()] * len(SHAPES)))
def test_clip_grad_norm_mask_is_torch_without_those_grads(seed, log10_scale, norm_type, keep):
    """A False leaf is neither counted nor scaled: torch given only the other parameters."""
    grads = draw_grads(seed, log10_scale)
    mask = dict(zip(SHAPES, keep, strict=True))
    dtypes = dict.fromkeys(SHAPES, "float64")
    expected, _ = torch_clipped(grads, lambda p: torch.nn.utils.clip_grad_norm_(
        p, 1.0, norm_type), dtypes, mask)
    mine = jax_updates(torch_clip_grad_norm(1.0, norm_type, mask=mask), grads, dtypes)
    assert_same(mine, expected, dtypes)
    for name in SHAPES:
        if not mask[name]:
            np.testing.assert_array_equal(mine[name], grads[name])


def test_clip_grad_norm_mask_may_be_a_prefix_or_a_callable():
    grads = draw_grads(4, 1.0)
    nested = {"layer": {"w": grads["w"], "b": grads["b"]}, "rest": {"scale": grads["scale"],
                                                                    "k": grads["k"]}}
    flat_mask = {"w": True, "b": True, "scale": False, "k": False}
    dtypes = dict.fromkeys(SHAPES, "float64")
    expected = jax_updates(torch_clip_grad_norm(1.0, mask=flat_mask), grads, dtypes)
    with jax.enable_x64(True):
        for mask in ({"layer": True, "rest": False},
                     lambda u: {"layer": True, "rest": {"scale": False, "k": False}}):
            tx = torch_clip_grad_norm(1.0, mask=mask)
            new, _ = tx.update(jax.tree.map(jnp.asarray, nested), tx.init(nested))
            for group in new.values():
                for name, leaf in group.items():
                    np.testing.assert_array_equal(np.asarray(leaf), expected[name])


def test_clip_grad_norm_mixed_dtypes_like_torch():
    """float32 and float64 leaves: each norm in its dtype, the total in float64 (torch.stack
    promotes), the float32 leaves multiplied by the coefficient cast to float32.

    The float32 norms round (torch's and XLA's summation orders differ by an ulp), and the
    coefficient of every leaf carries that rounding: all leaves are judged in float32."""
    grads = draw_grads(5, 1.0)
    dtypes = {"w": "float32", "b": "float64", "scale": "float32", "k": "float64"}
    grads = {k: g.astype(dtypes[k]).astype(np.float64) for k, g in grads.items()}
    for norm_type in NORM_TYPES:
        expected, _ = torch_clipped(grads, lambda p, nt=norm_type: torch.nn.utils.clip_grad_norm_(
            p, 1.0, nt), dtypes)
        mine = jax_updates(torch_clip_grad_norm(1.0, norm_type), grads, dtypes)
        assert_same(mine, expected, dict.fromkeys(SHAPES, "float32"))


@pytest.mark.parametrize("bad", [np.inf, -np.inf, np.nan])
@pytest.mark.parametrize("norm_type", [2.0, 1.0, math.inf])
def test_clip_grad_norm_nonfinite_gradients_spread_like_torch(bad, norm_type):
    """torch (``error_if_nonfinite=False``) scales by ``max_norm / (inf or nan)``: zeros and
    NaNs; the twin does the same arithmetic."""
    grads = draw_grads(6, 0.0)
    grads["w"][1, 2] = bad
    dtypes = dict.fromkeys(SHAPES, "float64")
    expected, total = torch_clipped(grads, lambda p: torch.nn.utils.clip_grad_norm_(
        p, 1.0, norm_type), dtypes)
    assert not math.isfinite(float(total))
    mine = jax_updates(torch_clip_grad_norm(1.0, norm_type), grads, dtypes)
    for name in SHAPES:
        np.testing.assert_array_equal(mine[name], expected[name], err_msg=name)


def test_clip_grad_norm_zero_and_empty():
    dtypes = dict.fromkeys(SHAPES, "float64")
    zeros = {k: np.zeros(s) for k, s in SHAPES.items()}
    for max_norm in (0.0, 1.0):
        expected, _ = torch_clipped(zeros, lambda p, m=max_norm: torch.nn.utils.clip_grad_norm_(
            p, m), dtypes)
        assert_same(jax_updates(torch_clip_grad_norm(max_norm), zeros, dtypes), expected,
                    dtypes)
    grads = draw_grads(7, 1.0)
    nothing = dict.fromkeys(SHAPES, False)
    mine = jax_updates(torch_clip_grad_norm(1.0, mask=nothing), grads, dtypes)
    for name in SHAPES:
        np.testing.assert_array_equal(mine[name], grads[name])
    tx = torch_clip_grad_norm(1.0)
    assert tx.update({}, tx.init({})) == ({}, optax.EmptyState())


def test_clip_grad_norm_is_stateless():
    params = {k: jnp.zeros(s) for k, s in SHAPES.items()}
    for mask in (None, dict.fromkeys(SHAPES, True)):
        assert torch_clip_grad_norm(1.0, mask=mask).init(params) == optax.EmptyState()


def test_clip_by_global_norm_is_not_the_twin():
    """The reason for the twin, in one step: optax divides by the norm only above max_norm;
    torch always multiplies by min(max_norm / (norm + 1e-6), 1)."""
    grads = draw_grads(8, 1.0)
    dtypes = dict.fromkeys(SHAPES, "float64")
    expected, _ = torch_clipped(grads, lambda p: torch.nn.utils.clip_grad_norm_(p, 1.0), dtypes)
    theirs = jax_updates(optax.clip_by_global_norm(1.0), grads, dtypes)
    with pytest.raises(AssertionError):
        assert_same(theirs, expected, dtypes)


# ---------------------------------------------------------------- clip_grad_value_


@CHECKS
@given(seed=st.integers(0, 2**16), log10_scale=st.floats(-2, 2), clip_value=st.floats(0, 5),
       keep=st.tuples(*[st.booleans()] * len(SHAPES)),
       dtype=st.sampled_from(["float64", "float32"]), masked=st.booleans())
def test_clip_grad_value_matches_torch(seed, log10_scale, clip_value, keep, dtype, masked):
    grads = draw_grads(seed, log10_scale)
    grads["w"][0, 0] = np.nan
    mask = dict(zip(SHAPES, keep, strict=True)) if masked else None
    dtypes = dict.fromkeys(SHAPES, dtype)
    expected, _ = torch_clipped(grads, lambda p: torch.nn.utils.clip_grad_value_(
        p, clip_value), dtypes, mask)
    mine = jax_updates(torch_clip_grad_value(clip_value, mask=mask), grads, dtypes)
    for name in SHAPES:  # a clamp rounds nothing: equal, bit for bit
        np.testing.assert_array_equal(mine[name], expected[name], err_msg=name)


def test_clip_grad_value_is_optax_clip():
    params = {k: jnp.zeros(s) for k, s in SHAPES.items()}
    assert torch_clip_grad_value(0.5).init(params) == optax.EmptyState()
    masked = torch_clip_grad_value(0.5, mask=dict.fromkeys(SHAPES, True)).init(params)
    assert masked == optax.MaskedState(inner_state=optax.EmptyState())


# ---------------------------------------------------------------- refusals


@pytest.mark.parametrize(("kwargs", "error", "words"), [
    ({"max_norm": -1.0}, InputError, "max_norm must be a finite number >= 0, got -1.0"),
    ({"max_norm": math.inf}, InputError, "max_norm must be a finite number >= 0"),
    ({"max_norm": math.nan}, InputError, "max_norm must be a finite number >= 0"),
    ({"max_norm": True}, InputTypeError, "max_norm must be"),
    ({"max_norm": "1"}, InputTypeError, "max_norm must be"),
    ({"max_norm": 1.0, "norm_type": 0}, InputError, "norm_type must be a number > 0 or inf"),
    ({"max_norm": 1.0, "norm_type": -2.0}, InputError, "not norms"),
    ({"max_norm": 1.0, "norm_type": -math.inf}, InputError, "got -inf"),
    ({"max_norm": 1.0, "norm_type": math.nan}, InputError, "norm_type must be"),
    ({"max_norm": 1.0, "norm_type": "two"}, InputTypeError, "norm_type must be"),
    ({"max_norm": 1.0, "error_if_nonfinite": True}, InputError, "cannot raise"),
    ({"max_norm": 1.0, "error_if_nonfinite": 1}, InputTypeError, "True or False"),
    ({"max_norm": 1.0, "mask": {"w": 1}}, InputTypeError, "pytree of booleans"),
])
def test_clip_grad_norm_refusals(kwargs, error, words):
    with pytest.raises(error, match=re.escape(words)):
        torch_clip_grad_norm(**kwargs)


def test_refused_norm_types_are_ones_torch_takes():
    """0, negative orders and -inf run in torch (not norms: counts and minima); refused here."""
    for norm_type in (0.0, -1.0, -math.inf):
        p = torch.zeros(2, dtype=torch.float64)
        p.grad = torch.tensor([3.0, 4.0], dtype=torch.float64)
        torch.nn.utils.clip_grad_norm_([p], 1.0, norm_type)
        with pytest.raises(InputError):
            torch_clip_grad_norm(1.0, norm_type)


def test_mask_of_another_structure_is_refused_at_update():
    tx = torch_clip_grad_norm(1.0, mask={"w": True})
    grads = {k: jnp.ones(s) for k, s in SHAPES.items()}
    with pytest.raises(InputError, match="structure of the gradients"):
        tx.update(grads, tx.init(grads))


@pytest.mark.parametrize("clip_value", [-0.1, math.inf, math.nan, None])
def test_clip_grad_value_refusals(clip_value):
    with pytest.raises(InputError, match="clip_value must be a finite number >= 0"):
        torch_clip_grad_value(clip_value)


# ---------------------------------------------------------------- docs/clipping.md


def documented_rows() -> dict[str, tuple[str, str]]:
    """``{row id: (twin's error, pitfall's error)}`` from the table of docs/clipping.md."""
    text = (ROOT / "docs" / "clipping.md").read_text(encoding="utf-8")
    rows = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 5 and cells[0] in measure_clipping.ROWS:
            rows[cells[0]] = (cells[3], cells[4])
    return rows


def agrees_to_two_figures(measured: float, documented: str) -> bool:
    """``documented`` (e.g. ``2.3e-08``) is ``measured`` to two significant figures (one unit
    of the second figure of slack, for a value that sits on a rounding boundary)."""
    value = float(documented)
    if value == 0:
        return measured == 0
    unit = 10.0 ** (math.floor(math.log10(abs(value))) - 1)
    return abs(measured - value) <= unit * (1 + 1e-9)


def test_doc_table_lists_every_row():
    assert set(documented_rows()) == set(measure_clipping.ROWS)


@pytest.mark.parametrize("row_id", list(measure_clipping.ROWS))
def test_pitfall_row(row_id):
    """The twin is within float64's rtol of torch; the pitfall is far off (or, where the doc
    says the mistake is harmless, equally close); the doc states the pitfall's number.

    Errors at rounding level (<= 1e-12) depend on the machine's summation order, so the doc's
    rounding-level numbers are checked only to be <= 1e-12."""
    rtol = TOLERANCES["float64"][0]
    twin, wrong = measure_clipping.measure(row_id)
    doc_twin, doc_wrong = documented_rows()[row_id]
    assert twin <= rtol and float(doc_twin) <= rtol, (twin, doc_twin)
    if measure_clipping.ROWS[row_id].harmless:
        assert wrong <= rtol and float(doc_wrong) <= rtol, (wrong, doc_wrong)
    else:
        assert wrong >= 1e3 * rtol, wrong
        assert agrees_to_two_figures(wrong, doc_wrong), (wrong, doc_wrong)
