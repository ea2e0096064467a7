"""``wd_jax.sweep``: all lambdas in one compiled program, ``jax.vmap`` of the chunk of epochs.

Every lambda trains the same model from the same initial parameters on the same batches, so
the runs differ only in ``lambd``. Each chunk of epochs (:mod:`wd_core.driver`) is the chunk
of :func:`wd_jax.training.run_chunk` with its epoch ``vmap``-ed over lambda: for
``"concise"`` the decay is still ``optax.chain(optax.add_decayed_weights(lambd,
mask=DECAY_MASK), optax.sgd(lr))``, built once per vmapped lane with its own ``lambd``; for
``"scratch"`` the penalty ``lambd * ||w||**2 / 2`` is in the loss under ``jax.grad``. A batched
``X_batch @ w`` over lambda is one matmul ``(B, d) @ (d, L)``.
"""

from __future__ import annotations

from wd_core.sweeps import histories_from_sweep, prepare_sweep
from wd_jax.training import run_compiled


def sweep(data, *, lambdas, method="concise", lr=0.01, max_epochs=10, init=None,
          dtype="float32", device=None, progress=None, epoch_params=False,
          implementation="idiomatic"):
    """Train one run per lambda, all at once; return a list of :class:`wd_core.History`.

    ``sweep(data, lambdas=ls, ...)[i]`` equals ``train(data, lambd=ls[i], ...)`` up to
    rounding in ``dtype`` (the same steps; the matmuls are batched over lambda).

    Args:
        data: a :class:`wd_core.SyntheticData`.
        lambdas: a non-empty sequence of finite numbers >= 0 (L of them).
        method, lr, max_epochs, init, dtype, device, epoch_params, implementation: as in
            :func:`wd_jax.train` (``"fused"``: the analytic step, ``vmap``-ed over lambda).
        progress: ``None`` or a callable called as ``progress(epoch)`` after each epoch of
            the whole sweep, in the caller's thread.

    Compiled once per (method, number of lambdas, shapes, dtype, chunk length); the lambda
    values and ``lr`` are traced. The sweep stops once every lambda's run has diverged.
    """
    spec = prepare_sweep(data, lambdas=lambdas, method=method, lr=lr, max_epochs=max_epochs,
                         init=init, dtype=dtype, device=device, progress=progress,
                         epoch_params=epoch_params, implementation=implementation)
    per_epoch = run_compiled(spec.run, spec.lambdas, lanes=True, progress=progress)
    return histories_from_sweep(spec, "jax", *per_epoch)
