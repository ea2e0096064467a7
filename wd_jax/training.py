"""The training loop, compiled: the whole run is one ``jax.jit`` of a ``lax.scan`` over epochs,
each epoch a ``lax.scan`` over the batch order that :mod:`wd_core` gives.

The epoch (:func:`epoch_function`), the per-epoch progress report (:func:`reporting_to`,
:func:`report_epoch`) and :func:`fetch` also serve :mod:`wd_jax.sweeping`.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import optax

from wd_core.optimizers import check_optimizer
from wd_core.runspec import history_from_epochs, prepare_run
from wd_jax.device import (
    arrays_on_device,
    jax_device,
    jax_dtype,
    numerics,
    schedule_on_device,
    to_device,
)
from wd_jax.models import MODELS, squared_loss

#: How many times each method's run was traced (compiled); a repeated call with the same
#: shapes and dtypes does not add to it.
TRACE_COUNTS: collections.Counter = collections.Counter()


#: The ``progress`` callable of each running call, by the token that its compiled program
#: passes back (module state, not a context variable: JAX calls back from its own thread; a
#: token per call keeps concurrent calls apart), and the exception a callable raised.
_sinks: dict = {}
_errors: dict = {}
_tokens = itertools.count()


def _deliver_epoch(token, epoch) -> None:
    token = int(token)
    sink = _sinks.get(token)
    if sink is None:
        return
    try:
        sink(int(epoch))
    except BaseException as err:  # kept, and raised in the caller's thread by reporting_to
        _errors[token] = err
        _sinks.pop(token, None)


@contextlib.contextmanager
def reporting_to(progress):
    """Yields a token (an int32 numpy scalar) to pass into the compiled program, whose
    :func:`report_epoch` calls then reach ``progress(epoch)`` (None: nothing). An exception
    raised by ``progress`` stops the reports and is raised here when the block ends, as it
    would be from a plain Python loop."""
    token = next(_tokens) % 2**31
    if progress is not None:
        _sinks[token] = progress
    try:
        yield np.int32(token)
        error = _errors.pop(token, None)
        if error is not None:
            raise error
    finally:
        _sinks.pop(token, None)
        _errors.pop(token, None)


def report_epoch(token, index) -> None:
    """Inside compiled code: report that epoch ``index`` (a traced int) has finished to the
    ``progress`` registered under ``token`` (traced) by :func:`reporting_to`."""
    jax.debug.callback(_deliver_epoch, token, index, ordered=True)


def epoch_function(model, optimizer, X, y, X_val, y_val):
    """The chapter's epoch for ``model`` (a :mod:`wd_jax.models` model) trained by
    ``optimizer`` (an ``optax.GradientTransformation``, usually its ``configure_optimizers()``),
    to trace.

    Returns ``run_epoch(carry, full_batches, last_batch) -> (carry, outputs)`` where
    ``carry = (params, opt_state)``, ``full_batches`` (S, B) and ``last_batch`` (r,) are row
    indices into ``X`` (n, d) and ``y`` (n, 1), and ``outputs = (w (d, 1), b (1,),
    train_loss, val_loss)`` after the epoch (data losses on ``X, y`` and ``X_val, y_val``).
    One step is ``optax.apply_updates(params, optimizer.update(jax.grad(model.loss), ...))``.
    """
    loss_grad = jax.grad(model.loss)

    def step(carry, rows):
        params, opt_state = carry
        grads = loss_grad(params, X[rows], y[rows])
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), None

    def run_epoch(carry, full_batches, last_batch):
        carry, _ = jax.lax.scan(step, carry, full_batches)
        if last_batch.shape[0]:  # static: the ragged batch exists in every epoch or none
            carry, _ = step(carry, last_batch)
        params = carry[0]
        losses = (squared_loss(model.forward(params, X), y),
                  squared_loss(model.forward(params, X_val), y_val))
        return carry, (params["w"], params["b"], *losses)

    return run_epoch


def fetch(per_epoch) -> list[np.ndarray]:
    """The compiled program's outputs as numpy, after every progress report has run."""
    arrays = [np.asarray(a) for a in jax.device_get(per_epoch)]
    jax.effects_barrier()
    return arrays


