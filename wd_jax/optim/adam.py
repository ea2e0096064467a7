"""``torch.optim.Adam`` (coupled L2, or decoupled with ``decoupled_weight_decay=True``;
``amsgrad`` or not) as optax chains, and its port.

``Adam(lr, betas, eps, weight_decay, amsgrad, maximize)``: ``g <- g + wd*p`` first (``-g`` if
``maximize``), so the decay passes through the moments; then ``m_t = b1*m + (1-b1)*g``,
``v_t = b2*v + (1-b2)*g**2`` and the update ``-lr * (m_t/(1-b1**t)) / (sqrt(v_t/(1-b2**t)) +
eps)`` (eps added after the root, as torch does; ``eps_root=0``): ``optax.adam``.

``amsgrad=True``: torch keeps the running maximum of the *raw* second moment,
``vmax_t = max(vmax_{t-1}, v_t)``, and divides by ``sqrt(vmax_t)/sqrt(1-b2**t) + eps``: the
maximum is taken before the bias correction, which then uses the current step. optax's
``scale_by_amsgrad`` is not this: with ``bias_correction_nu=True`` (``optax.amsgrad``) it
keeps the maximum of the bias-corrected ``v_t/(1-b2**t)`` (early, small-``t`` values weigh
more), with ``bias_correction_nu=False`` it divides by ``sqrt(vmax_t) + eps`` with no
correction at all; neither moves eps. So :func:`scale_by_torch_amsgrad` is written here
(optax's own moment and bias-correction helpers, torch's maximum and denominator).

State: ``exp_avg`` / ``exp_avg_sq`` / ``step`` <-> ``ScaleByAdamState.mu`` / ``.nu`` /
``.count``; with ``amsgrad`` ``exp_avg`` / ``exp_avg_sq`` / ``max_exp_avg_sq`` / ``step`` <->
``ScaleByTorchAmsgradState.exp_avg`` / ``.exp_avg_sq`` / ``.max_exp_avg_sq`` / ``.count``.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from wd_core.optimizers import check_adam_arguments
from wd_jax.optim.registry import StateKey, TorchOptimizer, states_of
from wd_jax.optim.transforms import injected, is_stateful, learning_rate, sign


def scale_by_adam(b1, b2, eps) -> optax.GradientTransformation:
    """``optax.scale_by_adam`` (``eps_root=0``: eps outside the root, as torch); a stateful
    ``b1`` (a scheduler that cycles beta1) injected."""
    return injected(optax.scale_by_adam, b1=b1, b2=b2, eps=eps)


class ScaleByTorchAmsgradState(NamedTuple):
    """State of :func:`scale_by_torch_amsgrad`: steps taken (int32 scalar) and torch's three
    buffers under torch's names, trees like the params."""

    count: jax.Array
    exp_avg: optax.Updates
    exp_avg_sq: optax.Updates
    max_exp_avg_sq: optax.Updates


def _torch_amsgrad(b1=0.9, b2=0.999, eps=1e-8) -> optax.GradientTransformation:
    def init_fn(params):
        return ScaleByTorchAmsgradState(
            count=jnp.zeros([], jnp.int32), exp_avg=optax.tree.zeros_like(params),
            exp_avg_sq=optax.tree.zeros_like(params),
            max_exp_avg_sq=optax.tree.zeros_like(params))

    def update_fn(updates, state, params=None):
        del params
        exp_avg = optax.tree.update_moment(updates, state.exp_avg, b1, 1)
        exp_avg_sq = optax.tree.update_moment_per_elem_norm(updates, state.exp_avg_sq, b2, 2)
        max_exp_avg_sq = jax.tree.map(jnp.maximum, state.max_exp_avg_sq, exp_avg_sq)
        count = optax.safe_increment(state.count)
        step = count.astype(jnp.result_type(float))  # float64 under x64, as torch's Python
        corrected = optax.tree.bias_correction(exp_avg, b1, count)
        root_correction = jnp.sqrt(1 - b2 ** step)  # sqrt(1 - b2**t), torch's bias_correction2**0.5
        updates = jax.tree.map(
            lambda m, v: m / (jnp.sqrt(v) / root_correction.astype(v.dtype) + eps),
            corrected, max_exp_avg_sq)
        return updates, ScaleByTorchAmsgradState(count, exp_avg, exp_avg_sq, max_exp_avg_sq)

    return optax.GradientTransformation(init_fn, update_fn)


