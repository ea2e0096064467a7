"""Every ``torch.optim.lr_scheduler`` scheduler, ported: 50 torch steps = 50 optax steps.

For each scheduler (the closed forms, the recorded ``LambdaLR`` and ``MultiplicativeLR``, the
momentum-cycling ``OneCycleLR`` and ``CyclicLR``, ``SequentialLR`` and ``ChainedScheduler``
of them, and two schedulers stepped on one optimizer) and each of ``SGD`` with momentum,
``SGD`` with nesterov, ``Adam`` and ``AdamW``, over two parameter groups (a decayed group and an
undecayed one with its own lr), with the same drawn gradients on both sides (port-check's
semantics: the optimizers and schedulers alone under test):

1. optax from the start: 50 steps of ``optimizer_from_torch``'s chain equal 50 torch steps,
   parameters and state;
2. mid-schedule: 7 torch steps, converted there (``optimizer_from_torch`` on the stepped
   optimizer, ``state_from_torch``), 43 optax steps equal the 50 torch steps;
3. back: 7 optax steps, ``state_to_torch`` into a fresh optimizer and scheduler, 43 torch
   steps equal the 50 torch steps; the groups' ``lr`` (and cycled momentum or betas) and the
   scheduler's own state (``last_epoch``, children, ``T_cur``...) equal torch's after the
   write-back and at the end.

The oracle is torch itself. float64, rtol 1e-12.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest

from parity_tests.test_port_models import (
    assert_same_params,
    assert_same_states,
    make_model,
    one_torch_thread,  # noqa: F401  (an autouse fixture)
    optax_state_by_name,
    torch_state_by_name,
)
from wd_core.tolerances import assert_close

torch = pytest.importorskip("torch")
jax = pytest.importorskip("jax")
import optax  # noqa: E402
from torch.optim import lr_scheduler as L  # noqa: E402

from wd_jax import port  # noqa: E402

STEPS = 50
MID = 7

OPTIMIZERS = {
    "sgd-momentum": lambda groups: torch.optim.SGD(groups, lr=0.05, momentum=0.9),
    "sgd-nesterov": lambda groups: torch.optim.SGD(groups, lr=0.05, momentum=0.8,
                                                   nesterov=True),
    "adam": lambda groups: torch.optim.Adam(groups, lr=0.01, betas=(0.85, 0.99)),
    "adamw": lambda groups: torch.optim.AdamW(groups, lr=0.01),
}

SCHEDULERS = {
    "StepLR": lambda o: L.StepLR(o, step_size=4, gamma=0.5),
    "StepLR-gamma0": lambda o: L.StepLR(o, step_size=9, gamma=0.0),
    "MultiStepLR": lambda o: L.MultiStepLR(o, milestones=[3, 10, 10, 30], gamma=0.5),
    "ConstantLR": lambda o: L.ConstantLR(o, factor=0.25, total_iters=12),
    "LinearLR": lambda o: L.LinearLR(o, start_factor=0.1, end_factor=0.8, total_iters=20),
    "ExponentialLR": lambda o: L.ExponentialLR(o, gamma=0.95),
    "PolynomialLR": lambda o: L.PolynomialLR(o, total_iters=30, power=2.0),
    "CosineAnnealingLR": lambda o: L.CosineAnnealingLR(o, T_max=12, eta_min=1e-4),
    "CosineAnnealingLR-float": lambda o: L.CosineAnnealingLR(o, T_max=10.0),
    "CosineAnnealingWarmRestarts": lambda o: L.CosineAnnealingWarmRestarts(
        o, T_0=4, T_mult=2, eta_min=1e-4),
    "OneCycleLR": lambda o: L.OneCycleLR(o, max_lr=[0.05, 0.02], total_steps=STEPS),
    "OneCycleLR-3phase-linear": lambda o: L.OneCycleLR(
        o, max_lr=0.04, total_steps=STEPS + 5, three_phase=True, anneal_strategy="linear"),
    "CyclicLR-triangular2": lambda o: L.CyclicLR(o, base_lr=0.001, max_lr=0.02,
                                                 step_size_up=6, mode="triangular2"),
    "CyclicLR-exp_range": lambda o: L.CyclicLR(o, base_lr=[0.001, 0.002], max_lr=0.02,
                                               step_size_up=4, step_size_down=7,
                                               mode="exp_range", gamma=0.97),
    "CyclicLR-scale_fn": lambda o: L.CyclicLR(o, base_lr=0.001, max_lr=0.02, step_size_up=5,
                                              scale_fn=lambda c: 1.0 / c,
                                              cycle_momentum=False),
    "LambdaLR": lambda o: L.LambdaLR(o, [lambda t: 1.0 / (1.0 + 0.1 * t),
                                         lambda t: min(1.0, (t + 1) / 5)]),
    "MultiplicativeLR": lambda o: L.MultiplicativeLR(o, lambda t: 0.97 if t % 3 else 1.01),
    "SequentialLR": lambda o: L.SequentialLR(o, [
        L.LinearLR(o, start_factor=0.1, total_iters=5),
        L.CosineAnnealingLR(o, T_max=30, eta_min=1e-4)], milestones=[5]),
    "SequentialLR-three": lambda o: L.SequentialLR(o, [
        L.ConstantLR(o, factor=0.5, total_iters=3), L.ExponentialLR(o, gamma=0.9),
        L.LambdaLR(o, lambda t: 0.5 ** (t // 10))], milestones=[4, 20]),
    "ChainedScheduler": lambda o: L.ChainedScheduler([
        L.ConstantLR(o, factor=0.2, total_iters=10), L.ExponentialLR(o, gamma=0.96),
        L.CosineAnnealingWarmRestarts(o, T_0=15)]),
    "two-schedulers": lambda o: [L.StepLR(o, step_size=5, gamma=0.7),
                                 L.ExponentialLR(o, gamma=0.99)],
}

#: Scheduler state entries that are not the schedule's position (functions, warnings' flags).
NOT_POSITION = {"_step_count", "_get_lr_called_within_step", "_is_initial", "lr_lambdas",
                "_scale_fn_ref", "_scale_fn_custom"}


def build(optimizer_name, scheduler_name):
    """A fresh float64 MLP, its optimizer over two groups and the scheduler(s)."""
    model = make_model("mlp")
    decayed, others = port.no_weight_decay_groups(model, 0.1)
    optimizer = OPTIMIZERS[optimizer_name]([decayed, {**others, "lr": 0.02}])
    return model, optimizer, SCHEDULERS[scheduler_name](optimizer)


def schedulers_of(scheduler) -> list:
    return scheduler if isinstance(scheduler, list) else [scheduler]


def drawn_gradients(model, steps=STEPS, seed=0) -> list[dict]:
    rng = np.random.default_rng(seed)
    return [{n: rng.standard_normal(tuple(p.shape)) for n, p in model.named_parameters()}
            for _ in range(steps)]


def torch_steps(model, optimizer, scheduler, grads) -> None:
    """``optimizer.step()`` then each scheduler's ``step()``, per gradient."""
    for grad in grads:
        for name, p in model.named_parameters():
            p.grad = torch.tensor(grad[name])
        optimizer.step()
        for s in schedulers_of(scheduler):
            s.step()


