"""``torch.optim``'s weight decay, exactly, as optax chains (the mirror of :mod:`wd_torch.optim`).

Every builder returns an ``optax.GradientTransformation`` whose updates, applied with
``optax.apply_updates``, reproduce the torch optimizer step for step, parameters *and*
state (float64 within rtol 1e-12; ``parity_tests/test_optim_parity.py``). Call ``update``
with ``params``: the decay reads them. ``mask`` is the weight-decay mask, as in
``optax.add_decayed_weights``: a pytree of booleans like the params (or a prefix of it),
``True`` where torch's parameter group has ``weight_decay=wd`` and ``False`` where it has
``weight_decay=0``; ``None`` decays every leaf (one torch group).

=========================================  ===============================================
torch                                      optax (what the builder returns)
=========================================  ===============================================
``SGD(lr, weight_decay=wd)``               ``chain(add_decayed_weights(wd, mask), sgd(lr))``
``SGD(..., momentum=mu, nesterov=n)``      ``chain(add_decayed_weights(wd, mask),
                                           sgd(lr, mu, n))``
``SGD(..., dampening=d)`` (``d != 0``)     ``chain(add_decayed_weights(wd, mask),
                                           torch_momentum(mu, d), scale_by_learning_rate(lr))``
``SGD(..., maximize=True)``                ``chain(scale(-1.0), ...)``: negated before the decay
``Adam(lr, betas, eps, weight_decay=wd)``  ``chain(add_decayed_weights(wd, mask),
                                           adam(lr, b1, b2, eps))``
``AdamW(lr, betas, eps, weight_decay=wd)`` ``adamw(lr, b1, b2, eps, weight_decay=wd, mask)``
``wd_torch.optim.SGDW(...)``               ``chain(sgd momentum, add_decayed_weights(wd, mask),
                                           scale_by_learning_rate(lr))``
a parameter whose ``.grad`` is ``None``    ``optax.selective_transform(tx, freeze_mask=...)``
=========================================  ===============================================

Only one transform is written here by hand, :func:`torch_momentum`: torch's momentum with
``dampening != 0`` starts its buffer at the first gradient *undamped* (``buf_1 = g_1``, then
``buf_t = mu*buf_{t-1} + (1 - dampening)*g_t``); optax has no dampening, and ``optax.ema``
ties the damping to the decay (``1 - mu``) and, debiased, rescales every step. With
``dampening == 0`` ``optax.trace`` is exactly torch's momentum (its zero-initialised trace
gives ``buf_1 = g_1 + mu*0 = g_1``) and is used.

Learning rates may be optax schedules; see :func:`torch_step_lr`,
:func:`torch_cosine_annealing_lr` and :func:`per_epoch` for torch's schedulers.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from wd_core.optimizers import (
    OptimizerSpec,
    check_adam_arguments,
    check_hyperparameter,
    check_sgd_arguments,
)
from wd_core.validation import NONNEGATIVE, POSITIVE, POSITIVE_INT, check_number
from wd_jax.clipping import torch_clip_grad_norm, torch_clip_grad_value  # noqa: F401 (re-export)


class TorchMomentumState(NamedTuple):
    """State of :func:`torch_momentum`: steps taken (int32 scalar) and torch's buffer."""

    count: jax.Array
    momentum_buffer: optax.Updates


def torch_momentum(momentum: float, dampening: float = 0.0,
                   nesterov: bool = False) -> optax.GradientTransformation:
    """torch's momentum, dampening included: the one transform optax does not have.

    ``buf_1 = g_1``; ``buf_t = momentum*buf_{t-1} + (1 - dampening)*g_t`` for ``t > 1``;
    the update is ``buf_t``, or ``g_t + momentum*buf_t`` with ``nesterov``. The buffer has
    the shapes and dtypes of the params. ``dampening = 0`` is ``optax.trace(momentum,
    nesterov)`` exactly (that is what :func:`torch_sgd` uses then).
    """

    def init_fn(params):
        return TorchMomentumState(count=jnp.zeros([], jnp.int32),
                                  momentum_buffer=optax.tree.zeros_like(params))

    def update_fn(updates, state, params=None):
        del params
        first = state.count == 0
        buffer = jax.tree.map(
            lambda g, b: jnp.where(first, g, momentum * b + (1 - dampening) * g),
            updates, state.momentum_buffer,
        )
        if nesterov:
            updates = jax.tree.map(lambda g, b: g + momentum * b, updates, buffer)
        else:
            updates = buffer
        count = optax.safe_increment(state.count)
        return updates, TorchMomentumState(count=count, momentum_buffer=buffer)

    return optax.GradientTransformation(init_fn, update_fn)


