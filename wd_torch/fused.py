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

Each kernel uses torch's own intra-op threads (``torch.get_num_threads()``); nothing here
changes a thread setting.

Its step functions (``fused_step``, ``fused_sgd_step``, ``block_rows_for``,
``auto_block_rows``) mirror :mod:`wd_jax.fused` name for name; the runs differ
(``fused_epochs`` here, ``fused_step_function`` there).
"""

from __future__ import annotations

import torch

from wd_core import blocking
from wd_core.blocking import check_block_rows
from wd_core.runspec import prepare_step
from wd_torch.device import epochs_to_numpy, to_tensor, torch_device, torch_dtype

#: Row-block size target of the single-read step on CPUs: a block of this many bytes stays
#: in cache between its two uses (the benchmark machine: 2 MiB L2 in all, 32 MiB L3). For
#: torch's CPU kernels blocks of 0.5-16 MiB ran within about 25% of each other there
#: (``python -m benchmarks.blocks``); 4 MiB keeps the per-block Python loop short.
BLOCK_BYTES = 4 * 2**20


def block_rows_for(batch_size: int, num_inputs: int, itemsize: int) -> int:
    """Rows per block of the single-read step: as many rows as fit in ``BLOCK_BYTES``."""
    return blocking.block_rows_for(batch_size, num_inputs, itemsize, BLOCK_BYTES)


def auto_block_rows(batch_size: int, num_inputs: int, itemsize: int, platform: str = "cpu"):
    """The ``block_rows`` that ``train(implementation="fused")`` uses: the single-read step
    on CPUs for batches over ``wd_core.blocking.UNBLOCKED_BYTES``, else None."""
    return blocking.auto_block_rows(batch_size, num_inputs, itemsize, platform, BLOCK_BYTES)


def _residual_whole(w, b, Xb, yb):
    """``r = Xb w + b - yb``: (n, L), for ``w`` (d, L) (L runs side by side; L = 1 for one
    run) and ``b`` (1,) or (1, L)."""
    r = torch.addmm(yb, Xb, w, beta=-1)  # X w - y
    return r.add_(b)


def _update_whole_(w, b, Xb, r, decay, scale):
    """In place: ``w <- decay * w - scale * Xb^T r``, ``b <- b - scale * sum(r)``; ``decay``
    ``1 - lr*lambd``, a float or a (1, L) tensor (one per run); ``scale`` ``lr/n``."""
    if isinstance(decay, float):
        w.addmm_(Xb.T, r, beta=decay, alpha=-scale)  # (1 - lr*lambd) w - (lr/n) X^T r
    else:
        w.mul_(decay).addmm_(Xb.T, r, alpha=-scale)
    b.sub_(r.sum(0), alpha=scale)


def _sums_blocked(w, b, X, y, rows, block_rows, buffers):
    """``(X_rows^T r (d, L), r (n, L))`` over the batch ``rows`` of ``X`` (all rows when
    None) in one read: row blocks of ``block_rows``, each (gathered into a small buffer)
    used for its residual ``r_blk = X_blk w + (b - y_blk)`` and its share ``X_blk^T r_blk``
    while it is in cache. ``buffers``: ``(block (k, d), gw (d, L), r (B, L))``, reused."""
    block, gw, r = buffers
    n = X.shape[0] if rows is None else rows.shape[0]
    offset = torch.sub(b, y if rows is None else y[rows])  # b - y, (n, L)
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
    return gw, r[:n]


def _update_blocked_(w, b, gw, r, decay, scale):
    """In place: ``w <- decay * w - scale * gw``, ``b <- b - scale * sum(r)``."""
    w.mul_(decay).sub_(gw, alpha=scale)
    b.sub_(r.sum(0), alpha=scale)


def _step_(w, b, decay, scale, *, whole=None, blocked=None, before_update=None):
    """In place: one step, either on the batch ``whole = (Xb, yb)`` with two whole-batch
    products or single-read over row blocks, ``blocked = (X, y, rows, block_rows, buffers)``
    (:func:`_sums_blocked`); ``before_update(r)``, if given, sees the batch's residual at the
    parameters before the step."""
    if whole is not None:
        Xb, yb = whole
        r = _residual_whole(w, b, Xb, yb)
    else:
        gw, r = _sums_blocked(w, b, *blocked)
    if before_update is not None:
        before_update(r)
    if whole is not None:
        _update_whole_(w, b, Xb, r, decay, scale)
    else:
        _update_blocked_(w, b, gw, r, decay, scale)


def _buffers(block_rows, batch_rows, like, lanes=1):
    """``(block, gw, r)`` of :func:`_sums_blocked`."""
    d = like.shape[1]
    return (torch.empty(block_rows, d, dtype=like.dtype, device=like.device),
            torch.zeros(d, lanes, dtype=like.dtype, device=like.device),
            torch.empty(batch_rows, lanes, dtype=like.dtype, device=like.device))


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
            _step_(w, b, decay, scale, whole=(X, y))
        else:
            _step_(w, b, decay, scale,
                   blocked=(X, y, None, block_rows, _buffers(block_rows, X.shape[0], X)))
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


def fused_epochs(data, X, y, w, b, decay, lr, evaluate):
    """``run_epochs`` (:mod:`wd_core.driver`) of the fused step, in place on ``w`` and ``b``.

    Args:
        data: the :class:`wd_core.SyntheticData` whose batch order is followed.
        X, y: its training set (n, d), (n, 1) on the device.
        w, b: (d, L) and (1,) or (1, L) tensors: L runs side by side (L = 1 for one run).
        decay: ``1 - lr*lambd``, a float or a (1, L) tensor; lr: a float.
        evaluate: ``evaluate(w, b, r=None) -> tuple of tensors``, the outputs of one epoch;
            ``r``, when given, is the residual ``X w + b - y`` of every training row (in some
            order) at ``(w, b)``, from which the training loss is read without a pass of its
            own.

    Unblocked, each epoch's rows are gathered once into an epoch buffer whose batch slices
    are fixed views; blocked (:func:`auto_block_rows`, large CPU batches), each row block is
    gathered into a small buffer as it is used. With one batch of all training rows per
    epoch, the step walks ``X`` in its own order (the batch's sums do not depend on the order
    but for rounding), and the step of epoch e + 1 computes the residual at the parameters
    after epoch e: epoch e is evaluated from it, and only a chunk's last epoch by a pass of
    its own.
    """
    B, n = data.batch_size, data.num_train
    block_rows = auto_block_rows(B, data.num_inputs, X.element_size(), X.device.type)
    starts = range(0, n, B)
    scales = [lr / min(B, n - lo) for lo in starts]
    full_batch = B == n
    if block_rows is None and not full_batch:
        X_epoch, y_epoch = torch.empty_like(X), torch.empty_like(y)
        views = [(X_epoch[lo:lo + B], y_epoch[lo:lo + B]) for lo in starts]
    if block_rows is not None:
        buffers = _buffers(block_rows, B, X, w.shape[1])

    def step(batch, scale, before_update=None):
        if block_rows is None:
            _step_(w, b, decay, scale, whole=batch, before_update=before_update)
        else:
            _step_(w, b, decay, scale, blocked=(X, y, batch, block_rows, buffers),
                   before_update=before_update)

    def run_epochs(state, first, count):
        orders = to_tensor(data.epoch_orders(count, first), torch.long, X.device)
        per_epoch = []

        def evaluate_previous_epoch(r):  # r: every row's residual at the parameters after it
            per_epoch.append(evaluate(w, b, r))

        with torch.no_grad():
            for i, order in enumerate(orders):
                if full_batch:  # a sum over all rows: X in its own order, no gather
                    batches = [(X, y)] if block_rows is None else [None]
                elif block_rows is None:
                    torch.index_select(X, 0, order, out=X_epoch)
                    torch.index_select(y, 0, order, out=y_epoch)
                    batches = views
                else:
                    batches = [order[lo:lo + B] for lo in starts]
                hook = evaluate_previous_epoch if full_batch and i else None
                for batch, scale in zip(batches, scales, strict=True):
                    step(batch, scale, hook)
                if not full_batch:
                    per_epoch.append(evaluate(w, b))
            if full_batch:
                per_epoch.append(evaluate(w, b))
        return state, epochs_to_numpy(per_epoch)

    return run_epochs
