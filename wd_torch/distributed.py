"""Data parallel in PyTorch: ``torch.distributed`` (gloo on CPU, nccl on CUDA), proven equal
to one process.

Each global step is :func:`wd_torch.train`'s step on the same batch (the rules:
:mod:`wd_core.shards`). Worker ``r`` of ``W`` takes its ``numpy.array_split`` shard of the
batch, in ``K = accumulation_steps`` micro-batches; each micro-batch's loss is
``sum((x w + b - y)**2) / 2 / B`` with ``B`` the *global* batch size (for ``scratch`` worker
0's last micro-batch adds ``lambd * ||w||**2 / 2``, so the penalty's gradient enters once);
the gradients are *summed* across workers (DDP with a SUM communication hook, FSDP with its
gradient divide factor 1), and the optimizer steps once per batch (its ``weight_decay`` on
the weight's group only). The strategies:

* ``ddp``: ``DistributedDataParallel``; parameters and optimizer state replicated.
* ``zero``: DDP and ``ZeroRedundancyOptimizer`` wrapping the same optimizer (the model's
  ``configure_optimizers()``, same groups): optimizer state sharded, each worker updates
  (and decays) its share of the parameters, which are then broadcast.
* ``fsdp``: FSDP2 ``fully_shard`` on a device mesh of the ``W`` workers: parameters,
  gradients and optimizer state sharded; each worker decays its shard.

Gradient accumulation uses the engines' own switches: ``no_sync()`` (DDP, ZeRO) or
``set_requires_gradient_sync(False)`` (FSDP) on all but the last micro-batch. Per-epoch
losses are summed over each worker's share of the rows and all-reduced.

:func:`train` starts and supervises ``workers`` local processes (:mod:`wd_core.workers`);
:func:`train_worker` is one worker, the code every process runs, whoever started it: this
module's ``__main__`` under that supervisor, or ``torchrun ... -m weight_decay run --workers
N ...`` on several machines (``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``,
``LOCAL_RANK`` from the environment).
"""

from __future__ import annotations

import contextlib
import datetime
import inspect
import os

import torch
import torch.distributed as dist
from torch import nn

from wd_core.driver import drive
from wd_core.errors import InputError
from wd_core.runspec import history_from_epochs
from wd_core.shards import (
    DEFAULT_STRATEGY,
    check_worker_devices,
    data_parallel_chunk,
    evaluation_ranges,
    prepare_parallel_run,
    worker_device,
    worker_job,
    worker_micro_batches,
)
from wd_core.workers import (
    STARTUP_TIMEOUT_S,
    Cluster,
    cluster_from_env,
    data_from_portable,
    free_port,
    launch,
    serve,
)
from wd_torch.device import arrays_on_device, epochs_to_numpy, torch_device
from wd_torch.models import MODELS, l2_penalty

__all__ = ["train", "train_worker", "leave"]

#: torchrun's environment variables (the supervisor sets the same ones).
CLUSTER_ENV = {"rank": "RANK", "world_size": "WORLD_SIZE", "host": "MASTER_ADDR",
               "port": "MASTER_PORT"}


def train(
    data, *, method, lambd, lr, max_epochs, workers, strategy=DEFAULT_STRATEGY,
    accumulation_steps=1, init=None, dtype="float32", device=None, progress=None,
    optimizer=None, epoch_params=False,
):
    """Train on ``workers`` local processes; return rank 0's :class:`wd_core.History`.

    The arguments are :func:`wd_torch.train`'s, and:

    Args:
        workers: processes (>= 1), started and supervised here; each uses
            ``cpu_count // workers`` threads (``OMP_NUM_THREADS`` if set), and with
            ``device="cuda"`` GPU ``rank``.
        strategy: ``"ddp"``, ``"zero"`` or ``"fsdp"`` (module docstring).
        accumulation_steps: micro-batches per worker and batch, ``1..batch_size``.
        progress: called here, in the caller's thread, for each epoch rank 0 finishes.

    The History equals :func:`wd_torch.train`'s on the same arguments (float64 within 1e-12);
    its ``config`` adds ``workers``, ``strategy``, ``accumulation_steps`` and ``shards``.

    Raises ``InputError`` before any process starts for bad input (workers < 1, a strategy
    torch does not run, accumulation_steps outside 1..batch_size, ``cuda`` without a GPU for
    every worker); :class:`wd_core.workers.WorkerError` naming the worker and the cause when
    a worker fails (the others are stopped; no result).
    """
    job = _job(data, method=method, lambd=lambd, lr=lr, max_epochs=max_epochs,
               workers=workers, strategy=strategy, accumulation_steps=accumulation_steps,
               init=init, dtype=dtype, device=device, progress=progress, optimizer=optimizer,
               epoch_params=epoch_params)
    return launch("wd_torch.distributed", job, job["workers"], env_for_rank=cluster_env,
                  progress=progress)


