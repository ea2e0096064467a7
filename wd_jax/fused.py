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

Mirrors :mod:`wd_torch.fused` name for name.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from wd_core import blocking
from wd_core.blocking import check_block_rows
from wd_core.runspec import history_from_epochs, prepare_run, prepare_step
from wd_jax.device import (
    arrays_on_device,
    jax_device,
    jax_dtype,
    numerics,
    schedule_on_device,
    to_device,
)

#: Row-block size target of the single-read step on CPUs: a block of this many bytes stays
#: in the last-level cache between its two uses. 8 MiB was the fastest of 0.5-16 MiB for XLA's
#: CPU kernels on the benchmark machine (2 MiB L2 in all, 32 MiB L3; ``python -m
#: benchmarks.blocks``).
BLOCK_BYTES = 8 * 2**20


def block_rows_for(batch_size: int, num_inputs: int, itemsize: int) -> int:
    """Rows per block of the single-read step: as many rows as fit in ``BLOCK_BYTES``."""
    return blocking.block_rows_for(batch_size, num_inputs, itemsize, BLOCK_BYTES)


def auto_block_rows(batch_size: int, num_inputs: int, itemsize: int, platform: str = "cpu"):
    """The ``block_rows`` that :class:`FusedRun` uses when given ``"auto"``: the single-read
    step on CPUs for batches over ``wd_core.blocking.UNBLOCKED_BYTES``, else None."""
    return blocking.auto_block_rows(batch_size, num_inputs, itemsize, platform, BLOCK_BYTES)


def _block_sums(w, b, Xb, yb):
    """``(X_blk^T r_blk (d, 1), sum(r_blk) (1,))`` with ``r_blk = X_blk w + b - y_blk``."""
    r = Xb @ w + b - yb
    # (r^T X)^T rather than X^T r: XLA's CPU dot is far faster without the transposed operand.
    return (r.T @ Xb).T, jnp.sum(r, axis=0)


def _gradient_sums(w, b, X, y, rows, block_rows):
    """``(X_rows^T r, sum(r))`` over the batch ``rows`` of ``X`` (all rows when None).

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
        gw, gb = _block_sums(w, b, *take(i * block_rows, block_rows))
        return sums[0] + gw, sums[1] + gb

    sums = jax.lax.fori_loop(0, full_blocks, body, (jnp.zeros_like(w), jnp.zeros_like(b)))
    if tail:  # static: the ragged block
        gw, gb = _block_sums(w, b, *take(full_blocks * block_rows, tail))
        sums = (sums[0] + gw, sums[1] + gb)
    return sums


def _apply(w, b, sums, n, lambd, lr):
    gw, gb = sums
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


@functools.partial(jax.jit, static_argnames=("block_rows",))
def _fused_epochs(w, b, X, y, full, last, lambd, lr, *, block_rows):
    """Every step of a run: a ``lax.scan`` over epochs of a ``lax.scan`` over batches.

    ``full`` (E, S, B) and ``last`` (E, r) are the batch rows (``SyntheticData.
    batch_schedule``). Returns the parameters after each epoch, (E, d, 1) and (E, 1).
    """

    def step(params, rows):
        w, b = params
        sums = _gradient_sums(w, b, X, y, rows, block_rows)
        return _apply(w, b, sums, rows.shape[0], lambd, lr), None

    def epoch(params, batches):
        full_batches, last_batch = batches
        params, _ = jax.lax.scan(step, params, full_batches)
        if last_batch.shape[0]:  # static: a ragged batch in every epoch or in none
            params, _ = step(params, last_batch)
        return params, params

    _, (epoch_w, epoch_b) = jax.lax.scan(epoch, (w, b), (full, last))
    return epoch_w, epoch_b


@jax.jit
def _losses(epoch_w, epoch_b, X, y):
    """Data loss ``mean((X w_e + b_e - y)**2) / 2`` for every epoch e: (E,)."""
    r = jnp.einsum("nd,edk->enk", X, epoch_w) + epoch_b[:, None, :] - y[None]
    return jnp.mean(r * r, axis=(1, 2)) / 2


class FusedRun:
    """The steps of one training run on :func:`fused_step`, with the data on the device.

    Validates like :func:`wd_jax.train`, puts the data, the batch order and the initial
    parameters on the device once; :meth:`run` then executes all ``max_epochs`` epochs as
    one compiled call (no per-epoch losses) and may be called again (it restarts from the
    initial parameters). ``block_rows``: ``"auto"`` (:func:`auto_block_rows`), None or k.
    """

    def __init__(self, data, *, lambd, lr, max_epochs, init=None, dtype="float32", device=None,
                 block_rows="auto"):
        self.spec = spec = prepare_run(
            data, method="concise", lambd=lambd, lr=lr, max_epochs=max_epochs, init=init,
            dtype=dtype, device=device, epoch_params=True,
        )
        self.device = dev = jax_device(spec.device)
        itemsize = np.dtype(spec.dtype).itemsize
        if block_rows == "auto":
            block_rows = auto_block_rows(data.batch_size, data.num_inputs, itemsize,
                                         dev.platform)
        self.block_rows = check_block_rows(block_rows)
        with numerics(spec.dtype):
            jdtype = jax_dtype(spec.dtype)
            self._params = (to_device(spec.w0, jdtype, dev), to_device(spec.b0, jdtype, dev))
            X, y, X_val, y_val = arrays_on_device(data, spec.dtype, dev)
            self._data, self._val = (X, y), (X_val, y_val)
            self._batches = schedule_on_device(data, spec.max_epochs, dev)
            self._hyper = (to_device(spec.lambd, jdtype, dev), to_device(spec.lr, jdtype, dev))

    def run(self):
        """All steps from the initial parameters: ``(epoch_w (E, d, 1), epoch_b (E, 1))``.

        Returns device arrays without waiting for them (``jax.block_until_ready`` does).
        """
        with numerics(self.spec.dtype):
            return _fused_epochs(*self._params, *self._data, *self._batches, *self._hyper,
                                 block_rows=self.block_rows)

    def history(self, epoch_w, epoch_b):
        """A :class:`wd_core.History` of :meth:`run`'s output, losses computed on the device."""
        with numerics(self.spec.dtype):
            train_loss = _losses(epoch_w, epoch_b, *self._data)
            val_loss = _losses(epoch_w, epoch_b, *self._val)
            arrays = [np.asarray(a) for a in jax.device_get(
                (epoch_w, epoch_b, train_loss, val_loss))]
        history = history_from_epochs(self.spec, "jax", *arrays)
        history.config.update(method="fused", block_rows=self.block_rows)
        return history


def train_fast(data, *, lambd, lr, max_epochs, init=None, dtype="float32", device=None,
               block_rows="auto"):
    """:func:`wd_jax.train` of the concise method on :func:`fused_step`; a History.

    The same steps in the same order as ``train(method="concise")``; ``config["method"]`` is
    ``"fused"`` and ``config["block_rows"]`` the block size used.
    """
    fused = FusedRun(data, lambd=lambd, lr=lr, max_epochs=max_epochs, init=init, dtype=dtype,
                     device=device, block_rows=block_rows)
    return fused.history(*fused.run())
