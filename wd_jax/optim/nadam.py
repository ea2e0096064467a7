"""``torch.optim.NAdam`` (coupled L2, or decoupled with ``decoupled_weight_decay=True``) as
optax chains, and its port.

``NAdam(lr, betas, eps, weight_decay, momentum_decay, decoupled_weight_decay, maximize)``,
per leaf ``p`` with gradient ``g`` (``-g`` if ``maximize``), ``t`` counting steps from 1:

* coupled (default): ``g <- g + wd*p`` (the decay enters both moments); decoupled:
  ``p <- (1 - lr*wd)*p`` beside the step, with the step's (scheduled) lr, the moments of
  ``g`` alone;
* the momentum schedule ``mu_t = b1*(1 - 0.5*0.96**(t*momentum_decay))`` and its product
  ``P_t = mu_1*...*mu_t`` (torch's ``mu_product``, one 0-d tensor per parameter, ``P_0 = 1``);
* ``m_t = b1*m_{t-1} + (1 - b1)*g`` (``m.lerp_(g, 1 - b1)``), ``v_t = b2*v_{t-1} +
  (1 - b2)*g**2`` (zeros at first), ``d = sqrt(v_t/(1 - b2**t)) + eps``;
* ``p <- p - lr*(1 - mu_t)/(1 - P_t) * g/d - lr*mu_{t+1}/(1 - P_t*mu_{t+1}) * m_t/d``.

``optax.nadam`` (``scale_by_adam(nesterov=True)``) is not this rule: it has no momentum
schedule (its look-ahead is ``b1*m_t/(1 - b1**(t+1)) + (1 - b1)*g/(1 - b1**t)``, i.e.
``mu_t = b1`` throughout, where torch's ``mu_t`` starts near ``b1/2`` and reaches ``b1``
only after thousands of steps at the default ``momentum_decay=4e-3``), so
:func:`scale_by_torch_nadam` is written here with optax's own moment helpers; the decay and
the lr are optax's.

``mu_product`` is kept in torch's *scalar* dtype, not the parameter's: torch creates it as
float32 (float64 only when ``torch.get_default_dtype()`` is float64) and multiplies it in
that dtype (``P_t = float32(P_{t-1} * float32(mu_t))``), then reads it as a Python float. A
float64 model ported with a float64 ``mu_product`` would drift from torch's by ~3e-10 in 50
steps, so the builder takes ``mu_product_dtype`` (float32 by default, as torch) and the port
keeps the dtype torch's state has (``load_state_dict`` casts ``mu_product`` to the
parameter's dtype: a torch optimizer resumed from a checkpoint continues in float64).

State (torch key <-> optax field of the group's state): ``step`` / ``exp_avg`` /
``exp_avg_sq`` / ``mu_product`` <-> ``ScaleByTorchNAdamState.step`` / ``.exp_avg`` /
``.exp_avg_sq`` / ``.mu_product`` (a tree of 0-d arrays, one per parameter, ones at first).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from wd_core.optimizers import check_adam_arguments, check_hyperparameter
from wd_core.validation import NONNEGATIVE
from wd_jax.optim.registry import StateKey, TorchOptimizer, replace_states
from wd_jax.optim.transforms import injected, learning_rate, sign


class ScaleByTorchNAdamState(NamedTuple):
    """State of :func:`scale_by_torch_nadam` under torch's names: steps taken (int32 scalar),
    the two moments (trees like the params, in their dtypes) and ``mu_product`` (a tree of
    0-d arrays in ``mu_product_dtype``)."""

    step: jax.Array
    exp_avg: optax.Updates
    exp_avg_sq: optax.Updates
    mu_product: optax.Updates


def _momentum(b1, step, momentum_decay):
    """torch's ``mu_t = b1*(1 - 0.5*0.96**(t*momentum_decay))``, in ``step``'s dtype."""
    return b1 * (1.0 - 0.5 * (0.96 ** (step * momentum_decay)))


def _torch_nadam(b1, b2, eps, momentum_decay, mu_product_dtype) -> optax.GradientTransformation:
    def init_fn(params):
        # canonicalized here, not when built: float64 needs x64 when the state is made
        one = jnp.ones([], jax.dtypes.canonicalize_dtype(mu_product_dtype))
        return ScaleByTorchNAdamState(
            step=jnp.zeros([], jnp.int32), exp_avg=optax.tree.zeros_like(params),
            exp_avg_sq=optax.tree.zeros_like(params),
            mu_product=jax.tree.map(lambda _: one, params))

    def update_fn(updates, state, params=None):
        del params
        count = optax.safe_increment(state.step)
        step = count.astype(jnp.result_type(float))  # float64 under x64, as torch's Python
        bias_correction2 = 1 - b2 ** step
        mu = _momentum(b1, step, momentum_decay)
        mu_next = _momentum(b1, step + 1, momentum_decay)
        # torch: mu_product *= mu, in mu_product's own dtype
        mu_product = jax.tree.map(lambda product: product * mu.astype(product.dtype),
                                  state.mu_product)
        exp_avg = optax.tree.update_moment(updates, state.exp_avg, b1, 1)
        exp_avg_sq = optax.tree.update_moment_per_elem_norm(updates, state.exp_avg_sq, b2, 2)

        def direction(g, m, v, product):
            product = product.astype(step.dtype)  # torch reads it as a Python float
            grad_size = (1.0 - mu) / (1.0 - product)
            avg_size = mu_next / (1.0 - product * mu_next)
            denom = jnp.sqrt(v / bias_correction2.astype(v.dtype)) + eps
            return (grad_size.astype(g.dtype) * (g / denom)
                    + avg_size.astype(m.dtype) * (m / denom))

        updates = jax.tree.map(direction, updates, exp_avg, exp_avg_sq, mu_product)
        return updates, ScaleByTorchNAdamState(count, exp_avg, exp_avg_sq, mu_product)

    return optax.GradientTransformation(init_fn, update_fn)


def scale_by_torch_nadam(b1=0.9, b2=0.999, eps=1e-8, momentum_decay=4e-3, *,
                         mu_product_dtype="float32") -> optax.GradientTransformation:
    """torch's NAdam direction (no lr): ``(1 - mu_t)/(1 - P_t) * g/d + mu_{t+1}/(1 -
    P_t*mu_{t+1}) * m_t/d`` with torch's momentum schedule (see the module).

    Hand-written: optax has no momentum schedule. The moments are in the params' dtypes,
    zeros at first; ``mu_product`` in ``mu_product_dtype`` (torch's scalar dtype), ones at
    first; the step's scalars (``mu_t``, ``b2**t``, the two step sizes) in the default float
    (float64 under x64, as torch's Python floats). A stateful ``b1`` (a scheduler that cycles
    beta1) is injected.
    """
    dtype = np.dtype(mu_product_dtype)

    def factory(b1, b2, eps, momentum_decay):
        return _torch_nadam(b1, b2, eps, momentum_decay, dtype)

    return injected(factory, b1=b1, b2=b2, eps=eps, momentum_decay=momentum_decay)


def torch_nadam(lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, momentum_decay=4e-3,
                decoupled_weight_decay=False, *, maximize=False, mask=None,
                mu_product_dtype="float32") -> optax.GradientTransformation:
    """``torch.optim.NAdam(params, lr, betas, eps, weight_decay, momentum_decay,
    decoupled_weight_decay, maximize=maximize)``.

    Coupled: ``chain(add_decayed_weights(wd, mask), scale_by_torch_nadam(...),
    scale_by_learning_rate(lr))``; decoupled: ``chain(scale_by_torch_nadam(...),
    add_decayed_weights(wd, mask), scale_by_learning_rate(lr))``, i.e. ``p <- p - lr*(d +
    wd*p) = (1 - lr*wd) p - lr*d`` (``scale(-1)`` first with ``maximize``). ``lr`` may be a
    schedule or a ported torch scheduler. ``mu_product_dtype``: torch's scalar dtype,
    ``"float32"`` unless torch's default dtype is float64 (see the module). Raises
    ``InputError`` where torch's constructor raises (negative ``lr``, ``eps``,
    ``weight_decay``, ``momentum_decay``; a beta outside [0, 1)).
    """
    check_adam_arguments(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
    check_hyperparameter("momentum_decay", momentum_decay, NONNEGATIVE)
    b1, b2 = betas
    decay = optax.add_decayed_weights(weight_decay, mask)
    direction = scale_by_torch_nadam(b1, b2, eps, momentum_decay,
                                     mu_product_dtype=mu_product_dtype)
    steps = (direction, decay) if decoupled_weight_decay else (decay, direction)
    return optax.chain(*sign(maximize), *steps, learning_rate(lr))


def torch_scalar_dtype() -> str:
    """The dtype torch gives a new ``mu_product`` (``torch.optim.optimizer._get_scalar_dtype``):
    ``"float64"`` when torch's default dtype is float64, else ``"float32"``."""
    import torch

    return "float64" if torch.get_default_dtype() == torch.float64 else "float32"


