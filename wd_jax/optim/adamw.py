"""``torch.optim.AdamW`` (decoupled decay; ``amsgrad`` or not) as an optax chain, and its port.

``AdamW(lr, betas, eps, weight_decay, amsgrad, maximize)``: ``p <- (1 - lr*wd)*p -
lr*adam(g)``, with ``adam`` as in :mod:`wd_jax.optim.adam` (no decay in the moments; with
``amsgrad`` torch's maximum of the raw second moment, :func:`scale_by_torch_amsgrad`). This
is ``optax.adamw`` with torch's default decay: torch's ``1e-2``, not optax's ``1e-4``.
Recognised by its class (on every torch), not only by ``decoupled_weight_decay``. State: as
Adam's (``max_exp_avg_sq`` too with ``amsgrad``).
"""

from __future__ import annotations

from wd_jax.optim.adam import (  # AdamW's rule sits with Adam's (torch: Adam decoupled)
    OPTIONS,
    STATE,
    STEP,
    naive_adamw,
    state_functions,
    torch_adamw,
)
from wd_jax.optim.registry import TorchOptimizer


def _torch_adamw_group(lr, betas, eps, weight_decay, maximize, decoupled_weight_decay=True,
                       amsgrad=False):
    del decoupled_weight_decay  # AdamW decouples whatever the key says (older torch lacks it)
    return torch_adamw(lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                       maximize=maximize)


_read, _write = state_functions("torch.optim.AdamW")
ADAMW = TorchOptimizer(
    "torch.optim.AdamW", OPTIONS, _torch_adamw_group, STATE, STEP, cycled="betas",
    accepted={"capturable": False, "differentiable": False}, naive=naive_adamw,
    read_state=_read, write_state=_write)
PORTS = (ADAMW,)
