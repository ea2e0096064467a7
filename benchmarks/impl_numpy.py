"""numpy, float32: the chapter's step written out, a floor for the frameworks.

``run()``: every step of the run, ``Xb = X[rows]`` (a gathered copy), ``r = Xb w + b - yb``,
``w = (1 - lr*lambd) w - lr * Xb^T r / n``, ``b -= lr * mean(r)``, in the workload's dtype
(float32 unless asked otherwise; :mod:`wd_core.reference` itself computes in float64).
BLAS threads as numpy's build sets them; ``OPENBLAS_*`` are left as the environment has them.
"""

from __future__ import annotations

import numpy as np

from wd_core.params import init_params

from .implementation import Implementation, Prepared, no_sync

FRAMEWORK = "numpy"


def cuda_status() -> tuple[bool, str]:
    return False, "numpy runs on the CPU only"


def _prepare_reference(workload, data, dtype, device):
    X, y = data.X_train.astype(dtype), data.y_train.astype(dtype)
    w0, b0 = (a.astype(dtype) for a in init_params(data.num_inputs, data.seed))
    batches = [data.epoch_batches(e) for e in range(workload.epochs)]
    lr, decay = np.asarray(workload.lr, dtype), np.asarray(1 - workload.lr * workload.lambd, dtype)

    def run():
        w, b = w0.copy(), b0.copy()
        for epoch in batches:
            for rows in epoch:
                Xb, yb = X[rows], y[rows]
                r = Xb @ w + b - yb
                scale = lr / np.asarray(len(rows), dtype)
                w = decay * w - scale * (Xb.T @ r)
                b = b - scale * r.sum(axis=0)
        return w

    return Prepared(run=run, sync=no_sync, final_w=lambda w: np.asarray(w, np.float64))


def implementations(workload, device, dtype) -> list[Implementation]:
    if device != "cpu":
        return []
    return [Implementation(FRAMEWORK, "reference", "numpy loop, analytic step, X[rows] copy",
                           _prepare_reference)]
