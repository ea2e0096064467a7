"""``torch.optim.SGD`` and ``wd_torch.optim.SGDW`` (decoupled) as optax chains, and their port.

``SGD(lr, momentum, dampening, weight_decay, nesterov, maximize)``, per leaf ``p`` with
gradient ``g`` (``-g`` if ``maximize``): ``d = g + wd*p`` (coupled decay); with momentum
``mu`` torch's buffer ``buf_1 = d_1``, ``buf_t = mu*buf_{t-1} + (1 - dampening)*d_t``
replaces ``d`` (``d + mu*buf`` with nesterov); ``p <- p - lr*d``. ``SGDW``: the same
direction of ``g`` alone, ``p <- (1 - lr*wd)*p - lr*d``.

State: ``momentum_buffer`` <-> ``TraceState.trace`` (dampening 0; torch creates the buffer
at the first step as ``buf = d``, which a zero trace gives too: ``mu*0 + d``, so the trace is
written back even before the first step) or ``TorchMomentumState.momentum_buffer`` (its
``count`` says only whether the buffers exist: torch keeps no SGD step).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import optax

from wd_core.optimizers import check_sgd_arguments
from wd_jax.optim.registry import TorchOptimizer, common_step, filled, replace_states, states_of
from wd_jax.optim.transforms import (
    TorchMomentumState,
    is_stateful,
    learning_rate,
    momentum_direction,
    sign,
)


def _momentum_then_lr(lr, momentum, dampening, nesterov):
    """``sgd(lr, momentum, nesterov)`` of optax, or torch's dampened momentum then ``-lr``."""
    if not is_stateful(lr) and not is_stateful(momentum):
        if momentum == 0:
            return optax.sgd(lr)
        if dampening == 0:
            return optax.sgd(lr, momentum=momentum, nesterov=nesterov)
    return optax.chain(*momentum_direction(momentum, dampening, nesterov), learning_rate(lr))


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
        *sign(maximize),
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
        *sign(maximize),
        *momentum_direction(momentum, dampening, nesterov),
        optax.add_decayed_weights(weight_decay, mask),
        learning_rate(lr),
    )


_KINDS = (optax.TraceState, TorchMomentumState)


def _read_state(group_state, group, torch_states):
    buffers = {n: s.get("momentum_buffer") for n, s in torch_states.items()}

    def replace(s):
        if isinstance(s, optax.TraceState):
            return s._replace(trace=filled(s.trace, group, buffers, "momentum_buffer"))
        has = common_step(group, {n: int(b is not None) for n, b in buffers.items()},
                          "momentum buffers (present: 1, not yet created: 0)")
        return s._replace(count=jnp.asarray(has, dtype=s.count.dtype),
                          momentum_buffer=filled(s.momentum_buffer, group, buffers,
                                                 "momentum_buffer"))

    return replace_states(group_state, _KINDS, replace)


def _write_state(group_state, group):
    named = {n: {} for n in group.names}
    for s in states_of(group_state, optax.TraceState):
        for n in group.names:
            named[n]["momentum_buffer"] = np.asarray(s.trace[n])
    for s in states_of(group_state, TorchMomentumState):
        if int(s.count) > 0:
            for n in group.names:
                named[n]["momentum_buffer"] = np.asarray(s.momentum_buffer[n])
    return named


OPTIONS = ("lr", "momentum", "dampening", "weight_decay", "nesterov", "maximize")
SGD = TorchOptimizer("torch.optim.SGD", OPTIONS, torch_sgd, cycled="momentum",
                     adaptive=False, read_state=_read_state, write_state=_write_state)
SGDW = TorchOptimizer("wd_torch.optim.SGDW", OPTIONS, sgdw, cycled="momentum",
                      adaptive=False, read_state=_read_state, write_state=_write_state)
PORTS = (SGD, SGDW)
