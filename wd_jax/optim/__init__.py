"""``torch.optim``'s weight decay, exactly, as optax chains (the mirror of :mod:`wd_torch.optim`).

Every builder returns an ``optax.GradientTransformation`` whose updates, applied with
``optax.apply_updates``, reproduce the torch optimizer step for step, parameters *and*
state (float64 within rtol 1e-12; ``parity_tests/test_optim_parity.py``). Call ``update``
with ``params``: the decay reads them. ``mask`` is the weight-decay mask, as in
``optax.add_decayed_weights``: a pytree of booleans like the params (or a prefix of it),
``True`` where torch's parameter group has ``weight_decay=wd`` and ``False`` where it has
``weight_decay=0``; ``None`` decays every leaf (one torch group).

=========================================  ===============================================
torch                                      optax (what the builder returns)
=========================================  ===============================================
``SGD(lr, weight_decay=wd)``               ``chain(add_decayed_weights(wd, mask), sgd(lr))``
``SGD(..., momentum=mu, nesterov=n)``      ``chain(add_decayed_weights(wd, mask),
                                           sgd(lr, mu, n))``
``SGD(..., dampening=d)`` (``d != 0``)     ``chain(add_decayed_weights(wd, mask),
                                           torch_momentum(mu, d), scale_by_learning_rate(lr))``
``SGD(..., maximize=True)``                ``chain(scale(-1.0), ...)``: negated before the decay
``Adam(lr, betas, eps, weight_decay=wd)``  ``chain(add_decayed_weights(wd, mask),
                                           adam(lr, b1, b2, eps))``
``AdamW(lr, betas, eps, weight_decay=wd)`` ``adamw(lr, b1, b2, eps, weight_decay=wd, mask)``
``wd_torch.optim.SGDW(...)``               ``chain(sgd momentum, add_decayed_weights(wd, mask),
                                           scale_by_learning_rate(lr))``
a parameter whose ``.grad`` is ``None``    ``optax.selective_transform(tx, freeze_mask=...)``
=========================================  ===============================================

The SGD family writes one transform by hand, :func:`torch_momentum`: torch's momentum with
``dampening != 0`` starts its buffer at the first gradient *undamped* (``buf_1 = g_1``, then
``buf_t = mu*buf_{t-1} + (1 - dampening)*g_t``); optax has no dampening, and ``optax.ema``
ties the damping to the decay (``1 - mu``) and, debiased, rescales every step. With
``dampening == 0`` ``optax.trace`` is exactly torch's momentum (its zero-initialised trace
gives ``buf_1 = g_1 + mu*0 = g_1``) and is used. The rest of the catalogue
(:func:`torch_rmsprop`, :func:`torch_adagrad`, :func:`torch_adadelta`, :func:`torch_adamax`,
:func:`torch_nadam`, :func:`torch_radam`, :func:`torch_adafactor`, :func:`torch_asgd`,
:func:`torch_rprop`, :func:`torch_muon`) lives in its own modules, each saying which of its
transforms are optax's and which are written by hand, and why (docs/optimizers.md).

Learning rates may be optax schedules; see :func:`torch_step_lr`,
:func:`torch_cosine_annealing_lr` and :func:`per_epoch` for torch's schedulers, and
:mod:`wd_jax.optim.lr_scheduler` for a live torch scheduler (its own recursion).

The package mirrors ``torch/optim``: one module per torch optimizer (``torch/optim/sgd.py``
<-> ``wd_jax/optim/sgd.py``), each holding its builder, its update rule and its state mapping
(a :class:`wd_jax.optim.registry.TorchOptimizer`, listed in :data:`PORTS` for
:mod:`wd_jax.port`); ``lr_scheduler`` mirrors ``torch.optim.lr_scheduler``; the gradient
clipping twins of ``torch.nn.utils`` are :func:`torch_clip_grad_norm` and
:func:`torch_clip_grad_value`.
"""

from __future__ import annotations

import importlib
import pkgutil

import optax

