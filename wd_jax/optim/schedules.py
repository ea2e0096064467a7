"""torch's learning-rate schedulers as optax schedules of the count (closed forms).

To port a live scheduler (any class, its position, the group's current lr), use
:mod:`wd_jax.port`, which runs torch's own recursion (:mod:`wd_jax.optim.lr_scheduler`).
"""

from __future__ import annotations

import jax.numpy as jnp

from wd_core.optimizers import check_hyperparameter
from wd_core.validation import NONNEGATIVE, POSITIVE, POSITIVE_INT, check_number

# ---- learning-rate schedules -------------------------------------------------------------
#
# torch: ``opt = SGD(params, lr); sched = Scheduler(opt, ...)``; each iteration calls
# ``opt.step()`` and *then* ``sched.step()``. Step k of the optimizer (k = 0, 1, ...) runs at
# ``f(sched.last_epoch)`` with ``last_epoch = k`` (scheduler stepped per step) or
# ``k // steps_per_epoch`` (per epoch). optax calls ``schedule(count)`` with ``count`` the
# updates already applied (0 on the first), so ``schedule = f`` line up with no shift, and
# after n updates optax's count equals torch's ``last_epoch``. The off-by-one: calling
# ``sched.step()`` *before* ``opt.step()`` (PyTorch < 1.1's order; torch warns) runs step k
# at ``f(k + 1)``, i.e. ``lambda count: schedule(count + 1)``.


def torch_step_lr(lr, step_size: int, gamma: float = 0.1):
    """``torch.optim.lr_scheduler.StepLR(opt, step_size, gamma)`` as an optax schedule of the
    count: ``lr * gamma ** (count // step_size)`` (torch's closed form), in the default float
    dtype (float64 under x64). ``gamma = 0`` gives 0 after the first ``step_size`` counts, as
    torch does (``optax.exponential_decay`` would treat rate 0 as constant). To port a live
    scheduler, with its position and the group's current lr, use :mod:`wd_jax.port`.
    """
    check_hyperparameter("lr", lr, NONNEGATIVE)
    check_number("step_size", step_size, POSITIVE_INT)
    check_hyperparameter("gamma", gamma)

    def schedule(count):
        exponent = jnp.asarray(count // step_size, dtype=float)
        return lr * jnp.power(jnp.asarray(gamma, dtype=float), exponent)

    return schedule


def torch_cosine_annealing_lr(lr, T_max: float, eta_min: float = 0.0):  # T_max: torch's name
    """``torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max, eta_min)`` as an optax
    schedule of the count: ``eta_min + (lr - eta_min) * (1 + cos(pi * count / T_max)) / 2``.

    This closed form is torch's curve at every count, past ``T_max`` too (torch's lr rises
    again there, period ``2*T_max``; ``optax.cosine_decay_schedule`` would stay at
    ``eta_min``). ``T_max`` may be a float, as in torch.
    """
    check_hyperparameter("lr", lr, NONNEGATIVE)
    check_hyperparameter("eta_min", eta_min, NONNEGATIVE)
    check_hyperparameter("T_max", T_max, POSITIVE)

    def schedule(count):
        angle = jnp.pi * jnp.asarray(count, dtype=float) / T_max
        return eta_min + (lr - eta_min) * (1 + jnp.cos(angle)) / 2

    return schedule


def per_epoch(schedule, steps_per_epoch: int):
    """A schedule over optimizer steps from one over epochs: ``schedule(count //
    steps_per_epoch)``, torch's ``sched.step()`` once per epoch after the epoch's steps."""
    check_number("steps_per_epoch", steps_per_epoch, POSITIVE_INT)
    return lambda count: schedule(count // steps_per_epoch)