@functools.partial(jax.jit, static_argnames=("method", "report_progress", "optimizer"))
def _compiled_run(method, params, X, y, X_val, y_val, full, last, lambd, lr, token,
                  report_progress=False, optimizer=None):
    """Every epoch of one run.

    Args:
        params: {"w": (d, 1), "b": (1,)}; X, y: (n, d), (n, 1); X_val, y_val likewise.
        full: (E, S, B) int row indices of the full batches; last: (E, r) the ragged ones.
        lambd, lr: scalars in the run's dtype (traced: new values do not recompile).
        token: int32 scalar from :func:`reporting_to` (where reports go).
        report_progress: compile in a host callback after each epoch (``train(progress=)``).
        optimizer: ``None`` or a hashable :class:`wd_core.optimizers.OptimizerSpec` (static:
            a new spec compiles once more; ``lambd`` and ``lr`` stay traced).

    Returns per-epoch ``(w (E, d, 1), b (E, 1), train_loss (E,), val_loss (E,))``. After the
    first epoch whose loss is NaN or infinite (a diverged run) the remaining epochs are
    skipped: their losses are NaN and ``history_from_epochs`` drops them.
    """
    TRACE_COUNTS[method] += 1
    model = MODELS[method](X.shape[1], lambd=lambd, lr=lr, dtype=X.dtype.name,
                           optimizer=optimizer)
    transform = model.configure_optimizers()
    run_epoch = epoch_function(model, transform, X, y, X_val, y_val)

    def skip_epoch(state):
        params = state[0]
        nan = jnp.full((), jnp.nan, X.dtype)
        return state, (params["w"], params["b"], nan, nan)

    def epoch(carry, inputs):
        """Trains the epoch unless an earlier one diverged (then it is skipped, unreported)."""
        state, stopped = carry
        index, (full_batches, last_batch) = inputs

        def train_epoch(state):
            result = run_epoch(state, full_batches, last_batch)
            if report_progress:
                report_epoch(token, index)
            return result

        state, outputs = jax.lax.cond(stopped, skip_epoch, train_epoch, state)
        stopped = stopped | ~(jnp.isfinite(outputs[2]) & jnp.isfinite(outputs[3]))
        return (state, stopped), outputs

    epochs = jnp.arange(full.shape[0])
    start = ((params, transform.init(params)), jnp.array(False))
    _, per_epoch = jax.lax.scan(epoch, start, (epochs, (full, last)))
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
    so a sweep over them does not recompile. A run whose loss becomes NaN or infinite skips
    every later epoch; the History marks it (``diverged``).
    """
    spec = prepare_run(
        data, method=method, lambd=lambd, lr=lr, max_epochs=max_epochs, init=init,
        dtype=dtype, device=device, progress=progress,
    )
    optimizer_spec = check_optimizer(optimizer)
    dev = jax_device(spec.device)
    with reporting_to(progress) as token:
        history = _train_on(spec, data, dev, token, progress is not None, optimizer_spec)
    if optimizer_spec is not None:
        history.config["optimizer"] = optimizer_spec.to_config()
    return history


def _train_on(spec, data, dev, token, report_progress, optimizer_spec):
    with numerics(spec.dtype):
        model = MODELS[spec.method](data.num_inputs, lambd=spec.lambd, lr=spec.lr,
                                    dtype=spec.dtype)
        params = jax.device_put(model.set_w_b(spec.w0, spec.b0), dev)
        per_epoch = _compiled_run(
            spec.method, params, *arrays_on_device(data, spec.dtype, dev),
            *schedule_on_device(data, spec.max_epochs, dev),
            *(to_device(h, jax_dtype(spec.dtype), dev) for h in (spec.lambd, spec.lr)), token,
            report_progress=report_progress, optimizer=optimizer_spec,
        )
        return history_from_epochs(spec, "jax", *fetch(per_epoch))
