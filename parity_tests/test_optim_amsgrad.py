"""``Adam`` / ``AdamW`` with ``amsgrad=True`` (:func:`wd_jax.optim.adam.scale_by_torch_amsgrad`)
against ``torch.optim`` itself, and their port.

torch keeps the maximum of the raw second moment and bias-corrects it with the current step,
``denom = sqrt(max(vmax, v_t))/sqrt(1 - b2**t) + eps``; ``optax.amsgrad`` keeps the maximum of
the bias-corrected moment. On the MLP of ``test_port_models`` with two groups (the policy's
decayed weights; biases and norms undecayed) and drawn N(0, 1) gradients, float64:

- the builders alone, 50 steps, hypothesis over the hyper-parameters (decay > 0 on the first
  group always, ``maximize``, ``foreach`` / ``fused`` / the default, Adam's
  ``decoupled_weight_decay``): parameters and the state key by key within rtol 1e-12;
- the port (``check_round_trips``: from the start, mid-run, back), with a scheduler that
  cycles beta1 too; ``port-check`` exits 0 on a trained optimizer;
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
from parity_tests.test_port_models import make_model, one_torch_thread  # noqa: F401
from wd_core.tolerances import assert_close

torch = pytest.importorskip("torch")
jax = pytest.importorskip("jax")
import jax.numpy as jnp  # noqa: E402
import optax  # noqa: E402
from torch.optim import lr_scheduler  # noqa: E402

from wd_jax import port  # noqa: E402
from wd_jax.optim import PORTS  # noqa: E402
from wd_jax.optim.adam import ScaleByTorchAmsgradState, torch_adam  # noqa: E402
from wd_jax.optim.adamw import torch_adamw  # noqa: E402
from wd_jax.optim.registry import states_of  # noqa: E402

STEPS = 50
CLASSES = {"Adam": torch.optim.Adam, "AdamW": torch.optim.AdamW}
IMPLEMENTATIONS = ({}, {"foreach": False}, {"foreach": True}, {"fused": True})
KEYS = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")


def torch_optimizer(cls: str, model, *, weight_decay, implementation=(), **options):
    """``cls`` with ``amsgrad=True`` over the policy's two groups (``weight_decay`` on the
    first, 0 on the second)."""
    groups = port.no_weight_decay_groups(model, weight_decay)
    return CLASSES[cls](groups, amsgrad=True, **dict(implementation), **options)


def builder(cls: str, decoupled_weight_decay: bool = False):
    """The builder of a group of ``cls``: AdamW's rule for AdamW or a decoupled Adam."""
    return torch_adamw if cls == "AdamW" or decoupled_weight_decay else torch_adam


def optax_run(tx, model, grads):
    """``len(grads)`` steps of ``tx`` from ``model``'s parameters: ``(params, state)``."""
    params = port.params_from_torch(model)
    return optax_steps(tx, params, tx.init(params), grads)


ARGS = st.fixed_dictionaries({
    "cls": st.sampled_from(sorted(CLASSES)),
    "lr": st.floats(1e-4, 0.05),
    "betas": st.tuples(st.floats(0.0, 0.99), st.floats(0.5, 0.9999)),
    "eps": st.floats(1e-10, 1e-6),
    "weight_decay": st.floats(1e-3, 1.0),
    "maximize": st.booleans(),
    "implementation": st.sampled_from(range(len(IMPLEMENTATIONS))),
    "decoupled_weight_decay": st.booleans(),
})


@settings(max_examples=10, deadline=None, derandomize=True)
@given(args=ARGS)
def test_builders_match_torch_amsgrad_params_and_state(args):
    """50 steps of ``torch_adam`` / ``torch_adamw(amsgrad=True)`` equal torch's, float64:
    every parameter and every state entry (``step`` exactly)."""
    args = dict(args)
    cls, implementation = args.pop("cls"), IMPLEMENTATIONS[args.pop("implementation")]
    decoupled = args.pop("decoupled_weight_decay") and cls == "Adam"
    model = make_model("mlp")
    grads = drawn_gradients(model, STEPS)
    optimizer = torch_optimizer(cls, model, implementation=implementation,
                                **({"decoupled_weight_decay": True} if decoupled else {}),
                                **args)
    torch_steps(model, optimizer, None, grads)
    with jax.enable_x64(True):
        start = make_model("mlp")
        mask = port.decay_mask(port.params_from_torch(start))
        tx = builder(cls, decoupled)(**args, amsgrad=True, mask=mask)
        params, state = optax_run(tx, start, grads)
    (amsgrad,) = states_of(state, ScaleByTorchAmsgradState)
    assert int(amsgrad.count) == STEPS
    for name, p in model.named_parameters():
        assert_close(params[name], p.detach().numpy(), "float64", err_msg=f"param {name}")
        torch_state = optimizer.state[p]
        assert sorted(torch_state) == sorted((*KEYS, "step"))
        assert float(torch_state["step"]) == STEPS
        for key in KEYS:
            assert_close(getattr(amsgrad, key)[name], torch_state[key].numpy(), "float64",
                         err_msg=f"state {key} of {name}")


