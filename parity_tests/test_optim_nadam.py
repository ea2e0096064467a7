"""``torch.optim.NAdam`` (:func:`wd_jax.optim.nadam.torch_nadam`), coupled and decoupled
decay, against torch itself, and its port.

torch's rule: the momentum schedule ``mu_t = b1*(1 - 0.5*0.96**(t*momentum_decay))``, its
running product ``mu_product`` (a 0-d tensor per parameter, in torch's *scalar* dtype:
float32 unless torch's default dtype is float64), ``p -= lr*(1 - mu_t)/(1 - P_t) * g/d +
lr*mu_{t+1}/(1 - P_t*mu_{t+1}) * m_t/d`` with ``d = sqrt(v_t/(1 - b2**t)) + eps``; the decay
coupled (``g + wd*p``) or, with ``decoupled_weight_decay``, ``(1 - lr*wd) p``. On the MLP of
``test_port_models`` with two groups (the policy's decayed weights; biases and norms
undecayed) and drawn N(0, 1) gradients, float64 parameters:

- the builder alone, 50 steps, hypothesis over the hyper-parameters (decay > 0 on the first
  group always, ``momentum_decay``, ``decoupled_weight_decay``, ``maximize``, ``foreach``
  True / False / the default, torch's default dtype): parameters and the state key by key
  (``mu_product`` included) within rtol 1e-12;
- the port (``check_round_trips``: from the start, mid-run, back) with torch's default dtype
  float64, a scheduler that cycles beta1 in one; with the default float32 the port keeps
  torch's float32 ``mu_product`` (torch to optax exact), and optax to torch equals torch's
  own checkpoint (``load_state_dict`` makes ``mu_product`` float64, in torch as in the port);
  ``port-check`` exits 0 on a trained optimizer; ``capturable`` and ``differentiable``
  refused;
- optax's namesake measured: :func:`naive_error` (no momentum schedule) far above 1e-12; a
  float64 ``mu_product`` measured too.
"""

from __future__ import annotations

import contextlib
import textwrap
from functools import partial

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from parity_tests import optim_checks
from parity_tests.port_runs import (
    MID,
    convert,
    drawn_gradients,
    optax_steps,
    torch_params,
    torch_steps,
)
from parity_tests.test_port_models import (
    assert_same_params,
    assert_same_states,
    make_model,
    one_torch_thread,  # noqa: F401
    torch_state_by_name,
)

torch = pytest.importorskip("torch")
jax = pytest.importorskip("jax")

from wd_jax import port  # noqa: E402
from wd_jax.optim import PORTS  # noqa: E402
from wd_jax.optim.nadam import ScaleByTorchNAdamState, torch_nadam  # noqa: E402
from wd_jax.optim.registry import states_of  # noqa: E402

STEPS = 50
IMPLEMENTATIONS = ({}, {"foreach": False}, {"foreach": True})
#: torch's state key -> the field of ``ScaleByTorchNAdamState`` that holds it (the same name)
FIELDS = {key: key for key in ("exp_avg", "exp_avg_sq", "mu_product")}


