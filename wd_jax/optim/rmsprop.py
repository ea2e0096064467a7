"""``torch.optim.RMSprop`` (coupled L2) as an optax chain, and its port.

``RMSprop(lr, alpha, eps, weight_decay, momentum, centered, maximize)``, per leaf ``p`` with
gradient ``g`` (``-g`` if ``maximize``), ``t`` counting steps from 1:

* ``g <- g + wd*p`` (coupled: the decay enters the square average and the momentum);
* ``v_t = alpha*v_{t-1} + (1 - alpha)*g**2`` (``v_0 = 0``);
* ``centered``: ``m_t = alpha*m_{t-1} + (1 - alpha)*g`` (``m_0 = 0``; torch writes it
  ``m.lerp_(g, 1 - alpha)``) and ``a = sqrt(v_t - m_t**2) + eps``; otherwise
  ``a = sqrt(v_t) + eps`` (eps *outside* the root, no bias correction);
* ``momentum > 0``: ``b_t = momentum*b_{t-1} + g/a`` (``b_0 = 0``) and ``p <- p - lr*b_t``;
  otherwise ``p <- p - lr*g/a``.

Built from optax's own transforms: ``chain(add_decayed_weights(wd, mask), scale_by_rms(
decay=alpha, eps=eps, initial_scale=0., eps_in_sqrt=False, bias_correction=False)`` (or
``scale_by_stddev(...)`` with the same arguments when ``centered``), ``trace(momentum)``,
``scale_by_learning_rate(lr))``. Each is torch's rule line by line: ``(1 - alpha)*g**2 +
alpha*v``; ``1/(sqrt(v) + eps)`` times ``g``; ``g/a + momentum*b``; the trace comes *before*
the lr, as in torch (``optax.rmsprop`` puts it after, which differs once the lr changes).
The one transform written by hand is :func:`count_steps`: torch keeps a ``step`` per
parameter (only counted, never used by RMSprop's rule) and optax's ``scale_by_rms`` keeps no
count without its bias correction.

State (torch key <-> optax field of the group's state):

=====================  ===========================================================
``step``               ``TorchStepState.step``
``square_avg``         ``ScaleByRmsState.nu`` (``ScaleByRStdDevState.nu`` if centered)
``grad_avg``           ``ScaleByRStdDevState.mu`` (``centered`` only)
``momentum_buffer``    ``TraceState.trace`` (``momentum > 0`` only)
=====================  ===========================================================

torch creates these at the first step as zeros, which is optax's ``init``.

The namesake, ``optax.rmsprop(lr, decay=alpha, eps=eps, momentum=, centered=)`` after
``add_decayed_weights(wd)``, is not a twin: its default ``eps_in_sqrt=True`` divides by
``sqrt(v + eps)``, and its momentum traces the update *after* the lr
(``parity_tests/test_optim_rmsprop.py`` measures it).
"""

from __future__ import annotations

import dataclasses

import optax

from wd_core.optimizers import check_hyperparameter
from wd_core.validation import NONNEGATIVE
from wd_jax.optim.registry import StateKey, TorchOptimizer, states_of
from wd_jax.optim.transforms import (
    TorchStepState,
    count_steps,
    learning_rate,
    momentum_direction,
    sign,
)


def check_rmsprop_arguments(*, lr, alpha, eps, weight_decay, momentum) -> None:
    """The checks of ``torch.optim.RMSprop.__init__`` (``InputError``, a ``ValueError`` like
    torch's): ``lr``, ``alpha``, ``eps``, ``weight_decay``, ``momentum`` >= 0."""
    for name, value in (("lr", lr), ("eps", eps), ("momentum", momentum),
                        ("weight_decay", weight_decay), ("alpha", alpha)):
        check_hyperparameter(name, value, NONNEGATIVE)


def torch_rmsprop(lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0,
                  centered=False, maximize=False, mask=None) -> optax.GradientTransformation:
    """``torch.optim.RMSprop(params, lr, alpha, eps, weight_decay, momentum, centered,
    maximize)``: coupled L2 (see the module for the rule).

    ``chain(scale(-1) if maximize, add_decayed_weights(weight_decay, mask), scale_by_rms (or
    scale_by_stddev if centered)(alpha, eps, initial_scale=0, eps_in_sqrt=False,
    bias_correction=False), trace(momentum) if momentum > 0, count_steps(),
    scale_by_learning_rate(lr))``. Computes in the params' dtype; any shapes. ``lr`` may be
    a schedule or a ported torch scheduler's stateful schedule, ``momentum`` a stateful
    schedule (``OneCycleLR``/``CyclicLR`` cycle it). ``mask``: ``True`` where the decay
    applies (``None``: every leaf).
    """
    check_rmsprop_arguments(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                            momentum=momentum)
    scale = optax.scale_by_stddev if centered else optax.scale_by_rms
    return optax.chain(
        *sign(maximize),
        optax.add_decayed_weights(weight_decay, mask),
        scale(decay=alpha, eps=eps, initial_scale=0.0, eps_in_sqrt=False,
              bias_correction=False),
        *momentum_direction(momentum),
        count_steps(),
        learning_rate(lr),
    )


def naive_rmsprop(lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0,
                  centered=False, maximize=False, mask=None) -> optax.GradientTransformation:
    """optax's namesake as a user porting by name writes it: ``optax.rmsprop(lr,
    decay=alpha, eps=eps, momentum=momentum, centered=centered)`` after
    ``add_decayed_weights(weight_decay)`` (optax's defaults otherwise: ``eps_in_sqrt=True``,
    the momentum traced after the lr). Not torch's rule; measured, never used by the port."""
    return optax.chain(*sign(maximize), optax.add_decayed_weights(weight_decay, mask),
                       optax.rmsprop(lr, decay=alpha, eps=eps, momentum=momentum,
                                     centered=centered))


def _rmsprop_group(lr, alpha, eps, weight_decay, momentum, centered, maximize):
    return torch_rmsprop(lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                         momentum=momentum, centered=centered, maximize=maximize)


def _naive_group(lr, alpha, eps, weight_decay, momentum, centered, maximize):
    return naive_rmsprop(lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                         momentum=momentum, centered=centered, maximize=maximize)


STATE = (StateKey("square_avg", optax.ScaleByRmsState, "nu"),
         StateKey("square_avg", optax.ScaleByRStdDevState, "nu"),
         StateKey("grad_avg", optax.ScaleByRStdDevState, "mu"),
         StateKey("momentum_buffer", optax.TraceState, "trace"))
STEP = StateKey("step", TorchStepState, "step")


def _write_state(group_state, group):
    """The declarative mapping, restricted to the states this group's chain has (no
    ``grad_avg`` unless centered, no ``momentum_buffer`` without momentum)."""
    present = tuple(k for k in STATE if states_of(group_state, k.state))
    declared = dataclasses.replace(RMSPROP, state=present, write_state=None)
    return declared.state_to_torch(group_state, group)


RMSPROP = TorchOptimizer(
    "torch.optim.RMSprop",
    ("lr", "alpha", "eps", "weight_decay", "momentum", "centered", "maximize"),
    _rmsprop_group, STATE, STEP, cycled="momentum", naive=_naive_group,
    write_state=_write_state)
PORTS = (RMSPROP,)
