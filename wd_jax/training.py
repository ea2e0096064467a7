"""The training loop, compiled: the whole run is one ``jax.jit`` of a ``lax.scan`` over epochs,
each epoch a ``lax.scan`` over the batch order that :mod:`wd_core` gives.
"""

from __future__ import annotations

import collections
import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax

from wd_core.optimizers import check_optimizer
from wd_core.runspec import history_from_epochs, prepare_run
from wd_jax.device import jax_device, jax_dtype, numerics
from wd_jax.models import MODELS, squared_loss

#: How many times each method's run was traced (compiled); a repeated call with the same
#: shapes and dtypes does not add to it.
TRACE_COUNTS: collections.Counter = collections.Counter()


#: Where the compiled run reports finished epochs while a ``train(progress=...)`` call runs.
#: A module variable, not a context variable: JAX calls back from its own thread.
_progress_sink = {"callable": None}


def _report_epoch(epoch) -> None:
    sink = _progress_sink["callable"]
    if sink is not None:
        sink(int(epoch))


@functools.partial(jax.jit, static_argnames=("method", "report_progress", "optimizer"))
def _compiled_run(method, params, X, y, X_val, y_val, full, last, lambd, lr,
                  report_progress=False, optimizer=None):
    """Every epoch of one run.

    Args:
        params: {"w": (d, 1), "b": (1,)}; X, y: (n, d), (n, 1); X_val, y_val likewise.
        full: (E, S, B) int row indices of the full batches; last: (E, r) the ragged ones.
        lambd, lr: scalars in the run's dtype (traced: new values do not recompile).
        report_progress: compile in a host callback after each epoch (``train(progress=)``).
        optimizer: ``None`` or a hashable :class:`wd_core.optimizers.OptimizerSpec` (static:
            a new spec compiles once more; ``lambd`` and ``lr`` stay traced).

    Returns per-epoch ``(w (E, d, 1), b (E, 1), train_loss (E,), val_loss (E,))``.
    """
    TRACE_COUNTS[method] += 1
    model = MODELS[method](X.shape[1], lambd=lambd, lr=lr, dtype=X.dtype.name,
                           optimizer=optimizer)
    transform = model.configure_optimizers()
    loss_grad = jax.grad(model.loss)

    def step(carry, rows):
        params, opt_state = carry
        grads = loss_grad(params, X[rows], y[rows])
        updates, opt_state = transform.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), None

    def epoch(carry, inputs):
        index, (full_batches, last_batch) = inputs
        carry, _ = jax.lax.scan(step, carry, full_batches)
        if last_batch.shape[0]:  # static: the ragged batch exists in every epoch or none
            carry, _ = step(carry, last_batch)
        params = carry[0]
        losses = (
            squared_loss(model.forward(params, X), y),
            squared_loss(model.forward(params, X_val), y_val),
        )
        if report_progress:
            jax.debug.callback(_report_epoch, index, ordered=True)
        return carry, (params["w"], params["b"], *losses)

    epochs = jnp.arange(full.shape[0])
    _, per_epoch = jax.lax.scan(epoch, (params, transform.init(params)), (epochs, (full, last)))
    return per_epoch


def train(
    data, *, method, lambd, lr, max_epochs, init=None, dtype="float32", device=None,
    progress=None, optimizer=None,
):
    """Train the chapter's model with weight decay; return a :class:`wd_core.History`.

    Args:
        data: a :class:`wd_core.SyntheticData`; its batches are followed in order.
        method: ``"scratch"`` (penalty in the loss, ``optax.sgd``) or ``"concise"``
            (``optax.add_decayed_weights`` masked to the weight, then ``optax.sgd``).
        lambd, lr: finite, >= 0. max_epochs: >= 1.
        init: ``None`` (``init_params(data.num_inputs, data.seed)``) or float64 ``(w, b)``
            of shapes (d, 1), (1,).
        dtype: ``"float32"`` or ``"float64"`` (x64 enabled for this call only);
            device: ``None``/``"cpu"``/``"cuda"``.
        progress: ``None`` or a callable called as ``progress(epoch)`` after each epoch
            (from a host callback of the compiled run).
        optimizer: ``None`` (``optax.sgd`` as above) or a
            :class:`wd_core.optimizers.OptimizerSpec`: that family built by
            :mod:`wd_jax.optim` (torch's SGD with momentum, SGDW, Adam, AdamW) with learning
            rate ``lr``; ``"concise"`` decays ``w`` only by ``lambd``. The History's
            ``config`` then has an ``"optimizer"`` entry (``OptimizerSpec.to_config()``).

    The run is compiled once per (method, shapes, dtype); ``lambd`` and ``lr`` are traced,
    so a sweep over them does not recompile.
    """
    spec = prepare_run(
        data, method=method, lambd=lambd, lr=lr, max_epochs=max_epochs, init=init,
        dtype=dtype, device=device,
    )
    optimizer_spec = check_optimizer(optimizer)
    dev = jax_device(spec.device)
    previous, _progress_sink["callable"] = _progress_sink["callable"], progress
    try:
        history = _train_on(spec, data, dev, progress, optimizer_spec)
    finally:
        _progress_sink["callable"] = previous
    if optimizer_spec is not None:
        history.config["optimizer"] = optimizer_spec.to_config()
    return history


def _train_on(spec, data, dev, progress, optimizer_spec=None):
    with numerics(spec.dtype):
        jdtype = jax_dtype(spec.dtype)

        def on_device(array, dtype=jdtype):
            return jax.device_put(np.asarray(array, dtype=dtype), dev)

        model = MODELS[spec.method](data.num_inputs, lambd=spec.lambd, lr=spec.lr,
                                    dtype=spec.dtype)
        params = jax.device_put(model.set_w_b(spec.w0, spec.b0), dev)
        full, last = (on_device(a, np.int32) for a in data.batch_schedule(spec.max_epochs))
        per_epoch = _compiled_run(
            spec.method, params,
            on_device(data.X_train), on_device(data.y_train),
            on_device(data.X_val), on_device(data.y_val),
            full, last, on_device(spec.lambd), on_device(spec.lr),
            report_progress=progress is not None, optimizer=optimizer_spec,
        )
        per_epoch = [np.asarray(a) for a in jax.device_get(per_epoch)]
        jax.effects_barrier()
    return history_from_epochs(spec, "jax", *per_epoch)
