"""``torch.optim.RAdam`` (coupled L2, or decoupled with ``decoupled_weight_decay=True``) as
optax chains, and its port.

``RAdam(lr, betas, eps, weight_decay, decoupled_weight_decay, maximize)``, per leaf ``p`` with
gradient ``g`` (``-g`` if ``maximize``), ``t`` counting steps from 1:

* coupled (default): ``g <- g + wd*p`` (the decay enters both moments); decoupled:
  ``p <- (1 - lr*wd)*p`` beside the step, with the step's (scheduled) lr, the moments of
  ``g`` alone;
* ``m_t = b1*m_{t-1} + (1 - b1)*g`` (``m.lerp_(g, 1 - b1)``), ``v_t = b2*v_{t-1} +
  (1 - b2)*g**2`` (zeros at first); ``m_hat = m_t/(1 - b1**t)``;
* ``rho_inf = 2/(1 - b2) - 1``, ``rho_t = rho_inf - 2*t*b2**t/(1 - b2**t)``;
* if ``rho_t > 5`` (strictly): ``r_t = sqrt((rho_t - 4)(rho_t - 2) rho_inf /
  ((rho_inf - 4)(rho_inf - 2) rho_t))`` and ``p <- p - lr * m_hat * r_t * sqrt(1 - b2**t) /
  (sqrt(v_t) + eps)``; otherwise ``p <- p - lr * m_hat`` (no second moment).

eps is added to the *raw* root and the sum is divided by ``sqrt(1 - b2**t)``: in terms of the
bias-corrected ``v_hat = v_t/(1 - b2**t)`` the denominator is ``sqrt(v_hat) +
eps/sqrt(1 - b2**t)``, an eps that shrinks from ``eps/sqrt(1 - b2)`` to ``eps``.
``optax.scale_by_radam`` divides by ``sqrt(v_hat) + eps`` (no parameter moves eps there) and
rectifies when ``rho_t >= threshold`` (5.0): torch's strict ``>`` differs only where ``rho_t``
is exactly 5.0, which happens (``b2 = 0.8397685748659791`` gives ``rho_6 == 5.0``: torch takes
the plain step, optax the rectified one; ``threshold=nextafter(5, 6)`` would be torch's test).
So :func:`scale_by_torch_radam` is written here, with optax's own moment helpers and torch's
rectification and denominator; the rest of the chain is optax's.

State (torch key <-> optax field of the group's state): ``step`` / ``exp_avg`` /
``exp_avg_sq`` <-> ``ScaleByTorchRAdamState.step`` / ``.exp_avg`` / ``.exp_avg_sq``; torch
creates them at the first step as zeros, which is optax's ``init``.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from wd_core.optimizers import check_adam_arguments
from wd_jax.optim.registry import StateKey, TorchOptimizer
from wd_jax.optim.transforms import injected, learning_rate, sign


class ScaleByTorchRAdamState(NamedTuple):
    """State of :func:`scale_by_torch_radam` under torch's names: steps taken (int32 scalar)
    and the two moments (trees like the params, in their dtypes)."""

    step: jax.Array
    exp_avg: optax.Updates
    exp_avg_sq: optax.Updates


def _torch_radam(b1=0.9, b2=0.999, eps=1e-8) -> optax.GradientTransformation:
    def init_fn(params):
        return ScaleByTorchRAdamState(step=jnp.zeros([], jnp.int32),
                                      exp_avg=optax.tree.zeros_like(params),
                                      exp_avg_sq=optax.tree.zeros_like(params))

    def update_fn(updates, state, params=None):
        del params
        exp_avg = optax.tree.update_moment(updates, state.exp_avg, b1, 1)
        exp_avg_sq = optax.tree.update_moment_per_elem_norm(updates, state.exp_avg_sq, b2, 2)
        count = optax.safe_increment(state.step)
        step = count.astype(jnp.result_type(float))  # float64 under x64, as torch's Python
        b2_t = b2 ** step
        bias_correction1 = 1 - b1 ** step
        bias_correction2 = 1 - b2_t
        rho_inf = 2 / (1 - b2) - 1
        rho_t = rho_inf - 2 * step * b2_t / bias_correction2  # torch's order of operations
        rect = jnp.sqrt((rho_t - 4) * (rho_t - 2) * rho_inf
                        / ((rho_inf - 4) * (rho_inf - 2) * rho_t))
        root_correction = jnp.sqrt(bias_correction2)
        rectified = rho_t > 5.0

        def direction(m, v):
            corrected = m / bias_correction1.astype(m.dtype)
            adaptive = root_correction.astype(v.dtype) / (jnp.sqrt(v) + eps)
            return jnp.where(rectified, corrected * adaptive * rect.astype(m.dtype), corrected)

        updates = jax.tree.map(direction, exp_avg, exp_avg_sq)
        return updates, ScaleByTorchRAdamState(count, exp_avg, exp_avg_sq)

    return optax.GradientTransformation(init_fn, update_fn)


def scale_by_torch_radam(b1=0.9, b2=0.999, eps=1e-8) -> optax.GradientTransformation:
    """torch's RAdam direction (no lr): ``m_hat * r_t * sqrt(1 - b2**t)/(sqrt(v_t) + eps)``
    where ``rho_t > 5``, ``m_hat`` otherwise (see the module for ``m_hat``, ``rho_t``,
    ``r_t``).

    Hand-written: ``optax.scale_by_radam`` adds eps to the bias-corrected root and rectifies
    at ``rho_t >= 5``. The moments are in the params' dtypes, zeros at first; the step's
    scalars (``b2**t``, ``rho_t``, ``r_t``) in the default float (float64 under x64, as
    torch's Python floats). A stateful ``b1`` (a scheduler that cycles beta1) is injected.
    """
    return injected(_torch_radam, b1=b1, b2=b2, eps=eps)


def torch_radam(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                decoupled_weight_decay=False, *, maximize=False,
                mask=None) -> optax.GradientTransformation:
    """``torch.optim.RAdam(params, lr, betas, eps, weight_decay, decoupled_weight_decay,
    maximize=maximize)``.

    Coupled: ``chain(add_decayed_weights(wd, mask), scale_by_torch_radam(b1, b2, eps),
    scale_by_learning_rate(lr))``; decoupled: ``chain(scale_by_torch_radam(b1, b2, eps),
    add_decayed_weights(wd, mask), scale_by_learning_rate(lr))``, i.e. ``p <- p - lr*(d +
    wd*p) = (1 - lr*wd) p - lr*d`` (``scale(-1)`` first with ``maximize``). ``lr`` may be a
    schedule or a ported torch scheduler. Raises ``InputError`` where torch's constructor
    raises (negative ``lr``, ``eps``, ``weight_decay``; a beta outside [0, 1)).
    """
    check_adam_arguments(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
    b1, b2 = betas
    decay = optax.add_decayed_weights(weight_decay, mask)
    direction = scale_by_torch_radam(b1, b2, eps)
    steps = (direction, decay) if decoupled_weight_decay else (decay, direction)
    return optax.chain(*sign(maximize), *steps, learning_rate(lr))


def _torch_radam_group(lr, betas, eps, weight_decay, maximize, decoupled_weight_decay=False):
    return torch_radam(lr, betas=betas, eps=eps, weight_decay=weight_decay,
                       decoupled_weight_decay=decoupled_weight_decay, maximize=maximize)


def naive_radam(lr, betas, eps, weight_decay, maximize=False, decoupled_weight_decay=False):
    """optax's namesake with torch's hyper-parameters: ``optax.radam(lr, b1, b2, eps)`` after
    ``add_decayed_weights(wd)``; decoupled, ``optax.scale_by_radam(b1, b2, eps)`` in
    ``adamw``'s chain (``add_decayed_weights(wd)``, then ``scale_by_learning_rate(lr)``)."""
    b1, b2 = betas
    if decoupled_weight_decay:
        namesake = optax.chain(optax.scale_by_radam(b1, b2, eps),
                               optax.add_decayed_weights(weight_decay),
                               optax.scale_by_learning_rate(lr))
    else:
        namesake = optax.chain(optax.add_decayed_weights(weight_decay),
                               optax.radam(lr, b1=b1, b2=b2, eps=eps))
    return optax.chain(*sign(maximize), namesake)


RADAM = TorchOptimizer(
    "torch.optim.RAdam",
    ("lr", "betas", "eps", "weight_decay", "maximize", "decoupled_weight_decay"),
    _torch_radam_group,
    state=tuple(StateKey(key, ScaleByTorchRAdamState, key) for key in ("exp_avg", "exp_avg_sq")),
    step=StateKey("step", ScaleByTorchRAdamState, "step"),
    accepted={"capturable": False, "differentiable": False},
    cycled="betas", naive=naive_radam)
PORTS = (RADAM,)
