"""A fast path for the chapter's step in PyTorch: analytic gradients, in place, no autograd.

The mathematics is the concise method's (and the scratch method's) plain SGD step with
weight decay on the weight only, written out instead of differentiated:

    r  = X w + b - y                         (n, 1)
    w' = (1 - lr*lambd) w - (lr / n) X^T r    (d, 1)
    b' = b - (lr / n) sum(r)                  (1,)

It runs under ``torch.no_grad`` on preallocated tensors, four kernels per step
(``addmm`` for ``Xw - y``, ``add_`` of ``b``, ``addmm_`` that decays and steps ``w`` at once,
``sub_`` of the bias), with no optimizer object and no graph. ``block_rows=None`` reads ``X``
twice (two products over the whole batch); ``block_rows=k`` is the *single-read* step: the
batch is walked in row blocks of ``k`` rows, each gathered once into a small buffer that
stays in cache while its residual and its share ``X_blk^T r_blk`` of the gradient are
computed. Either way the result is ``torch.optim.SGD``'s step up to rounding
(``parity_tests/test_fused.py``).

Mirrors :mod:`wd_jax.fused` name for name.
"""

from __future__ import annotations

import numpy as np
import torch

from wd_core import blocking
from wd_core.blocking import check_block_rows
from wd_core.runspec import history_from_epochs, prepare_run, prepare_step
from wd_torch.device import arrays_on_device, to_tensor, torch_device, torch_dtype
from wd_torch.models import squared_loss

#: Row-block size target of the single-read step on CPUs: a block of this many bytes stays
#: in cache between its two uses (the benchmark machine: 2 MiB L2 in all, 32 MiB L3). For
#: torch's CPU kernels blocks of 0.5-16 MiB ran within about 25% of each other there
#: (``python -m benchmarks.blocks``); 4 MiB keeps the per-block Python loop short.
BLOCK_BYTES = 4 * 2**20


def block_rows_for(batch_size: int, num_inputs: int, itemsize: int) -> int:
    """Rows per block of the single-read step: as many rows as fit in ``BLOCK_BYTES``."""
    return blocking.block_rows_for(batch_size, num_inputs, itemsize, BLOCK_BYTES)


def auto_block_rows(batch_size: int, num_inputs: int, itemsize: int, platform: str = "cpu"):
    """The ``block_rows`` that :class:`FusedRun` uses when given ``"auto"``: the single-read
    step on CPUs for batches over ``wd_core.blocking.UNBLOCKED_BYTES``, else None."""
    return blocking.auto_block_rows(batch_size, num_inputs, itemsize, platform, BLOCK_BYTES)


def _step_whole_(w, b, Xb, yb, decay, scale):
    """In place: one step on the batch ``(Xb, yb)`` with two whole-batch products."""
    r = torch.addmm(yb, Xb, w, beta=-1)  # X w - y
    r.add_(b)
    w.addmm_(Xb.T, r, beta=decay, alpha=-scale)  # (1 - lr*lambd) w - (lr/n) X^T r
    b.sub_(r.sum(), alpha=scale)


def _step_blocked_(w, b, X, y, rows, block_rows, decay, scale, buffers):
    """In place: one single-read step over row blocks of ``X`` (``rows`` None: all rows).

    Per block two kernels (three with a gather): ``r_blk = X_blk w + (b - y_blk)`` written
    into the batch's residual buffer, and ``gw += X_blk^T r_blk``. ``buffers``: ``(block
    (k, d), gw (d, 1), r (B, 1))`` scratch tensors, reused.
    """
    block, gw, r = buffers
    n = X.shape[0] if rows is None else rows.shape[0]
    offset = torch.sub(b, y if rows is None else y[rows])  # b - y, (n, 1)
    gw.zero_()
    for lo in range(0, n, block_rows):
        if rows is None:
            Xb = X[lo:lo + block_rows]
        else:
            index = rows[lo:lo + block_rows]
            Xb = torch.index_select(X, 0, index, out=block[: index.shape[0]])
        hi = lo + Xb.shape[0]
        r_blk = torch.addmm(offset[lo:hi], Xb, w, out=r[lo:hi])
        gw.addmm_(Xb.T, r_blk)
    w.mul_(decay).sub_(gw, alpha=scale)
    b.sub_(r[:n].sum(), alpha=scale)


