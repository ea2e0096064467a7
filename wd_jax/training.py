"""The training loop, compiled: each chunk of epochs (:mod:`wd_core.driver`) is one
``jax.jit`` of a ``lax.scan`` over epochs, each epoch a ``lax.scan`` over the batch order that
:mod:`wd_core` gives. The sweep (:mod:`wd_jax.sweeping`) runs the same chunk, ``vmap``-ed
over lambda.
"""

from __future__ import annotations

import collections
import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax

from wd_core.driver import chunk_epochs, drive
from wd_core.runspec import history_from_epochs, prepare_run
from wd_jax.device import (
    arrays_on_device,
    jax_device,
    numerics,
    schedule_on_device,
)
from wd_jax.fused import auto_block_rows, fused_step_function
from wd_jax.models import MODELS, forward, squared_loss

#: How many times each method's chunk was traced (compiled); a repeated call with the same
#: shapes, dtype and chunk length does not add to it.
TRACE_COUNTS: collections.Counter = collections.Counter()


def optax_step(model, optimizer, X, y):
    """One step of ``model`` (a :mod:`wd_jax.models` model) trained by ``optimizer`` (an
    ``optax.GradientTransformation``, usually its ``configure_optimizers()``), to trace:
    ``step((params, opt_state), rows) -> ((params, opt_state), None)`` on the batch ``rows``
    of ``X`` (n, d), ``y`` (n, 1): ``optax.apply_updates(params, optimizer.update(
    jax.grad(model.loss), ...))``."""
    loss_grad = jax.grad(model.loss)

    def step(carry, rows):
        params, opt_state = carry
        grads = loss_grad(params, X[rows], y[rows])
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), None

    return step


def epoch_function(step, X, y, X_val, y_val):
    """The chapter's epoch of ``step`` (:func:`optax_step` or
    :func:`wd_jax.fused.fused_step_function`), to trace.

    Returns ``run_epoch(carry, full_batches, last_batch) -> (carry, outputs)`` where
    ``carry = (params, state)``, ``full_batches`` (S, B) and ``last_batch`` (r,) are row
    indices into ``X`` (n, d) and ``y`` (n, 1), and ``outputs = (w (d, 1), b (1,),
    train_loss, val_loss)`` after the epoch (data losses on ``X, y`` and ``X_val, y_val``).
    """

    def run_epoch(carry, full_batches, last_batch):
        # Unrolled (up to 8 steps a loop iteration): the per-iteration cost of a loop is large
        # against the chapter's tiny steps (200 epochs: 0.98 -> 0.81 ms).
        carry, _ = jax.lax.scan(step, carry, full_batches, unroll=min(8, len(full_batches)))
        if last_batch.shape[0]:  # static: the ragged batch exists in every epoch or none
            carry, _ = step(carry, last_batch)
        # The barrier keeps XLA from fusing the losses' products into the step's (measured:
        # with the fused step at the chapter's size, 3.0 ms instead of 0.87 ms for 200 epochs).
        params = jax.lax.optimization_barrier(carry[0])
        losses = (squared_loss(forward(params, X), y), squared_loss(forward(params, X_val), y_val))
        return carry, (params["w"], params["b"], *losses)

    return run_epoch


def model_and_optimizer(method, optimizer, num_inputs, dtype, lambd, lr):
    """``(model, optax transform)`` of ``method`` with ``lambd`` and ``lr`` (traced)."""
    model = MODELS[method](num_inputs, lambd=lambd, lr=lr, dtype=dtype, optimizer=optimizer)
    return model, model.configure_optimizers()


_STATIC = ("method", "optimizer", "lanes", "implementation", "block_rows")


@functools.partial(jax.jit, static_argnames=_STATIC)
def start_state(params, lambd, lr, *, method, optimizer=None, lanes=False,
                implementation="idiomatic", block_rows=None):
    """The carry of the first chunk: ``(params, opt_state)`` (the fused step has no state:
    ``()``); with ``lanes``, one per lambda of ``lambd`` (L,), every lane starting from the
    same ``params``."""
    return _start(params, lambd, lr, method, optimizer, lanes, implementation)