def _torch_nadam_group(lr, betas, eps, weight_decay, momentum_decay, maximize,
                       decoupled_weight_decay=False):
    return torch_nadam(lr, betas=betas, eps=eps, weight_decay=weight_decay,
                       momentum_decay=momentum_decay,
                       decoupled_weight_decay=decoupled_weight_decay, maximize=maximize,
                       mu_product_dtype=torch_scalar_dtype())


def naive_nadam(lr, betas, eps, weight_decay, momentum_decay=4e-3, maximize=False,
                decoupled_weight_decay=False):
    """optax's namesake with torch's hyper-parameters: ``optax.nadam(lr, b1, b2, eps)`` after
    ``add_decayed_weights(wd)``; decoupled, ``optax.nadamw(lr, b1, b2, eps, weight_decay=wd)``.
    Neither has a ``momentum_decay``: it is dropped, as a user porting by name would."""
    del momentum_decay
    b1, b2 = betas
    if decoupled_weight_decay:
        namesake = optax.nadamw(lr, b1=b1, b2=b2, eps=eps, weight_decay=weight_decay)
    else:
        namesake = optax.chain(optax.add_decayed_weights(weight_decay),
                               optax.nadam(lr, b1=b1, b2=b2, eps=eps))
    return optax.chain(*sign(maximize), namesake)