def _buffers(block_rows, batch_rows, like):
    d = like.shape[1]
    return (torch.empty(block_rows, d, dtype=like.dtype, device=like.device),
            torch.zeros(d, 1, dtype=like.dtype, device=like.device),
            torch.empty(batch_rows, 1, dtype=like.dtype, device=like.device))


def fused_step(w, b, X, y, lambd, lr, *, block_rows=None):
    """One SGD step with weight decay on ``w`` only, in place on tensors; returns ``(w, b)``.

    Args: ``w`` (d, 1), ``b`` (1,), ``X`` (n, d), ``y`` (n, 1) tensors of one float dtype on
    one device; ``lambd``, ``lr`` Python floats. ``w <- (1 - lr*lambd) w - lr * X^T r / n``,
    ``b <- b - lr * mean(r)``, ``r = X w + b - y``, computed in that dtype without autograd.
    ``block_rows``: None or the rows per block of the single-read step.
    """
    block_rows = check_block_rows(block_rows)
    decay, scale = 1.0 - lr * lambd, lr / X.shape[0]
    with torch.no_grad():
        if block_rows is None or block_rows >= X.shape[0]:
            _step_whole_(w, b, X, y, decay, scale)
        else:
            _step_blocked_(w, b, X, y, None, block_rows, decay, scale,
                           _buffers(block_rows, X.shape[0], X))
    return w, b


def fused_sgd_step(w, b, X, y, *, lambd, lr, dtype="float32", device=None, block_rows=None):
    """:func:`fused_step` on numpy inputs, like :func:`wd_torch.sgd_step` (no ``method``).

    Inputs are float64 numpy (or lists) of shapes (d, 1), (1,), (n, d), (n, 1), cast to
    ``dtype`` on ``device``. Returns the new ``(w, b)`` as float64 numpy.
    """
    step = prepare_step(w, b, X, y, method="concise", lambd=lambd, lr=lr, dtype=dtype,
                        device=device)
    dev, tdtype = torch_device(step.device), torch_dtype(step.dtype)
    w_t, b_t, X_t, y_t = (to_tensor(a, tdtype, dev) for a in (step.w, step.b, step.X, step.y))
    fused_step(w_t, b_t, X_t, y_t, step.lambd, step.lr, block_rows=block_rows)
    return (w_t.double().cpu().numpy(), b_t.double().cpu().numpy())


