"""Transforms the optimizer modules share: torch's momentum, the learning rate, the sign.

Each accepts a stateful schedule (:mod:`wd_jax.optim.lr_scheduler`: a ported torch scheduler)
where torch's scheduler may change the value between steps (``lr``; ``momentum`` or beta1
under ``OneCycleLR`` and ``CyclicLR``): it is fed in with ``optax.inject_hyperparams``.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax


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


class TorchStepState(NamedTuple):
    """State of :func:`count_steps`: torch's ``step``, the steps taken (int32 scalar)."""

    step: jax.Array


def count_steps() -> optax.GradientTransformation:
    """Updates unchanged; counts them in ``TorchStepState.step`` (torch's ``step`` of an
    optimizer whose rule does not read it: RMSprop, Adadelta). optax has no transform that
    only counts."""

    def init_fn(params):
        del params
        return TorchStepState(step=jnp.zeros([], jnp.int32))

    def update_fn(updates, state, params=None):
        del params
        return updates, TorchStepState(step=optax.safe_increment(state.step))

    return optax.GradientTransformation(init_fn, update_fn)


def is_stateful(value) -> bool:
    """Whether ``value`` is an optax ``StatefulSchedule`` (a ported torch scheduler's)."""
    return isinstance(value, optax.schedules.StatefulSchedule)


def injected(factory, **hyperparameters) -> optax.GradientTransformation:
    """``factory(**hyperparameters)``; through ``optax.inject_hyperparams`` when one of them
    is a stateful schedule."""
    if any(is_stateful(v) for v in hyperparameters.values()):
        return optax.inject_hyperparams(factory)(**hyperparameters)
    return factory(**hyperparameters)


def learning_rate(lr) -> optax.GradientTransformation:
    """``-lr * u``: ``optax.scale_by_learning_rate`` of a number, a schedule of the count or a
    stateful schedule (a torch scheduler's recursion)."""
    return injected(optax.scale_by_learning_rate, learning_rate=lr)


def momentum_direction(momentum, dampening=0.0, nesterov=False) -> list:
    """torch's momentum as optax transforms: ``[]`` without momentum, ``optax.trace`` without
    dampening, :func:`torch_momentum` with it; a stateful momentum (a scheduler that cycles it)
    injected."""
    if is_stateful(momentum):
        if dampening == 0:
            return [injected(optax.trace, decay=momentum, nesterov=nesterov)]
        return [injected(torch_momentum, momentum=momentum, dampening=dampening,
                         nesterov=nesterov)]
    if momentum == 0:
        return []
    if dampening == 0:
        return [optax.trace(momentum, nesterov=nesterov)]
    return [torch_momentum(momentum, dampening, nesterov)]


def sign(maximize: bool) -> list:
    """``[scale(-1)]`` when torch maximizes (the gradient negated first), else ``[]``."""
    return [optax.scale(-1.0)] if maximize else []
