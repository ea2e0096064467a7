"""``torch.optim.ASGD`` and :func:`wd_jax.optim.asgd.torch_asgd`, and its port.

torch's ASGD adds ``weight_decay*p`` to the gradient (coupled), shrinks ``p`` by
``1 - lambd*eta_t`` beside the step ``eta_t*d``, averages the iterates into ``ax`` once
``t > t0``, and keeps ``eta`` and ``mu`` as float32 scalars (rounded so, whatever the
parameters' dtype); its foreach path computes ``eta`` in float32 arithmetic, another rounding.
On the MLP of ``test_port_models`` with two groups (the policy's decayed weights; biases and
norms undecayed) and drawn N(0, 1) gradients, float64:

- the builder alone, 50 steps, hypothesis over ``lr``, ``lambd``, ``alpha``, ``t0`` (the
  averaging on and off), ``weight_decay > 0``, ``maximize``, ``foreach`` True / False / the
  default: parameters and the state key by key (``step``, ``eta``, ``mu``, ``ax``) within
  rtol 1e-12; torch's two paths part by ~1e-8, and each is followed;
- the port (``check_round_trips``: from the start, mid-run, back), with a scheduler driving
  the lr (which enters ``eta``, not a factor of the update); ``port-check`` exits 0 on a
  trained optimizer; ``capturable`` / ``differentiable`` refused, naming the option;
- optax has no averaged SGD: no namesake to measure.
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
from wd_core.tolerances import assert_close

torch = pytest.importorskip("torch")
jax = pytest.importorskip("jax")
import optax  # noqa: E402
from torch.optim import lr_scheduler  # noqa: E402

from wd_jax.optim import PORTS  # noqa: E402
from wd_jax.optim.asgd import ASGDState, torch_asgd  # noqa: E402
from wd_jax.optim.registry import states_of  # noqa: E402

STEPS = 50
IMPLEMENTATIONS = ({}, {"foreach": False}, {"foreach": True})


#: ``ASGD`` over the policy's two groups (``weight_decay`` on the first, 0 on the second)
torch_optimizer = partial(optim_checks.two_group_optimizer, torch.optim.ASGD)


def optax_state_by_name(state) -> dict[str, dict[str, np.ndarray]]:
    """The optax state under torch's keys (``step``, ``eta``, ``mu``, ``ax``), read from
    :class:`ASGDState`."""
    (asgd,) = states_of(state, ASGDState)
    return {n: {"step": np.asarray(float(asgd.step)), "eta": np.asarray(asgd.eta[n]),
                "mu": np.asarray(asgd.mu[n]), "ax": np.asarray(ax)}
            for n, ax in asgd.ax.items()}


def builder_run(options, implementation=()):
    """50 steps of torch's ASGD and of ``torch_asgd`` (decay masked to the first group, the
    same ``implementation``: foreach's float32 eta followed) on the same gradients:
    ``(model, optimizer, optax params, optax state)``."""
    return optim_checks.builder_run(
        partial(torch_optimizer, implementation=implementation, **options),
        partial(torch_asgd, **options, **dict(implementation)), steps=STEPS)


ARGS = st.fixed_dictionaries({
    "lr": st.floats(1e-3, 0.3),
    "lambd": st.sampled_from([0.0, 1e-4, 1e-2, 0.1]),
    "alpha": st.floats(0.3, 1.0),
    "t0": st.sampled_from([0.0, 5.0, 30.0, 1e6]),
    "weight_decay": st.floats(1e-3, 0.5),
    "maximize": st.booleans(),
    "implementation": st.sampled_from(range(len(IMPLEMENTATIONS))),
})


@settings(max_examples=10, deadline=None, derandomize=True)
@given(args=ARGS)
def test_builder_matches_torch_asgd_params_and_state(args):
    """50 steps of ``torch_asgd`` (decay masked to the first group) equal torch's ASGD over
    two groups, float64: every parameter and every state entry (``step`` exactly)."""
    args = dict(args)
    implementation = IMPLEMENTATIONS[args.pop("implementation")]
    model, optimizer, params, state = builder_run(args, implementation)
    optim_checks.assert_same_params_and_states(params, optax_state_by_name(state), model, optimizer,
                                               "torch_asgd")


def test_foreach_is_followed_where_it_parts_from_the_single_tensor_path():
    """torch's foreach ASGD rounds ``eta`` in float32 arithmetic: its run parts from the
    single-tensor one by far more than 1e-12; the builder follows each path to 1e-12."""
    options = {"lr": 0.05, "lambd": 1e-2, "t0": 5.0, "weight_decay": 0.1}
    runs = {foreach: builder_run(options, {"foreach": foreach}) for foreach in (False, True)}
    single = runs[False][0].get_parameter("body.0.weight").detach().numpy()
    fused = runs[True][0].get_parameter("body.0.weight").detach().numpy()
    assert np.max(np.abs(single - fused)) / np.max(np.abs(single)) > 1e-10
    for model, _, params, _ in runs.values():
        for name, p in model.named_parameters():
            assert_close(params[name], p.detach().numpy(), "float64", err_msg=name)


@pytest.mark.parametrize(("options", "scheduled"), [
    ({"weight_decay": 0.1}, False),
    ({"lr": 0.05, "lambd": 1e-2, "alpha": 0.6, "t0": 3.0, "weight_decay": 0.2,
      "maximize": True, "foreach": True}, False),
    ({"lr": 0.05, "lambd": 1e-2, "t0": 10.0, "weight_decay": 0.1}, True),
], ids=["defaults", "averaging-maximize-foreach", "StepLR"])
def test_the_port_round_trips_asgd(options, scheduled):
    """optimizer_from_torch / state_from_torch / state_to_torch, both ways, key by key; a
    scheduler's lr enters eta as torch's does (at the end of each step)."""
    optim_checks.check_two_group_round_trips(
        partial(torch_optimizer, **options),
        partial(lr_scheduler.StepLR, step_size=4, gamma=0.7) if scheduled else None)


FACTORY = textwrap.dedent('''
    import torch

    from parity_tests.optim_checks import stepped_three_times
    from parity_tests.test_port_models import make_model
    from wd_jax import port


    def trained_asgd():
        """ASGD over two groups, averaging from the third step, stepped three times."""
        model = make_model("mlp")
        return stepped_three_times(model, torch.optim.ASGD(
            port.no_weight_decay_groups(model, 0.1), lr=0.05, lambd=1e-2, t0=2.0))
''')


def test_port_check_exits_0_on_a_trained_asgd(tmp_path, monkeypatch, capsys):
    out = optim_checks.port_check_output(tmp_path, monkeypatch, capsys, FACTORY,
                                         "asgd_factories:trained_asgd")
    assert "state ax body.0.weight" in out and "state eta head.bias" in out
    assert "BEYOND" not in out


@pytest.mark.parametrize("option", ["capturable", "differentiable"])
def test_options_without_a_twin_are_refused(option):
    optim_checks.assert_refused_without_a_twin(partial(torch_optimizer, weight_decay=0.1), option)


def test_optax_has_no_namesake_of_asgd():
    """No naive port to measure: optax has no averaged SGD (the registry says so, and optax
    still has none: this fails the day it gains one, to be measured then)."""
    assert PORTS["torch.optim.ASGD"].naive is None
    assert not any(hasattr(module, name) for module in (optax, optax.contrib)
                   for name in ("asgd", "scale_by_asgd"))