@contextlib.contextmanager
def torch_default_dtype(dtype: str):
    """``torch.set_default_dtype`` for the block (it sets the dtype of a new ``step`` and
    ``mu_product``), restored after."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(getattr(torch, dtype))
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


#: ``NAdam`` over the policy's two groups (``weight_decay`` on the first, 0 on the second)
torch_optimizer = partial(optim_checks.two_group_optimizer, torch.optim.NAdam)


ARGS = st.fixed_dictionaries({
    "lr": st.floats(1e-4, 0.05),
    "betas": st.tuples(st.floats(0.0, 0.99), st.floats(0.5, 0.9999)),
    "eps": st.floats(1e-10, 1e-2),
    "weight_decay": st.floats(1e-3, 1.0),
    "momentum_decay": st.floats(0.0, 1.0),
    "decoupled_weight_decay": st.booleans(),
    "maximize": st.booleans(),
    "implementation": st.sampled_from(range(len(IMPLEMENTATIONS))),
    "scalar_dtype": st.sampled_from(["float32", "float64"]),
})


@settings(max_examples=8, deadline=None, derandomize=True)
@given(args=ARGS)
@example(args={"lr": 0.01, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.1,
               "momentum_decay": 4e-3, "decoupled_weight_decay": False, "maximize": False,
               "implementation": 0, "scalar_dtype": "float32"})
def test_builder_matches_torch_nadam_params_and_state(args):
    """50 steps of ``torch_nadam`` (the decay masked to torch's first group, ``mu_product``
    in torch's scalar dtype) equal torch's, float64: every parameter and every state entry
    (``step`` exactly, ``mu_product`` in its dtype)."""
    args = dict(args)
    implementation = IMPLEMENTATIONS[args.pop("implementation")]
    scalar_dtype = args.pop("scalar_dtype")
    with torch_default_dtype(scalar_dtype):  # torch's steps make mu_product in it
        model, optimizer, params, state = optim_checks.builder_run(
            partial(torch_optimizer, implementation=implementation, **args),
            partial(torch_nadam, **args, mu_product_dtype=scalar_dtype), op_by_op=False)
    (nadam,) = states_of(state, ScaleByTorchNAdamState)
    assert int(nadam.step) == STEPS
    optim_checks.assert_params_and_state_fields(params, nadam, model, optimizer, FIELDS, STEPS)
    for name, p in model.named_parameters():
        assert str(optimizer.state[p]["mu_product"].dtype) == f"torch.{scalar_dtype}"
        assert nadam.mu_product[name].dtype == scalar_dtype


@pytest.mark.parametrize(("options", "scheduled"), [
    ({"lr": 0.01, "weight_decay": 0.3}, False),
    ({"lr": 0.01, "weight_decay": 0.1, "momentum_decay": 0.3, "decoupled_weight_decay": True,
      "maximize": True, "foreach": True}, True),
], ids=["coupled", "decoupled-maximize-foreach-OneCycleLR"])
def test_the_port_round_trips_nadam(options, scheduled):
    """optimizer_from_torch / state_from_torch / state_to_torch, both ways, key by key
    (``mu_product`` included), torch's default dtype float64 (so that torch's own
    ``load_state_dict`` keeps ``mu_product``'s dtype: see the next test); OneCycleLR drives
    the lr (and the decoupled decay with it) and cycles beta1, which enters the momentum
    schedule, through the injected transform."""
    with torch_default_dtype("float64"):
        optim_checks.check_two_group_round_trips(partial(torch_optimizer, **options),
                                                 optim_checks.one_cycle if scheduled else None)


def test_the_port_keeps_torchs_float32_mu_product():
    """torch's default dtype float32 (torch's own default): converted at the start or after
    ``MID`` torch steps, the optax state holds torch's float32 ``mu_product`` and continues
    exactly as torch (50 steps, 1e-12). Back to torch, ``load_state_dict`` casts
    ``mu_product`` to the parameters' float64, as it does for torch's own checkpoint (which
    then differs from the uninterrupted run); ``state_to_torch`` puts it back in torch's
    scalar dtype, so the port continues as the uninterrupted run."""
    # momentum_decay 5: mu_t nears b1 within a few steps, so mu_product is still far from 0
    # at MID, where the float32 rounding of its products shows beyond 1e-12
    options = {"lr": 0.01, "weight_decay": 0.3, "momentum_decay": 5.0}

    def make():
        model = make_model("mlp")
        return model, torch_optimizer(model, **options)

    model, optimizer = make()
    grads = drawn_gradients(model, STEPS)
    torch_steps(model, optimizer, None, grads)
    expected_state = torch_state_by_name(optimizer, model)
    with jax.enable_x64(True):
        for done in (0, MID):
            m1, o1 = make()
            torch_steps(m1, o1, None, grads[:done])
            params, tx, state = convert(m1, o1, None, None)
            products = jax.tree.leaves([s.mu_product for s in
                                        states_of(state, ScaleByTorchNAdamState)])
            assert {str(v.dtype) for v in products} == {"float32"}
            params, state = optax_steps(tx, params, state, grads[done:])
            what = f"torch {done} + optax {STEPS - done}"
            assert_same_params(params, model, what)
            assert_same_states(port.torch_named_state(state, o1, m1), expected_state, what)
        m2, o2 = make()
        params, tx, state = convert(m2, o2, None, None)
        params, state = optax_steps(tx, params, state, grads[:MID])
    port.params_to_torch(params, m2)
    port.state_to_torch(state, tx, o2, m2)
    assert {o2.state[p]["mu_product"].dtype for p in m2.parameters()} == {torch.float32}
    torch_steps(m2, o2, None, grads[MID:])
    what = f"optax {MID} + torch {STEPS - MID}"
    assert_same_params(torch_params(m2), model, what)
    assert_same_states(torch_state_by_name(o2, m2), expected_state, what)
    resumed_model, resumed = make()
    torch_steps(resumed_model, resumed, None, grads[:MID])
    resumed.load_state_dict(resumed.state_dict())  # torch's own checkpoint, loaded
    assert {resumed.state[p]["mu_product"].dtype
            for p in resumed_model.parameters()} == {torch.float64}
    torch_steps(resumed_model, resumed, None, grads[MID:])
    difference = max(float(np.max(np.abs(p.detach().numpy() - q.detach().numpy())))
                     for p, q in zip(resumed_model.parameters(), model.parameters(),
                                     strict=True))
    assert difference > 1e-12  # torch's own resumed run parts from its uninterrupted one


FACTORY = textwrap.dedent('''
    import torch

    from parity_tests.optim_checks import stepped_three_times
    from parity_tests.test_port_models import make_model
    from wd_jax import port


    def trained_nadam():
        """NAdam with decoupled decay over two groups (decay on the first), stepped three
        times: its mu_product is float32, torch's scalar dtype."""
        model = make_model("mlp")
        return stepped_three_times(model, torch.optim.NAdam(
            port.no_weight_decay_groups(model, 0.1), lr=0.01, decoupled_weight_decay=True))
