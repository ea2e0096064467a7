"""``torch.optim.Adagrad`` (coupled L2) as an optax chain, and its port.

``Adagrad(lr, lr_decay, weight_decay, initial_accumulator_value, eps, maximize)``, per leaf
``p`` with gradient ``g`` (``-g`` if ``maximize``), ``t`` counting steps from 1:

* ``g <- g + wd*p`` (coupled: the decay enters the sum of squares);
* ``s_t = s_{t-1} + g**2`` with ``s_0 = initial_accumulator_value`` (torch's default 0);
* ``p <- p - lr_t * g / (sqrt(s_t) + eps)`` with ``lr_t = lr / (1 + (t - 1)*lr_decay)``
  (eps *outside* the root; torch computes ``lr_t`` in Python floats from its ``step``).

Built as ``chain(add_decayed_weights(wd, mask), scale_by_torch_adagrad(lr_decay,
initial_accumulator_value, eps), scale_by_learning_rate(lr))``. The middle transform is
written by hand: optax's ``scale_by_rss`` (``optax.adagrad``) is not torch's rule, it puts
eps inside the root (``g * rsqrt(s + eps)``, and 0 where ``s == 0``), defaults its
accumulator to 0.1 and its eps to 1e-7, and has no ``lr_decay``, which needs torch's step
count (kept in the same state, under torch's name). The lr goes last, so that a ported torch
scheduler sets ``lr`` and the decay by the step multiplies it, as torch's ``clr`` does.

State (torch key <-> optax field of the group's state): ``step`` <->
``TorchAdagradState.step``, ``sum`` <-> ``TorchAdagradState.sum``. torch creates both in its
constructor (``step`` 0, ``sum`` full of ``initial_accumulator_value``), and at the first step
for the parameters of a group added later with ``add_param_group``; both times with the
*optimizer's* value (its ``defaults``), ignoring a group's own. The port reads torch's
``sum`` where it exists; where it does not (an added group not stepped yet) it keeps optax's
``init``, made from the *group's* value, which differs from torch's only when that added
group sets its own ``initial_accumulator_value`` (``parity_tests/test_optim_adagrad.py``
marks the case). An optax state whose step is 0 goes back to torch as no state: torch then
fills ``sum`` with the same value at its first step.

The namesake, ``optax.adagrad(lr, initial_accumulator_value=, eps=)`` after
``add_decayed_weights(wd)``, is not a twin (eps in the root, no ``lr_decay``; measured in
``parity_tests/test_optim_adagrad.py``).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from wd_core.optimizers import check_hyperparameter
from wd_core.validation import NONNEGATIVE
from wd_jax.optim.registry import (
    StateKey,
    TorchOptimizer,
    common_step,
    filled,
    replace_states,
)
from wd_jax.optim.transforms import learning_rate, sign


class TorchAdagradState(NamedTuple):
    """State of :func:`scale_by_torch_adagrad`, under torch's names: ``step`` (int32
    scalar, the steps taken) and ``sum`` (like the params: the initial value plus the sum of
    the squared gradients)."""

    step: jax.Array
    sum: optax.Updates


def scale_by_torch_adagrad(lr_decay=0.0, initial_accumulator_value=0.0,
                           eps=1e-10) -> optax.GradientTransformation:
    """torch's Adagrad direction: ``g / (sqrt(s_t) + eps) / (1 + (t - 1)*lr_decay)``.

    ``s_t = s_{t-1} + g*g``, ``s_0 = initial_accumulator_value``; ``t`` counts the updates
    from 1. The lr is left to a following ``scale_by_learning_rate``. Computes in each
    leaf's dtype (the step count cast to it).
    """

    def init_fn(params):
        return TorchAdagradState(
            step=jnp.zeros([], jnp.int32),
            sum=optax.tree.full_like(params, initial_accumulator_value))

    def update_fn(updates, state, params=None):
        del params
        step = optax.safe_increment(state.step)
        total = jax.tree.map(lambda g, s: s + g * g, updates, state.sum)

        def direction(g, s):
            decay = 1 + (step.astype(g.dtype) - 1) * lr_decay  # torch: 1 + (step - 1)*lr_decay
            return g / (jnp.sqrt(s) + eps) / decay

        updates = jax.tree.map(direction, updates, total)
        return updates, TorchAdagradState(step=step, sum=total)

    return optax.GradientTransformation(init_fn, update_fn)


def check_adagrad_arguments(*, lr, lr_decay, weight_decay, initial_accumulator_value,
                            eps) -> None:
    """The checks of ``torch.optim.Adagrad.__init__`` (``InputError``, a ``ValueError`` like
    torch's): every hyper-parameter >= 0."""
    for name, value in (("lr", lr), ("lr_decay", lr_decay), ("weight_decay", weight_decay),
                        ("initial_accumulator_value", initial_accumulator_value),
                        ("eps", eps)):
        check_hyperparameter(name, value, NONNEGATIVE)


def torch_adagrad(lr=1e-2, lr_decay=0.0, weight_decay=0.0, initial_accumulator_value=0.0,
                  eps=1e-10, maximize=False, mask=None) -> optax.GradientTransformation:
    """``torch.optim.Adagrad(params, lr, lr_decay, weight_decay, initial_accumulator_value,
    eps, maximize)``: coupled L2 (see the module for the rule).

    ``chain(scale(-1) if maximize, add_decayed_weights(weight_decay, mask),
    scale_by_torch_adagrad(lr_decay, initial_accumulator_value, eps),
    scale_by_learning_rate(lr))``. Any shapes, in the params' dtype; ``lr`` may be a schedule
    or a ported torch scheduler's stateful schedule. ``mask``: ``True`` where the decay
    applies (``None``: every leaf).
    """
    check_adagrad_arguments(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                            initial_accumulator_value=initial_accumulator_value, eps=eps)
    return optax.chain(
        *sign(maximize),
        optax.add_decayed_weights(weight_decay, mask),
        scale_by_torch_adagrad(lr_decay, initial_accumulator_value, eps),
        learning_rate(lr),
    )


def naive_adagrad(lr=1e-2, lr_decay=0.0, weight_decay=0.0, initial_accumulator_value=0.0,
                  eps=1e-10, maximize=False, mask=None) -> optax.GradientTransformation:
    """optax's namesake as a user porting by name writes it: ``optax.adagrad(lr,
    initial_accumulator_value=, eps=)`` after ``add_decayed_weights(weight_decay)``;
    ``lr_decay`` has no place in it and is dropped. Not torch's rule; measured, never used by
    the port."""
    del lr_decay  # optax.adagrad has no such argument
    return optax.chain(*sign(maximize), optax.add_decayed_weights(weight_decay, mask),
                       optax.adagrad(lr, initial_accumulator_value=initial_accumulator_value,
                                     eps=eps))


def _adagrad_group(lr, lr_decay, eps, weight_decay, initial_accumulator_value, maximize):
    return torch_adagrad(lr, lr_decay=lr_decay, weight_decay=weight_decay,
                         initial_accumulator_value=initial_accumulator_value, eps=eps,
                         maximize=maximize)


def _naive_group(lr, lr_decay, eps, weight_decay, initial_accumulator_value, maximize):
    return naive_adagrad(lr, lr_decay=lr_decay, weight_decay=weight_decay,
                         initial_accumulator_value=initial_accumulator_value, eps=eps,
                         maximize=maximize)


def _read_state(group_state, group, torch_states):
    """The declarative mapping, except for a parameter without torch state (a group added
    with ``add_param_group``, not stepped yet): torch fills its ``sum`` at the first step
    with ``optimizer.defaults["initial_accumulator_value"]``, not the group's own value, and
    so does the port."""
    step = common_step(group, {n: s.get("step") for n, s in torch_states.items()},
                       "Adagrad step counts")

    def replace(s):
        sums = {n: torch_states.get(n, {}).get("sum") for n in group.names}
        initial = group.defaults.get("initial_accumulator_value", 0.0)
        sums = {n: np.full(np.shape(s.sum[n]), initial) if v is None else v
                for n, v in sums.items()}
        return s._replace(step=jnp.asarray(step, dtype=s.step.dtype),
                          sum=filled(s.sum, group, sums, "sum"))

    return replace_states(group_state, (TorchAdagradState,), replace)


ADAGRAD = TorchOptimizer(
    "torch.optim.Adagrad",
    ("lr", "lr_decay", "eps", "weight_decay", "initial_accumulator_value", "maximize"),
    _adagrad_group, state=(StateKey("sum", TorchAdagradState, "sum"),),
    step=StateKey("step", TorchAdagradState, "step"),
    accepted={"differentiable": False}, naive=_naive_group, read_state=_read_state)
PORTS = (ADAGRAD,)
