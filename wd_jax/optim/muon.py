"""``torch.optim.Muon`` (torch 2.13) as an optax chain, its tolerance, and its port.

``Muon(lr, weight_decay, momentum, nesterov, ns_coefficients=(a, b, c), eps, ns_steps,
adjust_lr_fn)``, torch's ``_single_tensor_muon``, for 2-D parameters ``p`` (shape ``(A, B)``,
torch's ``(out, in)``) with gradient ``g`` (there is no ``maximize``)::

    buf <- buf.lerp(g, 1 - momentum)              = buf + (1 - momentum)*(g - buf)
    u    = g.lerp(buf, momentum) if nesterov else buf
    O    = NS(u)                                  Newton-Schulz, in bfloat16
    p   <- p*(1 - lr*weight_decay)                decoupled decay, scaled by the lr
    p   <- p - lr*ratio*O

    ratio = sqrt(max(1, A/B))        adjust_lr_fn None or "original"
            0.2*sqrt(max(A, B))      "match_rms_adamw"

with ``buf = 0`` before the first step. ``NS``: ``X = bf16(u)`` (transposed when ``A > B``),
``X <- X / max(||X||_F, eps)``, then ``ns_steps`` times ``G = X X^T``, ``U = b G + c G G``,
``X <- a X + U X``; each product and sum is computed in float32 and rounded once to bfloat16
(torch's ``addmm``), and ``O`` is that bfloat16 matrix. ``lerp`` is torch's: ``s + w(e - s)``
for ``|w| < 0.5``, ``e - (1 - w)(e - s)`` otherwise.

Built as ``chain(muon_momentum(momentum, nesterov), scale_by_newton_schulz(ns_coefficients,
ns_steps, eps), scale_by_adjusted_lr(adjust_lr_fn), add_decayed_weights(weight_decay, mask),
scale_by_learning_rate(lr))``, i.e. ``p + (-lr)*(ratio*O + weight_decay*p)``: the decay
decoupled as in AdamW, the lr (a schedule, a ported torch scheduler) the last factor; the two
last are optax's own. ``scale_by_adjusted_lr`` multiplies each leaf by torch's Python-float
``ratio`` of its shape (optax's ``scale_by_shape``, the same factor for a layout told
``(out, in)``, is private to ``optax.contrib._muon``). Hand-written: the momentum (torch's
``lerp`` rounding and its nesterov mix ``g.lerp(buf, momentum)``; ``optax.ema(momentum,
debias=False)`` is the same average up to the last bit without nesterov, ``optax.trace``
another one) and the iteration (``optax.contrib.orthogonalize_via_newton_schulz`` adds eps to
the norm instead of clamping it and rounds every product and sum to bfloat16 on its own: 23
bfloat16 ulps of ``max|O|`` away from torch on 8x5 matrices, measured, where the twin below is
bit-identical).

Tolerance: why the update cannot equal torch's to 1e-12, and how close it is.

1. Everything but ``NS`` is float64 arithmetic in torch's order: equal to 1e-12, proved by the
   tests with both iterations run in float64 (``ns_dtype=float64`` here, torch's function
   with its ``bfloat16()`` replaced by a float64 copy there). torch's bfloat16 ``O`` is ~1e-2
   from the float64 one: bfloat16's unit roundoff is ``u = 2**-8 = 3.9e-3``.
2. The twin rounds at the same ``3*ns_steps + 2`` points as torch (the cast, the
   normalisation, per iteration ``G``, ``U`` and ``X``), each from a float32 value. The float32
   values differ only through the order of the float32 sums (torch's oneDNN / MKL kernels
   against XLA's), by ``~k*2**-24`` relative for a length-``k`` product, and a rounding then
   differs only where that straddles a bfloat16 rounding boundary: by one ulp, at most
   ``2u`` of the element. Counting one such disagreement per iteration, reaching ``O``
   without growth, gives per step and per element::

       |O_twin - O_torch| <= tau * max|O|,   tau = 2u * ns_steps   (0.039 at 5 steps)

3. Growth: an iteration maps each singular value ``s`` of ``X`` to ``p(s) = a s + b s^3 +
   c s^5`` and multiplies a perturbation by at most ``|p'|``. For torch's coefficients ``p``
   maps ``[0, 1]`` (where the normalisation puts ``s``) into ``[0, 1.2024]`` and that into
   itself, so ``max|O| <= 1.2024``; on the band ``[0.682, 1.134]`` where it leaves the
   singular values of a well-conditioned matrix ``|p'| <= 1.83``, but ``p'(0) = a = 3.44``: a
   direction with a tiny singular value (a nearly rank-deficient momentum) is blown up by up
   to ``a**ns_steps = 485``, and its rounding with it. No bound below ``O(1)`` holds for every
   input, and torch is no closer to itself: oneDNN on against off, or 1 against 2 threads,
   measured up to 2.2 ulps (of ``2u*max|O|``) on Gaussian matrices and 27 on rank-2-plus-noise
   256x256 ones.
4. Measured, twin against torch (:func:`measure_update_error`, this CPU): Gaussian matrices
   bit-identical at 8x5 and 3x8, at most 0.7 ulps at 64x64, 1.5 at 100x60, 2.2 at 256x256,
   within ``tau`` (5 ulps); rank-2-plus-noise up to 2.7, and 29 on one 256x256 draw; on the
   tests' 8-wide momentum buffers over 50 steps, two updates in 150 had flipped roundings
   (at most 1.4 ulps).
5. Over ``S`` steps with the same gradients the momentum buffers (the inputs of ``NS``) stay
   equal to 1e-12, and the decay factor ``1 - lr*wd <= 1`` does not grow a difference, so the
   parameters differ by at most (:func:`parameter_tolerance`)::

       |p_twin - p_torch| <= S * lr * ratio * tau * max|O|,   max|O| <= 1.2025

   Measured on the tests' runs: at most 1.1% of it (1.2e-3 relative to the parameters).
   ``MUON.parameter_tolerance`` (:func:`muon_parameter_tolerance`) gives it from a group's
   options: ``weight-decay port-check`` judges Muon's parameters by it.
6. The decay alone (zero gradients: ``buf = 0``, ``O = NS(0) = 0``) is exact to 1e-12.

State (torch key <-> optax field): ``momentum_buffer`` <-> :class:`MuonMomentumState`'s
``momentum_buffer`` (zeros before the first step, which torch's lazily created zero buffer
continues exactly as; torch keeps no step). torch refuses non-2-D parameters; its documentation
pairs Muon with AdamW for the others (``optimizer_from_torch([muon, adamw], module)``).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from wd_core.errors import InputError
from wd_core.optimizers import check_hyperparameter
from wd_core.validation import NONNEGATIVE
from wd_jax.optim.registry import StateKey, TorchOptimizer
from wd_jax.optim.transforms import injected, is_stateful, learning_rate

DEFAULT_NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)
ADJUST_LR_FNS = (None, "original", "match_rms_adamw")
#: bfloat16's unit roundoff: 8 significant bits.
BFLOAT16_UNIT_ROUNDOFF = 2.0**-8
#: A bound on an element of an update ``O`` for torch's coefficients (the quintic's
#: largest value on ``[0, 1]``, 1.20237, rounded up; see the module).
MAX_UPDATE = 1.2025


class MuonMomentumState(NamedTuple):
    """State of :func:`muon_momentum`: torch's ``momentum_buffer``, like the params."""

    momentum_buffer: optax.Updates


