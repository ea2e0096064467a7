"""numpy, float32: the chapter's step written out, a floor for the frameworks.

``run()``: every step of the run, ``Xb = X[rows]`` (a gathered copy), ``r = Xb w + b - yb``,
``w = (1 - lr*lambd) w - lr * Xb^T r / n``, ``b -= lr * mean(r)``, and after every epoch the
losses ``mean(r**2) / 2`` on the whole training and validation sets, in the workload's dtype
(float32 unless asked otherwise; :mod:`wd_core.reference` itself computes in float64).
BLAS threads as numpy's build sets them; ``OPENBLAS_*`` are left as the environment has them.
"""

from __future__ import annotations

import numpy as np

from wd_core.params import init_params

from .implementation import Implementation, Prepared, host_arrays, no_sync

FRAMEWORK = "numpy"


def cuda_status() -> tuple[bool, str]:
    return False, "numpy runs on the CPU only"


def _loss(w, b, X, y):
    r = X @ w + b - y
    return np.mean(r * r) / 2


def _prepare_reference(workload, data, dtype, device):
    X, y, X_val, y_val = host_arrays(data, dtype)
    w0, b0 = (a.astype(dtype) for a in init_params(data.num_inputs, data.seed))
    batches = [data.epoch_batches(e) for e in range(workload.epochs)]
    decay = np.asarray(1 - workload.lr * workload.lambd, dtype)
    scales = {len(rows): np.asarray(workload.lr / len(rows), dtype)
              for epoch in batches for rows in epoch}

    def run():
        w, b = w0.copy(), b0.copy()
        losses = []
        for epoch in batches:
            for rows in epoch:
                Xb, yb = X[rows], y[rows]
                r = Xb @ w + b - yb
                scale = scales[len(rows)]
                w = decay * w - scale * (Xb.T @ r)
                b = b - scale * r.sum(axis=0)
            losses.append((_loss(w, b, X, y), _loss(w, b, X_val, y_val)))
        return w, losses

    def outcome(result):
        w, losses = result
        train_loss, val_loss = np.array(losses, dtype=np.float64).T
        return np.asarray(w, np.float64), train_loss, val_loss

    return Prepared(run=run, sync=no_sync, outcome=outcome)


def implementations(workload, device, dtype) -> list[Implementation]:
    if device != "cpu" or workload.lambdas > 1:
        return []
    return [Implementation(FRAMEWORK, "reference",
                           "numpy loop, analytic step, X[rows] copy, losses per epoch",
                           _prepare_reference)]
