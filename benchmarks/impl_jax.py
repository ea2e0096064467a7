"""JAX + optax implementations: the idiomatic loop, the project's ``train()`` and ``sweep()``,
and ``train()``'s compiled program alone.

* ``idiomatic``: what a user plotting the curves writes; one ``jax.jit``-ed step
  (``jax.grad`` of ``wd_jax.WeightDecay.loss``, ``optax.chain(add_decayed_weights(mask=w
  only), sgd)``, ``optax.apply_updates``) called from a Python loop on numpy batches
  ``X[rows], y[rows]`` gathered on the host, as the book's JAX data loader hands them over
  (``tfds.as_numpy``); after every epoch one jitted evaluation of the loss on the whole
  training and validation sets (kept on the device: put there once, untimed), its results
  collected and read once at the end.
* ``train`` / ``train-fused``: one whole ``wd_jax.train(method="concise")`` call, with the
  default ``implementation="idiomatic"`` (optax inside one compiled ``lax.scan`` per chunk of
  epochs) or the public fast path ``implementation="fused"`` (analytic gradients; the
  single-read row-blocked step for large batches on the CPU).
* ``program`` / ``program-fused``: only what ``train()`` compiles, called as ``train()``
  calls it: :func:`wd_jax.training.run_chunk` for each chunk of epochs
  (:func:`wd_core.driver.chunk_epochs`) on device inputs prepared untimed (data, schedule,
  starting state). ``train`` over ``program`` is the per-call overhead of the public API
  (validation, moving the data, building the History).
* ``sweep`` / ``sweep-fused`` (sweep workloads): one whole ``wd_jax.sweep`` call over the
  workload's lambdas (the chunk ``vmap``-ed over lambda).
"""

from __future__ import annotations

from .implementation import (
    Implementation,
    Prepared,
    host_arrays,
    sweep_implementation,
    train_implementation,
)

FRAMEWORK = "jax"


def cuda_status() -> tuple[bool, str]:
    import jax

    try:
        gpus = jax.devices("gpu")
    except RuntimeError:
        gpus = []
    if not gpus:
        return False, f"JAX sees no GPU (platforms: {sorted({d.platform for d in jax.devices()})})"
    return True, f"JAX sees {gpus[0].device_kind}"


def _prepare_idiomatic(workload, data, dtype, device):
    import jax
    import numpy as np
    import optax

    import wd_jax
    from wd_core.params import init_params
    from wd_jax.device import jax_device, numerics

    dev = jax_device(device)
    X, y, X_val, y_val = host_arrays(data, dtype)
    batches = [data.epoch_batches(e) for e in range(workload.epochs)]
    with numerics(dtype):
        on_device = tuple(jax.device_put(a, dev) for a in (X, y, X_val, y_val))
        model = wd_jax.WeightDecay(data.num_inputs, lambd=workload.lambd, lr=workload.lr,
                                   dtype=dtype)
        optimizer = model.configure_optimizers()
        params0 = jax.device_put(model.set_w_b(*init_params(data.num_inputs, data.seed)), dev)

    @jax.jit
    def step(params, opt_state, Xb, yb):
        grads = jax.grad(model.loss)(params, Xb, yb)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    @jax.jit
    def evaluate(params, X, y, X_val, y_val):
        return model.loss(params, X, y), model.loss(params, X_val, y_val)

    def run():
        with numerics(dtype):
            params = params0
            opt_state = optimizer.init(params)
            losses = []
            for epoch in batches:
                for rows in epoch:
                    params, opt_state = step(params, opt_state, X[rows], y[rows])
                losses.append(evaluate(params, *on_device))
            return params, losses

    def outcome(result):
        params, losses = result
        train_loss, val_loss = np.array(losses, dtype=np.float64).T
        return np.asarray(params["w"], dtype=np.float64), train_loss, val_loss

    return Prepared(run=run, sync=jax.block_until_ready, outcome=outcome)


def _program_preparer(implementation: str):
    def prepare(workload, data, dtype, device):
        return _prepare_program(workload, data, dtype, device, implementation)

    return prepare


def _prepare_program(workload, data, dtype, device, implementation):
    """``run_chunk`` over the run's chunks, with its inputs made the way ``train()`` makes
    them (:func:`wd_jax.training.run_compiled`), untimed."""
    import jax
    import numpy as np

    from wd_core.driver import chunk_epochs
    from wd_core.params import init_params
    from wd_jax.device import (
        arrays_on_device,
        jax_device,
        numerics,
        schedule_on_device,
    )
    from wd_jax.fused import auto_block_rows
    from wd_jax.training import run_chunk

    dev = jax_device(device)
    block_rows = auto_block_rows(data.batch_size, data.num_inputs, np.dtype(dtype).itemsize,
                                 dev.platform) if implementation == "fused" else None
    static = {"method": "concise", "optimizer": None, "lanes": False,
              "implementation": implementation, "block_rows": block_rows}
    chunk = chunk_epochs(data, workload.epochs)
    w0, b0 = init_params(data.num_inputs, data.seed)
    lambd, lr, w0, b0 = (np.asarray(v, dtype=dtype) for v in (workload.lambd, workload.lr,
                                                                 w0, b0))
    with numerics(dtype):
        arrays = arrays_on_device(data, dtype, dev)
        params = {"w": w0, "b": b0}  # the first chunk makes the optimizer state, as in train()
        schedules = [schedule_on_device(data, min(chunk, workload.epochs - first), dev, first)
                     for first in range(0, workload.epochs, chunk)]

    def run():
        with numerics(dtype):
            carry, outputs = params, []
            for i, schedule in enumerate(schedules):
                carry, out = run_chunk(carry, arrays, *schedule, lambd, lr, start=i == 0,
                                       **static)
                outputs.append(out)
            return carry, outputs

    def outcome(result):
        carry, outputs = result
        train_loss, val_loss = (np.concatenate([np.asarray(out[k], np.float64)
                                                for out in outputs]) for k in (-2, -1))
        return np.asarray(carry[0]["w"], dtype=np.float64), train_loss, val_loss

    return Prepared(run=run, sync=jax.block_until_ready, outcome=outcome,
                    block_rows=block_rows)


def implementations(workload, device, dtype) -> list[Implementation]:
    if workload.lambdas > 1:
        return [sweep_implementation(FRAMEWORK), sweep_implementation(FRAMEWORK, "fused")]
    return [
        Implementation(FRAMEWORK, "idiomatic",
                       "jitted optax step on host numpy batches, jitted losses per epoch",
                       _prepare_idiomatic),
        train_implementation(FRAMEWORK),
        train_implementation(FRAMEWORK, "fused"),
        Implementation(FRAMEWORK, "program", "train()'s compiled chunks alone (run_chunk)",
                       _program_preparer("idiomatic")),
        Implementation(FRAMEWORK, "program-fused",
                       "train(implementation='fused')'s compiled chunks alone (run_chunk)",
                       _program_preparer("fused")),
    ]
