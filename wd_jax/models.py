"""The chapter's two models in JAX + optax, as pure functions over ``params``.

``params = {"w": (d, 1), "b": (1,)}``; both models predict ``y_hat = X w + b`` with ``X``
(n, d) and use the loss ``mean((y_hat - y)**2) / 2``. They differ in where the decay lives:

* :class:`WeightDecayScratch`: in the loss, ``+ lambd * ||w||**2 / 2``, differentiated by
  ``jax.grad``; the optimizer is ``optax.sgd(lr)``.
* :class:`WeightDecay`: in the optimizer, ``optax.chain(optax.add_decayed_weights(lambd,
  mask={"w": True, "b": False}), optax.sgd(lr))``: the decay is added to the gradient
  *before* ``sgd`` scales it, and the mask keeps the bias undecayed (torch's bias group).

For plain SGD both give ``w <- (1 - lr*lambd) w - lr * grad_w``, ``b <- b - lr * grad_b``.

``optimizer`` (a :class:`wd_core.optimizers.OptimizerSpec`, default ``None`` = plain SGD as
above) swaps the optimizer family while ``lr`` stays the learning rate and ``lambd`` the
weight decay: :class:`WeightDecay` builds that family with :mod:`wd_jax.optim` and decays
``w`` only (``mask=DECAY_MASK``); :class:`WeightDecayScratch` keeps the penalty in the loss
and the optimizer undecayed.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

from wd_core.errors import InputError
from wd_jax.device import JAX_DTYPES
from wd_jax.optim import build_optimizer

#: optax mask: decay the weight, never the bias.
DECAY_MASK = {"w": True, "b": False}


def l2_penalty(w: jax.Array) -> jax.Array:
    """``sum(w**2) / 2``, a scalar in ``w``'s dtype."""
    return jnp.sum(w**2) / 2


def forward(params: dict, X: jax.Array) -> jax.Array:
    """``X w + b``: (n, 1), from ``params = {"w": (d, 1), "b": (1,)}`` and ``X`` (n, d)."""
    return X @ params["w"] + params["b"]


def squared_loss(y_hat: jax.Array, y: jax.Array) -> jax.Array:
    """``mean((y_hat - y)**2) / 2`` over the batch; ``y_hat``, ``y`` (n, 1)."""
    return jnp.mean((y_hat - y) ** 2) / 2


class _LinearRegression:
    """Shared constructor and the linear model ``X w + b``.

    The arguments are taken as :func:`wd_core.runspec.prepare_run` validated them; ``lambd``
    and ``lr`` may be traced values inside a compiled run.
    """

    def __init__(self, num_inputs, *, lambd, lr, dtype="float32", optimizer=None):
        self.num_inputs = num_inputs
        self.lambd = lambd
        self.lr = lr
        self.dtype = JAX_DTYPES[dtype]
        if self.dtype == jnp.float64 and not jax.config.jax_enable_x64:
            # Otherwise JAX would silently make every array float32.
            raise InputError("dtype='float64' needs JAX's x64 mode: build and use the model "
                             "inside wd_jax.device.numerics('float64')")
        self.optimizer_spec = optimizer

    def set_w_b(self, w, b) -> dict:
        """``params`` from float64 numpy ``w`` (d, 1) and ``b`` (1,), cast to the dtype."""
        return {
            "w": jnp.asarray(np.asarray(w).reshape(self.num_inputs, 1), dtype=self.dtype),
            "b": jnp.asarray(np.asarray(b).reshape(1), dtype=self.dtype),
        }

    @staticmethod
    def get_w_b(params: dict) -> tuple[jax.Array, jax.Array]:
        """``(w, b)`` of shapes (d, 1), (1,)."""
        return params["w"], params["b"]

    forward = staticmethod(forward)


class WeightDecayScratch(_LinearRegression):
    """The penalty is part of the loss; the optimizer is plain ``optax.sgd``."""

    def loss(self, params: dict, X: jax.Array, y: jax.Array) -> jax.Array:
        """``squared_loss(X w + b, y) + lambd * l2_penalty(w)``."""
        return squared_loss(self.forward(params, X), y) + self.lambd * l2_penalty(params["w"])

    def configure_optimizers(self) -> optax.GradientTransformation:
        """``optax.sgd(lr)`` (the decay comes from the loss's gradient), or the
        ``optimizer`` spec's family with no weight decay of its own."""
        if self.optimizer_spec is None:
            return optax.sgd(self.lr)
        return build_optimizer(self.optimizer_spec, lr=self.lr, weight_decay=0.0)


class WeightDecay(_LinearRegression):
    """The decay is optax's ``add_decayed_weights`` on ``w`` only, chained before ``sgd``."""

    def loss(self, params: dict, X: jax.Array, y: jax.Array) -> jax.Array:
        """``squared_loss(X w + b, y)``: the decay is the optimizer's."""
        return squared_loss(self.forward(params, X), y)

    def configure_optimizers(self) -> optax.GradientTransformation:
        """``chain(add_decayed_weights(lambd, mask=DECAY_MASK), sgd(lr))`` (or the
        ``optimizer`` spec's family, decaying ``w`` only)."""
        if self.optimizer_spec is not None:
            return build_optimizer(self.optimizer_spec, lr=self.lr, weight_decay=self.lambd,
                                   mask=DECAY_MASK)
        return optax.chain(
            optax.add_decayed_weights(self.lambd, mask=DECAY_MASK),
            optax.sgd(self.lr),
        )


MODELS = {"scratch": WeightDecayScratch, "concise": WeightDecay}
