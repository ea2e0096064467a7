"""``torch.optim.Adafactor`` (torch's own, as in torch 2.13) as an optax chain, and its port.

``Adafactor(lr=1e-2, beta2_decay=-0.8, eps=(eps1=None, eps2=1e-3), d=1.0, weight_decay=0.0,
maximize=False)``, per parameter ``p`` with gradient ``g`` (``-g`` if ``maximize``) at step
``t`` (``eps1 = None``: the machine epsilon of the parameter's dtype)::

    w_t     = t**beta2_decay                        (1 - beta2_t; w_1 = 1)
    rho_t   = min(lr, 1/sqrt(t))                    (the relative step: lr caps it)
    alpha_t = max(eps2, rms(p_{t-1})) * rho_t       (rms(x) = ||x||_2 / sqrt(numel))
    p      <- (1 - lr*wd) p                         (decoupled decay, scaled by lr, not rho)
    p >= 2-D (factored over the last two dims, m x n; leading dims batch):
        row_var <- lerp(row_var, mean_n(g**2), w_t)           shape (..., m, 1)
        col_var <- lerp(col_var, mean_m(g**2), w_t)           shape (..., 1, n)
        V = row_var col_var / max(mean_m(row_var), eps1)
    p 0-D or 1-D:
        variance <- lerp(variance, g**2, w_t);  V = variance
    U = g / sqrt(max(V, eps1**2))
    p <- p - alpha_t * U / max(1, rms(U)/d)

Built as ``chain(scale(-1) if maximize, scale_by_torch_factored_rms(beta2_decay, eps1),
clip_by_block_rms(d), scale_by_param_block_rms(eps2), scale_by_relative_step(lr),
add_decayed_weights(wd, mask), scale_by_learning_rate(lr))``: the update is
``-lr*(min(1, 1/(lr sqrt t)) max(eps2, rms(p)) clip(U) + wd*p) = -alpha_t clip(U) -
lr*wd*p``, torch's step (``lr*min(1, 1/(lr sqrt t)) = rho_t``). optax's
``clip_by_block_rms`` (``u/max(1, rms(u)/d)``) and ``scale_by_param_block_rms``
(``u*max(eps2, rms(p))``, of the parameters before the step) are exactly torch's rules.
Written here:

- :func:`scale_by_torch_factored_rms`: optax's ``scale_by_factored_rms`` is not torch's
  estimator: it factors the two *largest* dims (torch: the last two) and only when both have
  ``min_dim_size_to_factor`` (128) elements, adds ``epsilon`` to ``g**2`` before averaging,
  has none of torch's clamps (``max(mean(row_var), eps1)``, ``max(V, eps1**2)``) and computes
  its decay ``1 - t**-0.8`` in float32;
- :func:`scale_by_relative_step`: ``min(1, 1/(lr sqrt t))``, so that the scheduled lr (last)
  gives torch's ``min(lr, 1/sqrt t)``; a torch scheduler's lr (stateful) is injected in both.

optax's ``adafactor`` (the namesake) differs further: a constant lr (no ``min(lr,
1/sqrt t)``), its decay ``weight_decay_rate * p`` not scaled by the lr, and no factoring below
128 elements.

State (per parameter): ``step`` <-> ``TorchAdafactorState.count`` (and
``RelativeStepState.count``, the same number); ``row_var`` / ``col_var``
(>= 2-D parameters) / ``variance`` (0-D, 1-D) <-> its fields of those names (each a tree like
the params; where a parameter has no such entry the leaf is an empty placeholder).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from wd_core.errors import InputError
from wd_jax.optim.registry import (
    TorchOptimizer,
    common_step,
    filled,
    replace_states,
    states_of,
)
from wd_jax.optim.transforms import is_stateful, learning_rate, sign


def _check_arguments(lr, beta2_decay, eps, d, weight_decay) -> None:
    """torch's checks of ``Adafactor.__init__``, as an ``InputError`` (a ``ValueError``); a
    schedule's lr is not checked."""
    eps1, eps2 = eps
    problems = [
        (callable(lr) or is_stateful(lr) or lr >= 0, f"lr should be >= 0, got {lr}"),
        (beta2_decay <= 0, f"beta2_decay should be <= 0, got {beta2_decay}"),
        (eps1 is None or eps1 >= 0, f"eps[0] (epsilon1) should be None or >= 0, got {eps1}"),
        (eps2 >= 0, f"eps[1] (epsilon2) should be >= 0, got {eps2}"),
        (d >= 1, f"d (the clipping threshold) should be >= 1, got {d}"),
        (weight_decay >= 0, f"weight_decay should be >= 0, got {weight_decay}"),
    ]
    for ok, message in problems:
        if not ok:
            raise InputError(message)


KEYS = ("row_var", "col_var", "variance")


