"""Data parallel in JAX: ``jax.distributed`` (gloo collectives on CPU), a ``data`` mesh axis
over every process's devices, proven equal to one process.

Each global step is :func:`wd_jax.train`'s step on the same batch (the rules:
:mod:`wd_core.shards`). The mesh spans all devices of all processes (``W`` of them: one per
process on CPU, or several per process with ``--xla_force_host_platform_device_count``, the
single-process multi-device case, which runs this same code). A chunk of epochs is one
``jax.jit`` of a ``shard_map`` over the ``data`` axis: device ``r`` takes its
``numpy.array_split`` shard of each batch in ``K = accumulation_steps`` micro-batches and
accumulates ``jax.grad`` of ``sum((x w + b - y)**2) / 2 / B`` (``B`` the *global* batch size;
for ``scratch`` device 0's last micro-batch adds ``lambd * ||w||**2 / 2``) inside the compiled
step; ``lax.psum`` sums the gradients once per batch, and every device applies the same optax
chain as :func:`wd_jax.train` (the model's ``configure_optimizers()``) once per batch.
Parameters and optax state are **replicated** (the strategy ``"ddp"``: DDP's rule); the
batch is sharded. Per-epoch losses are summed over each device's share of the rows and
``psum``-ed.

:func:`train`, :func:`train_worker` and :func:`leave` are :class:`wd_core.parallel.DataParallel`'s
(the job, the launch, the worker's entry and exit path, shared with :mod:`wd_torch.distributed`);
this module supplies the :class:`~wd_core.parallel.Engine`: joining JAX's runtime and the
compiled step. :func:`train` starts and supervises ``workers`` local processes (this module's
``__main__``), process 0 the coordinator on a free local port; :func:`train_worker` is one
process of a run, the code every process runs, whoever started it, e.g. ``weight-decay run
--backend jax --workers N --coordinator-address HOST:PORT --process-id I`` on each machine
(``JAX_COORDINATOR_ADDRESS``, ``JAX_NUM_PROCESSES``, ``JAX_PROCESS_ID`` from the environment
work too; without them, one process on all its local devices). A multi-process run calls
``jax.distributed.initialize`` (gloo CPU collectives; timeouts from :mod:`wd_core.workers`)
unless it was called already; JAX allows that once per process, before any other JAX
computation, so call :func:`train_worker` first; the runtime stays up for later runs.
"""

from __future__ import annotations

import functools
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import AxisType, NamedSharding
from jax.sharding import PartitionSpec as P

from wd_core.driver import drive
from wd_core.parallel import DataParallel, Engine
from wd_core.shards import (
    data_parallel_chunk,
    evaluation_ranges,
    sharded_layout,
    sharded_schedule,
    worker_device,
)
from wd_core.workers import (
    COLLECTIVE_TIMEOUT_S,
    STARTUP_TIMEOUT_S,
    Cluster,
    cluster_from_env,
    visible_gpu_count,
)
from wd_jax.device import jax_device, jax_dtype, numerics
from wd_jax.models import l2_penalty
from wd_jax.training import model_and_optimizer, start_state

__all__ = ["train", "train_worker", "leave"]

#: The environment variables of a process of a multi-process JAX run.
CLUSTER_ENV = {"rank": "JAX_PROCESS_ID", "world_size": "JAX_NUM_PROCESSES",
               "address": "JAX_COORDINATOR_ADDRESS"}
AXIS = "data"
REPLICATED = P()


def cluster_env(cluster: Cluster) -> dict:
    """The environment variables of the process ``cluster`` describes."""
    return {"JAX_COORDINATOR_ADDRESS": cluster.address,
            "JAX_NUM_PROCESSES": str(cluster.world_size),
            "JAX_PROCESS_ID": str(cluster.rank), "LOCAL_RANK": str(cluster.rank)}


def _join(cluster, device: str) -> None:
    """``jax.distributed.initialize`` for a multi-process ``cluster`` (or the environment's),
    unless JAX's distributed runtime is up already."""
    if jax.distributed.is_initialized():
        return
    if cluster is None:
        cluster = cluster_from_env(CLUSTER_ENV)
    if cluster is None or cluster.world_size == 1:
        return
    kwargs = {}
    if device.startswith("cuda"):
        kwargs["local_device_ids"] = [int(os.environ.get("LOCAL_RANK", cluster.rank))]
    else:
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(
        cluster.address, cluster.world_size, cluster.rank,
        initialization_timeout=STARTUP_TIMEOUT_S,
        heartbeat_timeout_seconds=COLLECTIVE_TIMEOUT_S,
        shutdown_timeout_seconds=COLLECTIVE_TIMEOUT_S, **kwargs)


