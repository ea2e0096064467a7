"""Data parallel, framework-free: the public ``train`` and ``train_worker`` of both backends,
the job, the worker's entry and its exit path. A backend supplies an :class:`Engine` (joining
the cluster and its step), as it supplies a chunk-of-epochs function to
:func:`wd_core.driver.drive` for single-process training.

:class:`DataParallel` ``(engine)`` makes a backend's public functions::

    _parallel = DataParallel(ENGINE)
    train, train_worker, leave = _parallel.train, _parallel.train_worker, _parallel.leave
    if __name__ == "__main__":  # the worker module that train() launches
        _parallel.serve()

* ``train(data, ..., workers=W)`` validates everything a worker would (and the GPUs) before a
  process starts, then starts and supervises ``W`` local workers
  (:func:`wd_core.workers.launch`: ``python -m <engine.module> JOB``) and returns rank 0's
  History;
* ``train_worker(data, ..., cluster=None)`` is one worker, the code every process runs, whoever
  started it: validates, joins the cluster (the engine: unless joined already), checks its
  size, runs the engine's epochs through the driver and, on rank 0, returns the History;
* the worker module's ``__main__`` (:meth:`DataParallel.serve`) runs ``train_worker`` on the
  job and ends through :func:`wd_core.workers.end_process`, as the command line does for a
  worker that ``torchrun`` or the user started.

The rules of a global step (who gets which rows, the divisor, the decay once) are
:mod:`wd_core.shards`'.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from wd_core.errors import InputError
from wd_core.runspec import history_from_epochs
from wd_core.shards import (
    DEFAULT_STRATEGY,
    check_worker_devices,
    prepare_parallel_run,
    worker_job,
)
from wd_core.workers import data_from_portable, launch, serve

__all__ = ["Engine", "DataParallel"]


@dataclass(frozen=True)
class Engine:
    """What one backend supplies to data-parallel training.

    Attributes:
        backend: ``"torch"`` or ``"jax"`` (its strategies:
            :data:`wd_core.shards.BACKEND_STRATEGIES`).
        module: the worker module, ``python -m module JOB``, whose ``__main__`` calls
            :meth:`DataParallel.serve`.
        runtime: the runtime's name in messages (``"the process group"``).
        cluster_env: ``cluster_env(cluster) -> dict``, the environment variables of the worker
            a :class:`wd_core.workers.Cluster` describes (the engine's launcher's names).
        gpus: ``gpus() -> int``, the GPUs of this machine, counted before any process starts
            (without taking their memory).
        join: ``join(cluster, device)``: join the cluster ``cluster`` (None: the one the
            environment names, or a run of this process alone) unless joined already.
        place: ``place() -> (rank, world_size)`` of this process, once joined.
        run: ``run(spec, dp, progress) -> (per_epoch, shards)``: this worker's part of the run
            (a :class:`wd_core.runspec.RunSpec`, a :class:`wd_core.shards.DataParallelSpec`,
            ``progress`` on rank 0 only) through :func:`wd_core.driver.drive`; ``per_epoch``
            its ``(epoch_w, epoch_b, train_loss, val_loss)``, ``shards`` the data shards.
        leave: ``leave()``: end this process's part in the runtime; nothing if it joined none.
        lost_peer: ``lost_peer(err) -> bool``: ``err`` is the runtime's report that a peer
            went away (a consequence of another worker's failure, not a cause).
    """

    backend: str
    module: str
    runtime: str
    cluster_env: Callable
    gpus: Callable
    join: Callable
    place: Callable
    run: Callable
    leave: Callable
    lost_peer: Callable


class DataParallel:
    """The public data-parallel functions of the backend whose :class:`Engine` is ``engine``
    (the module docstring)."""

    def __init__(self, engine: Engine):
        self.engine = engine

    def train(self, data, *, method, lambd, lr, max_epochs, workers, strategy=DEFAULT_STRATEGY,
              accumulation_steps=1, init=None, dtype="float32", device=None, progress=None,
              optimizer=None, epoch_params=False):
        """Train on ``workers`` local processes; return rank 0's :class:`wd_core.History`.

        The arguments are the backend's single-process ``train()``'s, and:

        Args:
            workers: processes (>= 1), started and supervised here; each uses
                ``cpu_count // workers`` threads (``OMP_NUM_THREADS`` if set), and with
                ``device="cuda"`` GPU ``rank``.
            strategy: ``"ddp"`` (both backends), ``"zero"`` or ``"fsdp"`` (torch): the backend
                module's docstring.
            accumulation_steps: micro-batches per worker and batch, ``1..batch_size``.
            progress: called here, in the caller's thread, for each epoch rank 0 finishes.

        The History equals the single-process ``train()``'s on the same arguments (float64
        within 1e-12); its ``config`` adds ``workers``, ``strategy``, ``accumulation_steps``
        and ``shards``.

        Raises ``InputError`` before any process starts for bad input (workers < 1, a
        strategy the backend does not run, accumulation_steps outside 1..batch_size, ``cuda``
        without a GPU for every worker); :class:`wd_core.workers.WorkerError` naming the
        worker and the cause (and its traceback) when a worker fails (the others are
        stopped; no result).
        """
        options = dict(locals())
        del options["self"], options["data"]
        spec, dp = prepare_parallel_run(data, backend=self.engine.backend, **options)
        gpus = self.engine.gpus() if spec.device.startswith("cuda") else 0
        check_worker_devices(spec.device, dp.workers, gpus)
        return launch(self.engine.module, worker_job(spec, dp), dp.workers,
                      env_for_rank=self.engine.cluster_env, progress=progress)

    def train_worker(self, data, *, method, lambd, lr, max_epochs, workers,
                     strategy=DEFAULT_STRATEGY, accumulation_steps=1, init=None,
                     dtype="float32", device=None, progress=None, optimizer=None,
                     epoch_params=False, cluster=None):
        """Run this process as one worker of a data-parallel run; rank 0 returns the History,
        the others None.

        The arguments are :meth:`train`'s; every worker passes the same ones. ``cluster``: a
        :class:`wd_core.workers.Cluster` (rank 0's address, the number of processes and this
        one's rank), or None for the engine launcher's environment variables (or, when they
        are unset, a run of this process alone). The runtime is joined here unless it is
        already (the backend module's docstring says how) and stays up for later runs (its
        size must be ``workers``); ``leave()`` ends this process's part in it. ``progress``
        is called on rank 0 only, after each epoch, by :func:`wd_core.driver.drive`.
        """
        options = dict(locals())
        del options["self"], options["data"], options["cluster"]
        engine = self.engine
        spec, dp = prepare_parallel_run(data, backend=engine.backend, **options)
        engine.join(cluster, spec.device)
        rank, world = engine.place()
        if world != dp.workers:
            raise InputError(f"workers={dp.workers} but {engine.runtime} has {world} "
                             f"processes")
        per_epoch, shards = engine.run(spec, dp, progress if rank == 0 else None)
        if rank != 0:
            return None
        history = history_from_epochs(spec, engine.backend, *per_epoch)
        history.config.update(dp.config(), shards=shards)
        return history

    def leave(self) -> None:
        """End this process's part in the data-parallel runtime that ``train_worker`` joined
        (torch: ``destroy_process_group``; JAX: ``jax.distributed.shutdown``, which every
        process calls); nothing if it joined none."""
        self.engine.leave()

    def serve(self) -> None:
        """The worker module's ``__main__`` under :func:`wd_core.workers.launch`: the job's
        ``train_worker``, then :func:`wd_core.workers.end_process` (the runtime left after a
        finished run). Never returns."""
        serve(self._run_job, leave=self.engine.leave, lost_peer=self.engine.lost_peer)

    def _run_job(self, job, progress):
        return self.train_worker(**dict(job, data=data_from_portable(job["data"])),
                                 progress=progress)