def optax_steps(tx, params, state, grads):
    @jax.jit
    def step(params, state, grad):
        updates, state = tx.update(grad, state, params)
        return optax.apply_updates(params, updates), state

    for grad in grads:
        params, state = step(params, state, grad)
    return params, state


def hyperparameters(optimizer) -> list[dict]:
    return [{k: v for k, v in g.items() if k in ("lr", "momentum", "betas")}
            for g in optimizer.param_groups]


def assert_same_numbers(actual, expected, what: str) -> None:
    """Nested dicts, lists and numbers equal: ints exactly, floats within float64's 1e-12."""
    if isinstance(expected, dict):
        keys = set(expected) - NOT_POSITION
        assert keys == set(actual) - NOT_POSITION, what
        for key in keys:
            assert_same_numbers(actual[key], expected[key], f"{what}.{key}")
    elif isinstance(expected, list | tuple):
        assert len(actual) == len(expected), what
        for i, (a, e) in enumerate(zip(actual, expected, strict=True)):
            assert_same_numbers(a, e, f"{what}[{i}]")
    elif isinstance(expected, bool | int | str) or expected is None:
        assert actual == expected, (what, actual, expected)
    elif isinstance(expected, float):
        if math.isnan(expected):
            assert math.isnan(actual), what
        else:
            assert_close(np.float64(actual), np.float64(expected), "float64", err_msg=what)
    elif callable(expected):
        return
    else:
        assert actual == expected, (what, actual, expected)


