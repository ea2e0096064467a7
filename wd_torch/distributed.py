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

:func:`train`, :func:`train_worker` and :func:`leave` are :class:`wd_core.parallel.DataParallel`'s
(the job, the launch, the worker's entry and exit path, shared with :mod:`wd_jax.distributed`);
this module supplies the :class:`~wd_core.parallel.Engine`: joining the process group and the
step. :func:`train` starts and supervises ``workers`` local processes (this module's
``__main__``); :func:`train_worker` is one worker, the code every process runs, whoever started
it, e.g. ``torchrun ... -m weight_decay run --workers N ...`` on several machines (``RANK``,
``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``, ``LOCAL_RANK`` from the environment). Unless
``torch.distributed`` is initialized already, :func:`train_worker` creates the default process
group (gloo, or nccl for CUDA; timeout :data:`wd_core.workers.STARTUP_TIMEOUT_S`), which stays
up for later runs (its size must be ``workers``).
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
from wd_core.parallel import DataParallel, Engine
from wd_core.shards import (
    data_parallel_chunk,
    evaluation_ranges,
    worker_device,
    worker_micro_batches,
)
from wd_core.workers import STARTUP_TIMEOUT_S, Cluster, cluster_from_env, free_port
from wd_torch.device import arrays_on_device, epochs_to_numpy, torch_device
from wd_torch.models import MODELS, l2_penalty

__all__ = ["train", "train_worker", "leave"]

#: torchrun's environment variables (the supervisor sets the same ones).
CLUSTER_ENV = {"rank": "RANK", "world_size": "WORLD_SIZE", "host": "MASTER_ADDR",
               "port": "MASTER_PORT"}


def cluster_env(cluster: Cluster) -> dict:
    """torchrun's environment variables for the worker ``cluster`` describes."""
    return {"RANK": str(cluster.rank), "WORLD_SIZE": str(cluster.world_size),
            "LOCAL_RANK": str(cluster.rank), "LOCAL_WORLD_SIZE": str(cluster.world_size),
            "MASTER_ADDR": cluster.host, "MASTER_PORT": str(cluster.port)}


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


WRAPPERS = {"ddp": _Replicated, "zero": _Zero, "fsdp": _Sharded}


def _place() -> tuple[int, int]:
    return dist.get_rank(), dist.get_world_size()


def _run(spec, dp, progress) -> tuple[list, int]:
    """Every epoch of this worker through :func:`wd_core.driver.drive`; ``(per-epoch
    outputs, shards)``."""
    data = spec.data
    rank, world, K = dist.get_rank(), dist.get_world_size(), dp.accumulation_steps
    dev = torch_device(worker_device(spec.device, int(os.environ.get("LOCAL_RANK", rank))))
    X, y, X_val, y_val = arrays_on_device(data, spec.dtype, dev)
    model = MODELS[spec.method](data.num_inputs, lambd=spec.lambd, lr=spec.lr, dtype=spec.dtype,
                                optimizer=spec.optimizer)
    model.set_w_b(spec.w0, spec.b0)
    model.to(dev)
    wrapper = WRAPPERS[dp.strategy](ShardLoss(model), dev, world)
    penalty = spec.method == "scratch" and rank == 0
    train_rows, val_rows = (slice(*map(int, evaluation_ranges(n, world)[rank]))
                            for n in (data.num_train, data.num_val))

    def step(batch):
        for k, rows in enumerate(worker_micro_batches(batch, world, rank, K)):
            last = k == K - 1
            rows = torch.as_tensor(rows, device=dev)
            with wrapper.sync(last):
                wrapper.module(X[rows], y[rows], len(batch), penalty and last).backward()
        wrapper.optimizer.step()
        wrapper.optimizer.zero_grad()

    def epoch_outputs():
        with wrapper.full_parameters(), torch.no_grad():
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

    per_epoch = drive(run_epochs, None, max_epochs=spec.max_epochs, progress=progress,
                      chunk=data_parallel_chunk(data, spec.max_epochs),
                      epoch_params=spec.epoch_params)
    return per_epoch, world


def _leave() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def _lost_peer(err: BaseException) -> bool:
    """torch.distributed's errors (gloo's lost connection, a store or collective timeout);
    :func:`wd_core.workers.reports_lost_peer` also reads the message of a wrapped one."""
    return isinstance(err, dist.DistError)


ENGINE = Engine(backend="torch", module="wd_torch.distributed", runtime="the process group",
                cluster_env=cluster_env, gpus=torch.cuda.device_count, join=_join,
                place=_place, run=_run, leave=_leave, lost_peer=_lost_peer)
_parallel = DataParallel(ENGINE)
train, train_worker, leave = _parallel.train, _parallel.train_worker, _parallel.leave

if __name__ == "__main__":
    _parallel.serve()