def _job(data, **options) -> dict:
    """Validate everything a worker would (and the GPUs), before a process starts."""
    spec, dp = _prepare(data, **options)
    gpus = torch.cuda.device_count() if spec.device.startswith("cuda") else 0
    check_worker_devices(spec.device, dp.workers, gpus)
    return worker_job(spec, dp)


def _prepare(data, **options):
    return prepare_parallel_run(data, backend="torch", **options)


def cluster_env(cluster: Cluster) -> dict:
    """torchrun's environment variables for the worker ``cluster`` describes."""
    return {"RANK": str(cluster.rank), "WORLD_SIZE": str(cluster.world_size),
            "LOCAL_RANK": str(cluster.rank), "LOCAL_WORLD_SIZE": str(cluster.world_size),
            "MASTER_ADDR": cluster.host, "MASTER_PORT": str(cluster.port)}


def train_worker(
    data, *, method, lambd, lr, max_epochs, workers, strategy=DEFAULT_STRATEGY,
    accumulation_steps=1, init=None, dtype="float32", device=None, progress=None,
    optimizer=None, epoch_params=False, cluster=None,
):
    """Run this process as one worker of a data-parallel run; rank 0 returns the History,
    the others None.

    The arguments are :func:`train`'s; every worker passes the same ones. ``cluster``: a
    :class:`wd_core.workers.Cluster`, or None for torchrun's environment variables (or, when
    they are unset, a run of one process). The default process group is created here unless
    ``torch.distributed`` is initialized already (gloo, or nccl for CUDA; timeout
    :data:`wd_core.workers.STARTUP_TIMEOUT_S`) and stays up for later runs (its size must be
    ``workers``), as JAX's runtime does. ``progress`` is called on rank 0 only, after each
    epoch, by :func:`wd_core.driver.drive`.
    """
    spec, dp = _prepare(
        data, method=method, lambd=lambd, lr=lr, max_epochs=max_epochs, workers=workers,
        strategy=strategy, accumulation_steps=accumulation_steps, init=init, dtype=dtype,
        device=device, progress=progress, optimizer=optimizer, epoch_params=epoch_params)
    _join(cluster, spec.device)
    rank, world = dist.get_rank(), dist.get_world_size()
    if world != dp.workers:
        raise InputError(f"workers={dp.workers} but the process group has {world} processes")
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    dev = torch_device(worker_device(spec.device, local_rank))
    per_epoch = _run(spec, dp, dev, progress if rank == 0 else None)
    if rank != 0:
        return None
    history = history_from_epochs(spec, "torch", *per_epoch)
    history.config.update(dp.config(), shards=dp.workers)
    return history


def _join(cluster, device: str) -> None:
    """Initialize the default process group unless it is."""
    if dist.is_initialized():
        return
    if cluster is None:
        cluster = cluster_from_env(CLUSTER_ENV) or Cluster(0, 1, "127.0.0.1", free_port())
    dist.init_process_group(
        "nccl" if device.startswith("cuda") else "gloo",
        init_method=f"tcp://{cluster.address}", rank=cluster.rank,
        world_size=cluster.world_size,
        timeout=datetime.timedelta(seconds=STARTUP_TIMEOUT_S))