def _start(params, lambd, lr, method, optimizer, lanes, implementation):
    d, dtype = params["w"].shape[0], params["w"].dtype.name

    def start(lambd):
        if implementation == "fused":
            return params, ()
        return params, model_and_optimizer(method, optimizer, d, dtype, lambd,
                                           lr)[1].init(params)

    return jax.vmap(start)(lambd) if lanes else start(lambd)


@functools.partial(jax.jit, static_argnames=(*_STATIC, "start"))
def run_chunk(carry, arrays, full, last, lambd, lr, *, method, optimizer=None, lanes=False,
              implementation="idiomatic", block_rows=None, start=False):
    """A chunk of epochs of one run (or, with ``lanes``, of one run per lambda).

    Args:
        carry: ``(params, opt_state)`` from :func:`start_state` or the previous chunk; with
            ``start`` (static), the first chunk's ``params`` alone, the state made here (one
            call fewer for a run of one chunk).
        arrays: ``(X (n, d), y (n, 1), X_val, y_val)`` on the device.
        full: (K, S, B) int row indices of the chunk's full batches; last: (K, r) the
            ragged ones (K epochs: a static length, one compilation per chunk length).
        lambd: a scalar, or (L,) with ``lanes``; lr: a scalar (both traced: new values do
            not recompile).
        optimizer: ``None`` or a hashable :class:`wd_core.optimizers.OptimizerSpec` (static).
        implementation: ``"idiomatic"`` (the model's loss under ``jax.grad`` and its optax
            chain) or ``"fused"`` (:func:`wd_jax.fused.fused_step_function`, with
            ``block_rows``).

    Returns ``(carry, (w (K, [L,] d, 1), b (K, [L,] 1), train_loss (K, [L]), val_loss))``.
    """
    TRACE_COUNTS[method] += 1
    X, y = arrays[0], arrays[1]
    if start:
        carry = _start(carry, lambd, lr, method, optimizer, lanes, implementation)

    def one_epoch(carry, lambd, full_batches, last_batch):
        if implementation == "fused":
            step = fused_step_function(X, y, lambd, lr, block_rows)
        else:
            model, transform = model_and_optimizer(method, optimizer, X.shape[1],
                                                   X.dtype.name, lambd, lr)
            step = optax_step(model, transform, X, y)
        return epoch_function(step, *arrays)(carry, full_batches, last_batch)

    if implementation == "fused" and full.shape[1:] == (1, X.shape[0]) and not last.shape[1]:
        return _full_batch_fused_chunk(carry, arrays, full, lambd, lr, lanes, block_rows)
    if lanes:
        one_epoch = jax.vmap(one_epoch, in_axes=(0, 0, None, None))

    def epoch(carry, batches):
        return one_epoch(carry, lambd, *batches)

    return jax.lax.scan(epoch, carry, (full, last))


def _full_batch_fused_chunk(carry, arrays, full, lambd, lr, lanes, block_rows):
    """:func:`run_chunk` of the fused step when every epoch is one batch of all training rows.

    The batch's gradient is a sum over its rows, so the step walks ``X`` in its own order
    instead of gathering the epoch's (the same sums up to the order of their terms). And the
    step of epoch e + 1 computes the residual of every training row at the parameters after
    epoch e: its batch loss is the training loss after epoch e, and only the chunk's last
    epoch needs a pass over ``X`` of its own to evaluate (one read of ``X`` per epoch instead
    of a gather and two reads).
    """
    X, y, X_val, y_val = arrays

    def one_epoch(carry, lambd, rows):
        del rows  # every row, in X's order
        carry, loss_before = fused_step_function(X, y, lambd, lr, block_rows)(carry, None)
        params = jax.lax.optimization_barrier(carry[0])
        val = squared_loss(forward(params, X_val), y_val)
        return carry, (params["w"], params["b"], loss_before, val)

    def train_loss(params):
        return squared_loss(forward(params, X), y)

    if lanes:
        one_epoch = jax.vmap(one_epoch, in_axes=(0, 0, None))
        train_loss = jax.vmap(train_loss)
    carry, (w, b, before, val) = jax.lax.scan(lambda c, rows: one_epoch(c, lambd, rows), carry,
                                              full)
    last = train_loss(carry[0])[None]
    return carry, (w, b, jnp.concatenate([before[1:], last]), val)