def torch_lerp(start, end, weight):
    """``torch.lerp(start, end, weight)``: ``start + weight*(end - start)`` for
    ``|weight| < 0.5``, else ``end - (1 - weight)*(end - start)`` (torch's two branches)."""
    if isinstance(weight, float | int):
        if abs(weight) < 0.5:
            return start + weight * (end - start)
        return end + (weight - 1) * (end - start)
    return jnp.where(jnp.abs(weight) < 0.5, start + weight * (end - start),
                     end + (weight - 1) * (end - start))


def muon_momentum(momentum=0.95, nesterov=True) -> optax.GradientTransformation:
    """torch's Muon momentum: ``buf <- buf.lerp(g, 1 - momentum)``; the update is
    ``g.lerp(buf, momentum)`` with ``nesterov``, else ``buf``. Leaves of any shape and dtype."""

    def init_fn(params):
        return MuonMomentumState(momentum_buffer=optax.tree.zeros_like(params))

    def update_fn(updates, state, params=None):
        del params
        buffer = jax.tree.map(lambda g, b: torch_lerp(b, g, 1 - momentum), updates,
                              state.momentum_buffer)
        if nesterov:
            updates = jax.tree.map(lambda g, b: torch_lerp(g, b, momentum), updates, buffer)
        else:
            updates = buffer
        return updates, MuonMomentumState(momentum_buffer=buffer)

    return optax.GradientTransformation(init_fn, update_fn)


