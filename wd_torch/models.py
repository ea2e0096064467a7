"""The chapter's two models in PyTorch.

Both predict ``y_hat = X w + b`` with ``X`` (n, d), ``w`` (d, 1), ``b`` (1,) and use the loss
``mean((y_hat - y)**2) / 2``. They differ in where the weight decay lives:

* :class:`WeightDecayScratch`: in the loss, ``+ lambd * ||w||**2 / 2``, differentiated by
  autograd; the optimizer is plain ``torch.optim.SGD``.
* :class:`WeightDecay`: in the optimizer, ``torch.optim.SGD`` with two parameter groups,
  ``weight_decay=lambd`` for the weight and ``0`` for the bias.

For plain SGD both give ``w <- (1 - lr*lambd) w - lr * grad_w``, ``b <- b - lr * grad_b``.

``optimizer`` (a :class:`wd_core.optimizers.OptimizerSpec`, default ``None`` = plain SGD as
above) swaps the optimizer family while ``lr`` stays the learning rate and ``lambd`` the
weight decay: :class:`WeightDecay` puts ``lambd`` on the weight's parameter group of that
optimizer (``SGD``/``Adam`` couple it, ``SGDW``/``AdamW`` decouple it);
:class:`WeightDecayScratch` keeps the penalty in the loss and the optimizer undecayed.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from wd_torch.device import TORCH_DTYPES, to_tensor
from wd_torch.optim import build_optimizer


def l2_penalty(w: torch.Tensor) -> torch.Tensor:
    """``sum(w**2) / 2``, a scalar tensor in ``w``'s dtype."""
    return (w**2).sum() / 2


def squared_loss(y_hat: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``mean((y_hat - y)**2) / 2`` over the batch; ``y_hat``, ``y`` (n, 1).

    Not ``nn.MSELoss``, which has no 1/2 and so doubles the gradient.
    """
    return ((y_hat - y) ** 2).mean() / 2


class _LinearRegression(nn.Module):
    """Shared constructor: sizes, hyper-parameters, a dtype, an optimizer spec.

    The arguments are taken as :func:`wd_core.runspec.prepare_run` validated them (``train``
    and ``sgd_step`` build the models from a validated spec).
    """

    def __init__(self, num_inputs, *, lambd, lr, dtype="float32", optimizer=None):
        super().__init__()
        self.num_inputs = num_inputs
        self.lambd = lambd
        self.lr = lr
        self.dtype = TORCH_DTYPES[dtype]
        self.optimizer_spec = optimizer

    def set_w_b(self, w, b) -> None:
        """Copy float64 numpy ``w`` (d, 1) and ``b`` (1,) into the parameters."""
        weight, bias = self._parameters_as_w_b()
        with torch.no_grad():
            weight.copy_(to_tensor(np.reshape(w, weight.shape), weight.dtype, weight.device))
            bias.copy_(to_tensor(np.reshape(b, bias.shape), bias.dtype, bias.device))

    def get_w_b(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The parameters as ``w`` (d, 1) and ``b`` (1,) views."""
        weight, bias = self._parameters_as_w_b()
        return weight.reshape(self.num_inputs, 1), bias.reshape(1)


class WeightDecayScratch(_LinearRegression):
    """``w`` (d, 1), ``b`` (1,); the penalty is part of the loss, the optimizer plain SGD."""

    def __init__(self, num_inputs, *, lambd, lr, dtype="float32", optimizer=None):
        super().__init__(num_inputs, lambd=lambd, lr=lr, dtype=dtype, optimizer=optimizer)
        self.w = nn.Parameter(torch.zeros(self.num_inputs, 1, dtype=self.dtype))
        self.b = nn.Parameter(torch.zeros(1, dtype=self.dtype))

    def _parameters_as_w_b(self):
        return self.w, self.b

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        """``X w + b``: (n, 1)."""
        return X @ self.w + self.b

    def loss(self, y_hat: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """``squared_loss(y_hat, y) + lambd * l2_penalty(w)``."""
        return squared_loss(y_hat, y) + self.lambd * l2_penalty(self.w)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        """Plain ``torch.optim.SGD`` (the decay comes from the loss's gradient), or the
        ``optimizer`` spec's family with no weight decay of its own."""
        if self.optimizer_spec is None:
            return torch.optim.SGD(self.parameters(), lr=self.lr)
        return build_optimizer(self.optimizer_spec, [], [self.w, self.b], lr=self.lr,
                               weight_decay=0.0)


class WeightDecay(_LinearRegression):
    """``nn.Linear(d, 1)``; the decay is ``torch.optim.SGD``'s ``weight_decay``, weight only.

    The layer is a real ``nn.Linear`` (not ``nn.LazyLinear``, on which an init set before
    the first forward silently does nothing); its weight (1, d) is ``w.T``.
    """

    def __init__(self, num_inputs, *, lambd, lr, dtype="float32", optimizer=None):
        super().__init__(num_inputs, lambd=lambd, lr=lr, dtype=dtype, optimizer=optimizer)
        # skip_init: nn.Linear's own random init would draw from torch's global generator
        # (the backends draw no random numbers); the parameters start at zero, as in
        # WeightDecayScratch, until set_w_b gives them the shared initial values.
        self.net = nn.utils.skip_init(nn.Linear, self.num_inputs, 1, dtype=self.dtype)
        with torch.no_grad():
            self.net.weight.zero_()
            self.net.bias.zero_()

    def _parameters_as_w_b(self):
        return self.net.weight, self.net.bias

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        """``X w + b``: (n, 1)."""
        return self.net(X)

    def loss(self, y_hat: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """``squared_loss(y_hat, y)``: the decay is the optimizer's."""
        return squared_loss(y_hat, y)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        """``SGD`` with groups ``{weight: weight_decay=lambd}``, ``{bias: weight_decay=0}``
        (or the ``optimizer`` spec's family with the same two groups)."""
        if self.optimizer_spec is not None:
            return build_optimizer(self.optimizer_spec, [self.net.weight], [self.net.bias],
                                   lr=self.lr, weight_decay=self.lambd)
        return torch.optim.SGD(
            [
                {"params": [self.net.weight], "weight_decay": self.lambd},
                {"params": [self.net.bias], "weight_decay": 0.0},
            ],
            lr=self.lr,
        )


MODELS = {"scratch": WeightDecayScratch, "concise": WeightDecay}