def data_mesh(devices) -> jax.sharding.Mesh:
    """A 1-D mesh with axis ``"data"`` over ``devices`` (every process's, in global order).
    JAX 0.10's ``make_mesh`` defaults to explicit axes; this one is ``Auto`` (the chunk is a
    ``shard_map`` that says where each collective is)."""
    return jax.make_mesh((len(devices),), (AXIS,), axis_types=(AxisType.Auto,),
                         devices=devices)


def global_array(array: np.ndarray, mesh, spec: P) -> jax.Array:
    """A global array of ``array`` (the same numpy values in every process) laid out on
    ``mesh`` by ``spec``; each process supplies its own devices' pieces."""
    return jax.make_array_from_callback(array.shape, NamedSharding(mesh, spec),
                                        lambda index: array[index])


def _place() -> tuple[int, int]:
    return jax.process_index(), jax.process_count()


def _run(spec, dp, progress) -> tuple[list, int]:
    """This process's part of the run, sharded over every process's devices of the platform
    of ``spec.device``; ``(per-epoch outputs, shards)``, the shards being those devices."""
    local = worker_device(spec.device, int(os.environ.get("LOCAL_RANK", jax.process_index())))
    platform = jax_device(local).platform  # DeviceUnavailableError without the GPU
    devices = jax.devices(platform)
    return run_sharded(spec, dp, spec.optimizer, devices, progress), len(devices)


def run_sharded(spec, dp, optimizer, devices, progress) -> list:
    """Drive the sharded chunks of the run ``spec`` over ``devices`` through
    :func:`wd_core.driver.drive`; return its per-epoch numpy outputs (epochs first)."""
    data = spec.data
    mesh = data_mesh(devices)
    W, K = len(devices), dp.accumulation_steps
    static = {"method": spec.method, "optimizer": optimizer, "mesh": mesh}
    with numerics(spec.dtype):
        dtype = jax_dtype(spec.dtype)
        as_dtype = np.dtype(dtype)

        def put(array, pspec=REPLICATED):
            array = np.asarray(array)
            if array.dtype.kind == "f" or array.ndim == 0:
                array = array.astype(as_dtype)
            elif array.dtype.kind == "i":
                array = array.astype(np.int32)
            return global_array(array, mesh, pspec)

        arrays = tuple(put(a) for a in (data.X_train, data.y_train, data.X_val, data.y_val))
        evals = tuple(put(evaluation_ranges(n, W), P(AXIS))
                      for n in (data.num_train, data.num_val))
        _, mask, sizes = sharded_layout(data.num_train, data.batch_size, W, K)
        masks = put(mask, P(None, AXIS))
        sizes = put(sizes.astype(np.float64))
        lambd, lr = put(np.float64(spec.lambd)), put(np.float64(spec.lr))
        params = {"w": put(spec.w0), "b": put(spec.b0)}
        carry = start_state(params, lambd, lr, method=spec.method, optimizer=optimizer)

    def run_epochs(carry, first, count):
        schedule = sharded_schedule(data, first, count, W, K)
        with numerics(spec.dtype):
            index = put(schedule.index, P(None, None, AXIS))
            carry, outputs = run_sharded_chunk(carry, arrays, evals, index, masks, sizes,
                                               lambd, lr, **static)
        return carry, [np.asarray(a.addressable_data(0)) for a in outputs]

    return drive(run_epochs, carry, max_epochs=spec.max_epochs, progress=progress,
                 chunk=data_parallel_chunk(data, spec.max_epochs),
                 epoch_params=spec.epoch_params)


