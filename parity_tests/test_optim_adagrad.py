"""``torch.optim.Adagrad`` and :func:`wd_jax.optim.adagrad.torch_adagrad`, and its port.

torch's Adagrad adds the decay to the gradient (coupled), starts its sum of squares at
``initial_accumulator_value`` (0 by default; optax's ``adagrad`` at 0.1), puts eps *outside*
the root (``g / (sqrt(s) + eps)``; optax's inside) and divides the lr by ``1 + (t - 1)*
lr_decay``. On the MLP of ``test_port_models`` with two groups (the policy's decayed
weights; biases and norms undecayed) and drawn N(0, 1) gradients, float64:

- the builder alone, 50 steps, hypothesis over the hyper-parameters (decay > 0 on the first
  group always, ``lr_decay``, ``initial_accumulator_value``, ``eps``, ``maximize``,
  ``foreach`` / ``fused`` / the default): parameters and the state key by key within rtol
  1e-12;
- the port (``check_round_trips``: from the start, mid-run, back), with a non-zero initial
  accumulator (an unstepped optimizer's absent state comes in as it) and with ``StepLR``
  driving the lr under ``lr_decay``; ``port-check`` exits 0 on a trained optimizer;
  ``differentiable`` refused, naming it;
- optax's namesake measured: :func:`naive_error`, far above 1e-12.
"""

from __future__ import annotations

import textwrap
from functools import partial

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from parity_tests import optim_checks
from parity_tests.port_runs import drawn_gradients, optax_steps, torch_steps
from parity_tests.test_port_models import make_model, one_torch_thread  # noqa: F401
from wd_core.tolerances import assert_close

torch = pytest.importorskip("torch")
jax = pytest.importorskip("jax")
import optax  # noqa: E402
from torch.optim import lr_scheduler  # noqa: E402

from wd_jax import port  # noqa: E402
from wd_jax.optim import PORTS  # noqa: E402
from wd_jax.optim.adagrad import TorchAdagradState, torch_adagrad  # noqa: E402
from wd_jax.optim.registry import states_of  # noqa: E402

STEPS = 50
IMPLEMENTATIONS = ({}, {"foreach": False}, {"foreach": True}, {"fused": True})


#: ``Adagrad`` over the policy's two groups (``weight_decay`` on the first, 0 on the second)
torch_optimizer = partial(optim_checks.two_group_optimizer, torch.optim.Adagrad)


def optax_state_by_name(state) -> dict[str, dict[str, np.ndarray]]:
    """The optax state under torch's keys (``step``, ``sum``), read from the state class."""
    (adagrad,) = states_of(state, TorchAdagradState)
    return {n: {"step": np.asarray(float(adagrad.step)), "sum": np.asarray(s)}
            for n, s in adagrad.sum.items()}


ARGS = st.fixed_dictionaries({
    "lr": st.floats(1e-3, 0.5),
    "lr_decay": st.one_of(st.just(0.0), st.floats(1e-4, 0.1)),
    "initial_accumulator_value": st.one_of(st.just(0.0), st.floats(1e-3, 1.0)),
    "eps": st.sampled_from([1e-10, 1e-8, 1e-3]),
    "weight_decay": st.floats(1e-3, 1.0),
    "maximize": st.booleans(),
    "implementation": st.sampled_from(range(len(IMPLEMENTATIONS))),
})


@settings(max_examples=10, deadline=None, derandomize=True)
@given(args=ARGS)
def test_builder_matches_torch_adagrad_params_and_state(args):
    """50 steps of ``torch_adagrad`` (decay masked to the first group) equal torch's Adagrad
    over two groups, float64: every parameter and every state entry (``step`` exactly)."""
    args = dict(args)
    implementation = IMPLEMENTATIONS[args.pop("implementation")]
    model, optimizer, params, state = optim_checks.builder_run(
        partial(torch_optimizer, implementation=implementation, **args),
        partial(torch_adagrad, **args))
    optim_checks.assert_same_params_and_states(params, optax_state_by_name(state), model, optimizer,
                                               "torch_adagrad")


@pytest.mark.parametrize(("options", "scheduled"), [
    ({"lr": 0.05, "weight_decay": 0.3}, False),
    ({"lr": 0.05, "weight_decay": 0.1, "lr_decay": 0.01, "initial_accumulator_value": 0.3,
      "maximize": True, "fused": True}, False),
    ({"lr": 0.05, "weight_decay": 0.1, "lr_decay": 0.02}, True),
], ids=["plain", "lr_decay-initial-maximize-fused", "lr_decay-StepLR"])
def test_the_port_round_trips_adagrad(options, scheduled):
    """optimizer_from_torch / state_from_torch / state_to_torch, both ways, key by key; a
    scheduler's lr is divided by torch's ``1 + (t - 1)*lr_decay`` as torch's ``clr``."""
    optim_checks.check_two_group_round_trips(
        partial(torch_optimizer, **options),
        partial(lr_scheduler.StepLR, step_size=5, gamma=0.5) if scheduled else None)


def test_a_group_initial_accumulator_that_torch_ignores_is_followed():
    """torch fills ``sum`` in its constructor with the optimizer's
    ``initial_accumulator_value``, ignoring a group's own: the port reads that ``sum``."""
    model = make_model("mlp")
    groups = port.no_weight_decay_groups(model, 0.1)
    groups[0]["initial_accumulator_value"] = 0.5  # torch uses the constructor's 0.2
    optimizer = torch.optim.Adagrad(groups, lr=0.05, initial_accumulator_value=0.2)
    check_steps_equal(model, optimizer)


