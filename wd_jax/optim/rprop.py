"""``torch.optim.Rprop`` as an optax chain, and its port.

``Rprop(lr, etas=(eta_minus, eta_plus), step_sizes=(s_min, s_max), maximize, foreach)``,
torch 2.13's ``_single_tensor_rprop``, per parameter ``p`` with gradient ``g`` (``-g`` if
``maximize``) and, elementwise::

    f      = eta_plus   where g*prev > 0
             eta_minus  where g*prev < 0
             1          where g*prev == 0                (NaN stays NaN)
    size  <- clamp(size*f, s_min, s_max)
    g     <- 0 where f == eta_minus                      (a sign change: no step, forgotten)
    p     <- p - sign(g)*size
    prev  <- g

with ``prev = 0`` and ``size = lr`` before the first step. ``_multi_tensor_rprop``
(``foreach``) does the same operations on lists: the same numbers. **The lr is only the initial
step size**: torch writes ``size = full_like(p, group["lr"])`` at the first step and never reads
the lr again, so a scheduler moves nothing after the first step (the port follows: the lr, a
schedule's value at the first step, sets the initial sizes and nothing else). **Rprop has no
weight decay** (no ``weight_decay`` option in torch): the builder takes no decay and no mask;
decaying a group is not something torch's Rprop can do.

Built as ``chain(scale(-1) if maximize, scale_by_torch_rprop(lr, etas, step_sizes))``; the last
transform returns the whole step ``-sign(g)*size``, so there is no ``learning_rate`` factor to
close the chain with. Hand-written because ``optax.scale_by_rprop`` is not torch's rule: its
update at step ``t`` is the one computed at step ``t - 1`` (``updates = where(s < 0, 0,
state.prev_updates)``: the first update is zero and every later one lags by a step), and
where ``g*prev == 0`` it keeps the size unclamped (torch clamps ``size*1``: an initial lr
outside ``[s_min, s_max]`` is clamped at the first step). ``optax.rprop`` (its chain with
``scale(-1)``) is measured against torch as the naive port.

State (torch key <-> optax field of :class:`RpropState`): ``step`` <-> ``count`` (int32; torch
keeps a float32 scalar that nothing reads), ``prev`` <-> ``prev``, ``step_size`` <->
``step_size``. Before the first step (``count == 0``) the sizes are set from the lr, as torch
does when it creates its state.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from wd_core.errors import InputError
from wd_core.optimizers import check_hyperparameter
from wd_core.validation import NONNEGATIVE, is_number
from wd_jax.optim.registry import StateKey, TorchOptimizer
from wd_jax.optim.transforms import is_stateful, sign


class RpropState(NamedTuple):
    """State of :func:`scale_by_torch_rprop`: steps taken (int32 scalar), torch's ``prev`` (the
    last gradient, zeroed where its sign flipped) and ``step_size``, like the params."""

    count: jax.Array
    prev: optax.Updates
    step_size: optax.Updates


def scale_by_torch_rprop(lr=1e-2, etas=(0.5, 1.2),
                         step_sizes=(1e-6, 50)) -> optax.GradientTransformation:
    """torch's Rprop step ``-sign(g)*size`` (see the module for the rule).

    ``lr``: the initial step size (a number or, inside ``optax.inject_hyperparams``, the
    current lr); used at the first step only. Leaves of any shape and float dtype; the sizes
    have the leaf's dtype, as torch's ``full_like(grad, lr)``.
    """
    eta_minus, eta_plus = etas
    size_min, size_max = step_sizes

    def init_fn(params):
        return RpropState(count=jnp.zeros([], jnp.int32),
                          prev=optax.tree.zeros_like(params),
                          step_size=jax.tree.map(lambda p: jnp.full_like(p, lr), params))

    def update_fn(updates, state, params=None):
        del params
        first = state.count == 0

        def leaf(g, prev, size):
            size = jnp.where(first, jnp.full_like(g, lr), size)
            s = jnp.sign(g * prev)
            factor = jnp.where(s > 0, jnp.asarray(eta_plus, g.dtype),
                               jnp.where(s < 0, jnp.asarray(eta_minus, g.dtype),
                                         jnp.where(s == 0, jnp.ones([], g.dtype), s)))
            size = jnp.clip(size * factor, min=size_min, max=size_max)
            g = jnp.where(factor == jnp.asarray(eta_minus, g.dtype), jnp.zeros([], g.dtype), g)
            return -(jnp.sign(g) * size), g, size

        out = jax.tree.map(leaf, updates, state.prev, state.step_size)
        is_out = lambda x: isinstance(x, tuple) and len(x) == 3  # noqa: E731
        pick = [jax.tree.map(lambda o, i=i: o[i], out, is_leaf=is_out) for i in range(3)]
        return pick[0], RpropState(count=optax.safe_increment(state.count), prev=pick[1],
                                   step_size=pick[2])

    return optax.GradientTransformation(init_fn, update_fn)


def check_rprop_arguments(lr, etas, step_sizes) -> None:
    """The checks of ``torch.optim.Rprop.__init__`` (``InputError``, a ``ValueError`` like
    torch's): ``lr >= 0``, ``0 < eta_minus < 1 < eta_plus``; and pairs where pairs go."""
    check_hyperparameter("lr", lr, NONNEGATIVE)
    for name, pair in (("etas", etas), ("step_sizes", step_sizes)):
        if not isinstance(pair, tuple | list) or len(pair) != 2 or not all(
                is_number(v) for v in pair):
            raise InputError(f"{name} must be a pair of numbers, got {pair!r}")
    if not 0.0 < etas[0] < 1.0 < etas[1]:
        raise InputError(f"Invalid eta values: {etas[0]}, {etas[1]}; accepted: "
                         f"0 < etas[0] < 1 < etas[1]")


def torch_rprop(lr=1e-2, etas=(0.5, 1.2), step_sizes=(1e-6, 50), foreach=None,
                maximize=False) -> optax.GradientTransformation:
    """``torch.optim.Rprop(params, lr, etas, step_sizes, foreach=, maximize=)``.

    ``chain(scale(-1) if maximize, scale_by_torch_rprop(lr, etas, step_sizes))`` (see the
    module). No ``weight_decay`` and no ``mask``: torch's Rprop has no decay. ``lr`` (the
    initial step size) may be an optax schedule or a ported torch scheduler's stateful
    schedule: its value at the first step is used. ``foreach`` changes nothing (same
    numbers). Raises ``ValueError`` where torch does.
    """
    del foreach  # torch's foreach path computes the same numbers
    check_rprop_arguments(lr, etas, step_sizes)

    def rprop(lr):
        return scale_by_torch_rprop(lr, etas=tuple(etas), step_sizes=tuple(step_sizes))

    step = (optax.inject_hyperparams(rprop)(lr=lr) if is_stateful(lr) or callable(lr)
            else rprop(lr))
    return optax.chain(*sign(maximize), step)


def naive_rprop(lr, etas=(0.5, 1.2), step_sizes=(1e-6, 50), maximize=False
                ) -> optax.GradientTransformation:
    """``optax.rprop`` with torch's hyper-parameters, as a user porting by name would (negated
    first with ``maximize``, which optax.rprop lacks)."""
    return optax.chain(*sign(maximize), optax.rprop(
        lr, eta_minus=etas[0], eta_plus=etas[1], min_step_size=step_sizes[0],
        max_step_size=step_sizes[1]))


RPROP = TorchOptimizer(
    "torch.optim.Rprop",
    ("lr", "etas", "step_sizes", "maximize"),
    torch_rprop,
    state=(StateKey("prev", RpropState, "prev"),
           StateKey("step_size", RpropState, "step_size")),
    step=StateKey("step", RpropState, "count"),
    implementation=("foreach",),
    accepted={"capturable": False, "differentiable": False},
    cycled=None,
    naive=naive_rprop,
)
PORTS = (RPROP,)
