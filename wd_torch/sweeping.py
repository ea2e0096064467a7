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
* ``"concise"``: the decay is the optimizer's term, written out in the loop:
  ``torch.optim.SGD`` adds ``weight_decay * p`` to ``p.grad`` before its update, with one float
  ``weight_decay`` per parameter group, and a group per lambda would cost L optimizer calls
  per step. So ``W``'s group keeps ``weight_decay=0`` and the loop adds ``lambd * W``
  (``lambd`` (1, L), one value per column) to ``W.grad`` between ``loss.backward()`` and
  ``optimizer.step()``: the same term SGD's ``weight_decay`` adds, with a vector in place of
  the scalar. The bias is never decayed.
"""

from __future__ import annotations

import numpy as np
import torch

from wd_core.driver import chunk_epochs, drive
from wd_core.sweeps import histories_from_sweep, prepare_sweep
from wd_torch.device import (
    arrays_on_device,
    to_tensor,
    torch_device,
    torch_dtype,
)
from wd_torch.fused import fused_epochs
from wd_torch.training import autograd_epochs


def _column_losses(W, b, X, y) -> torch.Tensor:
    """Each run's data loss ``mean((X w_l + b_l - y)**2) / 2``: (L,)."""
    return ((X @ W + b - y) ** 2).mean(dim=0) / 2


def sweep(data, *, lambdas, method="concise", lr=0.01, max_epochs=10, init=None,
          dtype="float32", device=None, progress=None, epoch_params=False,
          implementation="idiomatic"):
    """Train one run per lambda, all at once; return a list of :class:`wd_core.History`.

    ``sweep(data, lambdas=ls, ...)[i]`` equals ``train(data, lambd=ls[i], ...)`` up to
    rounding in ``dtype`` (the same steps; the matmuls hold all lambdas as columns).

    Args:
        data: a :class:`wd_core.SyntheticData`.
        lambdas: a non-empty sequence of finite numbers >= 0 (L of them).
        method, lr, max_epochs, init, dtype, device, epoch_params, implementation: as in
            :func:`wd_torch.train` (``"fused"``: every column steps with
            :mod:`wd_torch.fused`'s analytic step, its decay ``1 - lr*lambd_l`` per column).
        progress: ``None`` or a callable called as ``progress(epoch)`` after each epoch of
            the whole sweep, in the caller's thread.

    The sweep stops once every lambda's run has diverged.
    """
    spec = prepare_sweep(data, lambdas=lambdas, method=method, lr=lr, max_epochs=max_epochs,
                         init=init, dtype=dtype, device=device, progress=progress,
                         epoch_params=epoch_params, implementation=implementation)
    run = spec.run
    dev, tdtype = torch_device(run.device), torch_dtype(run.dtype)

    def on_device(array, dtype=tdtype):
        return to_tensor(array, dtype, dev)

    count = len(spec.lambdas)
    X, y, X_val, y_val = arrays_on_device(data, run.dtype, dev)
    lambdas_row = on_device(spec.lambdas).reshape(1, count)
    W = on_device(np.repeat(run.w0, count, axis=1))  # (d, L)
    b = on_device(np.repeat(run.b0.reshape(1, 1), count, axis=1))  # (1, L)

    def evaluate(W, b, r=None):
        # Lambda before the parameter axes: w (L, d, 1), b (L, 1), losses (L,).
        train = _column_losses(W, b, X, y) if r is None else (r * r).mean(dim=0) / 2
        return (W.T.unsqueeze(-1).clone(), b.T.clone(), train, _column_losses(W, b, X_val, y_val))

    if run.implementation == "fused":
        run_epochs = fused_epochs(data, X, y, W, b, 1.0 - run.lr * lambdas_row, run.lr,
                                  evaluate)
    else:
        run_epochs = _idiomatic_run_epochs(run, dev, X, y, W, b, lambdas_row, evaluate)
    per_epoch = drive(run_epochs, None, max_epochs=run.max_epochs, progress=progress,
                      chunk=chunk_epochs(data, run.max_epochs, count),
                      epoch_params=run.epoch_params)
    return histories_from_sweep(spec, "torch", *per_epoch)


def _idiomatic_run_epochs(run, dev, X, y, W, b, lambdas_row, evaluate):
    """``run_epochs`` of autograd and ``torch.optim.SGD`` on the columns of ``W``, ``b``."""
    W, b = torch.nn.Parameter(W), torch.nn.Parameter(b)
    optimizer = torch.optim.SGD([W, b], lr=run.lr)  # no weight_decay: see the module docstring

    def batch_loss(Xb, yb):
        # Summed over the runs: column l of the gradient is run l's own gradient.
        loss = _column_losses(W, b, Xb, yb).sum()
        if run.method == "scratch":
            loss = loss + (lambdas_row * W**2).sum() / 2
        return loss

    def decay():  # SGD's weight_decay term, one lambda per column, just before the step
        with torch.no_grad():
            W.grad.addcmul_(W, lambdas_row)

    return autograd_epochs(run.data, dev, X, y, batch_loss, optimizer, lambda: evaluate(W, b),
                           before_step=decay if run.method == "concise" else None)