class TorchAdafactorState(NamedTuple):
    """State of :func:`scale_by_torch_factored_rms`: steps taken (int32 scalar) and torch's
    per-parameter entries, trees like the params (an empty placeholder where torch has no
    such entry: ``variance`` of a factored parameter, ``row_var``/``col_var`` of a 0-D or
    1-D one)."""

    count: jax.Array
    row_var: optax.Updates
    col_var: optax.Updates
    variance: optax.Updates


def _factored(param) -> bool:
    """torch factors a parameter of two or more dims (``grad.dim() > 1``)."""
    return np.ndim(param) > 1


def _placeholder(param) -> jax.Array:
    return jnp.zeros((0,), dtype=param.dtype)


def _lerp(start, end, weight):
    """torch's ``lerp``: ``start + w*(end - start)`` for ``w < 0.5``, else ``end - (end -
    start)*(1 - w)`` (exact at ``w = 1``: the first step copies ``end``)."""
    return jnp.where(weight < 0.5, start + weight * (end - start),
                     end - (end - start) * (1 - weight))


def _epsilon1(eps1, params) -> float:
    """``eps1``, or torch's default: the machine epsilon of the parameters' dtype (torch takes
    the first parameter's for the whole group, so a group of mixed dtypes is refused)."""
    if eps1 is not None:
        return eps1
    dtypes = {jnp.dtype(p.dtype) for p in jax.tree.leaves(params)}
    if len(dtypes) > 1:
        raise InputError(
            f"Adafactor with eps=(None, ...) over parameters of dtypes "
            f"{sorted(str(d) for d in dtypes)}: torch uses the machine epsilon of the group's "
            f"first parameter for all of them, which optax's tree does not order; accepted: "
            f"one dtype per group, or eps[0] given")
    return float(jnp.finfo(dtypes.pop()).eps) if dtypes else 0.0


def scale_by_torch_factored_rms(beta2_decay=-0.8, eps1=None) -> optax.GradientTransformation:
    """torch's Adafactor direction ``U = g / sqrt(max(V, eps1**2))`` (see the module).

    Hand-written (optax's ``scale_by_factored_rms`` factors other dims, adds eps before the
    mean, lacks torch's clamps and decays in float32). Per leaf: >= 2-D factored over the last
    two dims (``row_var`` (..., m, 1), ``col_var`` (..., 1, n)), else ``variance`` like the
    leaf; ``w_t = t**beta2_decay`` in the default float (float64 under x64, as torch's Python
    float), the statistics in the leaf's dtype. ``eps1=None``: the leaves' machine epsilon.
    """

    def init_fn(params):
        def row(p):
            return jnp.zeros((*p.shape[:-1], 1), p.dtype) if _factored(p) else _placeholder(p)

        def col(p):
            return (jnp.zeros((*p.shape[:-2], 1, p.shape[-1]), p.dtype) if _factored(p)
                    else _placeholder(p))

        def variance(p):
            return _placeholder(p) if _factored(p) else jnp.zeros_like(p)

        _epsilon1(eps1, params)
        return TorchAdafactorState(
            count=jnp.zeros([], jnp.int32), row_var=jax.tree.map(row, params),
            col_var=jax.tree.map(col, params), variance=jax.tree.map(variance, params))

    def update_fn(updates, state, params=None):
        del params
        count = optax.safe_increment(state.count)
        weight = count.astype(jnp.result_type(float)) ** beta2_decay
        eps = _epsilon1(eps1, updates)

        def leaf(g, row_var, col_var, variance):
            w = weight.astype(g.dtype)
            if _factored(g):
                row_var = _lerp(row_var, jnp.mean(g * g, axis=-1, keepdims=True), w)
                col_var = _lerp(col_var, jnp.mean(g * g, axis=-2, keepdims=True), w)
                estimate = (row_var * col_var) / jnp.maximum(
                    jnp.mean(row_var, axis=-2, keepdims=True), eps)
            else:
                variance = _lerp(variance, g * g, w)
                estimate = variance
            return (jax.lax.rsqrt(jnp.maximum(estimate, eps * eps)) * g,
                    (row_var, col_var, variance))

        leaves, tree = jax.tree.flatten(updates)
        results = [leaf(*args) for args in zip(
            leaves, *(tree.flatten_up_to(getattr(state, k)) for k in KEYS), strict=True)]
        directions = tree.unflatten([direction for direction, _ in results])
        stats = [tree.unflatten([entries[i] for _, entries in results]) for i in range(3)]
        return directions, TorchAdafactorState(count, *stats)

    return optax.GradientTransformation(init_fn, update_fn)


class RelativeStepState(NamedTuple):
    """State of :func:`scale_by_relative_step`: steps taken (int32 scalar)."""

    count: jax.Array


