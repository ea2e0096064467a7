"""Data parallel arithmetic, framework-free: who gets which rows of a batch, and the options.

A global step of a data-parallel run is the single-process step on the same batch (the one
:meth:`wd_core.SyntheticData.epoch_batches` gives). With ``W`` workers and ``K``
accumulation steps:

* the batch (``B`` rows, in step order) is split into ``W`` contiguous shards in
  ``numpy.array_split`` order (the first ``B % W`` shards one row longer; a shard may be
  empty when ``B < W``, e.g. a ragged last batch);
* each shard is split the same way into ``K`` micro-batches (some may be empty);
* each micro-batch contributes ``sum over its rows of (x w + b - y)**2 / 2`` divided by the
  *global* ``B`` (never by its own size), so that the gradients summed over micro-batches and
  workers are the gradient of the batch mean, whatever the shard sizes;
* the decay enters once per global step: the optimizer's ``weight_decay`` (one optimizer step
  per batch) or, for ``scratch``, the penalty ``lambd * ||w||**2 / 2`` in the loss of exactly
  one micro-batch of one worker (worker 0's last).

Everything here is numpy and the standard library; :mod:`wd_torch.distributed` and
:mod:`wd_jax.distributed` build their steps from it.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from wd_core.driver import chunk_epochs
from wd_core.errors import DeviceUnavailableError, InputError
from wd_core.runspec import prepare_run
from wd_core.validation import POSITIVE_INT, check_choice, check_number
from wd_core.workers import portable_data

#: Every strategy name the project knows, and the ones each backend runs.
STRATEGIES = ("ddp", "zero", "fsdp")
BACKEND_STRATEGIES = {
    "torch": ("ddp", "zero", "fsdp"),
    # JAX: parameters and optax state replicated on every device, the batch sharded along the
    # mesh's ``data`` axis, gradients summed with ``psum``: DistributedDataParallel's rule.
    "jax": ("ddp",),
}
DEFAULT_STRATEGY = "ddp"


def split_rows(rows, parts: int) -> list[np.ndarray]:
    """``numpy.array_split(rows, parts)``: ``parts`` contiguous pieces, the first
    ``len(rows) % parts`` one longer; pieces may be empty."""
    return np.array_split(np.asarray(rows), parts)


def worker_micro_batches(rows, workers: int, rank: int, accumulation_steps: int = 1) -> list:
    """The ``accumulation_steps`` micro-batches (row-index arrays, maybe empty) that worker
    ``rank`` of ``workers`` processes for the batch ``rows``, in order."""
    return split_rows(split_rows(rows, workers)[rank], accumulation_steps)


def micro_batch_positions(batch_size: int, workers: int,
                          accumulation_steps: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Where every worker's micro-batches lie in a batch of ``batch_size`` rows, as
    rectangular arrays (for compiled steps): ``(positions, mask)`` of shape
    ``(workers, accumulation_steps, width)``, ``width`` the longest micro-batch
    (``ceil(ceil(B / W) / K)``, at least 1). ``positions`` are int64 offsets into the batch
    (padding repeats offset 0), ``mask`` is True on real rows. The same for every batch of
    that size, so a run computes it once per batch size."""
    width = max_micro_batch(batch_size, workers, accumulation_steps)
    positions = np.zeros((workers, accumulation_steps, width), dtype=np.int64)
    mask = np.zeros((workers, accumulation_steps, width), dtype=bool)
    for r in range(workers):
        for k, part in enumerate(worker_micro_batches(np.arange(batch_size), workers, r,
                                                      accumulation_steps)):
            positions[r, k, : len(part)] = part
            mask[r, k, : len(part)] = True
    return positions, mask


def padded_layout(rows, workers: int, accumulation_steps: int = 1):
    """Every worker's micro-batches of the batch ``rows`` (see
    :func:`micro_batch_positions`): ``(index, mask)``, ``index`` the row indices (int64)."""
    rows = np.asarray(rows)
    positions, mask = micro_batch_positions(len(rows), workers, accumulation_steps)
    return (rows[positions] if rows.size else np.zeros_like(positions)), mask


