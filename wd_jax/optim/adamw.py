"""``torch.optim.AdamW`` (decoupled decay; ``amsgrad`` or not) as an optax chain, and its port.

``AdamW(lr, betas, eps, weight_decay, amsgrad, maximize)``: ``p <- (1 - lr*wd)*p -
lr*adam(g)``, with ``adam`` as in :mod:`wd_jax.optim.adam` (no decay in the moments; with
``amsgrad`` torch's maximum of the raw second moment, :func:`scale_by_torch_amsgrad`). This
is ``optax.adamw`` with torch's default decay: torch's ``1e-2``, not optax's ``1e-4``.
Recognised by its class (on every torch), not only by ``decoupled_weight_decay``. State: as
Adam's (``max_exp_avg_sq`` too with ``amsgrad``).
"""

from __future__ import annotations

import optax

from wd_core.optimizers import check_adam_arguments
from wd_jax.optim.adam import (
    OPTIONS,
    STATE,
    STEP,
    scale_by_adam,
    scale_by_torch_amsgrad,
    state_functions,
)
from wd_jax.optim.registry import TorchOptimizer
from wd_jax.optim.transforms import is_stateful, learning_rate, sign


def torch_adamw(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False, *,
                maximize=False, mask=None) -> optax.GradientTransformation:
    """``torch.optim.AdamW(params, lr, betas, eps, weight_decay, amsgrad, maximize)``:
    decoupled.

    ``optax.adamw(lr, b1, b2, eps, weight_decay, mask)`` (``scale(-1)`` first with
    ``maximize``); its own chain, ``chain(scale_by_adam, add_decayed_weights,
    scale_by_learning_rate)``, when the lr or beta1 follows a torch scheduler, and with
    ``amsgrad`` the same chain around :func:`scale_by_torch_amsgrad`.
    """
    check_adam_arguments(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
    b1, b2 = betas
    if amsgrad or is_stateful(lr) or is_stateful(b1):
        direction = (scale_by_torch_amsgrad(b1, b2, eps) if amsgrad
                     else scale_by_adam(b1, b2, eps))
        adamw = optax.chain(direction, optax.add_decayed_weights(weight_decay, mask),
                            learning_rate(lr))
    else:
        adamw = optax.adamw(lr, b1=b1, b2=b2, eps=eps, weight_decay=weight_decay, mask=mask)
    return optax.chain(*sign(maximize), adamw) if maximize else adamw


def _torch_adamw_group(lr, betas, eps, weight_decay, maximize, decoupled_weight_decay=True,
                       amsgrad=False):
    del decoupled_weight_decay  # AdamW decouples whatever the key says (older torch lacks it)
    return torch_adamw(lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                       maximize=maximize)


def naive_adamw(lr, betas, eps, weight_decay, maximize, decoupled_weight_decay=True,
                amsgrad=False):
    """optax's namesake with torch's hyper-parameters: ``optax.adamw`` (the twin, up to
    rounding); with ``amsgrad``, which ``optax.adamw`` lacks, ``optax.amsgrad``'s direction in
    ``adamw``'s chain: ``chain(scale_by_amsgrad(b1, b2, eps), add_decayed_weights(wd),
    scale_by_learning_rate(lr))``."""
    del decoupled_weight_decay
    b1, b2 = betas
    if amsgrad:
        namesake = optax.chain(optax.scale_by_amsgrad(b1, b2, eps),
                               optax.add_decayed_weights(weight_decay),
                               optax.scale_by_learning_rate(lr))
    else:
        namesake = optax.adamw(lr, b1=b1, b2=b2, eps=eps, weight_decay=weight_decay)
    return optax.chain(*sign(maximize), namesake)


_read, _write = state_functions("torch.optim.AdamW")
ADAMW = TorchOptimizer(
    "torch.optim.AdamW", OPTIONS, _torch_adamw_group, STATE, STEP, cycled="betas",
    accepted={"capturable": False, "differentiable": False}, naive=naive_adamw,
    read_state=_read, write_state=_write)
PORTS = (ADAMW,)
