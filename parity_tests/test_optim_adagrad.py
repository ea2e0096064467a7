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

import sys
import textwrap

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from parity_tests.port_runs import check_round_trips, drawn_gradients, optax_steps, torch_steps
from parity_tests.test_port_models import (  # noqa: F401
    OptaxRun,
    assert_same_states,
    make_model,
    one_torch_thread,
    torch_state_by_name,
)
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


def torch_optimizer(model, *, weight_decay, implementation=(), **options):
    """``Adagrad`` over the policy's two groups (``weight_decay`` on the first, 0 on the
    second)."""
    groups = port.no_weight_decay_groups(model, weight_decay)
    return torch.optim.Adagrad(groups, **dict(implementation), **options)


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
    model = make_model("mlp")
    grads = drawn_gradients(model, STEPS)
    optimizer = torch_optimizer(model, implementation=implementation, **args)
    torch_steps(model, optimizer, None, grads)
    with jax.enable_x64(True):
        start = port.params_from_torch(make_model("mlp"))
        tx = torch_adagrad(**args, mask=port.decay_mask(start))
        # op by op (OptaxRun): compiling the chain would cost a compile per drawn example
        params, state = OptaxRun("mlp", tx).run(start, tx.init(start), grads=grads)
    for name, p in model.named_parameters():
        assert_close(params[name], p.detach().numpy(), "float64", err_msg=f"param {name}")
    assert_same_states(optax_state_by_name(state), torch_state_by_name(optimizer, model),
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
    def make():
        model = make_model("mlp")
        optimizer = torch_optimizer(model, **options)
        scheduler = lr_scheduler.StepLR(optimizer, step_size=5, gamma=0.5) if scheduled else None
        return model, optimizer, scheduler

    check_round_trips(make)


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

    from parity_tests.test_port_models import make_model
    from wd_jax import port


    def trained_adagrad():
        """Adagrad (lr_decay, initial accumulator) over two groups, stepped three times."""
        model = make_model("mlp")
        optimizer = torch.optim.Adagrad(port.no_weight_decay_groups(model, 0.1), lr=0.05,
                                        lr_decay=0.01, initial_accumulator_value=0.2)
        for step in range(3):
            for p in model.parameters():
                p.grad = torch.full_like(p, 0.5 - step)
            optimizer.step()
        return model, optimizer
''')


def test_port_check_exits_0_on_a_trained_adagrad(tmp_path, monkeypatch, capsys):
    from weight_decay.cli import main

    (tmp_path / "adagrad_factories.py").write_text(FACTORY, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        assert main(["port-check", "adagrad_factories:trained_adagrad", "--steps", "10"]) == 0
    finally:
        sys.modules.pop("adagrad_factories", None)
    out = capsys.readouterr().out
    assert "state sum body.0.weight" in out and "BEYOND" not in out


def test_differentiable_is_refused():
    model = make_model("mlp")
    optimizer = torch_optimizer(model, weight_decay=0.1, differentiable=True)
    with pytest.raises(ValueError, match=r"parameter group 0: differentiable=True has no exact "
                                         r"optax twin; accepted: differentiable=False"):
        port.optimizer_from_torch(optimizer, model)


# ---- optax's namesake ----------------------------------------------------------------------

NAIVE = {"lr": 0.05, "lr_decay": 0.01, "initial_accumulator_value": 0.0, "eps": 1e-10,
         "weight_decay": 0.1, "maximize": False}


def _relative_error(params, model) -> float:
    """``||params - torch's|| / ||torch's||`` over all the parameters together."""
    expected = {n: p.detach().numpy() for n, p in model.named_parameters()}
    difference = sum(float(np.sum((np.asarray(params[n]) - v) ** 2))
                     for n, v in expected.items())
    return float(np.sqrt(difference / sum(float(np.sum(v ** 2)) for v in expected.values())))


def port_error(make_tx, steps: int = STEPS, **options) -> float:
    """The relative error (:func:`_relative_error`) after ``steps`` drawn-gradient steps of
    ``make_tx(weight_decay) -> tx`` per group (the policy's two groups, decay on the first)
    against torch's Adagrad, float64."""
    hyper = {**NAIVE, **options}
    model = make_model("mlp")
    grads = drawn_gradients(model, steps)
    torch_steps(model, torch_optimizer(model, **hyper), None, grads)
    with jax.enable_x64(True):
        start = port.params_from_torch(make_model("mlp"))
        labels = {n: "decayed" if decays else "undecayed"
                  for n, decays in port.decay_mask(start).items()}
        tx = optax.partition({"decayed": make_tx(hyper["weight_decay"]),
                              "undecayed": make_tx(0.0)}, labels)
        params, _ = optax_steps(tx, start, tx.init(start), grads)
    return _relative_error(params, model)


def naive_error(steps: int = STEPS, **options) -> float:
    """optax's namesake (the registry's ``naive``: ``optax.adagrad(lr,
    initial_accumulator_value=, eps=)`` after ``add_decayed_weights``, ``lr_decay`` dropped)
    against torch's ``Adagrad(lr=0.05, lr_decay=0.01, weight_decay=0.1)``: relative error of
    the parameters after ``steps`` steps."""
    naive = PORTS["torch.optim.Adagrad"].naive
    hyper = {k: v for k, v in {**NAIVE, **options}.items() if k != "weight_decay"}
    return port_error(lambda wd: naive(**hyper, weight_decay=wd), steps, **options)


def twin_error(steps: int = STEPS, **options) -> float:
    """The same error of the exact twin (:func:`torch_adagrad`)."""
    hyper = {k: v for k, v in {**NAIVE, **options}.items() if k != "weight_decay"}
    return port_error(lambda wd: torch_adagrad(**hyper, weight_decay=wd), steps, **options)


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
