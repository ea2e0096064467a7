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

import pytest

from parity_tests.port_runs import (
    MID,
    STEPS,
    check_round_trips,
    convert,
    drawn_gradients,
    optax_steps,
    torch_steps,
)
from parity_tests.test_port_models import (
    assert_same_params,
    make_model,
    one_torch_thread,  # noqa: F401  (an autouse fixture)
)

torch = pytest.importorskip("torch")
jax = pytest.importorskip("jax")
from torch.optim import lr_scheduler as L  # noqa: E402

from wd_jax import port  # noqa: E402

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

def build(optimizer_name, scheduler_name):
    """A fresh float64 MLP, its optimizer over two groups and the scheduler(s)."""
    model = make_model("mlp")
    decayed, others = port.no_weight_decay_groups(model, 0.1)
    optimizer = OPTIMIZERS[optimizer_name]([decayed, {**others, "lr": 0.02}])
    return model, optimizer, SCHEDULERS[scheduler_name](optimizer)


@pytest.mark.parametrize("optimizer_name", sorted(OPTIMIZERS))
@pytest.mark.parametrize("scheduler_name", sorted(SCHEDULERS))
def test_scheduler_ports_both_ways(scheduler_name, optimizer_name):
    check_round_trips(lambda: build(optimizer_name, scheduler_name), STEPS, MID)


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
