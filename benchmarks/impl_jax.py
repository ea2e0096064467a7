"""JAX + optax implementations: the idiomatic loop, the project's ``train()``, the fused path.

* ``idiomatic``: what a user writes; one ``jax.jit``-ed step (``jax.grad`` of
  ``wd_jax.WeightDecay.loss``, ``optax.chain(add_decayed_weights(mask=w only), sgd)``,
  ``optax.apply_updates``) called from a Python loop on numpy batches ``X[rows], y[rows]``
  gathered on the host, as the book's JAX data loader hands them over (``tfds.as_numpy``).
  ``idiomatic-device``: the same step on ``X[rows]`` gathered eagerly from device arrays
  (one more dispatched operation per array and step).
* ``train``: one whole ``wd_jax.train(method="concise")`` call (one compiled ``lax.scan`` over
  epochs, plus moving the data, per-epoch losses and the History).
* ``train-fused``: one whole ``wd_jax.train(implementation="fused")`` call, the public fast
  path: every step with analytic gradients (block size chosen by ``auto_block_rows``: the
  single-read step for large batches on the CPU), per-epoch losses and the History.
"""

from __future__ import annotations

from .implementation import (
    Implementation,
    Prepared,
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


def _idiomatic_preparer(gather_on_device: bool):
    def prepare(workload, data, dtype, device):
        return _prepare_idiomatic(workload, data, dtype, device, gather_on_device)

    return prepare


def _prepare_idiomatic(workload, data, dtype, device, gather_on_device):
    import jax
    import numpy as np
    import optax

    import wd_jax
    from wd_core.params import init_params
    from wd_jax.device import jax_device, jax_dtype, numerics

    dev = jax_device(device)
    with numerics(dtype):
        jdtype = jax_dtype(dtype)
        X, y = (np.asarray(a, jdtype) for a in (data.X_train, data.y_train))
        batches = [data.epoch_batches(e) for e in range(workload.epochs)]
        if gather_on_device:
            X, y = (jax.device_put(a, dev) for a in (X, y))
            batches = [[jax.device_put(rows.astype(np.int32), dev) for rows in epoch]
                       for epoch in batches]
        model = wd_jax.WeightDecay(data.num_inputs, lambd=workload.lambd, lr=workload.lr,
                                   dtype=dtype)
        optimizer = model.configure_optimizers()
        params0 = jax.device_put(model.set_w_b(*init_params(data.num_inputs, data.seed)), dev)

    @jax.jit
    def step(params, opt_state, Xb, yb):
        grads = jax.grad(model.loss)(params, Xb, yb)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    def run():
        with numerics(dtype):
            params = params0
            opt_state = optimizer.init(params)
            for epoch in batches:
                for rows in epoch:
                    params, opt_state = step(params, opt_state, X[rows], y[rows])
            return params

    return Prepared(run=run, sync=jax.block_until_ready,
                    final_w=lambda params: np.asarray(params["w"], dtype=np.float64))


def implementations(workload, device, dtype) -> list[Implementation]:
    found = [
        Implementation(FRAMEWORK, "idiomatic", "jitted optax step, host numpy batches",
                       _idiomatic_preparer(False)),
        Implementation(FRAMEWORK, "idiomatic-device", "jitted optax step, X[rows] on device",
                       _idiomatic_preparer(True)),
        train_implementation(FRAMEWORK),
    ]
    return found + [train_implementation(FRAMEWORK, "fused")]
