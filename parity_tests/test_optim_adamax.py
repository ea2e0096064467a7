"""``torch.optim.Adamax`` (:func:`wd_jax.optim.adamax.torch_adamax`) against torch itself, and
its port.

torch's rule: coupled decay ``g + wd*p``, ``m_t = lerp(m, g, 1 - b1)``, the infinity norm
``u_t = max(b2*u, |g| + eps)`` (eps inside the maximum), ``p -= lr/(1 - b1**t) * m_t/u_t``.
On the MLP of ``test_port_models`` with two groups (the policy's decayed weights; biases and
norms undecayed) and drawn N(0, 1) gradients, float64:

- the builder alone, 50 steps, hypothesis over the hyper-parameters (decay > 0 on the first
  group always, ``maximize``, ``foreach`` True / False / the default): parameters and the
  state key by key within rtol 1e-12;
- the port (``check_round_trips``: from the start, mid-run, back), with a scheduler that
  cycles beta1 too; ``port-check`` exits 0 on a trained optimizer; ``capturable`` and
  ``differentiable`` refused;
- optax's namesake measured: ``optax.adamax`` after ``add_decayed_weights`` *is* a twin
  (:func:`naive_error` within 1e-12).
"""

from __future__ import annotations

import textwrap
from functools import partial

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from parity_tests import optim_checks
from parity_tests.test_port_models import one_torch_thread  # noqa: F401

torch = pytest.importorskip("torch")
jax = pytest.importorskip("jax")
import optax  # noqa: E402

from wd_jax.optim import PORTS  # noqa: E402
from wd_jax.optim.adamax import torch_adamax  # noqa: E402
from wd_jax.optim.registry import states_of  # noqa: E402

STEPS = 50
IMPLEMENTATIONS = ({}, {"foreach": False}, {"foreach": True})
#: torch's state key -> the field of ``optax.ScaleByAdamState`` that holds it
FIELDS = {"exp_avg": "mu", "exp_inf": "nu"}


#: ``Adamax`` over the policy's two groups (``weight_decay`` on the first, 0 on the second)
torch_optimizer = partial(optim_checks.two_group_optimizer, torch.optim.Adamax)


ARGS = st.fixed_dictionaries({
    "lr": st.floats(1e-4, 0.05),
    "betas": st.tuples(st.floats(0.0, 0.99), st.floats(0.5, 0.9999)),
    "eps": st.floats(1e-10, 1e-2),
    "weight_decay": st.floats(1e-3, 1.0),
    "maximize": st.booleans(),
    "implementation": st.sampled_from(range(len(IMPLEMENTATIONS))),
})


@settings(max_examples=8, deadline=None, derandomize=True)
@given(args=ARGS)
@example(args={"lr": 2e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.1,
               "maximize": False, "implementation": 0})
def test_builder_matches_torch_adamax_params_and_state(args):
    """50 steps of ``torch_adamax`` (the decay masked to torch's first group) equal torch's,
    float64: every parameter and every state entry (``step`` exactly)."""
    args = dict(args)
    implementation = IMPLEMENTATIONS[args.pop("implementation")]
    model, optimizer, params, state = optim_checks.builder_run(
        partial(torch_optimizer, implementation=implementation, **args),
        partial(torch_adamax, **args), op_by_op=False)
    (adamax,) = states_of(state, optax.ScaleByAdamState)
    assert int(adamax.count) == STEPS
    optim_checks.assert_params_and_state_fields(params, adamax, model, optimizer, FIELDS, STEPS)


@pytest.mark.parametrize(("options", "scheduled"), [
    ({"lr": 0.01, "weight_decay": 0.3}, False),
    ({"lr": 0.01, "weight_decay": 0.3, "betas": (0.8, 0.99), "eps": 1e-3, "maximize": True,
      "foreach": True}, False),
    ({"lr": 0.01, "weight_decay": 0.1}, True),
], ids=["default", "maximize-foreach", "OneCycleLR"])
def test_the_port_round_trips_adamax(options, scheduled):
    """optimizer_from_torch / state_from_torch / state_to_torch, both ways, key by key;
    OneCycleLR drives the lr and cycles beta1 through the injected ``scale_by_adamax``."""
    optim_checks.check_two_group_round_trips(partial(torch_optimizer, **options),
                                             optim_checks.one_cycle if scheduled else None)


FACTORY = textwrap.dedent('''
    import torch

    from parity_tests.optim_checks import stepped_three_times
    from parity_tests.test_port_models import make_model
    from wd_jax import port


    def trained_adamax():
        """Adamax over two groups (decay on the first), stepped three times."""
        model = make_model("mlp")
        return stepped_three_times(model, torch.optim.Adamax(
            port.no_weight_decay_groups(model, 0.1), lr=0.01))
''')


def test_port_check_exits_0_on_a_trained_adamax(tmp_path, monkeypatch, capsys):
    out = optim_checks.port_check_output(tmp_path, monkeypatch, capsys, FACTORY,
                                         "adamax_factories:trained_adamax")
    assert "state exp_inf body.0.weight" in out and "BEYOND" not in out


@pytest.mark.parametrize("option", ["capturable", "differentiable"])
def test_options_without_a_twin_are_refused(option):
    optim_checks.assert_refused_without_a_twin(partial(torch_optimizer, weight_decay=0.1), option)


# ---- optax's namesake ----------------------------------------------------------------------

NAIVE = {"lr": 0.01, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.1,
         "maximize": False}


def port_error(make_tx, steps: int = STEPS) -> float:
    """The relative error (``optim_checks.relative_error``) after ``steps`` drawn-gradient
    steps of ``make_tx(weight_decay) -> tx`` per group (the policy's two groups, decay on the
    first) against torch's ``Adamax(**NAIVE)``, float64."""
    return optim_checks.port_error(partial(torch_optimizer, **NAIVE), make_tx,
                                   NAIVE["weight_decay"], steps)


def naive_error(steps: int = STEPS) -> float:
    """optax's namesake (the registry's ``naive``: ``optax.adamax`` after
    ``add_decayed_weights``) against torch's ``Adamax(lr=0.01, weight_decay=0.1)``: relative
    error of the parameters after ``steps`` steps."""
    return port_error(optim_checks.group_tx(PORTS["torch.optim.Adamax"].naive, NAIVE), steps)


def twin_error(steps: int = STEPS) -> float:
    """The same error of the exact twin (the builder), for the docs' table."""
    return port_error(optim_checks.group_tx(torch_adamax, NAIVE), steps)


def test_optax_namesake_is_a_twin_of_torch_adamax():
    """``optax.scale_by_adamax`` is torch's rule (eps inside the maximum, zeros at first, only
    the mean bias-corrected): optax's namesake after the coupled decay is within 1e-12 of
    torch after 50 steps, as the builder is."""
    assert naive_error() < 1e-12
    assert twin_error() < 1e-12