from wd_core.optimizers import OptimizerSpec
from wd_jax.clipping import torch_clip_grad_norm, torch_clip_grad_value
from wd_jax.optim.adadelta import torch_adadelta
from wd_jax.optim.adafactor import torch_adafactor
from wd_jax.optim.adagrad import torch_adagrad
from wd_jax.optim.adam import torch_adam, torch_adamw
from wd_jax.optim.adamax import torch_adamax
from wd_jax.optim.asgd import torch_asgd
from wd_jax.optim.muon import torch_muon
from wd_jax.optim.nadam import torch_nadam
from wd_jax.optim.radam import torch_radam
from wd_jax.optim.registry import TorchOptimizer
from wd_jax.optim.rmsprop import torch_rmsprop
from wd_jax.optim.rprop import torch_rprop
from wd_jax.optim.schedules import per_epoch, torch_cosine_annealing_lr, torch_step_lr
from wd_jax.optim.sgd import sgdw, torch_sgd
from wd_jax.optim.transforms import (
    TorchMomentumState,
    learning_rate,
    momentum_direction,
    torch_momentum,
)

__all__ = ["BUILDERS", "PORTS", "REFUSED", "TorchMomentumState", "TorchOptimizer",
           "build_optimizer", "learning_rate", "momentum_direction", "per_epoch", "sgdw",
           "torch_adadelta", "torch_adafactor", "torch_adagrad", "torch_adam", "torch_adamax",
           "torch_adamw", "torch_asgd", "torch_clip_grad_norm", "torch_clip_grad_value",
           "torch_cosine_annealing_lr", "torch_momentum", "torch_muon", "torch_nadam",
           "torch_radam", "torch_rmsprop", "torch_rprop", "torch_sgd", "torch_state",
           "torch_step_lr"]

BUILDERS = {"sgd": torch_sgd, "sgdw": sgdw, "adam": torch_adam, "adamw": torch_adamw}

def _discover() -> dict[str, TorchOptimizer]:
    """Every ``PORTS`` entry of this package's modules, by ``torch_class``: adding an
    optimizer is adding its module."""
    ports = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        for port in getattr(module, "PORTS", ()):
            ports[port.torch_class] = port
    return ports


#: Every ported optimizer class by its ``module.qualname`` (from the modules' ``PORTS``).
PORTS: dict[str, TorchOptimizer] = _discover()

#: ``torch.optim`` classes refused, with the reason (no optax transformation can be their twin).
REFUSED = {
    "LBFGS": ("it is driven by a closure: step(closure) evaluates the loss and gradients several "
              "times per step (its line search), while an optax update takes one gradient; "
              "optax.lbfgs is a different algorithm (its own linesearch and memory)"),
    "SparseAdam": ("it takes sparse gradients (torch.sparse) and updates only the moments of "
                   "the rows they touch; JAX's gradients are dense, and dense Adam updates every "
                   "row's moments at every step"),
}


def build_optimizer(spec: OptimizerSpec, *, lr, weight_decay,
                    mask=None) -> optax.GradientTransformation:
    """The optax chain of ``spec`` with learning rate ``lr`` and decay ``weight_decay`` on
    the leaves where ``mask`` is True (the mirror of ``wd_torch.optim.build_optimizer``)."""
    if spec.family in ("sgd", "sgdw"):
        return BUILDERS[spec.family](lr, momentum=spec.momentum, dampening=spec.dampening,
                                     weight_decay=weight_decay, nesterov=spec.nesterov,
                                     mask=mask)
    return BUILDERS[spec.family](lr, betas=spec.betas, eps=spec.eps,
                                 weight_decay=weight_decay, mask=mask)


def torch_state(opt_state) -> dict:
    """The optax state of these builders under torch's names, one pytree (like the params)
    per name: ``{"momentum_buffer": ...}`` for SGD with momentum, ``{"step": count,
    "exp_avg": mu, "exp_avg_sq": nu}`` for the Adam family (``step`` a scalar: optax keeps
    one count for all leaves, torch one per parameter). ``{}`` when there is no state."""
    state = {}
    buffer = optax.tree.get(opt_state, "momentum_buffer")
    if buffer is None:
        buffer = optax.tree.get(opt_state, "trace")
    if buffer is not None:
        state["momentum_buffer"] = buffer
    moments = [s for _, s in optax.tree.get_all_with_path(opt_state, "ScaleByAdamState")]
    if moments:
        (moments,) = moments
        state.update(step=moments.count, exp_avg=moments.mu, exp_avg_sq=moments.nu)
    return state