def run_compiled(spec, lambd, *, lanes=False, progress=None):
    """Drive the compiled chunks of the run ``spec`` (a :class:`wd_core.runspec.RunSpec`) with
    ``lambd`` (a number, or (L,) lambdas with ``lanes``) through :func:`wd_core.driver.drive`;
    return its per-epoch numpy outputs (epochs first)."""
    data, dev = spec.data, jax_device(spec.device)
    fused = spec.implementation == "fused"
    block_rows = auto_block_rows(data.batch_size, data.num_inputs,
                                 np.dtype(spec.dtype).itemsize, dev.platform) if fused else None
    static = {"method": spec.method, "optimizer": spec.optimizer, "lanes": lanes,
              "implementation": spec.implementation, "block_rows": block_rows}
    with numerics(spec.dtype):
        arrays = arrays_on_device(data, spec.dtype, dev)
    # Handed to the compiled chunk as numpy: jit moves them to the data's device in its C++
    # dispatch (about 10 us), where a device_put of the four costs about 200 us.
    lambd, lr, w, b = (np.asarray(a, dtype=spec.dtype) for a in (lambd, spec.lr, spec.w0,
                                                                  spec.b0))

    def run_epochs(carry, first, count):
        with numerics(spec.dtype):
            schedule = schedule_on_device(data, count, dev, first)
            return run_chunk(carry, arrays, *schedule, lambd, lr, start=first == 0, **static)

    lanes_count = lambd.shape[0] if lanes else 1
    return drive(run_epochs, {"w": w, "b": b}, max_epochs=spec.max_epochs, progress=progress,
                 chunk=chunk_epochs(data, spec.max_epochs, lanes_count),
                 epoch_params=spec.epoch_params)


def train(
    data, *, method, lambd, lr, max_epochs, init=None, dtype="float32", device=None,
    progress=None, optimizer=None, epoch_params=False, implementation="idiomatic",
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
        progress: ``None`` or a callable called as ``progress(epoch)`` after each epoch, in
            the caller's thread, after the compiled chunk that holds the epoch has run.
        optimizer: ``None`` (``optax.sgd`` as above) or a
            :class:`wd_core.optimizers.OptimizerSpec`: that family built by
            :mod:`wd_jax.optim` (torch's SGD with momentum, SGDW, Adam, AdamW) with learning
            rate ``lr``; ``"concise"`` decays ``w`` only by ``lambd``. The History's
            ``config`` then has an ``"optimizer"`` entry (``OptimizerSpec.to_config()``).
        epoch_params: keep the parameters after every epoch (``History.epoch_w``,
            ``epoch_b``); by default only the final ones (memory that grows with epochs x d).
        implementation: ``"idiomatic"`` (the model's loss, ``jax.grad`` and optax, as above)
            or ``"fused"``: the same steps with :mod:`wd_jax.fused`'s analytic step (either
            method: they are the same update), plain SGD only.
            ``config["implementation"]`` records it.

    Epochs run in chunks (:mod:`wd_core.driver`), each chunk compiled once per (method,
    shapes, dtype, chunk length); ``lambd`` and ``lr`` are traced, so a sweep over them does
    not recompile. A run whose loss becomes NaN or infinite stops after the chunk that holds
    that epoch; the History ends with it and marks it (``diverged``).
    """
    spec = prepare_run(
        data, method=method, lambd=lambd, lr=lr, max_epochs=max_epochs, init=init,
        dtype=dtype, device=device, progress=progress, epoch_params=epoch_params,
        implementation=implementation, optimizer=optimizer,
    )
    return history_from_epochs(spec, "jax", *run_compiled(spec, spec.lambd, progress=progress))
