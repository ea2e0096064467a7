"""What a compiled run and a compiled sweep share: the epoch, the per-epoch progress report
and fetching the results.
"""

from __future__ import annotations

import contextlib
import itertools

import jax
import numpy as np
import optax

from wd_jax.models import squared_loss

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
    except BaseException as err:  # noqa: BLE001 - kept and raised in the caller's thread
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