def scale_by_torch_amsgrad(b1=0.9, b2=0.999, eps=1e-8) -> optax.GradientTransformation:
    """torch's AMSGrad direction (no lr): per leaf with gradient ``g``, at step ``t``,

    ``m_t = b1*m + (1-b1)*g``, ``v_t = b2*v + (1-b2)*g**2``, ``vmax_t = max(vmax_{t-1}, v_t)``
    (the raw moment), update ``(m_t/(1-b1**t)) / (sqrt(vmax_t)/sqrt(1-b2**t) + eps)``.

    Hand-written: ``optax.scale_by_amsgrad`` takes the maximum of ``v_t/(1-b2**t)`` (or drops
    the correction); see the module. Buffers in the params' dtypes, zeros at first; the
    corrections computed in the default float (float64 under x64, as torch's Python floats).
    A stateful ``b1`` (a scheduler that cycles beta1) is injected.
    """
    return injected(_torch_amsgrad, b1=b1, b2=b2, eps=eps)


def _direction(betas, eps, amsgrad) -> optax.GradientTransformation:
    b1, b2 = betas
    return scale_by_torch_amsgrad(b1, b2, eps) if amsgrad else scale_by_adam(b1, b2, eps)


def torch_adam(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False, *,
               maximize=False, mask=None) -> optax.GradientTransformation:
    """``torch.optim.Adam(params, lr, betas, eps, weight_decay, amsgrad, maximize)``: coupled
    L2.

    Built as ``chain(add_decayed_weights(wd, mask), adam(lr, b1, b2, eps))``, or with
    ``amsgrad`` ``chain(add_decayed_weights(wd, mask), scale_by_torch_amsgrad(b1, b2, eps),
    scale_by_learning_rate(lr))`` (``scale(-1)`` first with ``maximize``); see the module for
    the rule.
    """
    check_adam_arguments(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
    b1, b2 = betas
    if amsgrad or is_stateful(lr) or is_stateful(b1):
        adam = optax.chain(_direction(betas, eps, amsgrad), learning_rate(lr))
    else:
        adam = optax.adam(lr, b1=b1, b2=b2, eps=eps)
    return optax.chain(*sign(maximize), optax.add_decayed_weights(weight_decay, mask), adam)


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


def _torch_adam_group(lr, betas, eps, weight_decay, maximize, decoupled_weight_decay=False,
                      amsgrad=False):
    """A torch ``Adam`` group: coupled, or AdamW's rule with ``decoupled_weight_decay``."""
    if decoupled_weight_decay:
        return torch_adamw(lr, betas=betas, eps=eps, weight_decay=weight_decay,
                           amsgrad=amsgrad, maximize=maximize)
    return torch_adam(lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                      maximize=maximize)


def _naive_adam(lr, betas, eps, weight_decay, maximize, decoupled_weight_decay=False,
                amsgrad=False):
    """optax's namesake with torch's hyper-parameters: ``optax.amsgrad`` (its maximum of the
    bias-corrected moment) after the coupled decay; ``optax.adam`` without amsgrad (the twin,
    up to rounding); AdamW's namesake when decoupled."""
    if decoupled_weight_decay:
        return naive_adamw(lr, betas, eps, weight_decay, maximize, amsgrad=amsgrad)
    b1, b2 = betas
    namesake = optax.amsgrad if amsgrad else optax.adam
    return optax.chain(*sign(maximize), optax.add_decayed_weights(weight_decay),
                       namesake(lr, b1=b1, b2=b2, eps=eps))


STATE = (StateKey("exp_avg", optax.ScaleByAdamState, "mu"),
         StateKey("exp_avg_sq", optax.ScaleByAdamState, "nu"))
STEP = StateKey("step", optax.ScaleByAdamState, "count")
AMSGRAD_STATE = tuple(StateKey(key, ScaleByTorchAmsgradState, key)
                      for key in ("exp_avg", "exp_avg_sq", "max_exp_avg_sq"))
AMSGRAD_STEP = StateKey("step", ScaleByTorchAmsgradState, "count")
OPTIONS = ("lr", "betas", "eps", "weight_decay", "amsgrad", "maximize", "decoupled_weight_decay")

def state_functions(torch_class: str):
    """``(read_state, write_state)`` of a group of ``torch_class`` (Adam or AdamW): the
    declarative mapping of its kind, read off its optax state (amsgrad or not)."""
    plain = TorchOptimizer(torch_class, OPTIONS, _torch_adam_group, STATE, STEP)
    amsgrad = TorchOptimizer(torch_class, OPTIONS, _torch_adam_group, AMSGRAD_STATE,
                             AMSGRAD_STEP)

    def mapping(group_state) -> TorchOptimizer:
        return amsgrad if states_of(group_state, ScaleByTorchAmsgradState) else plain

    def read_state(group_state, group, torch_states):
        return mapping(group_state).state_from_torch(group_state, group, torch_states)

    def write_state(group_state, group):
        return mapping(group_state).state_to_torch(group_state, group)

    return read_state, write_state


_read, _write = state_functions("torch.optim.Adam")
ADAM = TorchOptimizer(
    "torch.optim.Adam", OPTIONS, _torch_adam_group, STATE, STEP, cycled="betas",
    accepted={"capturable": False, "differentiable": False}, naive=_naive_adam,
    read_state=_read, write_state=_write)
PORTS = (ADAM,)
