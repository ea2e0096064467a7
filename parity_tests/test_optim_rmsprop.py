"""``torch.optim.RMSprop`` and :func:`wd_jax.optim.rmsprop.torch_rmsprop`, and its port.

torch's RMSprop adds the decay to the gradient (coupled), puts eps *outside* the root
(``g / (sqrt(v) + eps)``, centered: ``sqrt(v - m**2) + eps``), starts its averages at 0 with no
bias correction, and traces the momentum of ``g/a`` *before* the lr. On the MLP of
``test_port_models`` with two groups (the policy's decayed weights; biases and norms
undecayed) and drawn N(0, 1) gradients, float64:

- the builder alone, 50 steps, hypothesis over the hyper-parameters (decay > 0 on the first
  group always, ``alpha``, ``eps``, ``momentum``, ``centered``, ``maximize``, ``foreach``
  True / False / the default): parameters and the state key by key within rtol 1e-12;
- the port (``check_round_trips``: from the start, mid-run, back), with ``OneCycleLR``
  driving the lr and cycling the momentum too; ``port-check`` exits 0 on a trained
  optimizer; ``capturable`` / ``differentiable`` refused, naming the option;
- optax's namesake measured: :func:`naive_error`, far above 1e-12 (``optax.rmsprop``'s
  default ``eps_in_sqrt=True`` divides by ``sqrt(v + eps)``).
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
from wd_jax.optim.registry import states_of  # noqa: E402
from wd_jax.optim.rmsprop import torch_rmsprop  # noqa: E402
from wd_jax.optim.transforms import TorchStepState  # noqa: E402

STEPS = 50
IMPLEMENTATIONS = ({}, {"foreach": False}, {"foreach": True})


def torch_optimizer(model, *, weight_decay, implementation=(), **options):
    """``RMSprop`` over the policy's two groups (``weight_decay`` on the first, 0 on the
    second)."""
    groups = port.no_weight_decay_groups(model, weight_decay)
    return torch.optim.RMSprop(groups, **dict(implementation), **options)


def optax_state_by_name(state) -> dict[str, dict[str, np.ndarray]]:
    """The optax state under torch's keys, read from optax's own state classes (not through
    the port): ``step``, ``square_avg`` and, when present, ``grad_avg``,
    ``momentum_buffer``."""
    (counter,) = states_of(state, TorchStepState)
    trees = {}
    for s in states_of(state, optax.ScaleByRmsState):
        trees["square_avg"] = s.nu
    for s in states_of(state, optax.ScaleByRStdDevState):
        trees.update(square_avg=s.nu, grad_avg=s.mu)
    for s in states_of(state, optax.TraceState):
        trees["momentum_buffer"] = s.trace
    names = trees["square_avg"]
    return {n: {"step": np.asarray(float(counter.step)),
                **{key: np.asarray(tree[n]) for key, tree in trees.items()}} for n in names}


ARGS = st.fixed_dictionaries({
    "lr": st.floats(1e-4, 0.05),
    "alpha": st.floats(0.5, 0.999),
    "eps": st.sampled_from([1e-8, 1e-6, 1e-3]),
    "weight_decay": st.floats(1e-3, 1.0),
    "momentum": st.one_of(st.just(0.0), st.floats(0.1, 0.95)),
    "centered": st.booleans(),
    "maximize": st.booleans(),
    "implementation": st.sampled_from(range(len(IMPLEMENTATIONS))),
})


@settings(max_examples=10, deadline=None, derandomize=True)
@given(args=ARGS)
def test_builder_matches_torch_rmsprop_params_and_state(args):
    """50 steps of ``torch_rmsprop`` (decay masked to the first group) equal torch's RMSprop
    over two groups, float64: every parameter and every state entry (``step`` exactly; no
    ``grad_avg`` / ``momentum_buffer`` where torch has none)."""
    args = dict(args)
    implementation = IMPLEMENTATIONS[args.pop("implementation")]
    model = make_model("mlp")
    grads = drawn_gradients(model, STEPS)
    optimizer = torch_optimizer(model, implementation=implementation, **args)
    torch_steps(model, optimizer, None, grads)
    with jax.enable_x64(True):
        start = port.params_from_torch(make_model("mlp"))
        tx = torch_rmsprop(**args, mask=port.decay_mask(start))
        # op by op (OptaxRun): compiling the chain would cost a compile per drawn example
        params, state = OptaxRun("mlp", tx).run(start, tx.init(start), grads=grads)
    for name, p in model.named_parameters():
        assert_close(params[name], p.detach().numpy(), "float64", err_msg=f"param {name}")
    assert_same_states(optax_state_by_name(state), torch_state_by_name(optimizer, model),
                       "torch_rmsprop")


@pytest.mark.parametrize(("options", "scheduled"), [
    ({"lr": 0.01, "weight_decay": 0.3}, False),
    ({"lr": 0.01, "weight_decay": 0.1, "alpha": 0.9, "centered": True, "momentum": 0.5,
      "maximize": True, "foreach": True}, False),
    ({"lr": 0.01, "weight_decay": 0.1, "momentum": 0.9}, True),
], ids=["plain", "centered-momentum-maximize-foreach", "momentum-OneCycleLR"])
def test_the_port_round_trips_rmsprop(options, scheduled):
    """optimizer_from_torch / state_from_torch / state_to_torch, both ways, key by key;
    OneCycleLR drives the lr and cycles the momentum (the injected trace)."""
    def make():
        model = make_model("mlp")
        optimizer = torch_optimizer(model, **options)
        scheduler = (lr_scheduler.OneCycleLR(optimizer, max_lr=0.02, total_steps=STEPS + 1)
                     if scheduled else None)
        return model, optimizer, scheduler

    check_round_trips(make)


FACTORY = textwrap.dedent('''
    import torch

    from parity_tests.test_port_models import make_model
    from wd_jax import port


    def trained_rmsprop():
        """RMSprop (centered, momentum) over two groups, stepped three times."""
        model = make_model("mlp")
        optimizer = torch.optim.RMSprop(port.no_weight_decay_groups(model, 0.1), lr=0.01,
                                        momentum=0.9, centered=True)
        for step in range(3):
            for p in model.parameters():
                p.grad = torch.full_like(p, 0.5 - step)
            optimizer.step()
        return model, optimizer
''')


def test_port_check_exits_0_on_a_trained_rmsprop(tmp_path, monkeypatch, capsys):
    from weight_decay.cli import main

    (tmp_path / "rmsprop_factories.py").write_text(FACTORY, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        assert main(["port-check", "rmsprop_factories:trained_rmsprop", "--steps", "10"]) == 0
    finally:
        sys.modules.pop("rmsprop_factories", None)
    out = capsys.readouterr().out
    assert "state grad_avg body.0.weight" in out and "BEYOND" not in out


@pytest.mark.parametrize("option", ["capturable", "differentiable"])
def test_options_without_a_twin_are_refused(option):
    model = make_model("mlp")
    optimizer = torch_optimizer(model, weight_decay=0.1, **{option: True})
    with pytest.raises(ValueError, match=rf"parameter group 0: {option}=True has no exact "
                                         rf"optax twin; accepted: {option}=False"):
        port.optimizer_from_torch(optimizer, model)


# ---- optax's namesake ----------------------------------------------------------------------

NAIVE = {"lr": 0.01, "alpha": 0.9, "eps": 1e-8, "weight_decay": 0.1, "momentum": 0.5,
         "centered": True, "maximize": False}


def _relative_error(params, model) -> float:
    """``||params - torch's|| / ||torch's||`` over all the parameters together."""
    expected = {n: p.detach().numpy() for n, p in model.named_parameters()}
    difference = sum(float(np.sum((np.asarray(params[n]) - v) ** 2))
                     for n, v in expected.items())
    return float(np.sqrt(difference / sum(float(np.sum(v ** 2)) for v in expected.values())))


def port_error(make_tx, steps: int = STEPS, **options) -> float:
    """The relative error (:func:`_relative_error`) after ``steps`` drawn-gradient steps of
    ``make_tx(weight_decay) -> tx`` per group (the policy's two groups, decay on the first)
    against torch's RMSprop, float64."""
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
    """optax's namesake (the registry's ``naive``: ``optax.rmsprop(lr, decay=alpha, eps=eps,
    momentum=, centered=)`` after ``add_decayed_weights``) against torch's
    ``RMSprop(lr=0.01, alpha=0.9, weight_decay=0.1, momentum=0.5, centered=True)``: relative
    error of the parameters after ``steps`` steps."""
    naive = PORTS["torch.optim.RMSprop"].naive
    hyper = {k: v for k, v in {**NAIVE, **options}.items() if k != "weight_decay"}
    return port_error(lambda wd: naive(**hyper, weight_decay=wd), steps, **options)


def twin_error(steps: int = STEPS, **options) -> float:
    """The same error of the exact twin (:func:`torch_rmsprop`)."""
    hyper = {k: v for k, v in {**NAIVE, **options}.items() if k != "weight_decay"}
    return port_error(lambda wd: torch_rmsprop(**hyper, weight_decay=wd), steps, **options)


@pytest.mark.parametrize("options", [{}, {"centered": False, "momentum": 0.0}],
                         ids=["centered-momentum", "plain"])
def test_optax_namesake_is_not_torch_rmsprop_and_the_twin_is(options):
    """optax.rmsprop's eps inside the root trains another model: its error after 50 steps is
    far above 1e-12 (a gradient entry near 1e-4 makes ``(1 - alpha)*g**2`` as small as eps);
    the twin's is within it."""
    assert naive_error(**options) > 1e-6
    assert twin_error(**options) < 1e-12


def test_the_namesake_differs_by_where_eps_sits():
    """Why, on one step from zero state: torch divides by ``sqrt(v) + eps``, optax.rmsprop
    by ``sqrt(v + eps)``; with ``v = (1 - alpha)*g**2`` near eps the two differ by far more
    than rounding, and ``eps_in_sqrt=False`` is torch's."""
    with jax.enable_x64(True):
        g = 1e-3
        p = torch.zeros(1, dtype=torch.float64, requires_grad=True)
        optimizer = torch.optim.RMSprop([p], lr=0.1)
        p.grad = torch.tensor([g], dtype=torch.float64)
        optimizer.step()
        results = []
        for tx in (torch_rmsprop(0.1), optax.rmsprop(0.1, decay=0.99, eps=1e-8)):
            params = {"p": jax.numpy.zeros(1)}
            updates, _ = tx.update({"p": jax.numpy.asarray([g])}, tx.init(params), params)
            results.append(float(optax.apply_updates(params, updates)["p"][0]))
    assert_close(results[0], p.item(), "float64")
    assert abs(results[1] - p.item()) > 1e-3 * abs(p.item())
