"""``torch.optim.ASGD`` (averaged SGD) as an optax chain, and its port.

``ASGD(lr, lambd, alpha, t0, weight_decay, maximize, foreach)``, torch 2.13's
``_single_tensor_asgd``, per parameter ``p`` with gradient ``g`` (``-g`` if ``maximize``), for
``t = 1, 2, ...``::

    d        = g + weight_decay*p                      coupled L2: added to the gradient
    p       <- p*(1 - lambd*eta_t) - eta_t*d            lambd: a second decay, scaled by eta_t
    ax      <- p                   if mu_t == 1         the average (its start)
               ax + mu_t*(p - ax)  otherwise
    eta_t+1  = f32(lr / (1 + lambd*lr*t)**alpha)        in float64, rounded to float32
    mu_t+1   = f32(1 / max(1, t - t0))
    eta_1 = f32(lr), mu_1 = 1, ax = 0 before the first step

``f32``: torch keeps ``eta`` and ``mu`` as 0-d tensors of its scalar dtype and writes every new
value with ``torch.as_tensor(python_float)``, i.e. rounded to float32 (the default dtype; a
``load_state_dict`` casts the tensors to the parameter's dtype, but the values written into them
stay float32 numbers). The rounding moves a float64 run by ~1e-8, so the port rounds as torch
does. ``lr`` is the group's lr *during* step ``t``: a scheduler moves ``eta_t+1``, never a
factor of the update, and the first step takes ``f32(lr)`` of its own step.

``foreach=True`` (``_multi_tensor_asgd``) is another rounding of the same rule:
``p <- p - eta_t*(d + lambd*p)``, the average always ``ax + mu_t*(p - ax)``, and
``eta_t+1`` computed in float32 tensor arithmetic:
``f32(lr) * 1/f32(pow(1 + f32(f32(lambd*lr)*t), alpha))`` (each operation rounded to float32,
the power in float64). It parts from the single-tensor path by float32 ulps of ``eta``
(~3e-8 relative after 50 float64 steps, measured), so the builder takes ``foreach`` and
follows the path torch takes: ``True`` the foreach one, ``False`` and ``None`` the
single-tensor one (torch's choice for ``None`` on CPU tensors; on CUDA torch picks foreach and
computes with CUDA's float32 ``pow``, which the port does not mirror: set ``foreach``
explicitly there, and compare with ``weight-decay port-check``).

Built as ``chain(scale(-1) if maximize, add_decayed_weights(weight_decay, mask),
scale_by_asgd(lr, lambd, alpha, t0, foreach))``. ``add_decayed_weights`` is optax's own and
exactly torch's ``grad.add(param, alpha=weight_decay)``; :func:`scale_by_asgd` is hand-written:
optax has no averaged SGD, and no transform whose step size follows
``lr / (1 + lambd*lr*t)**alpha`` with torch's float32 rounding. It returns the whole step
(``new p - p``): the lr is not a last factor of the update (``eta_t`` is not ``lr`` times a
term free of ``lr``), so ``transforms.learning_rate`` cannot close the chain; the lr is a
hyper-parameter of :func:`scale_by_asgd` instead, injected (``optax.inject_hyperparams``) when
it is a schedule or a ported torch scheduler's stateful schedule.

State (torch key <-> optax field of :class:`ASGDState`): ``step`` <-> ``step`` (a float32
scalar like torch's, which stops counting at 2**24 as torch's does); ``eta`` <-> ``eta`` and
``mu`` <-> ``mu`` (``{name: 0-d float32}``: torch keeps one per parameter, all equal within a
group); ``ax`` <-> ``ax``. Before the first step (``step == 0``) ``eta``, ``mu`` and ``ax`` are
unused: the first step starts from ``f32(lr)``, ``1`` and the parameters, as torch does.

Weight decay: ``weight_decay`` is coupled (it passes through ``d``); ``lambd`` shrinks ``p``
by ``1 - lambd*eta_t`` beside the step, the decoupled form with torch's own step size.
"""

from __future__ import annotations

import sys
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from wd_core.optimizers import check_hyperparameter
from wd_core.validation import NONNEGATIVE
from wd_jax.optim.registry import StateKey, TorchOptimizer
from wd_jax.optim.transforms import is_stateful, sign


class ASGDState(NamedTuple):
    """State of :func:`scale_by_asgd`, under torch's keys: ``step`` (a scalar of torch's
    scalar dtype), ``eta`` and ``mu`` (``{name: 0-d array}``, torch's per-parameter scalars),
    ``ax`` (the average, like the params)."""

    step: jax.Array
    eta: optax.Updates
    mu: optax.Updates
    ax: optax.Updates


def _wide():
    """The dtype of torch's Python-float arithmetic: float64 (float32 without JAX's x64)."""
    return jax.dtypes.canonicalize_dtype(jnp.float64)