def _to(x, dtype):
    """``x`` in ``dtype``; through float32 when narrower (torch's ``bfloat16()`` of a float64
    tensor converts through float)."""
    if jnp.finfo(dtype).bits < 32 and jnp.finfo(x.dtype).bits > 32:
        x = x.astype(jnp.float32)
    return x.astype(dtype)


def newton_schulz(update, ns_coefficients=DEFAULT_NS_COEFFICIENTS, ns_steps=5, eps=1e-7,
                  dtype=jnp.bfloat16):
    """torch's ``_zeropower_via_newtonschulz`` of the 2-D ``update``, in ``dtype``.

    Returns an array of ``dtype`` and ``update``'s shape. Each product and sum is computed in
    ``promote(dtype, float32)`` (float32 for bfloat16, as torch's kernels accumulate) and
    rounded once to ``dtype`` where torch's ``addmm`` rounds.
    """
    if update.ndim != 2:
        raise InputError(f"Muon's Newton-Schulz iteration takes a 2-D matrix, got shape "
                         f"{update.shape}")
    a, b, c = ns_coefficients
    dtype = jnp.dtype(dtype)
    wide = jnp.promote_types(dtype, jnp.float32)

    def mm(x, y):
        return jnp.matmul(x, y, preferred_element_type=wide)

    x = _to(update, dtype)
    transposed = update.shape[0] > update.shape[1]
    if transposed:
        x = x.T
    norm = jnp.sqrt(jnp.sum(jnp.square(x.astype(wide)))).astype(dtype)
    norm = jnp.maximum(norm.astype(wide), jnp.asarray(eps, wide)).astype(dtype)
    x = (x.astype(wide) / norm.astype(wide)).astype(dtype)
    for _ in range(ns_steps):
        gram = mm(x, x.T).astype(dtype)
        gram_update = (b * gram.astype(wide) + c * mm(gram, gram)).astype(dtype)
        x = (a * x.astype(wide) + mm(gram_update, x)).astype(dtype)
    return x.T if transposed else x


def scale_by_newton_schulz(ns_coefficients=DEFAULT_NS_COEFFICIENTS, ns_steps=5, eps=1e-7,
                           dtype=jnp.bfloat16) -> optax.GradientTransformation:
    """Each 2-D leaf ``u`` replaced by :func:`newton_schulz` of it, back in ``u``'s dtype.
    Stateless."""

    def update_fn(updates, state, params=None):
        del params
        return jax.tree.map(lambda u: newton_schulz(u, ns_coefficients, ns_steps, eps,
                                                    dtype).astype(u.dtype), updates), state

    return optax.GradientTransformation(optax.init_empty_state, update_fn)


def adjusted_ratio(shape, adjust_lr_fn=None) -> float:
    """torch's ``_adjust_lr(1, adjust_lr_fn, shape)``: the factor of the lr for a parameter of
    ``shape`` (``(A, B)``, torch's ``(out, in)``), in Python floats as torch computes it."""
    rows, cols = shape[:2]
    if adjust_lr_fn in (None, "original"):
        return math.sqrt(max(1, rows / cols))
    if adjust_lr_fn == "match_rms_adamw":
        return 0.2 * math.sqrt(max(rows, cols))
    return 1.0


