"""``wd_torch.sweep``: all lambdas at once, each a column of one weight matrix.

``W`` (d, L) holds the L runs' weights side by side and ``b`` (1, L) their biases, all started
from the same ``(w0, b0)``. One step on the batch ``(X, y)`` (n rows) is one matmul for all
lambdas::

    R = X W + b - y                              (n, L): column l is run l's residual
    loss = sum_l mean(R[:, l]**2) / 2            (+ sum_l lambd_l ||W[:, l]||**2 / 2, scratch)

Column l of ``d loss / d W`` is run l's own gradient (the columns do not interact), so one
``torch.optim.SGD`` step moves every column exactly as its single run would::

    W[:, l] <- (1 - lr*lambd_l) W[:, l] - lr * X^T R[:, l] / n,   b_l <- b_l - lr * mean(R[:, l])

Where the decay lives:

* ``"scratch"``: the penalty is in the loss (per column, ``lambd`` a row vector), autograd
  differentiates it, and the optimizer is plain ``torch.optim.SGD``.
* ``"concise"``: the decay is added to the gradient by the optimizer step, not by autograd.
  ``torch.optim.SGD`` takes one float ``weight_decay`` per parameter group and adds
  ``weight_decay * p`` to ``p.grad`` before its update; a group per lambda would cost L
  optimizer calls per step. So the weight's group keeps ``weight_decay=0`` and a
  ``register_post_accumulate_grad_hook`` on ``W`` adds ``lambd * W`` (``lambd`` (1, L), one
  value per column) to ``W.grad`` just before ``SGD.step``: the same term SGD's
  ``weight_decay`` adds, with a vector in place of the scalar. The bias is never decayed.
"""

from __future__ import annotations

import numpy as np
import torch

from wd_core.sweeps import histories_from_sweep, prepare_sweep
from wd_torch.device import (
    arrays_on_device,
    schedule_on_device,
    to_tensor,
    torch_device,
    torch_dtype,
)


def _column_losses(W, b, X, y) -> torch.Tensor:
    """Each run's data loss ``mean((X w_l + b_l - y)**2) / 2``: (L,)."""
    return ((X @ W + b - y) ** 2).mean(dim=0) / 2


def _optimizer(method, W, b, lambdas, lr):
    """``torch.optim.SGD`` over ``W`` and ``b``; for ``"concise"`` the per-column decay hook."""
    optimizer = torch.optim.SGD(
        [{"params": [W], "weight_decay": 0.0}, {"params": [b], "weight_decay": 0.0}], lr=lr,
    )
    if method == "concise":

        def add_decay(param):
            # SGD's ``grad.add(param, alpha=weight_decay)`` with one weight_decay per column.
            param.grad.add_(param.detach() * lambdas)

        W.register_post_accumulate_grad_hook(add_decay)
    return optimizer


def sweep(data, *, lambdas, method="concise", lr=0.01, max_epochs=10, init=None,
          dtype="float32", device=None, progress=None):
    """Train one run per lambda, all at once; return a list of :class:`wd_core.History`.

    ``sweep(data, lambdas=ls, ...)[i]`` equals ``train(data, lambd=ls[i], ...)`` up to
    rounding in ``dtype`` (the same steps; the matmuls hold all lambdas as columns).

    Args:
        data: a :class:`wd_core.SyntheticData`.
        lambdas: a non-empty sequence of finite numbers >= 0 (L of them).
        method, lr, max_epochs, init, dtype, device: as in :func:`wd_torch.train`.
        progress: ``None`` or a callable called as ``progress(epoch)`` after each epoch of
            the whole sweep.
    """
    spec = prepare_sweep(data, lambdas=lambdas, method=method, lr=lr, max_epochs=max_epochs,
                         init=init, dtype=dtype, device=device, progress=progress)
    run = spec.run
    dev, tdtype = torch_device(run.device), torch_dtype(run.dtype)

    def on_device(array, dtype=tdtype):
        return to_tensor(array, dtype, dev)

    count = len(spec.lambdas)
    X, y, X_val, y_val = arrays_on_device(data, run.dtype, dev)
    full, last = schedule_on_device(data, run.max_epochs, dev)
    lambdas_row = on_device(spec.lambdas).reshape(1, count)
    W = torch.nn.Parameter(on_device(np.repeat(run.w0, count, axis=1)))  # (d, L)
    b = torch.nn.Parameter(on_device(np.repeat(run.b0.reshape(1, 1), count, axis=1)))  # (1, L)
    optimizer = _optimizer(run.method, W, b, lambdas_row, run.lr)

    epoch_w, epoch_b, train_loss, val_loss = [], [], [], []
    for epoch in range(run.max_epochs):
        for rows in (*full[epoch], last[epoch]):
            if len(rows) == 0:
                continue
            # Summed over the runs: column l of the gradient is run l's own gradient.
            loss = _column_losses(W, b, X[rows], y[rows]).sum()
            if run.method == "scratch":
                loss = loss + (lambdas_row * W**2).sum() / 2
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            epoch_w.append(W.detach().clone())
            epoch_b.append(b.detach().clone())
            train_loss.append(_column_losses(W, b, X, y))
            val_loss.append(_column_losses(W, b, X_val, y_val))
        if progress is not None:
            progress(epoch)
    # (E, d, L) -> (L, E, d, 1); (E, 1, L) -> (L, E, 1); (E, L) -> (L, E).
    per_lambda = (
        torch.stack(epoch_w).permute(2, 0, 1).unsqueeze(-1),
        torch.stack(epoch_b).permute(2, 0, 1),
        torch.stack(train_loss).T,
        torch.stack(val_loss).T,
    )
    return histories_from_sweep(spec, "torch", *(a.cpu().numpy() for a in per_lambda))