''')


def test_port_check_exits_0_on_a_trained_nadam(tmp_path, monkeypatch, capsys):
    out = optim_checks.port_check_output(tmp_path, monkeypatch, capsys, FACTORY,
                                         "nadam_factories:trained_nadam")
    assert "state mu_product body.0.weight" in out and "BEYOND" not in out


@pytest.mark.parametrize("option", ["capturable", "differentiable"])
def test_options_without_a_twin_are_refused(option):
    optim_checks.assert_refused_without_a_twin(partial(torch_optimizer, weight_decay=0.1), option)


# ---- optax's namesake ----------------------------------------------------------------------

NAIVE = {"lr": 0.01, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.1,
         "momentum_decay": 4e-3, "maximize": False}


def port_error(make_tx, steps: int = STEPS, decoupled_weight_decay: bool = False) -> float:
    """The relative error (``optim_checks.relative_error``) after ``steps`` drawn-gradient
    steps of ``make_tx(weight_decay) -> tx`` per group (the policy's two groups, decay on the
    first) against torch's ``NAdam(**NAIVE, decoupled_weight_decay=...)`` (torch's default
    dtype, so a float32 ``mu_product``), float64 parameters."""
    return optim_checks.port_error(
        partial(torch_optimizer, **NAIVE, decoupled_weight_decay=decoupled_weight_decay),
        make_tx, NAIVE["weight_decay"], steps)


def naive_error(steps: int = STEPS, decoupled_weight_decay: bool = False) -> float:
    """optax's namesake (the registry's ``naive``: ``optax.nadam`` after
    ``add_decayed_weights``; ``optax.nadamw`` when decoupled) against torch's
    ``NAdam(lr=0.01, weight_decay=0.1)``: relative error of the parameters after ``steps``
    steps."""
    naive = PORTS["torch.optim.NAdam"].naive
    return port_error(optim_checks.group_tx(naive, NAIVE,
                                            decoupled_weight_decay=decoupled_weight_decay),
                      steps, decoupled_weight_decay)


def twin_error(steps: int = STEPS, decoupled_weight_decay: bool = False,
               mu_product_dtype: str = "float32") -> float:
    """The same error of the exact twin (the builder), for the docs' table; with
    ``mu_product_dtype="float64"`` the error of a twin that ignores torch's scalar dtype."""
    return port_error(optim_checks.group_tx(torch_nadam, NAIVE,
                                            decoupled_weight_decay=decoupled_weight_decay,
                                            mu_product_dtype=mu_product_dtype),
                      steps, decoupled_weight_decay)


@pytest.mark.parametrize("decoupled", [False, True], ids=["coupled", "decoupled"])
def test_optax_namesake_is_not_torch_nadam_and_the_twin_is(decoupled):
    """optax.nadam / nadamw keep ``mu_t = b1`` (no momentum schedule: torch's starts near
    ``b1/2``) and train another model, far above 1e-12 after 50 steps; the twin is within
    it."""
    assert naive_error(decoupled_weight_decay=decoupled) > 1e-3
    assert twin_error(decoupled_weight_decay=decoupled) < 1e-12


def test_a_float64_mu_product_is_not_torchs():
    """The same rule with ``mu_product`` in float64 (the parameters' dtype) drifts from torch's
    float32 products: 2.7e-10 after 50 steps, beyond 1e-12."""
    assert twin_error(mu_product_dtype="float64") > 1e-11