def scale_by_adjusted_lr(adjust_lr_fn=None) -> optax.GradientTransformation:
    """Each 2-D leaf times :func:`adjusted_ratio` of its shape. Stateless."""

    def update_fn(updates, state, params=None):
        del params
        return jax.tree.map(lambda u: adjusted_ratio(u.shape, adjust_lr_fn) * u,
                            updates), state

    return optax.GradientTransformation(optax.init_empty_state, update_fn)


def check_muon_arguments(lr, weight_decay, momentum, ns_coefficients, eps, ns_steps,
                         adjust_lr_fn) -> int:
    """torch's checks (``Muon.__init__``, and ``ns_steps < 100``, ``len(ns_coefficients) ==
    3`` which torch makes at the first step); returns ``ns_steps`` as an int (the port hands
    numbers over as floats)."""
    check_hyperparameter("lr", lr, NONNEGATIVE)
    check_hyperparameter("momentum", momentum, NONNEGATIVE)
    check_hyperparameter("weight_decay", weight_decay, NONNEGATIVE)
    check_hyperparameter("eps", eps)
    if adjust_lr_fn not in ADJUST_LR_FNS:
        raise InputError(f"Adjust learning rate function {adjust_lr_fn!r} is not supported; "
                         f"accepted: {', '.join(map(repr, ADJUST_LR_FNS))}")
    if len(tuple(ns_coefficients)) != 3:
        raise InputError(f"ns_coefficients must be 3 numbers (a, b, c), got {ns_coefficients!r}")
    if not float(ns_steps).is_integer() or not 0 <= ns_steps < 100:
        raise InputError(f"ns_steps must be an integer in [0, 100), got {ns_steps!r}")
    return int(ns_steps)


def torch_muon(lr=1e-3, weight_decay=0.1, momentum=0.95, nesterov=True,
               ns_coefficients=DEFAULT_NS_COEFFICIENTS, eps=1e-7, ns_steps=5,
               adjust_lr_fn=None, mask=None, ns_dtype=jnp.bfloat16
               ) -> optax.GradientTransformation:
    """``torch.optim.Muon(params, lr, weight_decay, momentum, nesterov, ns_coefficients, eps,
    ns_steps, adjust_lr_fn)`` for 2-D leaves in torch's ``(out, in)`` layout.

    See the module for the rule, the chain and the tolerance against torch (the iteration
    runs in bfloat16 as torch's does; ``ns_dtype`` other than bfloat16 is *not* torch's
    rule: the tests use float64 to check the rest of it to 1e-12). ``mask``: the decay's, as
    in ``optax.add_decayed_weights``. ``lr`` may be a schedule or a ported torch scheduler's
    stateful schedule, ``momentum`` a stateful one (a scheduler that cycles it). No
    ``maximize``: torch's Muon has none. Raises ``ValueError`` where torch does.
    """
    ns_steps = check_muon_arguments(lr, weight_decay, momentum, ns_coefficients, eps,
                                    ns_steps, adjust_lr_fn)
    ns_coefficients = tuple(float(v) for v in ns_coefficients)
    momentum_step = (injected(lambda momentum: muon_momentum(momentum, nesterov),
                              momentum=momentum)
                     if is_stateful(momentum) else muon_momentum(momentum, nesterov))
    return optax.chain(
        momentum_step,
        scale_by_newton_schulz(ns_coefficients, ns_steps, eps, ns_dtype),
        scale_by_adjusted_lr(adjust_lr_fn),
        optax.add_decayed_weights(weight_decay, mask),
        learning_rate(lr),
    )


def update_tolerance(ns_steps=5) -> float:
    """``tau = 2u * ns_steps``: the bound, relative to ``max|O|``, on an element of the twin's
    update against torch's (one bfloat16 ulp per iteration; see the module)."""
    return 2 * BFLOAT16_UNIT_ROUNDOFF * ns_steps