def _stateful(value) -> bool:
    """Whether ``value`` is an optax ``StatefulSchedule`` (a ported torch scheduler's)."""
    return isinstance(value, optax.schedules.StatefulSchedule)


def learning_rate(lr) -> optax.GradientTransformation:
    """``-lr * u``: ``optax.scale_by_learning_rate`` of a number or a schedule of the count; a
    stateful schedule (:mod:`wd_jax.lr_scheduler`, a torch scheduler's recursion) is fed to it
    with ``optax.inject_hyperparams``."""
    if _stateful(lr):
        return optax.inject_hyperparams(optax.scale_by_learning_rate)(learning_rate=lr)
    return optax.scale_by_learning_rate(lr)


def momentum_direction(momentum, dampening=0.0, nesterov=False) -> list:
    """torch's momentum as optax transforms: ``[]`` without momentum, ``optax.trace`` without
    dampening, :func:`torch_momentum` with it; a stateful momentum (a scheduler that cycles it)
    injected with ``optax.inject_hyperparams``."""
    if _stateful(momentum):
        if dampening == 0:
            return [optax.inject_hyperparams(optax.trace)(decay=momentum, nesterov=nesterov)]
        return [optax.inject_hyperparams(torch_momentum)(momentum=momentum, dampening=dampening,
                                                         nesterov=nesterov)]
    if momentum == 0:
        return []
    if dampening == 0:
        return [optax.trace(momentum, nesterov=nesterov)]
    return [torch_momentum(momentum, dampening, nesterov)]


def _momentum_then_lr(lr, momentum, dampening, nesterov):
    """``sgd(lr, momentum, nesterov)`` of optax, or torch's dampened momentum then ``-lr``."""
    if not _stateful(lr) and not _stateful(momentum):
        if momentum == 0:
            return optax.sgd(lr)
        if dampening == 0:
            return optax.sgd(lr, momentum=momentum, nesterov=nesterov)
    return optax.chain(*momentum_direction(momentum, dampening, nesterov), learning_rate(lr))


def _scale_by_adam(b1, b2, eps) -> optax.GradientTransformation:
    """``optax.scale_by_adam`` (``eps_root=0``: eps outside the root, as torch); a stateful
    ``b1`` (a scheduler that cycles beta1) injected."""
    if _stateful(b1):
        return optax.inject_hyperparams(optax.scale_by_adam)(b1=b1, b2=b2, eps=eps)
    return optax.scale_by_adam(b1=b1, b2=b2, eps=eps)


def _sign(maximize: bool) -> list:
    return [optax.scale(-1.0)] if maximize else []


def torch_sgd(lr, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False,
              maximize=False, mask=None) -> optax.GradientTransformation:
    """``torch.optim.SGD(params, lr, momentum, dampening, weight_decay, nesterov, maximize)``.

    Per leaf ``p`` with gradient ``g`` (``-g`` if ``maximize``; ``wd`` is ``weight_decay``
    where ``mask`` is True, 0 elsewhere): ``d = g + wd*p``; with momentum ``mu`` torch's
    buffer (:func:`torch_momentum`) replaces ``d``; the update is ``-lr*d``. Any shapes and
    float dtype; ``lr`` may be an optax schedule (``schedule(count)``, count from 0).

    Raises ``ValueError`` where torch does: negative ``lr``, ``momentum`` or
    ``weight_decay``; ``nesterov`` without momentum or with dampening.
    """
    check_sgd_arguments(lr=lr, momentum=momentum, dampening=dampening,
                        weight_decay=weight_decay, nesterov=nesterov)
    return optax.chain(
        *_sign(maximize),
        optax.add_decayed_weights(weight_decay, mask),
        _momentum_then_lr(lr, momentum, dampening, nesterov),
    )


