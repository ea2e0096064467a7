"""A fast path for the chapter's step in JAX: analytic gradients, one compiled run.

The mathematics is the concise method's (and the scratch method's) plain SGD step with
weight decay on the weight only, written out instead of differentiated:

    r  = X w + b - y                         (n, 1)
    w' = (1 - lr*lambd) w - (lr / n) X^T r    (d, 1)
    b' = b - (lr / n) sum(r)                  (1,)

``block_rows=None`` computes it with two matrix products over the whole batch, so ``X`` is
read twice. ``block_rows=k`` is the *single-read* step: the batch is walked in row blocks of
``k`` rows (a ``lax.fori_loop``; a ragged last block is handled statically); each block is
gathered once, its residual ``r_blk`` and its share ``X_blk^T r_blk`` of the gradient are
computed while the block is still in cache, so ``X`` comes from memory once per step.
Either way the result is the idiomatic ``optax.chain(add_decayed_weights, sgd)`` step up
to rounding (``parity_tests/test_fused.py``).

Its step functions (``fused_step``, ``fused_sgd_step``, ``block_rows_for``,
``auto_block_rows``) mirror :mod:`wd_torch.fused` name for name; the runs differ
(``fused_step_function`` here, ``fused_epochs`` there).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from wd_core import blocking
from wd_core.blocking import check_block_rows
from wd_core.runspec import prepare_step
from wd_jax.device import jax_device, jax_dtype, numerics

#: Row-block size target of the single-read step on CPUs: a block of this many bytes stays
#: in the last-level cache between its two uses. 8 MiB was the fastest of 0.5-16 MiB for XLA's
#: CPU kernels on the benchmark machine (2 MiB L2 in all, 32 MiB L3; ``python -m
#: benchmarks.blocks``).
BLOCK_BYTES = 8 * 2**20


def block_rows_for(batch_size: int, num_inputs: int, itemsize: int) -> int:
    """Rows per block of the single-read step: as many rows as fit in ``BLOCK_BYTES``."""
    return blocking.block_rows_for(batch_size, num_inputs, itemsize, BLOCK_BYTES)


def auto_block_rows(batch_size: int, num_inputs: int, itemsize: int, platform: str = "cpu"):
    """The ``block_rows`` that ``train(implementation="fused")`` uses: the single-read step
    on CPUs for batches over ``wd_core.blocking.UNBLOCKED_BYTES``, else None."""
    return blocking.auto_block_rows(batch_size, num_inputs, itemsize, platform, BLOCK_BYTES)


def _block_sums(w, b, Xb, yb):
    """``(X_blk^T r_blk (d, 1), sum(r_blk) (1,), sum(r_blk**2) ())`` with ``r_blk = X_blk w +
    b - y_blk``."""
    r = Xb @ w + b - yb
    # (r^T X)^T rather than X^T r: XLA's CPU dot is far faster without the transposed operand.
    return (r.T @ Xb).T, jnp.sum(r, axis=0), jnp.sum(r * r)


def _gradient_sums(w, b, X, y, rows, block_rows):
    """``(X_rows^T r, sum(r), sum(r**2))`` over the batch ``rows`` of ``X`` (all rows when
    None).

    ``block_rows`` (static) None: two whole-batch products; k: single-read row blocks.
    """
    n = X.shape[0] if rows is None else rows.shape[0]

    def take(lo, size):
        if rows is None:
            return (jax.lax.dynamic_slice_in_dim(X, lo, size, 0),
                    jax.lax.dynamic_slice_in_dim(y, lo, size, 0))
        index = jax.lax.dynamic_slice_in_dim(rows, lo, size, 0)
        return X[index], y[index]

    if block_rows is None or block_rows >= n:
        return _block_sums(w, b, *take(0, n))
    full_blocks, tail = divmod(n, block_rows)

    def body(i, sums):
        return _added(sums, _block_sums(w, b, *take(i * block_rows, block_rows)))

    zeros = (jnp.zeros_like(w), jnp.zeros_like(b), jnp.zeros((), w.dtype))
    sums = jax.lax.fori_loop(0, full_blocks, body, zeros)
    if tail:  # static: the ragged block
        sums = _added(sums, _block_sums(w, b, *take(full_blocks * block_rows, tail)))
    return sums


def _added(sums, more):
    return tuple(a + b for a, b in zip(sums, more, strict=True))


def _apply(w, b, sums, n, lambd, lr):
    gw, gb = sums[:2]
    scale = lr / n
    return (1 - lr * lambd) * w - scale * gw, b - scale * gb


@functools.partial(jax.jit, static_argnames=("block_rows",))
def fused_step(w, b, X, y, lambd, lr, *, block_rows=None):
    """One SGD step with weight decay on ``w`` only, on device arrays; returns ``(w', b')``.

    Args: ``w`` (d, 1), ``b`` (1,), ``X`` (n, d), ``y`` (n, 1), ``lambd`` and ``lr`` scalars,
    all in one float dtype. ``w' = (1 - lr*lambd) w - lr * X^T r / n``, ``b' = b - lr *
    mean(r)``, ``r = X w + b - y``, computed in that dtype. ``block_rows``: None or the rows
    per block of the single-read step.
    """
    return _apply(w, b, _gradient_sums(w, b, X, y, None, block_rows), X.shape[0], lambd, lr)


def fused_sgd_step(w, b, X, y, *, lambd, lr, dtype="float32", device=None, block_rows=None):
    """:func:`fused_step` on numpy inputs, like :func:`wd_jax.sgd_step` (no ``method``).

    Inputs are float64 numpy (or lists) of shapes (d, 1), (1,), (n, d), (n, 1), cast to
    ``dtype`` on ``device``. Returns the new ``(w, b)`` as float64 numpy.
    """
    step = prepare_step(w, b, X, y, method="concise", lambd=lambd, lr=lr, dtype=dtype,
                        device=device)
    block_rows = check_block_rows(block_rows)
    dev = jax_device(step.device)
    with numerics(step.dtype):
        jdtype = jax_dtype(step.dtype)
        args = [jax.device_put(np.asarray(a, dtype=jdtype), dev)
                for a in (step.w, step.b, step.X, step.y, step.lambd, step.lr)]
        w_new, b_new = fused_step(*args, block_rows=block_rows)
        return np.asarray(w_new, dtype=np.float64), np.asarray(b_new, dtype=np.float64)


def fused_step_function(X, y, lambd, lr, block_rows):
    """The fused step as a step of :func:`wd_jax.training.epoch_function`, to trace:
    ``step((params, state), rows) -> ((params', state), loss)`` on the batch ``rows`` of
    ``X`` (n, d), ``y`` (n, 1) (``rows`` None: every row, in order, no gather), with
    ``params = {"w": (d, 1), "b": (1,)}``; ``loss`` is the
    batch's data loss ``mean(r**2) / 2`` at ``params`` (before the step), a by-product of its
    residual; ``block_rows`` (static) as in :func:`fused_step`."""

    def step(carry, rows):
        params, state = carry
        w, b = params["w"], params["b"]
        n = X.shape[0] if rows is None else rows.shape[0]
        sums = _gradient_sums(w, b, X, y, rows, block_rows)
        w, b = _apply(w, b, sums, n, lambd, lr)
        return ({"w": w, "b": b}, state), sums[2] / (2 * n)

    return step
