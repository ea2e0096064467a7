"""The training loop: minibatch SGD in the order :mod:`wd_core` gives, on one device, in the
chunks of epochs that :mod:`wd_core.driver` asks for."""

from __future__ import annotations

import torch

from wd_core.driver import chunk_epochs, drive
from wd_core.runspec import history_from_epochs, prepare_run
from wd_torch.device import (
    RowGather,
    arrays_on_device,
    chunk_batches,
    epochs_to_numpy,
    to_tensor,
    torch_device,
)
from wd_torch.fused import fused_epochs
from wd_torch.models import MODELS, squared_loss


def train(
    data, *, method, lambd, lr, max_epochs, init=None, dtype="float32", device=None,
    progress=None, optimizer=None, epoch_params=False, implementation="idiomatic",
):
    """Train the chapter's model with weight decay; return a :class:`wd_core.History`.

    Args:
        data: a :class:`wd_core.SyntheticData`; its batches are followed in order.
        method: ``"scratch"`` (penalty in the loss, plain SGD) or ``"concise"``
            (``torch.optim.SGD`` weight decay on the weight only).
        lambd, lr: finite, >= 0. max_epochs: >= 1.
        init: ``None`` (``init_params(data.num_inputs, data.seed)``) or float64 ``(w, b)``
            of shapes (d, 1), (1,).
        dtype: ``"float32"`` or ``"float64"``; device: ``None``/``"cpu"``/``"cuda"``.
        progress: ``None`` or a callable called as ``progress(epoch)`` after each epoch, in
            the caller's thread, after the chunk of epochs that holds it.
        optimizer: ``None`` (``torch.optim.SGD`` as above) or a
            :class:`wd_core.optimizers.OptimizerSpec`: that family (``SGD`` with momentum,
            ``SGDW``, ``Adam``, ``AdamW``) with learning rate ``lr``; ``"concise"`` gives it
            ``weight_decay=lambd`` on the weight's group only. The History's ``config`` then
            has an ``"optimizer"`` entry (``OptimizerSpec.to_config()``).
        epoch_params: keep the parameters after every epoch (``History.epoch_w``,
            ``epoch_b``); by default only the final ones (memory that grows with epochs x d).
        implementation: ``"idiomatic"`` (the model, autograd and ``torch.optim``, as above)
            or ``"fused"``: the same steps with :mod:`wd_torch.fused`'s analytic in-place
            step (no autograd; either method: they are the same update), plain SGD only.
            ``config["implementation"]`` records it.

    The data are moved to the device once; per-epoch losses are data losses on the whole
    training and validation sets, computed in ``dtype`` on the device. A run whose loss
    becomes NaN or infinite stops after the chunk that holds that epoch; the History ends
    with it and marks it (``diverged``).
    """
    spec = prepare_run(
        data, method=method, lambd=lambd, lr=lr, max_epochs=max_epochs, init=init,
        dtype=dtype, device=device, progress=progress, epoch_params=epoch_params,
        implementation=implementation, optimizer=optimizer,
    )
    dev = torch_device(spec.device)
    X, y, X_val, y_val = arrays_on_device(data, spec.dtype, dev)
    if spec.implementation == "fused":
        run_epochs = _fused_run_epochs(spec, dev, X, y, X_val, y_val)
    else:
        run_epochs = _idiomatic_run_epochs(spec, dev, X, y, X_val, y_val)
    per_epoch = drive(run_epochs, None, max_epochs=spec.max_epochs, progress=progress,
                      chunk=chunk_epochs(data, spec.max_epochs), epoch_params=spec.epoch_params)
    return history_from_epochs(spec, "torch", *per_epoch)


def _idiomatic_run_epochs(spec, dev, X, y, X_val, y_val):
    """``run_epochs`` of the model's own loss, autograd and ``torch.optim`` optimizer."""
    model = MODELS[spec.method](spec.data.num_inputs, lambd=spec.lambd, lr=spec.lr,
                                dtype=spec.dtype, optimizer=spec.optimizer)
    model.set_w_b(spec.w0, spec.b0)
    model.to(dev)

    def evaluate():
        w, b = model.get_w_b()
        return (w.clone(), b.clone(), squared_loss(model(X), y),
                squared_loss(model(X_val), y_val))

    return autograd_epochs(spec.data, dev, X, y, lambda Xb, yb: model.loss(model(Xb), yb),
                           model.configure_optimizers(), evaluate)


def autograd_epochs(data, dev, X, y, batch_loss, optimizer, evaluate, before_step=None):
    """``run_epochs`` (:mod:`wd_core.driver`) of the idiomatic loop: for each batch of
    ``data``'s order, ``loss = batch_loss(X[rows], y[rows])``, ``optimizer.zero_grad()``,
    ``loss.backward()``, ``before_step()`` (if given: a change to the gradients),
    ``optimizer.step()``; after each epoch ``evaluate()`` (under ``no_grad``) gives its
    outputs. ``X`` (n, d), ``y`` (n, 1) on ``dev``; batches gathered into buffers kept for the
    run (:class:`wd_torch.device.RowGather`)."""
    gather = RowGather(X, y, data.batch_size)

    def run_epochs(state, first, count):
        per_epoch = []
        for batches in chunk_batches(data, first, count, dev):
            for rows in batches:
                loss = batch_loss(*gather(rows))
                optimizer.zero_grad()
                loss.backward()
                if before_step is not None:
                    before_step()
                optimizer.step()
            with torch.no_grad():
                per_epoch.append(evaluate())
        return state, epochs_to_numpy(per_epoch)

    return run_epochs


def _fused_run_epochs(spec, dev, X, y, X_val, y_val):
    """``run_epochs`` of :mod:`wd_torch.fused`'s analytic step on ``w`` (d, 1), ``b`` (1,)."""
    w, b = (to_tensor(a, X.dtype, dev) for a in (spec.w0, spec.b0))

    def evaluate(w, b, r=None):
        train = squared_loss(X @ w + b, y) if r is None else (r * r).mean() / 2
        return (w.clone(), b.clone(), train, squared_loss(X_val @ w + b, y_val))

    return fused_epochs(spec.data, X, y, w, b, 1.0 - spec.lr * spec.lambd, spec.lr, evaluate)