def scale_by_asgd(lr=1e-2, lambd=1e-4, alpha=0.75, t0=1e6, foreach=None,
                  scalar_dtype="float32") -> optax.GradientTransformation:
    """torch's ASGD step on the direction ``d`` (the gradient plus any coupled decay).

    Returns ``new p - p`` (see the module for the rule; ``foreach=True`` follows torch's
    foreach rounding, ``False``/``None`` its single-tensor one). ``lr`` is a number or, inside
    ``optax.inject_hyperparams``, the current lr. ``scalar_dtype``: the dtype torch rounds
    ``eta`` and ``mu`` to (its default dtype: float32 unless ``torch.set_default_dtype``
    changed it). Needs ``params``. Leaves of any shape and float dtype; ``eta`` and ``mu`` are
    computed in float64 (with x64) and rounded to ``scalar_dtype``, the step in the leaf's dtype.
    """

    def init_fn(params):
        scalar = jax.dtypes.canonicalize_dtype(scalar_dtype)
        return ASGDState(step=jnp.zeros([], scalar),
                         eta=jax.tree.map(lambda _: jnp.asarray(lr, scalar), params),
                         mu=jax.tree.map(lambda _: jnp.ones([], scalar), params),
                         ax=optax.tree.zeros_like(params))

    def next_eta(step):
        """eta_t+1 of torch's path, from the new step ``step`` (of the state's dtype)."""
        wide = _wide()
        lr_wide = jnp.asarray(lr, wide)
        if foreach:  # float32 tensor arithmetic: (lambd*lr)*step, 1 + ., ** alpha, 1/., * lr
            factor = jnp.asarray(lambd * lr, wide).astype(step.dtype) * step
            power = jnp.power((1 + factor).astype(wide), alpha).astype(step.dtype)
            return (1 / power) * lr_wide.astype(step.dtype)
        return lr_wide / (1 + jnp.asarray(lambd * lr, wide) * step.astype(wide)) ** alpha

    def update_fn(updates, state, params=None):
        if params is None:
            raise ValueError("scale_by_asgd needs params: call update(grads, state, params)")
        wide = _wide()
        first = state.step == 0
        step = state.step + 1  # torch: step_t += 1, in its scalar dtype
        eta_next = next_eta(step)
        mu_next = 1 / jnp.maximum(1.0, step.astype(wide) - t0)

        def stepped(d, p, eta):
            eta = jnp.where(first, jnp.asarray(lr, eta.dtype), eta).astype(wide)
            if foreach:  # p - eta*(d + lambd*p)
                return p - (d + lambd * p) * eta.astype(p.dtype)
            return p * (1 - lambd * eta).astype(p.dtype) - eta.astype(p.dtype) * d

        def averaged(p, mu, ax):
            mu = jnp.where(first, jnp.ones([], mu.dtype), mu)
            moved = ax + (p - ax) * mu.astype(p.dtype)
            return moved if foreach else jnp.where(mu == 1, p, moved)

        new = jax.tree.map(stepped, updates, params, state.eta)
        ax = jax.tree.map(averaged, new, state.mu, state.ax)
        return (jax.tree.map(lambda n, p: n - p, new, params),
                ASGDState(step=step,
                          eta=jax.tree.map(lambda e: eta_next.astype(e.dtype), state.eta),
                          mu=jax.tree.map(lambda m: mu_next.astype(m.dtype), state.mu),
                          ax=ax))

    return optax.GradientTransformation(init_fn, update_fn)


def torch_asgd(lr=1e-2, lambd=1e-4, alpha=0.75, t0=1e6, weight_decay=0.0, foreach=None,
               maximize=False, mask=None, scalar_dtype="float32") -> optax.GradientTransformation:
    """``torch.optim.ASGD(params, lr, lambd, alpha, t0, weight_decay, foreach, maximize)``.

    ``chain(scale(-1) if maximize, add_decayed_weights(weight_decay, mask),
    scale_by_asgd(lr, lambd, alpha, t0, foreach))``: see the module for the rule, where each
    decay sits and why the lr is inside the last transform. ``lr`` may be an optax schedule or
    a ported torch scheduler's stateful schedule. Raises ``ValueError`` where torch does:
    negative ``lr`` or ``weight_decay``.
    """
    check_hyperparameter("lr", lr, NONNEGATIVE)
    check_hyperparameter("weight_decay", weight_decay, NONNEGATIVE)
    for name, value in (("lambd", lambd), ("alpha", alpha), ("t0", t0)):
        check_hyperparameter(name, value)

    def asgd(lr):
        return scale_by_asgd(lr, lambd=lambd, alpha=alpha, t0=t0, foreach=foreach,
                             scalar_dtype=scalar_dtype)

    step = (optax.inject_hyperparams(asgd)(lr=lr) if is_stateful(lr) or callable(lr)
            else asgd(lr))
    return optax.chain(*sign(maximize), optax.add_decayed_weights(weight_decay, mask), step)


def torch_scalar_dtype() -> str:
    """torch's ``_get_scalar_dtype()`` (and ``as_tensor``'s dtype for a Python float): its
    default dtype, float64 or float32; float32 when torch is not imported."""
    torch = sys.modules.get("torch")
    if torch is not None and torch.get_default_dtype() == torch.float64:
        return "float64"
    return "float32"


def _torch_asgd_group(lr, lambd, alpha, t0, weight_decay, maximize, foreach=None):
    """A torch ``ASGD`` group, its eta and mu rounded to torch's current scalar dtype."""
    return torch_asgd(lr, lambd=lambd, alpha=alpha, t0=t0, weight_decay=weight_decay,
                      maximize=maximize, foreach=foreach, scalar_dtype=torch_scalar_dtype())


ASGD = TorchOptimizer(
    "torch.optim.ASGD",
    ("lr", "lambd", "alpha", "t0", "weight_decay", "maximize", "foreach"),
    _torch_asgd_group,
    state=(StateKey("eta", ASGDState, "eta"), StateKey("mu", ASGDState, "mu"),
           StateKey("ax", ASGDState, "ax")),
    step=StateKey("step", ASGDState, "step"),
    implementation=(),  # foreach changes the rounding of eta: it is an option here
    accepted={"capturable": False, "differentiable": False},
    cycled=None,
    adaptive=False,
    naive=None,  # optax has no averaged SGD
)
PORTS = (ASGD,)