@functools.partial(jax.jit, static_argnames=("method", "optimizer", "mesh"))
def run_sharded_chunk(carry, arrays, evals, index, masks, sizes, lambd, lr, *, method,
                      optimizer, mesh):
    """A chunk of E epochs of T steps, sharded over the mesh's ``data`` axis (``W`` devices).

    Args:
        carry: ``(params, opt_state)``, replicated.
        arrays: ``(X (n, d), y (n, 1), X_val, y_val)``, replicated.
        evals: ``(train ranges, val ranges)`` (W, 2): each device's ``[start, stop)`` rows for
            the per-epoch loss sums (:func:`wd_core.shards.evaluation_ranges`).
        index: (E, T, W, K, m) row indices of every micro-batch, sharded on W; masks
            (T, W, K, m) its real rows, sharded on W; sizes (T,) the rows of each batch
            (:func:`wd_core.shards.sharded_schedule`), replicated.
        lambd, lr: replicated scalars (traced).

    Returns ``(carry, (w (E, d, 1), b (E, 1), train_loss (E,), val_loss (E,)))``, replicated.
    """
    X = arrays[0]
    d, dtype = X.shape[1], X.dtype.name
    specs = (P(), P(), P(AXIS), P(None, None, AXIS), P(None, AXIS), P(), P(), P())

    def body(carry, arrays, evals, index, masks, sizes, lambd, lr):
        X, y, X_val, y_val = arrays
        model, transform = model_and_optimizer(method, optimizer, d, dtype, lambd, lr)
        on_first_device = jax.lax.axis_index(AXIS) == 0

        def micro_loss(params, rows, valid, size, penalty):
            residual = model.forward(params, X[rows]) - y[rows]
            loss = jnp.sum(jnp.where(valid[:, None], residual**2, 0)) / (2 * size)
            if method == "scratch":  # the penalty, once per global step
                loss = loss + jnp.where(penalty, model.lambd * l2_penalty(params["w"]), 0)
            return loss

        grad = jax.grad(micro_loss)

        def step(carry, batch):
            """One global step on this device's micro-batches (K, m) of one batch."""
            (params, opt_state), (rows, valid, size) = carry, batch
            K = rows.shape[1]
            # This device's copy: jax.grad then gives this device's gradient alone (of the
            # replicated params it would be psum-ed already, once per micro-batch).
            local = jax.lax.pcast(params, AXIS, to="varying")
            zeros = jax.tree.map(jnp.zeros_like, local)

            def accumulate(grads, micro):
                k, micro_rows, micro_valid = micro
                g = grad(local, micro_rows, micro_valid, size, on_first_device & (k == K - 1))
                return jax.tree.map(jnp.add, grads, g), None

            grads, _ = jax.lax.scan(accumulate, zeros, (jnp.arange(K), rows[0], valid[0]))
            grads = jax.lax.psum(grads, AXIS)  # the batch-mean gradient, on every device
            updates, opt_state = transform.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), None

        def loss_sum(params, X, y, rows):
            """Squared residuals summed over this device's rows ``[start, stop)``: a window
            of ``ceil(n / W)`` rows (a slice, which XLA fuses into the product), masked."""
            n, window = X.shape[0], -(-X.shape[0] // mesh.size)
            start, stop = rows[0, 0], rows[0, 1]
            first = jnp.minimum(start, n - window)  # where dynamic_slice puts the window
            residual = (model.forward(params, jax.lax.dynamic_slice_in_dim(X, first, window))
                        - jax.lax.dynamic_slice_in_dim(y, first, window))
            row = first + jnp.arange(window)
            return jnp.sum(jnp.where(((row >= start) & (row < stop))[:, None], residual**2, 0))

        def epoch(carry, epoch_index):
            carry, _ = jax.lax.scan(step, carry, (epoch_index, masks, sizes.astype(X.dtype)))
            params = carry[0]
            sums = jax.lax.psum(jnp.stack([loss_sum(params, X, y, evals[0]),
                                           loss_sum(params, X_val, y_val, evals[1])]), AXIS)
            return carry, (params["w"], params["b"], sums[0] / X.shape[0] / 2,
                           sums[1] / X_val.shape[0] / 2)

        return jax.lax.scan(epoch, carry, index)

    sharded = jax.shard_map(body, mesh=mesh, in_specs=specs, out_specs=P())
    return sharded(carry, arrays, evals, index, masks, sizes, lambd, lr)


def _leave() -> None:
    if jax.distributed.is_initialized():
        jax.distributed.shutdown()


def _lost_peer(err: BaseException) -> bool:
    """JAX's runtime errors once its distributed runtime is up (the coordination service
    losing a process); :func:`wd_core.workers.reports_lost_peer` also reads the message of a
    failed gloo collective (a ``ValueError``)."""
    return isinstance(err, jax.errors.JaxRuntimeError) and jax.distributed.is_initialized()


ENGINE = Engine(backend="jax", module="wd_jax.distributed", runtime="JAX's runtime",
                cluster_env=cluster_env, gpus=visible_gpu_count, join=_join, place=_place,
                run=_run, leave=_leave, lost_peer=_lost_peer)
_parallel = DataParallel(ENGINE)
train, train_worker, leave = _parallel.train, _parallel.train_worker, _parallel.leave

if __name__ == "__main__":
    _parallel.serve()