class FusedRun:
    """The steps of one training run on the fused step, with the data on the device.

    Validates like :func:`wd_torch.train` and moves the data, the batch order and the
    initial parameters to the device once; :meth:`run` executes all ``max_epochs`` epochs
    (no per-epoch losses) and may be called again (it restarts from the initial
    parameters). ``block_rows``: ``"auto"`` (:func:`auto_block_rows`), None or k. Unblocked,
    each epoch's rows are gathered once into an epoch buffer whose batch slices are fixed
    views; blocked, each row block is gathered into a small buffer as it is used.
    """

    def __init__(self, data, *, lambd, lr, max_epochs, init=None, dtype="float32", device=None,
                 block_rows="auto"):
        self.spec = spec = prepare_run(
            data, method="concise", lambd=lambd, lr=lr, max_epochs=max_epochs, init=init,
            dtype=dtype, device=device, epoch_params=True,
        )
        self.device = dev = torch_device(spec.device)
        tdtype = torch_dtype(spec.dtype)
        if block_rows == "auto":
            block_rows = auto_block_rows(data.batch_size, data.num_inputs,
                                         np.dtype(spec.dtype).itemsize, dev.type)
        self.block_rows = check_block_rows(block_rows)

        def on_device(array, dtype=tdtype):
            return to_tensor(array, dtype, dev)

        self._w0, self._b0 = on_device(spec.w0), on_device(spec.b0)
        self.w, self.b = self._w0.clone(), self._b0.clone()
        self.X, self.y, X_val, y_val = arrays_on_device(data, spec.dtype, dev)
        self._val = (X_val, y_val)
        orders = np.stack([data.epoch_permutation(e) for e in range(spec.max_epochs)])
        self._orders = on_device(orders, torch.long)
        B, n = data.batch_size, data.num_train
        self._batch_starts = range(0, n, B)
        self._decays = 1.0 - spec.lr * spec.lambd
        self._scales = [spec.lr / min(B, n - lo) for lo in self._batch_starts]
        if self.block_rows is None:
            self._X_epoch = torch.empty_like(self.X)
            self._y_epoch = torch.empty_like(self.y)
            self._views = [(self._X_epoch[lo:lo + B], self._y_epoch[lo:lo + B])
                           for lo in self._batch_starts]
        else:
            self._scratch = _buffers(self.block_rows, B, self.X)
            self._rows = [[order[lo:lo + B] for lo in self._batch_starts]
                          for order in self._orders]
        self._epoch_w = torch.empty(spec.max_epochs, data.num_inputs, 1, dtype=tdtype,
                                    device=dev)
        self._epoch_b = torch.empty(spec.max_epochs, 1, dtype=tdtype, device=dev)

    def run(self):
        """All steps from the initial parameters: ``(epoch_w (E, d, 1), epoch_b (E, 1))``.

        Returns tensors on the device without synchronizing it; they are this object's own
        buffers, overwritten by the next call (copy them to keep them).
        """
        w, b, decay = self.w, self.b, self._decays
        with torch.no_grad():
            w.copy_(self._w0)
            b.copy_(self._b0)
            for epoch in range(self.spec.max_epochs):
                if self.block_rows is None:
                    order = self._orders[epoch]
                    torch.index_select(self.X, 0, order, out=self._X_epoch)
                    torch.index_select(self.y, 0, order, out=self._y_epoch)
                    for (Xb, yb), scale in zip(self._views, self._scales, strict=True):
                        _step_whole_(w, b, Xb, yb, decay, scale)
                else:
                    for rows, scale in zip(self._rows[epoch], self._scales, strict=True):
                        _step_blocked_(w, b, self.X, self.y, rows, self.block_rows, decay,
                                       scale, self._scratch)
                self._epoch_w[epoch].copy_(w)
                self._epoch_b[epoch].copy_(b)
        return self._epoch_w, self._epoch_b

    def history(self, epoch_w, epoch_b):
        """A :class:`wd_core.History` of :meth:`run`'s output, losses computed on the device."""
        with torch.no_grad():
            losses = [torch.stack([squared_loss(X @ w + b, y) for w, b in zip(epoch_w, epoch_b,
                                                                              strict=True)])
                      for X, y in ((self.X, self.y), self._val)]
            arrays = [a.cpu().numpy() for a in (epoch_w, epoch_b, *losses)]
        history = history_from_epochs(self.spec, "torch", *arrays)
        history.config.update(method="fused", block_rows=self.block_rows)
        return history


def train_fast(data, *, lambd, lr, max_epochs, init=None, dtype="float32", device=None,
               block_rows="auto"):
    """:func:`wd_torch.train` of the concise method on the fused step; a History.

    The same steps in the same order as ``train(method="concise")``; ``config["method"]`` is
    ``"fused"`` and ``config["block_rows"]`` the block size used.
    """
    fused = FusedRun(data, lambd=lambd, lr=lr, max_epochs=max_epochs, init=init, dtype=dtype,
                     device=device, block_rows=block_rows)
    return fused.history(*fused.run())
