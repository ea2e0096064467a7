"""``wd_jax.sweep``: all lambdas in one compiled program, ``jax.vmap`` of the scanned run.

Every lambda trains the same model from the same initial parameters on the same batches, so
the runs differ only in ``lambd``. The whole sweep is one ``jax.jit`` of a ``lax.scan`` over
epochs whose body is ``jax.vmap`` (over lambda) of one epoch: a ``lax.scan`` over the batches
with the model and optimizer of :mod:`wd_jax.models`. For ``"concise"`` the decay is still
``optax.chain(optax.add_decayed_weights(lambd, mask=DECAY_MASK), optax.sgd(lr))``, built once
per vmapped lane with its own ``lambd``; for ``"scratch"`` the penalty ``lambd * ||w||**2 / 2``
is in the loss under ``jax.grad``. A batched ``X_batch @ w`` over lambda is one matmul
``(B, d) @ (d, L)``.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from wd_core.sweeps import histories_from_sweep, prepare_sweep
from wd_jax.device import (
    arrays_on_device,
    jax_device,
    jax_dtype,
    numerics,
    schedule_on_device,
    to_device,
)
from wd_jax.models import MODELS
from wd_jax.training import (
    epoch_function,
    fetch,
    report_epoch,
    reporting_to,
)


@functools.partial(jax.jit, static_argnames=("method", "report_progress"))
def _compiled_sweep(method, params, X, y, X_val, y_val, full, last, lambdas, lr, token,
                    report_progress=False):
    """Every epoch of every lambda's run.

    Args:
        params: {"w": (d, 1), "b": (1,)}, the shared start; X, y: (n, d), (n, 1); X_val, y_val.
        full: (E, S, B) int row indices of the full batches; last: (E, r) the ragged ones.
        lambdas: (L,) in the run's dtype; lr: a scalar (both traced: no recompilation).
        token: int32 scalar from :func:`wd_jax.training.reporting_to` (where reports go).

    Returns per-epoch ``(w (E, L, d, 1), b (E, L, 1), train_loss (E, L), val_loss (E, L))``.
    """

    def model_for(lambd):
        return MODELS[method](X.shape[1], lambd=lambd, lr=lr, dtype=X.dtype.name)

    def one_epoch(carry, lambd, full_batches, last_batch):
        """One lambda's epoch: the chapter's steps, then the losses on both sets."""
        model = model_for(lambd)
        run_epoch = epoch_function(model, model.configure_optimizers(), X, y, X_val, y_val)
        return run_epoch(carry, full_batches, last_batch)

    every_lambda = jax.vmap(one_epoch, in_axes=(0, 0, None, None))

    def epoch(carry, inputs):
        index, (full_batches, last_batch) = inputs
        carry, outputs = every_lambda(carry, lambdas, full_batches, last_batch)
        if report_progress:  # outside the vmap: one call per epoch, not one per lambda
            report_epoch(token, index)
        return carry, outputs

    count = lambdas.shape[0]
    start = jax.tree.map(lambda a: jnp.broadcast_to(a, (count, *a.shape)), params)
    states = jax.vmap(lambda lambd: model_for(lambd).configure_optimizers().init(params))(lambdas)
    epochs = jnp.arange(full.shape[0])
    _, per_epoch = jax.lax.scan(epoch, (start, states), (epochs, (full, last)))
    return per_epoch


def sweep(data, *, lambdas, method="concise", lr=0.01, max_epochs=10, init=None,
          dtype="float32", device=None, progress=None):
    """Train one run per lambda, all at once; return a list of :class:`wd_core.History`.

    ``sweep(data, lambdas=ls, ...)[i]`` equals ``train(data, lambd=ls[i], ...)`` up to
    rounding in ``dtype`` (the same steps; the matmuls are batched over lambda).

    Args:
        data: a :class:`wd_core.SyntheticData`.
        lambdas: a non-empty sequence of finite numbers >= 0 (L of them).
        method, lr, max_epochs, init, dtype, device: as in :func:`wd_jax.train`.
        progress: ``None`` or a callable called as ``progress(epoch)`` after each epoch of
            the whole sweep (from a host callback of the compiled program).

    Compiled once per (method, number of lambdas, shapes, dtype); the lambda values and
    ``lr`` are traced.
    """
    spec = prepare_sweep(data, lambdas=lambdas, method=method, lr=lr, max_epochs=max_epochs,
                         init=init, dtype=dtype, device=device, progress=progress)
    dev = jax_device(spec.run.device)
    with reporting_to(progress) as token:
        per_epoch = _sweep_on(spec, data, dev, token, progress is not None)
    # (E, L, ...) -> (L, E, ...): lambda first, as histories_from_sweep expects.
    return histories_from_sweep(spec, "jax", *(np.swapaxes(a, 0, 1) for a in per_epoch))


def _sweep_on(spec, data, dev, token, report_progress):
    run = spec.run
    with numerics(run.dtype):
        model = MODELS[run.method](data.num_inputs, lambd=0.0, lr=run.lr, dtype=run.dtype)
        params = jax.device_put(model.set_w_b(run.w0, run.b0), dev)
        per_epoch = _compiled_sweep(
            run.method, params, *arrays_on_device(data, run.dtype, dev),
            *schedule_on_device(data, run.max_epochs, dev),
            *(to_device(h, jax_dtype(run.dtype), dev) for h in (spec.lambdas, run.lr)), token,
            report_progress=report_progress,
        )
        return fetch(per_epoch)