class ShardLoss(nn.Module):
    """The loss one worker differentiates for one micro-batch (the module the engines wrap).

    ``forward(X, y, global_size, penalty)`` with ``X`` (m, d), ``y`` (m, 1) the micro-batch
    (m may be 0): ``sum((model(X) - y)**2) / 2 / global_size``, plus
    ``model.lambd * l2_penalty(w)`` when ``penalty``. Summed over the micro-batches of every
    worker this is the single-process batch loss ``mean(...) / 2 (+ penalty)``.
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, X, y, global_size: int, penalty: bool):
        loss = ((self.model(X) - y) ** 2).sum() / (2 * global_size)
        if penalty:
            loss = loss + self.model.lambd * l2_penalty(self.model.get_w_b()[0])
        return loss


def _sum_hook(group, bucket):
    """DDP communication hook: all-reduce SUM (DDP's default divides by the world size)."""
    work = dist.all_reduce(bucket.buffer(), group=group, async_op=True)
    return work.get_future().then(lambda fut: fut.value()[0])


class _Replicated:
    """``ddp``: DistributedDataParallel with :func:`_sum_hook`, the model's own optimizer."""

    def __init__(self, loss: ShardLoss, device: torch.device, world: int):
        from torch.nn.parallel import DistributedDataParallel

        ids = [device.index] if device.type == "cuda" else None
        self.module = DistributedDataParallel(loss, device_ids=ids)
        self.module.register_comm_hook(dist.group.WORLD, _sum_hook)
        self.optimizer = self._optimizer(loss.model)

    def _optimizer(self, model):
        return model.configure_optimizers()

    def sync(self, last: bool):
        """Context of one micro-batch: gradients are reduced only on the ``last``."""
        return contextlib.nullcontext() if last else self.module.no_sync()

    def full_parameters(self):
        """Context in which the model holds its whole parameters (it always does here)."""
        return contextlib.nullcontext()


class _Zero(_Replicated):
    """``zero``: DDP plus ``ZeroRedundancyOptimizer`` over the model's optimizer (its class,
    hyper-parameters and parameter groups)."""

    def _optimizer(self, model):
        from torch.distributed.optim import ZeroRedundancyOptimizer

        base = model.configure_optimizers()
        cls = type(base)
        accepted = inspect.signature(cls.__init__).parameters
        defaults = {k: v for k, v in base.defaults.items() if k in accepted and k != "params"}
        groups = [{"params": g["params"], "weight_decay": g["weight_decay"]}
                  for g in base.param_groups]
        return ZeroRedundancyOptimizer(groups, optimizer_class=cls, **defaults)


class _Sharded:
    """``fsdp``: FSDP2 ``fully_shard`` over a 1-D device mesh of the workers, gradients
    summed (divide factor 1); the model's optimizer over the sharded parameters."""

    def __init__(self, loss: ShardLoss, device: torch.device, world: int):
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import fully_shard

        mesh = init_device_mesh(device.type, (world,))
        self.module = fully_shard(loss, mesh=mesh)
        self.module.set_gradient_divide_factor(1.0)
        self.module.set_force_sum_reduction_for_comms(True)  # gloo has no PREMUL_SUM
        self.optimizer = loss.model.configure_optimizers()

    def sync(self, last: bool):
        self.module.set_requires_gradient_sync(last)
        return contextlib.nullcontext()

    @contextlib.contextmanager
    def full_parameters(self):
        self.module.unshard()
        try:
            yield
        finally:
            self.module.reshard()


ENGINES = {"ddp": _Replicated, "zero": _Zero, "fsdp": _Sharded}


def _run(spec, dp, dev, progress) -> list:
    """Every epoch of this worker through :func:`wd_core.driver.drive`."""
    data = spec.data
    rank, world, K = dist.get_rank(), dist.get_world_size(), dp.accumulation_steps
    X, y, X_val, y_val = arrays_on_device(data, spec.dtype, dev)
    model = MODELS[spec.method](data.num_inputs, lambd=spec.lambd, lr=spec.lr, dtype=spec.dtype,
                                optimizer=spec.optimizer)
    model.set_w_b(spec.w0, spec.b0)
    model.to(dev)
    engine = ENGINES[dp.strategy](ShardLoss(model), dev, world)
    penalty = spec.method == "scratch" and rank == 0
    train_rows, val_rows = (slice(*map(int, evaluation_ranges(n, world)[rank]))
                            for n in (data.num_train, data.num_val))

    def step(batch):
        for k, rows in enumerate(worker_micro_batches(batch, world, rank, K)):
            last = k == K - 1
            rows = torch.as_tensor(rows, device=dev)
            with engine.sync(last):
                engine.module(X[rows], y[rows], len(batch), penalty and last).backward()
        engine.optimizer.step()
        engine.optimizer.zero_grad()

    def epoch_outputs():
        with engine.full_parameters(), torch.no_grad():
            w, b = (p.detach().clone() for p in model.get_w_b())
            sums = torch.stack([((model(X[train_rows]) - y[train_rows]) ** 2).sum(),
                                ((model(X_val[val_rows]) - y_val[val_rows]) ** 2).sum()])
        dist.all_reduce(sums)
        return w, b, sums[0] / data.num_train / 2, sums[1] / data.num_val / 2

    def run_epochs(state, first, count):
        per_epoch = []
        for epoch in range(first, first + count):
            for batch in data.epoch_batches(epoch):
                step(batch)
            per_epoch.append(epoch_outputs())
        return state, epochs_to_numpy(per_epoch)

    return drive(run_epochs, None, max_epochs=spec.max_epochs, progress=progress,
                 chunk=data_parallel_chunk(data, spec.max_epochs),
                 epoch_params=spec.epoch_params)


def leave() -> None:
    """End this process's part in the data-parallel runtime that :func:`train_worker` joined
    (``torch.distributed.destroy_process_group``); nothing if it joined none."""
    if dist.is_initialized():
        dist.destroy_process_group()


def _serve(job, progress):
    job = dict(job, data=data_from_portable(job["data"]))
    history = train_worker(**job, progress=progress)
    leave()
    return history


if __name__ == "__main__":
    serve(_serve)