def sgdw(lr, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False,
         maximize=False, mask=None) -> optax.GradientTransformation:
    """Decoupled SGD, ``wd_torch.optim.SGDW``'s rule: ``p <- (1 - lr*wd)*p - lr*d``.

    ``d`` is torch's SGD direction of ``g`` alone (``-g`` if ``maximize``; momentum,
    dampening and nesterov as in :func:`torch_sgd`); the decay never enters the momentum
    buffer. The decay is scaled by ``lr`` (torch's ``AdamW`` convention), so with
    ``momentum=0`` this is :func:`torch_sgd` with the same ``weight_decay``. Built as
    ``chain(momentum, add_decayed_weights(wd, mask), scale_by_learning_rate(lr))``.
    """
    check_sgd_arguments(lr=lr, momentum=momentum, dampening=dampening,
                        weight_decay=weight_decay, nesterov=nesterov)
    return optax.chain(
        *_sign(maximize),
        *momentum_direction(momentum, dampening, nesterov),
        optax.add_decayed_weights(weight_decay, mask),
        learning_rate(lr),
    )


def torch_adam(lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
               mask=None) -> optax.GradientTransformation:
    """``torch.optim.Adam(params, lr, betas, eps, weight_decay)``: coupled L2.

    ``g <- g + wd*p`` first, so the decay passes through the moments; then
    ``m_t = b1*m + (1-b1)*g``, ``v_t = b2*v + (1-b2)*g**2`` and the update
    ``-lr * (m_t/(1-b1**t)) / (sqrt(v_t/(1-b2**t)) + eps)`` (eps added after the root, as
    torch does; ``eps_root=0``). Built as ``chain(add_decayed_weights(wd, mask),
    adam(lr, b1, b2, eps))``.
    """
    check_adam_arguments(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
    b1, b2 = betas
    if not _stateful(lr) and not _stateful(b1):
        return optax.chain(optax.add_decayed_weights(weight_decay, mask),
                           optax.adam(lr, b1=b1, b2=b2, eps=eps))
    return optax.chain(optax.add_decayed_weights(weight_decay, mask),
                       optax.chain(_scale_by_adam(b1, b2, eps), learning_rate(lr)))


def torch_adamw(lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2,
                mask=None) -> optax.GradientTransformation:
    """``torch.optim.AdamW(params, lr, betas, eps, weight_decay)``: decoupled.

    ``p <- (1 - lr*wd)*p - lr*adam(g)`` with ``adam`` as in :func:`torch_adam` (no decay in
    the moments). This is ``optax.adamw`` with torch's default decay: torch's ``1e-2``, not
    optax's ``1e-4``.
    """
    check_adam_arguments(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
    b1, b2 = betas
    if not _stateful(lr) and not _stateful(b1):
        return optax.adamw(lr, b1=b1, b2=b2, eps=eps, weight_decay=weight_decay, mask=mask)
    return optax.chain(_scale_by_adam(b1, b2, eps), optax.add_decayed_weights(weight_decay, mask),
                       learning_rate(lr))  # optax.adamw's own chain


BUILDERS = {"sgd": torch_sgd, "sgdw": sgdw, "adam": torch_adam, "adamw": torch_adamw}


def build_optimizer(spec: OptimizerSpec, *, lr, weight_decay,
                    mask=None) -> optax.GradientTransformation:
    """The optax chain of ``spec`` with learning rate ``lr`` and decay ``weight_decay`` on
    the leaves where ``mask`` is True (the mirror of ``wd_torch.optim.build_optimizer``)."""
    if spec.family in ("sgd", "sgdw"):
        return BUILDERS[spec.family](lr, momentum=spec.momentum, dampening=spec.dampening,
                                     weight_decay=weight_decay, nesterov=spec.nesterov,
                                     mask=mask)
    return BUILDERS[spec.family](lr, betas=spec.betas, eps=spec.eps,
                                 weight_decay=weight_decay, mask=mask)


def torch_state(opt_state) -> dict:
    """The optax state of these builders under torch's names, one pytree (like the params)
    per name: ``{"momentum_buffer": ...}`` for SGD with momentum, ``{"step": count,
    "exp_avg": mu, "exp_avg_sq": nu}`` for the Adam family (``step`` a scalar: optax keeps
    one count for all leaves, torch one per parameter). ``{}`` when there is no state."""
    state = {}
    buffer = optax.tree.get(opt_state, "momentum_buffer")
    if buffer is None:
        buffer = optax.tree.get(opt_state, "trace")
    if buffer is not None:
        state["momentum_buffer"] = buffer
    adam = [s for _, s in optax.tree.get_all_with_path(opt_state, "ScaleByAdamState")]
    if adam:
        (adam,) = adam
        state.update(step=adam.count, exp_avg=adam.mu, exp_avg_sq=adam.nu)
    return state


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
