"""``torch.nn.utils``'s gradient clipping, exactly, as optax transformations.

=====================================================  =========================================
torch (before ``optimizer.step()``)                    optax (first in the chain)
=====================================================  =========================================
``clip_grad_norm_(params, max_norm, norm_type)``       :func:`torch_clip_grad_norm`
``clip_grad_value_(params, clip_value)``               :func:`torch_clip_grad_value`
                                                       (``optax.clip``, exact)
=====================================================  =========================================

Both act on the raw gradients of all parameters at once, so in a port they come first:
``chain(torch_clip_grad_norm(max_norm, mask=...), partition(...))``, before the per-group
transforms and before any coupled weight decay, as torch's loop clips and then steps.

:func:`torch_clip_grad_norm` is written by hand: ``optax.clip_by_global_norm`` is a different
rule (it scales by ``max_norm / norm`` only when ``norm > max_norm``, with no ``1e-6``, and
only the 2-norm); ``docs/clipping.md`` measures the difference.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax

from wd_core.errors import InputError, InputTypeError
from wd_core.validation import NONNEGATIVE, check_number, is_number

EPS = 1e-6
"""Added to the total norm by torch before dividing (``max_norm / (total_norm + 1e-6)``)."""


def _check_norm_type(norm_type) -> float:
    """``norm_type`` as a float: a finite number > 0, or ``inf`` (``math.inf`` or ``"inf"``,
    as torch accepts)."""
    accepted = "a number > 0 or inf (math.inf or 'inf')"
    if isinstance(norm_type, str) and norm_type.strip().lower() == "inf":
        return math.inf
    if not is_number(norm_type):
        raise InputTypeError(f"norm_type must be {accepted}, got {norm_type!r}")
    value = float(norm_type)
    if not value > 0:  # NaN, 0, negatives and -inf
        raise InputError(
            f"norm_type must be {accepted}, got {norm_type!r} (torch also accepts 0, negative "
            f"orders and -inf, which are not norms and are refused here)"
        )
    return value


def _check_mask(mask):
    """``mask`` unchanged if it is None, a callable, or a pytree of Python/numpy booleans."""
    if mask is None or callable(mask):
        return mask
    for leaf in jax.tree.leaves(mask):
        if not isinstance(leaf, (bool, np.bool_)):
            raise InputTypeError(
                f"mask must be a pytree of booleans like the gradients (True: clipped), a "
                f"callable returning one, or None (every leaf); got a leaf {leaf!r}"
            )
    return mask


def _leaf_flags(mask, updates) -> list[bool]:
    """One Python bool per leaf of ``updates``: is it clipped (and counted in the norm)?"""
    if mask is None:
        return [True] * len(jax.tree.leaves(updates))
    mask_tree = mask(updates) if callable(mask) else mask
    try:
        flags = jax.tree.map(lambda m, sub: jax.tree.map(lambda _: bool(m), sub),
                             mask_tree, updates)
    except (ValueError, TypeError) as err:
        raise InputError(
            f"mask must have the structure of the gradients (or a prefix of it): {err}"
        ) from None
    return jax.tree.leaves(flags)


def _vector_norm(x: jax.Array, norm_type: float) -> jax.Array:
    """``torch.linalg.vector_norm(x, norm_type)`` over all elements, in ``x``'s dtype.

    ``inf``: ``max |x|`` (an empty ``x`` gives 0, where torch raises); 1: ``sum |x|``;
    2: ``sqrt(sum x*x)``; otherwise ``(sum |x|**p) ** (1/p)``, torch's order of operations.
    """
    if norm_type == math.inf:
        return jnp.max(jnp.abs(x), initial=0.0)
    if norm_type == 1.0:
        return jnp.sum(jnp.abs(x))
    if norm_type == 2.0:
        return jnp.sqrt(jnp.sum(x * x))
    return jnp.sum(jnp.abs(x) ** norm_type) ** (1.0 / norm_type)


def global_norm(grads: list[jax.Array], norm_type: float) -> jax.Array:
    """torch's total norm: the ``norm_type``-norm of the per-tensor ``norm_type``-norms.

    Each tensor's norm is computed in its own dtype; the stack of norms is promoted (float32
    with float64 gives float64, as ``torch.stack`` does) and the total is in that dtype.
    """
    norms = [_vector_norm(g, norm_type) for g in grads]
    return _vector_norm(jnp.stack(norms), norm_type)


def torch_clip_grad_norm(max_norm, norm_type=2.0, error_if_nonfinite=False,
                         mask=None) -> optax.GradientTransformation:
    """The twin of ``torch.nn.utils.clip_grad_norm_(parameters, max_norm, norm_type,
    error_if_nonfinite)`` applied to all parameters at once.

    With ``g_i`` the gradient leaves selected by ``mask``::

        total = || (||g_1||_p, ..., ||g_k||_p) ||_p          (p = norm_type; inf: max |.|)
        coef  = min((1 / (total + 1e-6)) * max_norm, 1.0)   (torch's float / Tensor is
                                                             reciprocal, then multiply)
        g_i  <- g_i * coef                                   (always, even when coef == 1)

    The gradients are *always* multiplied, by 1.0 when the norm is at most about
    ``max_norm``; just above it the ``1e-6`` makes ``coef`` slightly less than
    ``max_norm / total``. ``optax.clip_by_global_norm`` is not this rule (see the module
    docstring). NaN or inf gradients give a NaN or inf total and spread, as in torch with
    ``error_if_nonfinite=False``.

    Args:
      max_norm: a finite number >= 0.
      norm_type: a number > 0 or ``inf`` (``math.inf`` or ``"inf"``). torch also takes 0,
        negative orders and ``-inf``; they are not norms and are refused.
      error_if_nonfinite: must be False. torch raises ``RuntimeError`` when the total is NaN
        or inf; a jitted optax update cannot raise on a traced value, so ``True`` is refused
        (``InputError``) rather than silently ignored. Check ``jnp.isfinite`` of the norm
        yourself (e.g. under ``jax.experimental.checkify``) if you need the error.
      mask: ``None`` (every leaf), or a pytree of booleans like the gradients (or a prefix of
        it), or a callable returning one from the updates, as in ``optax.masked``. A
        ``False`` leaf is neither counted in the norm nor scaled: torch's
        ``clip_grad_norm_`` sees only parameters that have a ``.grad`` (e.g. not those with
        ``requires_grad=False``).

    Dtypes: each leaf's norm in its own dtype; the total and ``coef`` in the promoted dtype of
    the norms; each leaf is multiplied by ``coef`` cast to the leaf's dtype (torch's in-place
    ``mul_`` of a float32 tensor by a float64 scalar tensor). Shapes and dtypes of the updates
    are kept. float64 agrees with torch within rtol 1e-12; float32 within 1e-6 (torch and
    XLA sum the norms in different orders). torch's return value, the total norm, is
    :func:`global_norm` of the selected leaves. Stateless: ``init`` returns
    ``optax.EmptyState()``; ``params`` are not read; ``update`` can be jitted (the mask is
    static).

    Returns:
      An ``optax.GradientTransformation``.
    """
    max_norm = check_number("max_norm", max_norm, NONNEGATIVE)
    norm_type = _check_norm_type(norm_type)
    if not isinstance(error_if_nonfinite, bool):
        raise InputTypeError(f"error_if_nonfinite must be True or False, got "
                             f"{error_if_nonfinite!r}")
    if error_if_nonfinite:
        raise InputError(
            "error_if_nonfinite=True cannot be ported: torch raises RuntimeError when the "
            "total norm is NaN or inf, and a jitted optax update cannot raise on a traced "
            "value; accepted: error_if_nonfinite=False (check jnp.isfinite of the norm "
            "yourself, e.g. with jax.experimental.checkify)"
        )
    mask = _check_mask(mask)

    def update_fn(updates, state, params=None):
        del params
        leaves, treedef = jax.tree.flatten(updates)
        flags = _leaf_flags(mask, updates)
        chosen = [g for g, keep in zip(leaves, flags, strict=True) if keep]
        if not chosen:  # torch: no gradient, nothing to clip
            return updates, state
        total = global_norm(chosen, norm_type)
        coef = jnp.minimum(jnp.reciprocal(total + EPS) * max_norm, 1.0)
        clipped = [g * coef.astype(g.dtype) if keep else g
                   for g, keep in zip(leaves, flags, strict=True)]
        return jax.tree.unflatten(treedef, clipped), state

    return optax.GradientTransformation(optax.init_empty_state, update_fn)


def torch_clip_grad_value(clip_value, mask=None) -> optax.GradientTransformation:
    """The twin of ``torch.nn.utils.clip_grad_value_(parameters, clip_value)``.

    ``g <- clamp(g, -clip_value, clip_value)`` element-wise, in each leaf's dtype (NaN stays
    NaN). This is ``optax.clip(clip_value)`` exactly (``jnp.clip``: the lower bound, then the
    upper, as torch's ``clamp_min_`` then ``clamp_max_``).

    Args:
      clip_value: a finite number >= 0.
      mask: ``None`` (every leaf), or a pytree of booleans like the gradients (or a prefix),
        or a callable returning one: ``optax.masked(optax.clip(clip_value), mask)``; a
        ``False`` leaf is passed through (torch: a parameter without ``.grad``).

    State: ``optax.EmptyState()``, or ``optax.MaskedState(inner_state=EmptyState())`` with a
    mask; no arrays either way.

    Returns:
      An ``optax.GradientTransformation``.
    """
    clip_value = check_number("clip_value", clip_value, NONNEGATIVE)
    mask = _check_mask(mask)
    tx = optax.clip(clip_value)
    return tx if mask is None else optax.masked(tx, mask)


__all__ = ["torch_clip_grad_norm", "torch_clip_grad_value", "global_norm", "EPS"]
