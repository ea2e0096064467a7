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

import sys
import textwrap

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from parity_tests.port_runs import check_round_trips, drawn_gradients, optax_steps, torch_steps
from parity_tests.test_port_models import make_model, one_torch_thread  # noqa: F401
from wd_core.tolerances import assert_close

torch = pytest.importorskip("torch")
jax = pytest.importorskip("jax")
import optax  # noqa: E402
from torch.optim import lr_scheduler  # noqa: E402

from wd_jax import port  # noqa: E402
from wd_jax.optim import PORTS  # noqa: E402
from wd_jax.optim.adamax import torch_adamax  # noqa: E402
from wd_jax.optim.registry import states_of  # noqa: E402

STEPS = 50
IMPLEMENTATIONS = ({}, {"foreach": False}, {"foreach": True})
#: torch's state key -> the field of ``optax.ScaleByAdamState`` that holds it
FIELDS = {"exp_avg": "mu", "exp_inf": "nu"}


def torch_optimizer(model, *, weight_decay, implementation=(), **options):
    """``Adamax`` over the policy's two groups (``weight_decay`` on the first, 0 on the
    second)."""
    return torch.optim.Adamax(port.no_weight_decay_groups(model, weight_decay),
                              **dict(implementation), **options)


def optax_run(tx, model, grads):
    """``len(grads)`` steps of ``tx`` from ``model``'s parameters: ``(params, state)``."""
    params = port.params_from_torch(model)
    return optax_steps(tx, params, tx.init(params), grads)


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
    model = make_model("mlp")
    grads = drawn_gradients(model, STEPS)
    optimizer = torch_optimizer(model, implementation=implementation, **args)
    torch_steps(model, optimizer, None, grads)
    with jax.enable_x64(True):
        start = make_model("mlp")
        tx = torch_adamax(**args, mask=port.decay_mask(port.params_from_torch(start)))
        params, state = optax_run(tx, start, grads)
    (adamax,) = states_of(state, optax.ScaleByAdamState)
    assert int(adamax.count) == STEPS
    for name, p in model.named_parameters():
        assert_close(params[name], p.detach().numpy(), "float64", err_msg=f"param {name}")
        torch_state = optimizer.state[p]
        assert sorted(torch_state) == sorted((*FIELDS, "step"))
        assert float(torch_state["step"]) == STEPS
        for key, field in FIELDS.items():
            assert_close(getattr(adamax, field)[name], torch_state[key].numpy(), "float64",
                         err_msg=f"state {key} of {name}")


@pytest.mark.parametrize(("options", "scheduled"), [
    ({"lr": 0.01, "weight_decay": 0.3}, False),
    ({"lr": 0.01, "weight_decay": 0.3, "betas": (0.8, 0.99), "eps": 1e-3, "maximize": True,
      "foreach": True}, False),
    ({"lr": 0.01, "weight_decay": 0.1}, True),
], ids=["default", "maximize-foreach", "OneCycleLR"])
def test_the_port_round_trips_adamax(options, scheduled):
    """optimizer_from_torch / state_from_torch / state_to_torch, both ways, key by key;
    OneCycleLR drives the lr and cycles beta1 through the injected ``scale_by_adamax``."""
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


    def trained_adamax():
        """Adamax over two groups (decay on the first), stepped three times."""
        model = make_model("mlp")
        optimizer = torch.optim.Adamax(port.no_weight_decay_groups(model, 0.1), lr=0.01)
        for step in range(3):
            for p in model.parameters():
                p.grad = torch.full_like(p, 0.5 - step)
            optimizer.step()
        return model, optimizer
''')


def test_port_check_exits_0_on_a_trained_adamax(tmp_path, monkeypatch, capsys):
    from weight_decay.cli import main

    (tmp_path / "adamax_factories.py").write_text(FACTORY, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        assert main(["port-check", "adamax_factories:trained_adamax", "--steps", "10"]) == 0
    finally:
        sys.modules.pop("adamax_factories", None)
    out = capsys.readouterr().out
    assert "state exp_inf body.0.weight" in out and "BEYOND" not in out


@pytest.mark.parametrize("option", ["capturable", "differentiable"])
def test_options_without_a_twin_are_refused(option):
    model = make_model("mlp")
    optimizer = torch_optimizer(model, weight_decay=0.1, **{option: True})
    with pytest.raises(ValueError, match=rf"parameter group 0: {option}=True has no exact "
                                         rf"optax twin; accepted: {option}=False"):
        port.optimizer_from_torch(optimizer, model)


# ---- optax's namesake ----------------------------------------------------------------------

NAIVE = {"lr": 0.01, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.1,
         "maximize": False}


def _relative_error(params, model) -> float:
    """``||params - torch's|| / ||torch's||`` over all the parameters together."""
    expected = {n: p.detach().numpy() for n, p in model.named_parameters()}
    difference = sum(float(np.sum((np.asarray(params[n]) - v) ** 2))
                     for n, v in expected.items())
    return float(np.sqrt(difference / sum(float(np.sum(v ** 2)) for v in expected.values())))


def port_error(make_tx, steps: int = STEPS) -> float:
    """The relative error (:func:`_relative_error`) after ``steps`` drawn-gradient steps of
    ``make_tx(weight_decay) -> tx`` per group (the policy's two groups, decay on the first)
    against torch's ``Adamax(**NAIVE)``, float64."""
    model = make_model("mlp")
    grads = drawn_gradients(model, steps)
    torch_steps(model, torch_optimizer(model, **NAIVE), None, grads)
    with jax.enable_x64(True):
        start = make_model("mlp")
        labels = {n: "decayed" if decays else "undecayed"
                  for n, decays in port.decay_mask(port.params_from_torch(start)).items()}
        tx = optax.partition({"decayed": make_tx(NAIVE["weight_decay"]),
                              "undecayed": make_tx(0.0)}, labels)
        params, _ = optax_run(tx, start, grads)
    return _relative_error(params, model)


def naive_error(steps: int = STEPS) -> float:
    """optax's namesake (the registry's ``naive``: ``optax.adamax`` after
    ``add_decayed_weights``) against torch's ``Adamax(lr=0.01, weight_decay=0.1)``: relative
    error of the parameters after ``steps`` steps."""
    naive = PORTS["torch.optim.Adamax"].naive
    hyper = {k: v for k, v in NAIVE.items() if k != "weight_decay"}
    return port_error(lambda wd: naive(**hyper, weight_decay=wd), steps)


def twin_error(steps: int = STEPS) -> float:
    """The same error of the exact twin (the builder), for the docs' table."""
    hyper = {k: v for k, v in NAIVE.items() if k != "weight_decay"}
    return port_error(lambda wd: torch_adamax(**hyper, weight_decay=wd), steps)


def test_optax_namesake_is_a_twin_of_torch_adamax():
    """``optax.scale_by_adamax`` is torch's rule (eps inside the maximum, zeros at first, only
    the mean bias-corrected): optax's namesake after the coupled decay is within 1e-12 of
    torch after 50 steps, as the builder is."""
    assert naive_error() < 1e-12
    assert twin_error() < 1e-12