def max_micro_batch(batch_size: int, workers: int, accumulation_steps: int = 1) -> int:
    """The longest micro-batch of a batch of ``batch_size`` rows (at least 1, for padding)."""
    shard = -(-batch_size // workers)
    return max(1, -(-shard // accumulation_steps))


@dataclass(frozen=True)
class ShardedSchedule:
    """The batches of some epochs laid out per worker and micro-batch, every batch padded to
    the layout of a full one (:func:`sharded_schedule`; T batches per epoch).

    ``index`` (E, T, W, K, m): row indices; ``mask`` (T, W, K, m): the real ones (the same in
    every epoch: only the last batch may be shorter); ``sizes`` (T,): the rows of each batch,
    the divisor of its step.
    """

    index: np.ndarray
    mask: np.ndarray
    sizes: np.ndarray


@functools.lru_cache(maxsize=16)
def sharded_layout(num_train: int, batch_size: int, workers: int,
                   accumulation_steps: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Where each worker's micro-batches lie in an epoch's row order, every batch padded to
    a full one's width: ``(positions (T, W, K, m) int64, mask (T, W, K, m), sizes (T,))``
    for the T batches of an epoch (see :class:`ShardedSchedule`). The same for every epoch,
    so it is made once per sizes (cached, read-only)."""
    B, n = batch_size, num_train
    sizes = np.array([min(B, n - start) for start in range(0, n, B)])
    width = max_micro_batch(B, workers, accumulation_steps)
    shape = (len(sizes), workers, accumulation_steps, width)
    positions, mask = np.zeros(shape, np.int64), np.zeros(shape, bool)
    for t, size in enumerate(sizes):
        p, m = micro_batch_positions(int(size), workers, accumulation_steps)
        positions[t, ..., : p.shape[-1]] = p + t * B
        mask[t, ..., : m.shape[-1]] = m
    for array in (positions, mask, sizes):
        array.flags.writeable = False
    return positions, mask, sizes


def sharded_schedule(data, first_epoch: int, num_epochs: int, workers: int,
                     accumulation_steps: int = 1) -> ShardedSchedule:
    """The batches of epochs ``first_epoch .. first_epoch + num_epochs - 1`` of ``data`` (a
    :class:`wd_core.SyntheticData`), in :meth:`~wd_core.SyntheticData.epoch_batches` order,
    each split as :func:`micro_batch_positions` says and padded to a full batch's width
    (:func:`sharded_layout`)."""
    positions, mask, sizes = sharded_layout(data.num_train, data.batch_size, workers,
                                            accumulation_steps)
    return ShardedSchedule(data.epoch_orders(num_epochs, first_epoch)[:, positions], mask,
                           sizes)


def evaluation_ranges(n: int, workers: int) -> np.ndarray:
    """Rows ``0..n-1`` split over ``workers`` for the per-epoch losses, as contiguous
    ``numpy.array_split`` ranges ``[start, stop)``: (workers, 2) int64. Each worker sums the
    squared residuals of its range (a slice, not a gathered copy), the sums are added across
    workers and divided by ``n``."""
    sizes = np.array([len(part) for part in split_rows(np.arange(n), workers)])
    stops = np.cumsum(sizes)
    return np.stack([stops - sizes, stops], axis=1)


@dataclass(frozen=True)
class DataParallelSpec:
    """Validated data-parallel options: ``workers`` processes, a ``strategy`` of the backend,
    ``accumulation_steps`` micro-batches per worker and batch."""

    workers: int
    strategy: str
    accumulation_steps: int

    def config(self) -> dict:
        """What a data-parallel History's ``config`` records on top of the run's."""
        return {"workers": self.workers, "strategy": self.strategy,
                "accumulation_steps": self.accumulation_steps}


def check_strategy(strategy, backend: str) -> str:
    """``strategy`` if ``backend`` runs it; ``InputError`` naming it and the accepted ones."""
    accepted = BACKEND_STRATEGIES[backend]
    check_choice("strategy", strategy, STRATEGIES)
    if strategy not in accepted:
        raise InputError(f"strategy {strategy!r} does not apply to backend {backend!r}; "
                         f"accepted for {backend}: {', '.join(accepted)}")
    return strategy


def prepare_data_parallel(data, *, backend: str, workers, strategy,
                          accumulation_steps) -> DataParallelSpec:
    """Validate the data-parallel options of a run on ``data`` (a
    :class:`wd_core.SyntheticData`): ``workers`` >= 1, a strategy of ``backend``,
    ``1 <= accumulation_steps <= data.batch_size``. Raises ``InputError`` naming the value.
    """
    workers = check_number("workers", workers, POSITIVE_INT)
    strategy = check_strategy(strategy, backend)
    steps = check_number("accumulation_steps", accumulation_steps, POSITIVE_INT)
    if steps > data.batch_size:
        raise InputError(f"accumulation_steps={steps} is larger than a batch "
                         f"(batch_size={data.batch_size}); accepted: 1 <= accumulation_steps "
                         f"<= batch_size")
    return DataParallelSpec(workers, strategy, steps)


def prepare_parallel_run(data, *, backend: str, workers, strategy, accumulation_steps,
                         **run_options):
    """Validate a data-parallel run: ``(RunSpec, DataParallelSpec)``. ``run_options`` are
    :func:`wd_core.runspec.prepare_run`'s (method, lambd, lr, max_epochs, init, dtype,
    device, progress, optimizer, epoch_params); ``InputError`` naming a bad value."""
    spec = prepare_run(data, **run_options)
    dp = prepare_data_parallel(data, backend=backend, workers=workers, strategy=strategy,
                               accumulation_steps=accumulation_steps)
    return spec, dp


def worker_job(spec, dp: DataParallelSpec) -> dict:
    """The arguments every worker is started with (picklable): the validated run and the
    data-parallel options, the data as :func:`wd_core.workers.portable_data`."""
    return {"data": portable_data(spec.data), "method": spec.method, "lambd": spec.lambd,
            "lr": spec.lr, "max_epochs": spec.max_epochs, **dp.config(),
            "init": (spec.w0, spec.b0), "dtype": spec.dtype, "device": spec.device,
            "optimizer": spec.optimizer, "epoch_params": spec.epoch_params}


def check_worker_devices(device: str, workers: int, gpus: int) -> None:
    """Every worker gets a device of its own: for ``device`` ``"cuda"`` worker ``r`` uses GPU
    ``r`` of its machine, so ``gpus`` (the GPUs this machine has) must be at least ``workers``;
    ``"cuda:N"`` names one GPU and so one worker. ``"cpu"``: any number of workers share the
    CPU. Raises :class:`~wd_core.errors.DeviceUnavailableError` or ``InputError``."""
    if not device.startswith("cuda"):
        return
    if device != "cuda" and workers > 1:
        raise InputError(f"device {device!r} names one GPU but workers={workers}; use device "
                         f"'cuda' (worker r uses GPU r)")
    if gpus < workers:
        raise DeviceUnavailableError(
            f"device {device!r} with workers={workers} needs a GPU for every worker, but this "
            f"machine has {gpus}; use --device cpu or fewer workers")


def worker_device(device: str, local_rank: int) -> str:
    """The device of the worker with ``local_rank`` on its machine: ``"cuda"`` becomes
    ``"cuda:<local_rank>"``; ``"cpu"`` and ``"cuda:N"`` stay."""
    return f"cuda:{local_rank}" if device == "cuda" else device


#: A data-parallel chunk of epochs holds at most this many global steps: every step waits for
#: a collective, so steps cost more than :func:`wd_core.driver.chunk_epochs` (which counts
#: multiply-adds) assumes, and progress and Ctrl-C must not wait for a chunk of many seconds.
MAX_CHUNK_STEPS = 256


def data_parallel_chunk(data, max_epochs: int) -> int:
    """Epochs per chunk of a data-parallel run: :func:`wd_core.driver.chunk_epochs`, but no
    more than :data:`MAX_CHUNK_STEPS` steps (at least one epoch)."""
    by_steps = max(1, MAX_CHUNK_STEPS // data.steps_per_epoch)
    return min(chunk_epochs(data, max_epochs), by_steps)
