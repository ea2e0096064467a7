"""One optimizer step of either model on given arrays (the unit the parity suite checks)."""

from __future__ import annotations

import torch

from wd_core.runspec import prepare_step
from wd_torch.device import to_tensor, torch_device, torch_dtype
from wd_torch.models import MODELS


def sgd_step(w, b, X, y, *, method, lambd, lr, dtype="float32", device=None):
    """One SGD step of ``method`` from ``(w, b)`` on the batch ``(X, y)``.

    Args: ``w`` (d, 1), ``b`` (1,), ``X`` (n, d), ``y`` (n, 1), numpy or lists; they are cast
    to ``dtype`` on ``device``. Returns the new ``(w, b)`` as float64 numpy, (d, 1) and (1,):
    ``w' = (1 - lr*lambd) w - lr * grad_w``, ``b' = b - lr * grad_b`` up to rounding in dtype.
    """
    step = prepare_step(w, b, X, y, method=method, lambd=lambd, lr=lr, dtype=dtype,
                        device=device)
    dev, tdtype = torch_device(step.device), torch_dtype(step.dtype)
    model = MODELS[step.method](step.X.shape[1], lambd=step.lambd, lr=step.lr, dtype=step.dtype)
    model.set_w_b(step.w, step.b)
    model.to(dev)
    optimizer = model.configure_optimizers()
    X_t, y_t = (to_tensor(a, tdtype, dev) for a in (step.X, step.y))
    loss = model.loss(model(X_t), y_t)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    with torch.no_grad():
        w_new, b_new = model.get_w_b()
        return (w_new.double().cpu().numpy().copy(), b_new.double().cpu().numpy().copy())