def _relative_step(lr) -> optax.GradientTransformation:
    def init_fn(params):
        del params
        return RelativeStepState(count=jnp.zeros([], jnp.int32))

    def update_fn(updates, state, params=None):
        del params
        count = optax.safe_increment(state.count)
        root = jnp.sqrt(count.astype(jnp.result_type(float)))
        factor = jnp.minimum(1.0, 1.0 / (lr * root))  # lr = 0: inf -> 1, and lr*1 = 0
        updates = jax.tree.map(lambda u: u * factor.astype(u.dtype), updates)
        return updates, RelativeStepState(count)

    return optax.GradientTransformation(init_fn, update_fn)


def scale_by_relative_step(lr) -> optax.GradientTransformation:
    """``u * min(1, 1/(lr sqrt t))`` at step ``t``: with the lr applied last, torch's relative
    step ``rho_t = min(lr, 1/sqrt t)``. ``lr`` a number, or a schedule of the count or a
    stateful one (a torch scheduler's), injected as :func:`learning_rate` injects it."""
    if callable(lr) or is_stateful(lr):
        return optax.inject_hyperparams(_relative_step)(lr=lr)
    return _relative_step(lr)


def torch_adafactor(lr=1e-2, beta2_decay=-0.8, eps=(None, 1e-3), d=1.0, weight_decay=0.0, *,
                    maximize=False, mask=None) -> optax.GradientTransformation:
    """``torch.optim.Adafactor(params, lr, beta2_decay, eps, d, weight_decay, maximize)``.

    ``chain(scale(-1) if maximize, scale_by_torch_factored_rms(beta2_decay, eps[0]),
    clip_by_block_rms(d), scale_by_param_block_rms(eps[1]), scale_by_relative_step(lr),
    add_decayed_weights(weight_decay, mask), scale_by_learning_rate(lr))``: decoupled decay
    ``(1 - lr*wd) p`` (scaled by the lr, a torch scheduler's included, not by the relative
    step). Call ``update`` with ``params``. Any shapes; computes in the params' dtypes.
    """
    eps1, eps2 = eps
    _check_arguments(lr, beta2_decay, eps, d, weight_decay)
    return optax.chain(
        *sign(maximize),
        scale_by_torch_factored_rms(beta2_decay, eps1),
        optax.clip_by_block_rms(d),
        optax.scale_by_param_block_rms(eps2),
        scale_by_relative_step(lr),
        optax.add_decayed_weights(weight_decay, mask),
        learning_rate(lr),
    )


def naive_adafactor(lr, beta2_decay, eps, d, weight_decay, maximize):
    """optax's namesake with torch's hyper-parameters, as a user porting by name would write
    it: ``optax.adafactor(lr, decay_rate=-beta2_decay, clipping_threshold=d,
    weight_decay_rate=wd, eps=eps[0] or optax's 1e-30)`` (its ``scale_by_param_block_rms``
    floor is optax's 1e-3 = torch's eps2 default)."""
    eps1, _ = eps
    namesake = optax.adafactor(
        learning_rate=lr, decay_rate=-beta2_decay, clipping_threshold=d,
        weight_decay_rate=weight_decay or None, **({} if eps1 is None else {"eps": eps1}))
    return optax.chain(*sign(maximize), namesake)


# ---- the port's state mapping ------------------------------------------------------------------


def read_state(group_state, group, torch_states: dict[str, dict]):
    """The group's optax state holding torch's (``step`` as both counts, the factored
    statistics' and the relative step's; ``row_var``/``col_var`` or ``variance`` by the
    parameter's dims; zeros where torch has no state yet)."""
    step = common_step(group, {n: s.get("step") for n, s in torch_states.items()},
                       "Adafactor step counts")

    def replace(s):
        count = jnp.asarray(step, dtype=s.count.dtype)
        if isinstance(s, RelativeStepState):
            return s._replace(count=count)
        updates = {key: filled(getattr(s, key), group,
                               {n: t.get(key) for n, t in torch_states.items()}, key)
                   for key in KEYS}
        return s._replace(count=count, **updates)

    return replace_states(group_state, (TorchAdafactorState, RelativeStepState), replace)


def write_state(group_state, group) -> dict[str, dict[str, np.ndarray]]:
    """``{name: {torch key: array}}``: ``step`` and the entries torch has for the parameter
    (``row_var`` and ``col_var`` of a factored one, else ``variance``); ``{}`` before the
    first step."""
    (state,) = states_of(group_state, TorchAdafactorState)
    named = {n: {} for n in group.names}
    step = int(state.count)
    if step == 0:
        return named
    for name in group.names:
        named[name]["step"] = np.asarray(float(step))
        factored = np.ndim(state.row_var[name]) > 1
        for key in ("row_var", "col_var") if factored else ("variance",):
            named[name][key] = np.asarray(getattr(state, key)[name])
    return named


ADAFACTOR = TorchOptimizer(
    "torch.optim.Adafactor", ("lr", "beta2_decay", "eps", "d", "weight_decay", "maximize"),
    torch_adafactor, accepted={}, cycled=None, naive=naive_adafactor,
    read_state=read_state, write_state=write_state)
PORTS = (ADAFACTOR,)