@pytest.mark.parametrize(("cls", "options", "scheduled"), [
    ("Adam", {"lr": 0.01, "weight_decay": 0.3}, False),
    ("Adam", {"lr": 0.01, "weight_decay": 0.3, "decoupled_weight_decay": True,
              "maximize": True}, False),
    ("AdamW", {"lr": 0.01, "weight_decay": 0.1, "betas": (0.8, 0.99), "foreach": True},
     False),
    ("AdamW", {"lr": 0.01, "weight_decay": 0.1}, True),
], ids=["Adam", "Adam-decoupled-maximize", "AdamW-foreach", "AdamW-OneCycleLR"])
def test_the_port_round_trips_amsgrad(cls, options, scheduled):
    """optimizer_from_torch / state_from_torch / state_to_torch, both ways, key by key
    (``max_exp_avg_sq`` included); OneCycleLR drives the lr and cycles beta1 through the
    injected AMSGrad transform."""
    def make():
        model = make_model("mlp")
        optimizer = torch_optimizer(cls, model, **options)
        scheduler = (lr_scheduler.OneCycleLR(optimizer, max_lr=0.02, total_steps=STEPS + 1)
                     if scheduled else None)
        return model, optimizer, scheduler

    check_round_trips(make)


FACTORY = textwrap.dedent('''
    import torch

    from parity_tests.test_port_models import make_model
    from wd_jax import port


    def trained_amsgrad():
        """AdamW(amsgrad=True) over two groups, stepped three times."""
        model = make_model("mlp")
        optimizer = torch.optim.AdamW(port.no_weight_decay_groups(model, 0.1), lr=0.01,
                                      amsgrad=True)
        for step in range(3):
            for p in model.parameters():
                p.grad = torch.full_like(p, 0.5 - step)
            optimizer.step()
        return model, optimizer
''')


def test_port_check_exits_0_on_a_trained_amsgrad_optimizer(tmp_path, monkeypatch, capsys):
    from weight_decay.cli import main

    (tmp_path / "amsgrad_factories.py").write_text(FACTORY, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        assert main(["port-check", "amsgrad_factories:trained_amsgrad", "--steps", "10"]) == 0
    finally:
        sys.modules.pop("amsgrad_factories", None)
    out = capsys.readouterr().out
    assert "state max_exp_avg_sq body.0.weight" in out and "BEYOND" not in out


@pytest.mark.parametrize("cls", sorted(CLASSES))
@pytest.mark.parametrize("option", ["capturable", "differentiable"])
def test_options_without_a_twin_stay_refused_with_amsgrad(cls, option):
    model = make_model("mlp")
    optimizer = torch_optimizer(cls, model, weight_decay=0.1, **{option: True})
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


def port_error(make_tx, cls: str = "Adam", steps: int = STEPS, **options) -> float:
    """The relative error (:func:`_relative_error`) after ``steps`` drawn-gradient steps of
    ``make_tx(weight_decay) -> tx`` per group (the policy's two groups, decay on the first)
    against torch's ``cls(amsgrad=True)``, float64."""
    hyper = {**NAIVE, **options}
    model = make_model("mlp")
    grads = drawn_gradients(model, steps)
    torch_steps(model, torch_optimizer(cls, model, **hyper), None, grads)
    with jax.enable_x64(True):
        start = make_model("mlp")
        labels = {n: "decayed" if decays else "undecayed"
                  for n, decays in port.decay_mask(port.params_from_torch(start)).items()}
        tx = optax.partition({"decayed": make_tx(hyper["weight_decay"]),
                              "undecayed": make_tx(0.0)}, labels)
        params, _ = optax_run(tx, start, grads)
    return _relative_error(params, model)


def naive_error(steps: int = STEPS, cls: str = "Adam") -> float:
    """optax's namesake (the registry's ``naive``: ``optax.amsgrad`` after
    ``add_decayed_weights`` for Adam; ``scale_by_amsgrad`` in ``adamw``'s chain for AdamW)
    against torch's ``cls(lr=0.01, weight_decay=0.1, amsgrad=True)``: relative error of the
    parameters after ``steps`` steps."""
    naive = PORTS[f"torch.optim.{cls}"].naive
    hyper = {k: v for k, v in NAIVE.items() if k != "weight_decay"}
    return port_error(lambda wd: naive(**hyper, weight_decay=wd, amsgrad=True), cls, steps)


def twin_error(steps: int = STEPS, cls: str = "Adam") -> float:
    """The same error of the exact twin (the builder), for the docs' table."""
    hyper = {k: v for k, v in NAIVE.items() if k != "weight_decay"}
    return port_error(lambda wd: builder(cls)(**hyper, weight_decay=wd, amsgrad=True), cls,
                      steps)


@pytest.mark.parametrize("cls", sorted(CLASSES))
def test_optax_namesake_is_not_torch_amsgrad_and_the_twin_is(cls):
    """optax.amsgrad's maximum of the bias-corrected moment trains another model: its error
    after 50 steps is far above 1e-12; the twin's is within it."""
    assert naive_error(cls=cls) > 1e-4
    assert twin_error(cls=cls) < 1e-12


def test_the_two_maxima_differ_from_the_first_steps():
    """Why: with v_1 = (1-b2) g_1**2, optax keeps max(v_t/(1-b2**t)) = g_1**2 after step 1,
    torch sqrt(max(v_t))/sqrt(1-b2**t); a gradient that shrinks shows the difference."""
    with jax.enable_x64(True):
        grads = [jnp.asarray([2.0]), jnp.asarray([1.0])]
        ours, theirs = (torch_adam(0.1, amsgrad=True), optax.amsgrad(0.1))
        p = torch.tensor([0.0], dtype=torch.float64, requires_grad=True)
        optimizer = torch.optim.Adam([p], lr=0.1, amsgrad=True)
        results = []
        for tx in (ours, theirs):
            params = {"p": jnp.zeros(1)}
            state = tx.init(params)
            for g in grads:
                updates, state = tx.update({"p": g}, state, params)
                params = optax.apply_updates(params, updates)
            results.append(float(params["p"][0]))
        for g in grads:
            p.grad = torch.tensor([float(g[0])], dtype=torch.float64)
            optimizer.step()
    assert_close(results[0], p.item(), "float64")
    assert abs(results[1] - p.item()) > 1e-3
