"""``torch.optim.AdamW`` (decoupled decay) as an optax chain, and its port.

``AdamW(lr, betas, eps, weight_decay, maximize)``: ``p <- (1 - lr*wd)*p - lr*adam(g)``, with
``adam`` as in :mod:`wd_jax.optim.adam` (no decay in the moments). This is ``optax.adamw``
with torch's default decay: torch's ``1e-2``, not optax's ``1e-4``. Recognised by its class
(on every torch), not only by ``decoupled_weight_decay``. State: as Adam's.
"""

from __future__ import annotations

import optax

from wd_core.optimizers import check_adam_arguments
from wd_jax.optim.adam import STATE, STEP, scale_by_adam
from wd_jax.optim.registry import TorchOptimizer
from wd_jax.optim.transforms import is_stateful, learning_rate, sign


def torch_adamw(lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, maximize=False,
                mask=None) -> optax.GradientTransformation:
    """``torch.optim.AdamW(params, lr, betas, eps, weight_decay, maximize)``: decoupled.

    ``optax.adamw(lr, b1, b2, eps, weight_decay, mask)`` (``scale(-1)`` first with
    ``maximize``); its own chain, ``chain(scale_by_adam, add_decayed_weights,
    scale_by_learning_rate)``, when the lr or beta1 follows a torch scheduler.
    """
    check_adam_arguments(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
    b1, b2 = betas
    if is_stateful(lr) or is_stateful(b1):
        adamw = optax.chain(scale_by_adam(b1, b2, eps),
                            optax.add_decayed_weights(weight_decay, mask), learning_rate(lr))
    else:
        adamw = optax.adamw(lr, b1=b1, b2=b2, eps=eps, weight_decay=weight_decay, mask=mask)
    return optax.chain(*sign(maximize), adamw) if maximize else adamw


def _torch_adamw_group(lr, betas, eps, weight_decay, maximize, decoupled_weight_decay=True):
    del decoupled_weight_decay  # AdamW decouples whatever the key says (older torch lacks it)
    return torch_adamw(lr, betas=betas, eps=eps, weight_decay=weight_decay, maximize=maximize)


ADAMW = TorchOptimizer(
    "torch.optim.AdamW",
    ("lr", "betas", "eps", "weight_decay", "maximize", "decoupled_weight_decay"),
    _torch_adamw_group, STATE, STEP, cycled="betas",
    accepted={"amsgrad": False, "capturable": False, "differentiable": False})
PORTS = (ADAMW,)
