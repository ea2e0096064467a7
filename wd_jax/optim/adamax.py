"""``torch.optim.Adamax`` (coupled L2) as an optax chain, and its port.

``Adamax(lr, betas, eps, weight_decay, maximize)``, per leaf ``p`` with gradient ``g`` (``-g``
if ``maximize``), ``t`` counting steps from 1:

* ``g <- g + wd*p`` (coupled: the decay enters both moments);
* ``m_t = b1*m_{t-1} + (1 - b1)*g`` (torch writes it ``m.lerp_(g, 1 - b1)``; ``m_0 = 0``);
* ``u_t = max(b2*u_{t-1}, |g| + eps)`` (the infinity norm, eps *inside* the maximum;
  ``u_0 = 0``, no bias correction);
* ``p <- p - lr * (m_t/(1 - b1**t)) / u_t``.

Built from optax's own transforms: ``chain(add_decayed_weights(wd, mask),
scale_by_adamax(b1, b2, eps), scale_by_learning_rate(lr))``. ``optax.scale_by_adamax`` is
torch's rule line by line: ``max(|g| + eps, b2*u)``, zeros at first, ``m/(1 - b1**t)`` over
``u``; nothing is written by hand. ``optax.adamax`` is the same chain without the decay, so
optax's namesake after ``add_decayed_weights(wd)`` is a twin too (up to rounding:
``parity_tests/test_optim_adamax.py`` measures it within 1e-12).

State (torch key <-> optax field of the group's state): ``exp_avg`` / ``exp_inf`` / ``step``
<-> ``ScaleByAdamState.mu`` / ``.nu`` / ``.count``; torch creates them at the first step as
zeros, which is optax's ``init``.
"""

from __future__ import annotations

import optax

from wd_core.optimizers import check_adam_arguments
from wd_jax.optim.registry import StateKey, TorchOptimizer
from wd_jax.optim.transforms import injected, learning_rate, sign


def scale_by_adamax(b1=0.9, b2=0.999, eps=1e-8) -> optax.GradientTransformation:
    """``optax.scale_by_adamax(b1, b2, eps)`` (torch's direction, no lr); a stateful ``b1``
    (a scheduler that cycles beta1) injected."""
    return injected(optax.scale_by_adamax, b1=b1, b2=b2, eps=eps)


def torch_adamax(lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, *, maximize=False,
                 mask=None) -> optax.GradientTransformation:
    """``torch.optim.Adamax(params, lr, betas, eps, weight_decay, maximize=maximize)``.

    ``chain(add_decayed_weights(wd, mask), scale_by_adamax(b1, b2, eps),
    scale_by_learning_rate(lr))`` (``scale(-1)`` first with ``maximize``); see the module for
    the rule. Any shapes and float dtype (the moments in the params' dtypes, the bias
    correction in the default float: float64 under x64, as torch's Python floats); ``lr``
    may be a schedule or a ported torch scheduler. Raises ``InputError`` where torch's
    constructor raises (negative ``lr``, ``eps``, ``weight_decay``; a beta outside [0, 1)).
    """
    check_adam_arguments(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
    b1, b2 = betas
    return optax.chain(*sign(maximize), optax.add_decayed_weights(weight_decay, mask),
                       scale_by_adamax(b1, b2, eps), learning_rate(lr))


def _torch_adamax_group(lr, betas, eps, weight_decay, maximize):
    return torch_adamax(lr, betas=betas, eps=eps, weight_decay=weight_decay, maximize=maximize)


def naive_adamax(lr, betas, eps, weight_decay, maximize=False):
    """optax's namesake with torch's hyper-parameters: ``optax.adamax(lr, b1, b2, eps)`` after
    ``add_decayed_weights(wd)`` (a twin, up to rounding)."""
    b1, b2 = betas
    return optax.chain(*sign(maximize), optax.add_decayed_weights(weight_decay),
                       optax.adamax(lr, b1=b1, b2=b2, eps=eps))


ADAMAX = TorchOptimizer(
    "torch.optim.Adamax", ("lr", "betas", "eps", "weight_decay", "maximize"),
    _torch_adamax_group,
    state=(StateKey("exp_avg", optax.ScaleByAdamState, "mu"),
           StateKey("exp_inf", optax.ScaleByAdamState, "nu")),
    step=StateKey("step", optax.ScaleByAdamState, "count"),
    accepted={"capturable": False, "differentiable": False},
    cycled="betas", naive=naive_adamax)
PORTS = (ADAMAX,)
