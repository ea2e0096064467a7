"""Decoupled SGD for torch, and the chapter's optimizers built from a spec.

The mirror of :mod:`wd_jax.optim`: there the ``torch.optim`` rules are rebuilt as optax
chains; here torch gets the one optimizer it lacks, :class:`SGDW`, and
:func:`build_optimizer` turns a :class:`wd_core.optimizers.OptimizerSpec` into
``torch.optim.SGD``/``Adam``/``AdamW`` or :class:`SGDW` with a decayed and an undecayed
parameter group (``wd_jax.optim.build_optimizer`` does the same with a mask).
"""

from __future__ import annotations

import torch

from wd_core.optimizers import OptimizerSpec, check_sgd_arguments


def sgdw_update(param: torch.Tensor, grad: torch.Tensor, state: dict, *, lr, momentum,
                dampening, weight_decay, nesterov, maximize) -> None:
    """One decoupled-SGD step of one tensor, in place, in the tensor's dtype.

    ``d = -g`` if ``maximize`` else ``g``; with ``momentum`` ``mu != 0`` torch's buffer
    ``buf_1 = d``, ``buf_t = mu*buf_{t-1} + (1 - dampening)*d`` (kept in
    ``state["momentum_buffer"]``, the param's shape and dtype) and ``d = buf_t`` (or
    ``d + mu*buf_t`` with ``nesterov``); then ``p <- (1 - lr*wd)*p`` and ``p <- p - lr*d``
    (the decay never enters the buffer; it is scaled by ``lr`` as in ``torch.optim.AdamW``).
    """
    direction = -grad if maximize else grad
    if momentum != 0:
        buffer = state.get("momentum_buffer")
        if buffer is None:
            buffer = direction.detach().clone()
            state["momentum_buffer"] = buffer
        else:
            buffer.mul_(momentum).add_(direction, alpha=1 - dampening)
        direction = direction.add(buffer, alpha=momentum) if nesterov else buffer
    if weight_decay != 0:
        param.mul_(1 - lr * weight_decay)
    param.add_(direction, alpha=-lr)


class SGDW(torch.optim.Optimizer):
    """Decoupled SGD: ``p <- (1 - lr*wd)*p - lr*d``, ``d`` torch's SGD direction of ``g``.

    The arguments and checks are ``torch.optim.SGD``'s (``ValueError`` for a negative
    ``lr``, ``momentum`` or ``weight_decay``, or nesterov without momentum or with
    dampening); the only difference is where the decay goes (see :func:`sgdw_update`).
    With ``momentum=0`` it equals ``SGD(weight_decay=wd)``; ``wd_jax.optim.sgdw`` is the
    same rule in optax. Parameters whose ``.grad`` is ``None`` are skipped, as in torch.
    """

    def __init__(self, params, lr, momentum=0.0, dampening=0.0, weight_decay=0.0,
                 nesterov=False, *, maximize=False):
        check_sgd_arguments(lr=lr, momentum=momentum, dampening=dampening,
                            weight_decay=weight_decay, nesterov=nesterov)
        defaults = {"lr": lr, "momentum": momentum, "dampening": dampening,
                    "weight_decay": weight_decay, "nesterov": nesterov, "maximize": maximize}
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):
        """One step for every parameter with a gradient; returns ``closure()``'s loss."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for param in group["params"]:
                if param.grad is None:
                    continue
                sgdw_update(param, param.grad, self.state[param], lr=group["lr"],
                            momentum=group["momentum"], dampening=group["dampening"],
                            weight_decay=group["weight_decay"], nesterov=group["nesterov"],
                            maximize=group["maximize"])
        return loss


def build_optimizer(spec: OptimizerSpec, decayed, others=(), *, lr,
                    weight_decay) -> torch.optim.Optimizer:
    """``spec``'s optimizer over two groups: ``decayed`` with ``weight_decay``, ``others``
    with 0 (the mirror of ``wd_jax.optim.build_optimizer``'s mask). Empty groups are left
    out."""
    groups = [{"params": list(decayed), "weight_decay": weight_decay},
              {"params": list(others), "weight_decay": 0.0}]
    groups = [g for g in groups if g["params"]]
    if spec.family == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=spec.momentum,
                               dampening=spec.dampening, nesterov=spec.nesterov)
    if spec.family == "sgdw":
        return SGDW(groups, lr=lr, momentum=spec.momentum, dampening=spec.dampening,
                    nesterov=spec.nesterov)
    adam = torch.optim.Adam if spec.family == "adam" else torch.optim.AdamW
    return adam(groups, lr=lr, betas=tuple(float(b) for b in spec.betas), eps=spec.eps)
