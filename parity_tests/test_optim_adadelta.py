"""``torch.optim.Adadelta`` and :func:`wd_jax.optim.adadelta.torch_adadelta`, and its port.

torch's Adadelta adds the decay to the gradient (coupled), puts eps *inside* both roots
(``sqrt(u + eps) / sqrt(v + eps) * g``) and multiplies the delta by its ``lr`` (default 1.0):
that is ``optax.adadelta`` line by line, so here the namesake is a twin. On the MLP of
``test_port_models`` with two groups (the policy's decayed weights; biases and norms
undecayed) and drawn N(0, 1) gradients, float64:

- the builder alone, 50 steps, hypothesis over the hyper-parameters (decay > 0 on the first
  group always, ``lr``, ``rho``, ``eps``, ``maximize``, ``foreach`` True / False / the
  default): parameters and the state key by key within rtol 1e-12;
- the port (``check_round_trips``: from the start, mid-run, back), with
  ``CosineAnnealingLR`` driving the lr; ``port-check`` exits 0 on a trained optimizer;
  ``capturable`` / ``differentiable`` refused, naming the option;
- optax's namesake measured: :func:`naive_error`, within 1e-12 (a twin; the port still uses
  :func:`torch_adadelta` for torch's ``step``).
"""

from __future__ import annotations

import textwrap
from functools import partial

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from parity_tests import optim_checks
from parity_tests.test_port_models import one_torch_thread  # noqa: F401

torch = pytest.importorskip("torch")
jax = pytest.importorskip("jax")
import optax  # noqa: E402
from torch.optim import lr_scheduler  # noqa: E402

from wd_jax.optim import PORTS  # noqa: E402
from wd_jax.optim.adadelta import torch_adadelta  # noqa: E402
from wd_jax.optim.registry import states_of  # noqa: E402
from wd_jax.optim.transforms import TorchStepState  # noqa: E402

STEPS = 50
IMPLEMENTATIONS = ({}, {"foreach": False}, {"foreach": True})


#: ``Adadelta`` over the policy's two groups (``weight_decay`` on the first, 0 on the second)
torch_optimizer = partial(optim_checks.two_group_optimizer, torch.optim.Adadelta)


def optax_state_by_name(state) -> dict[str, dict[str, np.ndarray]]:
    """The optax state under torch's keys (``step``, ``square_avg``, ``acc_delta``), read
    from optax's state classes."""
    (counter,) = states_of(state, TorchStepState)
    (adadelta,) = states_of(state, optax.ScaleByAdaDeltaState)
    return {n: {"step": np.asarray(float(counter.step)), "square_avg": np.asarray(e_g),
                "acc_delta": np.asarray(adadelta.e_x[n])} for n, e_g in adadelta.e_g.items()}


ARGS = st.fixed_dictionaries({
    "lr": st.floats(0.05, 2.0),
    "rho": st.floats(0.5, 0.99),
    "eps": st.sampled_from([1e-6, 1e-4, 1e-2]),
    "weight_decay": st.floats(1e-3, 1.0),
    "maximize": st.booleans(),
    "implementation": st.sampled_from(range(len(IMPLEMENTATIONS))),
})


@settings(max_examples=10, deadline=None, derandomize=True)
@given(args=ARGS)
def test_builder_matches_torch_adadelta_params_and_state(args):
    """50 steps of ``torch_adadelta`` (decay masked to the first group) equal torch's
    Adadelta over two groups, float64: every parameter and every state entry (``step``
    exactly)."""
    args = dict(args)
    implementation = IMPLEMENTATIONS[args.pop("implementation")]
    model, optimizer, params, state = optim_checks.builder_run(
        partial(torch_optimizer, implementation=implementation, **args),
        partial(torch_adadelta, **args))
    optim_checks.assert_same_params_and_states(params, optax_state_by_name(state), model, optimizer,
                                               "torch_adadelta")


@pytest.mark.parametrize(("options", "scheduled"), [
    ({"weight_decay": 0.3}, False),
    ({"lr": 0.5, "rho": 0.8, "eps": 1e-4, "weight_decay": 0.1, "maximize": True,
      "foreach": True}, False),
    ({"weight_decay": 0.1}, True),
], ids=["defaults", "rho-eps-maximize-foreach", "CosineAnnealingLR"])
def test_the_port_round_trips_adadelta(options, scheduled):
    """optimizer_from_torch / state_from_torch / state_to_torch, both ways, key by key;
    a scheduler's lr multiplies the delta as torch's does."""
    optim_checks.check_two_group_round_trips(
        partial(torch_optimizer, **options),
        partial(lr_scheduler.CosineAnnealingLR, T_max=20) if scheduled else None)


FACTORY = textwrap.dedent('''
    import torch

    from parity_tests.optim_checks import stepped_three_times
    from parity_tests.test_port_models import make_model
    from wd_jax import port


    def trained_adadelta():
        """Adadelta over two groups, stepped three times."""
        model = make_model("mlp")
        return stepped_three_times(model, torch.optim.Adadelta(
            port.no_weight_decay_groups(model, 0.1), rho=0.8))
''')


def test_port_check_exits_0_on_a_trained_adadelta(tmp_path, monkeypatch, capsys):
    out = optim_checks.port_check_output(tmp_path, monkeypatch, capsys, FACTORY,
                                         "adadelta_factories:trained_adadelta")
    assert "state acc_delta body.0.weight" in out and "BEYOND" not in out


@pytest.mark.parametrize("option", ["capturable", "differentiable"])
def test_options_without_a_twin_are_refused(option):
    optim_checks.assert_refused_without_a_twin(partial(torch_optimizer, weight_decay=0.1), option)


# ---- optax's namesake ----------------------------------------------------------------------

NAIVE = {"lr": 1.0, "rho": 0.9, "eps": 1e-6, "weight_decay": 0.1, "maximize": False}


def port_error(make_tx, steps: int = STEPS, **options) -> float:
    """The relative error (``optim_checks.relative_error``) after ``steps`` drawn-gradient
    steps of ``make_tx(weight_decay) -> tx`` per group (the policy's two groups, decay on the
    first) against torch's ``Adadelta(**NAIVE, **options)``, float64."""
    hyper = {**NAIVE, **options}
    return optim_checks.port_error(partial(torch_optimizer, **hyper), make_tx,
                                   hyper["weight_decay"], steps)


def naive_error(steps: int = STEPS, **options) -> float:
    """optax's namesake (the registry's ``naive``: ``optax.adadelta(lr, rho=, eps=,
    weight_decay=)``) against torch's ``Adadelta(lr=1.0, rho=0.9, weight_decay=0.1)``:
    relative error of the parameters after ``steps`` steps."""
    naive = PORTS["torch.optim.Adadelta"].naive
    return port_error(optim_checks.group_tx(naive, {**NAIVE, **options}), steps, **options)


def twin_error(steps: int = STEPS, **options) -> float:
    """The same error of the exact twin (:func:`torch_adadelta`)."""
    return port_error(optim_checks.group_tx(torch_adadelta, {**NAIVE, **options}), steps, **options)


def test_optax_namesake_is_a_twin_of_torch_adadelta():
    """optax.adadelta with torch's hyper-parameters (its decay coupled, its lr multiplying
    the delta, eps in both roots) is torch's rule: within 1e-12 after 50 steps, as the
    builder."""
    assert naive_error() < 1e-12
    assert twin_error() < 1e-12