def test_an_added_group_initial_accumulator_that_torch_ignores_is_followed():
    """A group added with ``add_param_group`` has no state until its first step, when torch
    fills ``sum`` with ``optimizer.defaults["initial_accumulator_value"]``, ignoring the
    group's own value: the port follows torch."""
    model = make_model("mlp")
    decayed, undecayed = port.no_weight_decay_groups(model, 0.1)
    optimizer = torch.optim.Adagrad([decayed], lr=0.05)
    optimizer.add_param_group({**undecayed, "initial_accumulator_value": 0.5})
    check_steps_equal(model, optimizer)


def check_steps_equal(model, optimizer, steps: int = 3) -> None:
    """``steps`` drawn-gradient steps of the port (from ``optimizer``'s current state) equal
    torch's, parameter by parameter."""
    grads = drawn_gradients(model, steps)
    with jax.enable_x64(True):
        params = port.params_from_torch(model)
        tx = port.optimizer_from_torch(optimizer, model)
        state = port.state_from_torch(optimizer, model, tx, params)
        params, _ = optax_steps(tx, params, state, grads)
    torch_steps(model, optimizer, None, grads)
    for name, p in model.named_parameters():
        assert_close(params[name], p.detach().numpy(), "float64", err_msg=f"param {name}")


FACTORY = textwrap.dedent('''
    import torch

    from parity_tests.optim_checks import stepped_three_times
    from parity_tests.test_port_models import make_model
    from wd_jax import port


    def trained_adagrad():
        """Adagrad (lr_decay, initial accumulator) over two groups, stepped three times."""
        model = make_model("mlp")
        return stepped_three_times(model, torch.optim.Adagrad(
            port.no_weight_decay_groups(model, 0.1), lr=0.05, lr_decay=0.01,
            initial_accumulator_value=0.2))
''')


def test_port_check_exits_0_on_a_trained_adagrad(tmp_path, monkeypatch, capsys):
    out = optim_checks.port_check_output(tmp_path, monkeypatch, capsys, FACTORY,
                                         "adagrad_factories:trained_adagrad")
    assert "state sum body.0.weight" in out and "BEYOND" not in out


def test_differentiable_is_refused():
    optim_checks.assert_refused_without_a_twin(partial(torch_optimizer, weight_decay=0.1),
                                               "differentiable")


# ---- optax's namesake ----------------------------------------------------------------------

NAIVE = {"lr": 0.05, "lr_decay": 0.01, "initial_accumulator_value": 0.0, "eps": 1e-10,
         "weight_decay": 0.1, "maximize": False}


def port_error(make_tx, steps: int = STEPS, **options) -> float:
    """The relative error (``optim_checks.relative_error``) after ``steps`` drawn-gradient
    steps of ``make_tx(weight_decay) -> tx`` per group (the policy's two groups, decay on the
    first) against torch's ``Adagrad(**NAIVE, **options)``, float64."""
    hyper = {**NAIVE, **options}
    return optim_checks.port_error(partial(torch_optimizer, **hyper), make_tx,
                                   hyper["weight_decay"], steps)


def naive_error(steps: int = STEPS, **options) -> float:
    """optax's namesake (the registry's ``naive``: ``optax.adagrad(lr,
    initial_accumulator_value=, eps=)`` after ``add_decayed_weights``, ``lr_decay`` dropped)
    against torch's ``Adagrad(lr=0.05, lr_decay=0.01, weight_decay=0.1)``: relative error of
    the parameters after ``steps`` steps."""
    naive = PORTS["torch.optim.Adagrad"].naive
    return port_error(optim_checks.group_tx(naive, {**NAIVE, **options}), steps, **options)


def twin_error(steps: int = STEPS, **options) -> float:
    """The same error of the exact twin (:func:`torch_adagrad`)."""
    return port_error(optim_checks.group_tx(torch_adagrad, {**NAIVE, **options}), steps, **options)


@pytest.mark.parametrize(("options", "above"), [({}, 1e-3), ({"lr_decay": 0.0}, 1e-9)],
                         ids=["lr_decay", "eps-in-the-root-alone"])
def test_optax_namesake_is_not_torch_adagrad_and_the_twin_is(options, above):
    """optax.adagrad trains another model: without ``lr_decay`` its steps stay at the full
    lr, and even with ``lr_decay=0`` its eps inside the root moves the parameters far beyond
    1e-12 in 50 steps; the twin's error is within it."""
    assert naive_error(**options) > above
    assert twin_error(**options) < 1e-12


def test_the_namesake_differs_by_its_accumulator_and_eps():
    """Why, on one step: optax.adagrad's defaults start the sum at 0.1 (torch's at 0) and
    put eps inside the root; built with torch's values (0, 1e-10) the first step still
    differs where the root is small."""
    with jax.enable_x64(True):
        g = 1e-6
        p = torch.zeros(1, dtype=torch.float64, requires_grad=True)
        optimizer = torch.optim.Adagrad([p], lr=0.1)
        p.grad = torch.tensor([g], dtype=torch.float64)
        optimizer.step()
        results = []
        for tx in (torch_adagrad(0.1), optax.adagrad(0.1), optax.adagrad(
                0.1, initial_accumulator_value=0.0, eps=1e-10)):
            params = {"p": jax.numpy.zeros(1)}
            updates, _ = tx.update({"p": jax.numpy.asarray([g])}, tx.init(params), params)
            results.append(float(optax.apply_updates(params, updates)["p"][0]))
    assert_close(results[0], p.item(), "float64")
    assert abs(results[1] - p.item()) > 0.9 * abs(p.item())  # the 0.1 start: ~1e-5 of it
    assert abs(results[2] - p.item()) > 1e-3 * abs(p.item())
