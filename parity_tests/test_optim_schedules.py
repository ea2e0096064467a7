"""torch's LR schedulers against wd_jax.optim's optax schedules, and the off-by-one.

torch steps ``scheduler.step()`` after ``optimizer.step()``, per optimizer step or per epoch;
optax evaluates ``schedule(count)`` with ``count`` the updates already applied. Both give
the optimizer step ``k`` (from 0) the rate ``f(k)`` (per step) or ``f(k // steps_per_epoch)``
(per epoch). Stepping the scheduler *before* the optimizer shifts torch by one scheduler
step: ``f(k + 1)``, i.e. ``per_epoch(lambda e: f(e + 1), steps_per_epoch)`` in optax.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from parity_tests.test_optim_parity import (
    DECAY_MASK,
    PARAMS0,
    SHAPES,
    STEPS,
    X,
    Y,
    batch_rows,
    run_jax,
    torch_groups,
    torch_loss,
)
from wd_core.tolerances import assert_close

torch = pytest.importorskip("torch")
jax = pytest.importorskip("jax")
import optax  # noqa: E402
from torch.optim import lr_scheduler  # noqa: E402

from wd_jax import optim as jopt  # noqa: E402

LR = 0.2
T_MAX = 24  # >= the scheduler steps of a run: torch and optax agree up to T_max
SCHEDULES = {
    # name: (torch scheduler factory, base lr -> the optax schedule over scheduler steps)
    "step": (lambda opt: lr_scheduler.StepLR(opt, step_size=3, gamma=0.5),
             lambda lr: jopt.torch_step_lr(lr, step_size=3, gamma=0.5)),
    "cosine": (lambda opt: lr_scheduler.CosineAnnealingLR(opt, T_max=T_MAX, eta_min=1e-3),
               lambda lr: jopt.torch_cosine_annealing_lr(lr, T_max=T_MAX, eta_min=1e-3)),
}
OPTIMIZERS = {
    # name: (base lr, torch optimizer over groups, the optax builder for an lr or schedule)
    "sgd": (LR, lambda groups: torch.optim.SGD(groups, lr=LR, momentum=0.9, weight_decay=0.1),
            lambda lr: jopt.torch_sgd(lr, momentum=0.9, weight_decay=0.1, mask=DECAY_MASK)),
    "adamw": (LR / 10, lambda groups: torch.optim.AdamW(groups, lr=LR / 10, weight_decay=0.5),
              lambda lr: jopt.torch_adamw(lr, weight_decay=0.5, mask=DECAY_MASK)),
}


def run_torch_scheduled(make_optimizer, make_scheduler, steps_per_epoch, order):
    """20 float64 steps with the scheduler stepped per ``steps_per_epoch`` optimizer steps,
    ``order="after"`` (torch's documented order) or ``"before"`` (the old order)."""
    params = {k: torch.tensor(v, requires_grad=True) for k, v in PARAMS0.items()}
    optimizer = make_optimizer(torch_groups(params))
    scheduler = make_scheduler(optimizer)
    X_t, Y_t = torch.tensor(X), torch.tensor(Y)
    lrs = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # torch warns about the "before" order
        for step in range(STEPS):
            if order == "before" and step % steps_per_epoch == 0:
                scheduler.step()
            rows = batch_rows(step)
            optimizer.zero_grad()
            torch_loss(params, X_t[rows], Y_t[rows]).backward()
            lrs.append(optimizer.param_groups[0]["lr"])
            optimizer.step()
            if order == "after" and (step + 1) % steps_per_epoch == 0:
                scheduler.step()
    values = {k: p.detach().numpy() for k, p in params.items()}
    return values, np.array(lrs), scheduler.last_epoch


def optax_schedule(schedule, steps_per_epoch, order):
    """The optax schedule over optimizer steps that matches torch's stepping."""
    if order == "before":
        return jopt.per_epoch(lambda epoch: schedule(epoch + 1), steps_per_epoch)
    return jopt.per_epoch(schedule, steps_per_epoch)


@pytest.mark.parametrize("order", ["after", "before"])
@pytest.mark.parametrize("steps_per_epoch", [1, 4], ids=["per-step", "per-epoch"])
@pytest.mark.parametrize("schedule_name", sorted(SCHEDULES))
@pytest.mark.parametrize("optimizer_name", sorted(OPTIMIZERS))
def test_schedule_matches_torch_scheduler(optimizer_name, schedule_name, steps_per_epoch,
                                          order):
    make_scheduler, schedule_for = SCHEDULES[schedule_name]
    base_lr, make_torch, builder = OPTIMIZERS[optimizer_name]
    schedule = schedule_for(base_lr)
    torch_params, torch_lrs, _ = run_torch_scheduled(make_torch, make_scheduler,
                                                     steps_per_epoch, order)
    lr = optax_schedule(schedule, steps_per_epoch, order)
    with jax.enable_x64(True):
        optax_lrs = np.array([float(lr(k)) for k in range(STEPS)])
    np.testing.assert_allclose(optax_lrs, torch_lrs, rtol=1e-12)
    jax_params, _ = run_jax(builder(lr), "float64")
    for name in SHAPES:
        assert_close(jax_params[name], torch_params[name], "float64", err_msg=name)


def test_off_by_one_is_real():
    """The "before" order is not the "after" order shifted by nothing: rates differ."""
    make_scheduler, _ = SCHEDULES["step"]
    _, make_torch, _ = OPTIMIZERS["sgd"]
    _, after, _ = run_torch_scheduled(make_torch, make_scheduler, 1, "after")
    _, before, _ = run_torch_scheduled(make_torch, make_scheduler, 1, "before")
    np.testing.assert_allclose(before[:-1], after[1:], rtol=1e-15)
    assert after[2] == LR and before[2] == LR * 0.5


def test_optax_count_equals_torch_last_epoch():
    make_scheduler, schedule_for = SCHEDULES["step"]
    _, make_torch, builder = OPTIMIZERS["sgd"]
    _, _, last_epoch = run_torch_scheduled(make_torch, make_scheduler, 1, "after")
    tx = builder(schedule_for(LR))
    with jax.enable_x64(True):
        params = {k: jax.numpy.zeros(s) for k, s in SHAPES.items()}
        state = tx.init(params)
        for _ in range(STEPS):
            _, state = tx.update(params, state, params)
        (count,) = [c for _, c in optax.tree.get_all_with_path(state, "count")]
    assert int(count) == last_epoch == STEPS


def test_cosine_after_t_max_follows_torch_where_optax_cosine_decay_stays():
    """Past ``T_max`` torch's cosine climbs back (period 2*T_max): ``torch_cosine_annealing_lr``
    follows it at every step; ``optax.cosine_decay_schedule`` (the namesake) stays at
    eta_min."""
    t_max = 6
    _, make_torch, _ = OPTIMIZERS["sgd"]
    _, torch_lrs, _ = run_torch_scheduled(
        make_torch, lambda opt: lr_scheduler.CosineAnnealingLR(opt, T_max=t_max, eta_min=0.01),
        1, "after")
    schedule = jopt.torch_cosine_annealing_lr(LR, T_max=t_max, eta_min=0.01)
    namesake = optax.cosine_decay_schedule(LR, decay_steps=t_max, alpha=0.01 / LR)
    with jax.enable_x64(True):
        optax_lrs = np.array([float(schedule(k)) for k in range(STEPS)])
        namesake_lrs = np.array([float(namesake(k)) for k in range(STEPS)])
    np.testing.assert_allclose(optax_lrs, torch_lrs, rtol=1e-12)
    assert namesake_lrs[t_max + 3] == pytest.approx(0.01, rel=1e-12)
    assert torch_lrs[t_max + 3] > 0.05


def test_step_lr_with_gamma_zero_drops_to_zero_as_torch():
    """``optax.exponential_decay`` treats ``decay_rate=0`` as constant; torch's StepLR(gamma=0)
    and ``torch_step_lr`` drop the lr to 0 at the first step_size."""
    _, make_torch, _ = OPTIMIZERS["sgd"]
    _, torch_lrs, _ = run_torch_scheduled(
        make_torch, lambda opt: lr_scheduler.StepLR(opt, step_size=3, gamma=0.0), 1, "after")
    with jax.enable_x64(True):
        ours = np.array([float(jopt.torch_step_lr(LR, 3, 0.0)(k)) for k in range(STEPS)])
    np.testing.assert_array_equal(ours, torch_lrs)
    assert torch_lrs[3] == 0.0


def test_step_lr_stays_float64_where_optax_exponential_decay_rounds_to_float32():
    """optax divides the int32 count, which is float32 even under x64; torch_step_lr casts."""
    jnp = jax.numpy
    with jax.enable_x64(True):
        raw = optax.exponential_decay(0.1, transition_steps=3, decay_rate=0.5, staircase=True)
        assert raw(jnp.int32(4)).dtype == jnp.float32
        ours = jopt.torch_step_lr(0.1, step_size=3, gamma=0.5)
        assert ours(jnp.int32(4)).dtype == jnp.float64
        assert float(ours(jnp.int32(4))) == 0.1 * 0.5