def assert_same_schedule(optimizer, scheduler, expected_optimizer, expected_scheduler, what):
    assert_same_numbers(hyperparameters(optimizer), hyperparameters(expected_optimizer),
                        f"{what}: param_groups")
    for i, (s, e) in enumerate(zip(schedulers_of(scheduler), schedulers_of(expected_scheduler),
                                   strict=True)):
        assert_same_numbers(s.state_dict(), e.state_dict(), f"{what}: scheduler {i}")


def convert(model, optimizer, scheduler, horizon):
    params = port.params_from_torch(model)
    tx = port.optimizer_from_torch(optimizer, model, scheduler=scheduler, horizon=horizon)
    return params, tx, port.state_from_torch(optimizer, model, tx, params, scheduler=scheduler)


def check_scheduler(optimizer_name, scheduler_name):
    model, optimizer, scheduler = build(optimizer_name, scheduler_name)
    grads = drawn_gradients(model)
    torch_steps(model, optimizer, scheduler, grads)
    expected_state = torch_state_by_name(optimizer, model)

    with jax.enable_x64(True):
        # 1. optax from the start
        m0, o0, s0 = build(optimizer_name, scheduler_name)
        params, tx, state = convert(m0, o0, s0, STEPS)
        params_mid, state_mid = optax_steps(tx, params, state, grads[:MID])
        params_end, state_end = optax_steps(tx, params_mid, state_mid, grads[MID:])
        assert_same_params(params_end, model, "optax 50")
        assert_same_states(optax_state_by_name(state_end), expected_state, "optax 50")

        # 2. torch 7 steps, converted there, optax 43 steps
        m1, o1, s1 = build(optimizer_name, scheduler_name)
        torch_steps(m1, o1, s1, grads[:MID])
        params, tx_mid, state = convert(m1, o1, s1, STEPS - MID)
        params, state = optax_steps(tx_mid, params, state, grads[MID:])
        assert_same_params(params, model, "torch 7 + optax 43")
        assert_same_states(optax_state_by_name(state), expected_state, "torch 7 + optax 43")
        port.state_to_torch(state, tx_mid, o1, m1, scheduler=s1)
        assert_same_schedule(o1, s1, optimizer, scheduler, "torch 7 + optax 43, written back")

    # 3. optax 7 steps, back to a fresh torch optimizer and scheduler, torch 43 steps
    m2, o2, s2 = build(optimizer_name, scheduler_name)
    t7_model, t7_optimizer, t7_scheduler = build(optimizer_name, scheduler_name)
    torch_steps(t7_model, t7_optimizer, t7_scheduler, grads[:MID])
    port.params_to_torch(params_mid, m2)
    port.state_to_torch(state_mid, tx, o2, m2, scheduler=s2)
    assert_same_schedule(o2, s2, t7_optimizer, t7_scheduler, "optax 7, written back")
    torch_steps(m2, o2, s2, grads[MID:])
    assert_same_params({n: p.detach().numpy() for n, p in m2.named_parameters()}, model,
                       "optax 7 + torch 43")
    assert_same_states(torch_state_by_name(o2, m2), expected_state, "optax 7 + torch 43")
    assert_same_schedule(o2, s2, optimizer, scheduler, "optax 7 + torch 43")


@pytest.mark.parametrize("optimizer_name", sorted(OPTIMIZERS))
@pytest.mark.parametrize("scheduler_name", sorted(SCHEDULERS))
def test_scheduler_ports_both_ways(scheduler_name, optimizer_name):
    check_scheduler(optimizer_name, scheduler_name)


def test_a_group_lr_changed_by_hand_is_followed():
    """Chainable schedulers continue from the group's current lr, not from base_lrs."""
    model, optimizer, scheduler = build("sgd-momentum", "ExponentialLR")
    grads = drawn_gradients(model, 20)
    torch_steps(model, optimizer, scheduler, grads[:5])
    optimizer.param_groups[1]["lr"] = 0.3
    reference = copy.deepcopy((model, optimizer, scheduler))
    torch_steps(*reference, grads[5:])
    with jax.enable_x64(True):
        params, tx, state = convert(model, optimizer, scheduler, None)
        params, state = optax_steps(tx, params, state, grads[5:])
    assert_same_params(params, reference[0], "lr changed by hand")