def parameter_tolerance(steps, lr, ratio, ns_steps=5) -> float:
    """``S * lr * ratio * tau * max|O|``: the absolute bound on a parameter after ``steps``
    steps with the same gradients (see the module), for torch's coefficients."""
    return steps * lr * ratio * update_tolerance(ns_steps) * MAX_UPDATE


def muon_parameter_tolerance(steps, options, shape) -> float:
    """:func:`parameter_tolerance` of a parameter of ``shape`` in a group with the builder's
    keyword ``options`` (``lr``, and ``ns_steps`` and ``adjust_lr_fn`` when given): the
    registry's ``parameter_tolerance``, which ``port-check`` judges the parameters by."""
    ratio = adjusted_ratio(tuple(shape), options.get("adjust_lr_fn"))
    return parameter_tolerance(steps, float(options["lr"]), ratio,
                               int(options.get("ns_steps", 5)))


def measure_update_error(shapes=((8, 5), (64, 64), (100, 60), (256, 256)), trials=5,
                         seed=0, kind="gaussian") -> dict[tuple, float]:
    """The worst ``|O_twin - O_torch| / (2u*max|O_torch|)`` (in bfloat16 ulps of the largest
    element) of :func:`newton_schulz` against torch's ``_zeropower_via_newtonschulz`` on
    ``trials`` matrices per shape: ``"gaussian"`` N(0, 1), or ``"low_rank"`` (rank 2 plus
    1e-3 noise). Needs torch; run it under ``jax.enable_x64(True)``."""
    import torch
    from torch.optim._muon import _zeropower_via_newtonschulz

    rng = np.random.default_rng(seed)
    worst = {}
    for shape in shapes:
        worst[shape] = 0.0
        for _ in range(trials):
            if kind == "gaussian":
                g = rng.standard_normal(shape)
            else:
                g = (rng.standard_normal((shape[0], 2)) @ rng.standard_normal((2, shape[1]))
                     + 1e-3 * rng.standard_normal(shape))
            expected = _zeropower_via_newtonschulz(
                torch.tensor(g), DEFAULT_NS_COEFFICIENTS, 5, 1e-7).double().numpy()
            actual = np.asarray(newton_schulz(jnp.asarray(g)), dtype=np.float64)
            ulp = 2 * BFLOAT16_UNIT_ROUNDOFF * np.max(np.abs(expected))
            worst[shape] = max(worst[shape], float(np.max(np.abs(actual - expected)) / ulp))
    return worst


def naive_muon(lr=1e-3, weight_decay=0.1, momentum=0.95, nesterov=True,
               ns_coefficients=DEFAULT_NS_COEFFICIENTS, eps=1e-7, ns_steps=5,
               adjust_lr_fn=None) -> optax.GradientTransformation:
    """``optax.contrib.muon`` with torch's hyper-parameters, as a user porting by name would:
    ``beta=momentum``, ``consistent_rms=0.2`` for ``"match_rms_adamw"``. It is not torch's
    rule: bias-corrected momentum and another nesterov mix, the iteration in the parameters'
    dtype with ``eps`` added to the norm, and the shape ratio of an ``(in, out)`` layout."""
    return optax.contrib.muon(
        lr, ns_coeffs=tuple(ns_coefficients), ns_steps=int(ns_steps), beta=momentum, eps=eps,
        weight_decay=weight_decay, nesterov=nesterov,
        consistent_rms=0.2 if adjust_lr_fn == "match_rms_adamw" else None)


MUON = TorchOptimizer(
    "torch.optim.Muon",
    ("lr", "weight_decay", "momentum", "nesterov", "ns_coefficients", "eps", "ns_steps",
     "adjust_lr_fn"),
    torch_muon,
    state=(StateKey("momentum_buffer", MuonMomentumState, "momentum_buffer"),),
    step=None,
    implementation=(),
    accepted={},
    cycled="momentum",
    naive=naive_muon,
    parameter_tolerance=muon_parameter_tolerance,
)
PORTS = (MUON,)
