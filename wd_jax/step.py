"""One optimizer step of either model on given arrays (the unit the parity suite checks)."""

from __future__ import annotations

import jax
import numpy as np
import optax

from wd_core.runspec import prepare_step
from wd_jax.device import jax_device, jax_dtype, numerics
from wd_jax.models import MODELS


def sgd_step(w, b, X, y, *, method, lambd, lr, dtype="float32", device=None):
    """One SGD step of ``method`` from ``(w, b)`` on the batch ``(X, y)``.

    Args: ``w`` (d, 1), ``b`` (1,), ``X`` (n, d), ``y`` (n, 1), numpy or lists; they are cast
    to ``dtype`` on ``device``. Returns the new ``(w, b)`` as float64 numpy, (d, 1) and (1,):
    ``w' = (1 - lr*lambd) w - lr * grad_w``, ``b' = b - lr * grad_b`` up to rounding in dtype.
    """
    step = prepare_step(w, b, X, y, method=method, lambd=lambd, lr=lr, dtype=dtype,
                        device=device)
    dev = jax_device(step.device)
    with numerics(step.dtype):
        model = MODELS[step.method](step.X.shape[1], lambd=step.lambd, lr=step.lr,
                                    dtype=step.dtype)
        optimizer = model.configure_optimizers()
        params = jax.device_put(model.set_w_b(step.w, step.b), dev)
        X_j, y_j = (jax.device_put(np.asarray(a, dtype=jax_dtype(step.dtype)), dev)
                    for a in (step.X, step.y))
        grads = jax.grad(model.loss)(params, X_j, y_j)
        updates, _ = optimizer.update(grads, optimizer.init(params), params)
        w_new, b_new = model.get_w_b(optax.apply_updates(params, updates))
        return np.asarray(w_new, dtype=np.float64), np.asarray(b_new, dtype=np.float64)
