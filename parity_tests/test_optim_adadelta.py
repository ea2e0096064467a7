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
from wd_jax.optim.adadelta import torch_adadelta  # noqa: E402
from wd_jax.optim.registry import states_of  # noqa: E402
from wd_jax.optim.transforms import TorchStepState  # noqa: E402

STEPS = 50
IMPLEMENTATIONS = ({}, {"foreach": False}, {"foreach": True})


def torch_optimizer(model, *, weight_decay, implementation=(), **options):
    """``Adadelta`` over the policy's two groups (``weight_decay`` on the first, 0 on the
    second)."""
    groups = port.no_weight_decay_groups(model, weight_decay)
    return torch.optim.Adadelta(groups, **dict(implementation), **options)


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
    model = make_model("mlp")
    grads = drawn_gradients(model, STEPS)
    optimizer = torch_optimizer(model, implementation=implementation, **args)
    torch_steps(model, optimizer, None, grads)
    with jax.enable_x64(True):
        start = port.params_from_torch(make_model("mlp"))
        tx = torch_adadelta(**args, mask=port.decay_mask(start))
        # op by op (OptaxRun): compiling the chain would cost a compile per drawn example
        params, state = OptaxRun("mlp", tx).run(start, tx.init(start), grads=grads)
    for name, p in model.named_parameters():
        assert_close(params[name], p.detach().numpy(), "float64", err_msg=f"param {name}")
    assert_same_states(optax_state_by_name(state), torch_state_by_name(optimizer, model),
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
    def make():
        model = make_model("mlp")
        optimizer = torch_optimizer(model, **options)
        scheduler = lr_scheduler.CosineAnnealingLR(optimizer, T_max=20) if scheduled else None
        return model, optimizer, scheduler

    check_round_trips(make)


FACTORY = textwrap.dedent('''
    import torch

    from parity_tests.test_port_models import make_model
    from wd_jax import port


    def trained_adadelta():
        """Adadelta over two groups, stepped three times."""
        model = make_model("mlp")
        optimizer = torch.optim.Adadelta(port.no_weight_decay_groups(model, 0.1), rho=0.8)
        for step in range(3):
            for p in model.parameters():
                p.grad = torch.full_like(p, 0.5 - step)
            optimizer.step()
        return model, optimizer
''')


def test_port_check_exits_0_on_a_trained_adadelta(tmp_path, monkeypatch, capsys):
    from weight_decay.cli import main

    (tmp_path / "adadelta_factories.py").write_text(FACTORY, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        assert main(["port-check", "adadelta_factories:trained_adadelta", "--steps", "10"]) == 0
    finally:
        sys.modules.pop("adadelta_factories", None)
    out = capsys.readouterr().out
    assert "state acc_delta body.0.weight" in out and "BEYOND" not in out


@pytest.mark.parametrize("option", ["capturable", "differentiable"])
def test_options_without_a_twin_are_refused(option):
    model = make_model("mlp")
    optimizer = torch_optimizer(model, weight_decay=0.1, **{option: True})
    with pytest.raises(ValueError, match=rf"parameter group 0: {option}=True has no exact "
                                         rf"optax twin; accepted: {option}=False"):
        port.optimizer_from_torch(optimizer, model)


# ---- optax's namesake ----------------------------------------------------------------------

NAIVE = {"lr": 1.0, "rho": 0.9, "eps": 1e-6, "weight_decay": 0.1, "maximize": False}


def _relative_error(params, model) -> float:
    """``||params - torch's|| / ||torch's||`` over all the parameters together."""
    expected = {n: p.detach().numpy() for n, p in model.named_parameters()}
    difference = sum(float(np.sum((np.asarray(params[n]) - v) ** 2))
                     for n, v in expected.items())
    return float(np.sqrt(difference / sum(float(np.sum(v ** 2)) for v in expected.values())))


def port_error(make_tx, steps: int = STEPS, **options) -> float:
    """The relative error (:func:`_relative_error`) after ``steps`` drawn-gradient steps of
    ``make_tx(weight_decay) -> tx`` per group (the policy's two groups, decay on the first)
    against torch's Adadelta, float64."""
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
    """optax's namesake (the registry's ``naive``: ``optax.adadelta(lr, rho=, eps=,
    weight_decay=)``) against torch's ``Adadelta(lr=1.0, rho=0.9, weight_decay=0.1)``:
    relative error of the parameters after ``steps`` steps."""
    naive = PORTS["torch.optim.Adadelta"].naive
    hyper = {k: v for k, v in {**NAIVE, **options}.items() if k != "weight_decay"}
    return port_error(lambda wd: naive(**hyper, weight_decay=wd), steps, **options)


def twin_error(steps: int = STEPS, **options) -> float:
    """The same error of the exact twin (:func:`torch_adadelta`)."""
    hyper = {k: v for k, v in {**NAIVE, **options}.items() if k != "weight_decay"}
    return port_error(lambda wd: torch_adadelta(**hyper, weight_decay=wd), steps, **options)


def test_optax_namesake_is_a_twin_of_torch_adadelta():
    """optax.adadelta with torch's hyper-parameters (its decay coupled, its lr multiplying
    the delta, eps in both roots) is torch's rule: within 1e-12 after 50 steps, as the
    builder."""
    assert naive_error() < 1e-12
    assert twin_error() < 1e-12
