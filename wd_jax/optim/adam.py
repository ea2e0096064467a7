"""``torch.optim.Adam`` (coupled L2, or decoupled with ``decoupled_weight_decay=True``) as
optax chains, and its port.

``Adam(lr, betas, eps, weight_decay, maximize)``: ``g <- g + wd*p`` first (``-g`` if
``maximize``), so the decay passes through the moments; then ``m_t = b1*m + (1-b1)*g``,
``v_t = b2*v + (1-b2)*g**2`` and the update ``-lr * (m_t/(1-b1**t)) / (sqrt(v_t/(1-b2**t)) +
eps)`` (eps added after the root, as torch does; ``eps_root=0``).

State: ``exp_avg`` / ``exp_avg_sq`` / ``step`` <-> ``ScaleByAdamState.mu`` / ``.nu`` /
``.count``.
"""

from __future__ import annotations

import optax

from wd_core.optimizers import check_adam_arguments
from wd_jax.optim.registry import StateKey, TorchOptimizer
from wd_jax.optim.transforms import injected, is_stateful, learning_rate, sign


def scale_by_adam(b1, b2, eps) -> optax.GradientTransformation:
    """``optax.scale_by_adam`` (``eps_root=0``: eps outside the root, as torch); a stateful
    ``b1`` (a scheduler that cycles beta1) injected."""
    return injected(optax.scale_by_adam, b1=b1, b2=b2, eps=eps)


def torch_adam(lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, maximize=False,
               mask=None) -> optax.GradientTransformation:
    """``torch.optim.Adam(params, lr, betas, eps, weight_decay, maximize)``: coupled L2.

    Built as ``chain(add_decayed_weights(wd, mask), adam(lr, b1, b2, eps))`` (``scale(-1)``
    first with ``maximize``); see the module for the rule.
    """
    check_adam_arguments(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
    b1, b2 = betas
    if is_stateful(lr) or is_stateful(b1):
        adam = optax.chain(scale_by_adam(b1, b2, eps), learning_rate(lr))
    else:
        adam = optax.adam(lr, b1=b1, b2=b2, eps=eps)
    return optax.chain(*sign(maximize), optax.add_decayed_weights(weight_decay, mask), adam)


def _torch_adam_group(lr, betas, eps, weight_decay, maximize, decoupled_weight_decay=False):
    """A torch ``Adam`` group: coupled, or AdamW's rule with ``decoupled_weight_decay``."""
    if decoupled_weight_decay:
        from wd_jax.optim.adamw import torch_adamw

        return torch_adamw(lr, betas=betas, eps=eps, weight_decay=weight_decay,
                           maximize=maximize)
    return torch_adam(lr, betas=betas, eps=eps, weight_decay=weight_decay, maximize=maximize)


STATE = (StateKey("exp_avg", optax.ScaleByAdamState, "mu"),
         StateKey("exp_avg_sq", optax.ScaleByAdamState, "nu"))
STEP = StateKey("step", optax.ScaleByAdamState, "count")
ADAM = TorchOptimizer(
    "torch.optim.Adam",
    ("lr", "betas", "eps", "weight_decay", "maximize", "decoupled_weight_decay"),
    _torch_adam_group, STATE, STEP, cycled="betas",
    accepted={"amsgrad": False, "capturable": False, "differentiable": False})
PORTS = (ADAM,)