STATE = tuple(StateKey(key, ScaleByTorchNAdamState, key)
              for key in ("exp_avg", "exp_avg_sq", "mu_product"))
STEP = StateKey("step", ScaleByTorchNAdamState, "step")
OPTIONS = ("lr", "betas", "eps", "weight_decay", "momentum_decay", "maximize",
           "decoupled_weight_decay")
_DECLARATIVE = TorchOptimizer("torch.optim.NAdam", OPTIONS, _torch_nadam_group, STATE, STEP)


def _read_state(group_state, group, torch_states):
    """The declarative mapping, then ``mu_product`` in the dtype torch's state has it (float32
    as torch creates it, the parameter's dtype after a ``load_state_dict``), and ones (torch's
    initial value) where torch has no state yet."""
    group_state = _DECLARATIVE.state_from_torch(group_state, group, torch_states)
    products = {n: s.get("mu_product") for n, s in torch_states.items()}

    def replace(s):
        tree = dict(s.mu_product)
        for name in group.names:
            value = products.get(name)
            tree[name] = (jnp.ones_like(tree[name]) if value is None
                          else jnp.asarray(np.asarray(value)))
        return s._replace(mu_product=tree)

    return replace_states(group_state, (ScaleByTorchNAdamState,), replace)


NADAM = TorchOptimizer(
    "torch.optim.NAdam", OPTIONS, _torch_nadam_group, STATE, STEP,
    accepted={"capturable": False, "differentiable": False},
    cycled="betas", naive=naive_nadam, read_state=_read_state,
    write_state=_DECLARATIVE.state_to_torch)
PORTS = (NADAM,)
