"""``weight-decay run --workers N``: the data-parallel options and the run.

``--workers N`` starts and supervises N local worker processes (``wd_torch.distributed`` or
``wd_jax.distributed``). The same command is also one worker of a run on several machines,
started by the engine's own launcher, and then runs this process only:

* torch: ``torchrun --nnodes 2 --nproc-per-node 1 --node-rank R --rdzv-endpoint HOST:29500
  -m weight_decay run --backend torch --workers 2 ...`` (torchrun's ``RANK``,
  ``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT`` are read from the environment);
* JAX: ``weight-decay run --backend jax --workers 2 --coordinator-address HOST:PORT
  --process-id I ...`` on each machine (or ``JAX_COORDINATOR_ADDRESS`` and
  ``JAX_PROCESS_ID`` in the environment).

Worker 0 returns the History (and writes ``--out``); another worker prints one line and exits
0. A worker that raised an exception prints its traceback (under the supervisor: the worker's
own, relayed) and a last line naming the worker and the cause; a worker killed or stopped gets
that one line. Either way the command exits with status 4
(:data:`wd_core.workers.EXIT_WORKER_FAILED`) and writes no result file.

A process started as one worker by ``torchrun`` or by hand ends, whatever happens once it has
started training, through :func:`wd_core.workers.end_process` (the runtime left after a
finished run, output flushed, ``os._exit``), as the supervisor's workers do: the status is 0
(or 3 for a diverged run), 2 for bad input, 4 for a failure, 130 when interrupted.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback

from wd_core.errors import EXIT_BAD_INPUT, EXIT_INTERRUPTED, InputError
from wd_core.shards import DEFAULT_STRATEGY, STRATEGIES
from wd_core.validation import NONNEGATIVE_INT, POSITIVE_INT, number_from_text
from wd_core.workers import (
    EXIT_WORKER_FAILED,
    Cluster,
    WorkerError,
    end_process,
    one_line,
    reports_lost_peer,
)
from weight_decay.commands.options import nonnegative_int, positive_int, training_options

#: torchrun sets these in every worker it starts.
TORCHRUN_ENV = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
#: A JAX process started by hand may name its coordinator and id with these.
JAX_ENV = ("JAX_COORDINATOR_ADDRESS", "JAX_PROCESS_ID")


def add_data_parallel_options(parser: argparse.ArgumentParser) -> None:
    """``--workers``, ``--strategy``, ``--accumulation-steps`` and, for a JAX run on several
    machines, ``--coordinator-address`` and ``--process-id``."""
    group = parser.add_argument_group(
        "data parallel", "train on N worker processes; each batch is split over them and every "
        "step equals the one-process step (docs/data_parallel.md)")
    group.add_argument("--workers", type=positive_int, default=None,
                       help="worker processes; started here unless torchrun or the JAX flags "
                            "below started this one")
    group.add_argument("--strategy", default=None,
                       help=f"{', '.join(STRATEGIES)} (torch), ddp (jax); default "
                            f"{DEFAULT_STRATEGY}")
    group.add_argument("--accumulation-steps", type=positive_int, default=None,
                       help="micro-batches per worker and batch, one optimizer step per batch "
                            "(default 1)")
    group.add_argument("--coordinator-address", default=None, metavar="HOST:PORT",
                       help="jax, several machines: process 0's coordinator")
    group.add_argument("--process-id", type=nonnegative_int, default=None,
                       help="jax, several machines: this process's id (0 .. workers-1)")


def data_parallel_requested(args) -> bool:
    """True when any data-parallel option was given (``--workers`` is then required)."""
    return any(getattr(args, name) is not None for name in (
        "workers", "strategy", "accumulation_steps", "coordinator_address", "process_id"))


def train_data_parallel(args, data, optimizer, progress):
    """``(history, finish)`` of the data-parallel run ``args`` describe.

    Under the local supervisor: worker 0's History and ``finish`` None; when a worker fails,
    prints what :func:`print_worker_failure` prints and exits with status 4. In a process
    started as one worker from outside: this worker's History (None on a worker that is not
    worker 0) and ``finish(report)``, which the caller must call with a function that writes
    and prints the result and returns the exit status; ``finish`` ends the process
    (:class:`ExternalWorker`). Raises ``InputError`` for bad options, before any process
    starts or any runtime is joined.
    """
    if args.workers is None:
        raise InputError("--strategy, --accumulation-steps, --coordinator-address and "
                         "--process-id need --workers N")
    module = importlib.import_module(f"wd_{args.backend}.distributed")
    strategy = DEFAULT_STRATEGY if args.strategy is None else args.strategy
    options = {**_training_options(args), "lambd": args.lambd,
               "workers": args.workers, "strategy": strategy,
               "accumulation_steps": args.accumulation_steps or 1, "optimizer": optimizer,
               "progress": progress}
    external, cluster = _started_outside(args)
    if not external:
        try:
            return module.train(data, **options), None
        except WorkerError as err:
            print_worker_failure(err)
            raise SystemExit(EXIT_WORKER_FAILED) from None
    rank = cluster.rank if cluster is not None else int(os.environ.get("RANK", "0"))
    worker = ExternalWorker(module, rank, args.workers)
    return worker.train(data, cluster, options), worker.finish


def print_worker_failure(err: WorkerError) -> None:
    """On stderr: the worker's traceback when it raised an exception (not for bad input), then
    one line ``weight-decay: error: worker R of W failed: <cause>``."""
    if err.traceback and not err.input_error:
        print(f"weight-decay: worker {err.rank} of {err.workers} raised an exception; its "
              f"traceback:\n{err.traceback.rstrip()}", file=sys.stderr)
    print(f"weight-decay: error: {err}", file=sys.stderr)


class ExternalWorker:
    """This process as worker ``rank`` of ``workers`` started by ``torchrun`` or by hand.

    From the call of ``train_worker`` on, every way out goes through
    :func:`wd_core.workers.end_process`: a runtime that was joined must not meet the
    interpreter's shutdown (a gloo thread still running aborts it).
    """

    def __init__(self, module, rank: int, workers: int):
        self.module, self.rank, self.workers = module, rank, workers

    def train(self, data, cluster, options):
        """``train_worker``'s History (None on a worker that is not worker 0); on an
        exception, prints it (bad input: one line; a lost peer: one line; anything else: the
        traceback, then the line naming this worker) and ends the process."""
        try:
            return self.module.train_worker(data, cluster=cluster, **options)
        except InputError as err:
            _error_line(" ".join(str(err).split()))
            end_process(EXIT_BAD_INPUT)
        except KeyboardInterrupt:
            print("weight-decay: interrupted", file=sys.stderr)
            end_process(EXIT_INTERRUPTED)
        except BaseException as err:  # this worker's failure: its traceback, then one line
            if not reports_lost_peer(err, self.module.ENGINE.lost_peer):
                traceback.print_exc()
            _error_line(f"worker {self.rank} of {self.workers} failed: {one_line(err)}")
            end_process(EXIT_WORKER_FAILED)

    def finish(self, report):
        """``report()`` (writes and prints the result, returns the exit status; bad input
        there is status 2, an exception status 1 with its traceback), then
        :func:`~wd_core.workers.end_process` with that status, after leaving the runtime
        (every worker does, so that none waits for this one). Never returns."""
        try:
            status = report()
        except InputError as err:
            _error_line(" ".join(str(err).split()))
            status = EXIT_BAD_INPUT
        except KeyboardInterrupt:
            print("weight-decay: interrupted", file=sys.stderr)
            status = EXIT_INTERRUPTED
        except BaseException:
            traceback.print_exc()
            status = 1
        end_process(status, leave=self.module.leave)


def _error_line(text: str) -> None:
    print(f"weight-decay: error: {text}", file=sys.stderr)


def _training_options(args) -> dict:
    """:func:`~weight_decay.commands.options.training_options` of a data-parallel run, which
    has no fused step: ``InputError`` for ``--fused``."""
    options = training_options(args)
    if options.pop("implementation") != "idiomatic":
        raise InputError("--fused does not apply to a data-parallel run (--workers); "
                         "accepted: the idiomatic step (leave out --fused)")
    return options


def _started_outside(args) -> tuple[bool, Cluster | None]:
    """Whether the engine's launcher (or the user, on each machine) started this process as
    one worker, and the cluster it named (None: the backend reads the environment).

    A JAX process takes its coordinator and id from the two flags or from
    ``JAX_COORDINATOR_ADDRESS`` and ``JAX_PROCESS_ID`` (a flag wins), and its number of
    processes from ``--workers`` (``JAX_NUM_PROCESSES``, if set, must agree)."""
    jax_flags = args.coordinator_address is not None or args.process_id is not None
    if args.backend == "torch":
        if jax_flags:
            raise InputError("--coordinator-address and --process-id are for --backend jax; "
                             "start torch workers on several machines with torchrun")
        return all(name in os.environ for name in TORCHRUN_ENV), None
    named = [name for name in JAX_ENV if name in os.environ]
    if not jax_flags and not named:
        return False, None
    if not jax_flags and len(named) < len(JAX_ENV):
        missing = next(name for name in JAX_ENV if name not in named)
        raise InputError(f"{named[0]} is set but {missing} is not; a JAX process started by "
                         f"hand needs both (or --coordinator-address and --process-id)")
    if "JAX_NUM_PROCESSES" in os.environ:
        count = _environment_number("JAX_NUM_PROCESSES", POSITIVE_INT)
        if count != args.workers:
            raise InputError(f"JAX_NUM_PROCESSES={count} does not match --workers "
                             f"{args.workers}; accepted: the same number of processes")
    address_from, address = "--coordinator-address", args.coordinator_address
    if address is None:
        address_from = "JAX_COORDINATOR_ADDRESS"
        address = os.environ.get(address_from)
    id_from, process_id = "--process-id", args.process_id
    if process_id is None and "JAX_PROCESS_ID" in os.environ:
        id_from = "JAX_PROCESS_ID"
        process_id = _environment_number(id_from, NONNEGATIVE_INT)
    if address is None or process_id is None:
        raise InputError("a JAX process of a run on several machines needs both "
                         "--coordinator-address HOST:PORT and --process-id I")
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise InputError(f"{address_from} {address!r} is not HOST:PORT")
    if process_id >= args.workers:
        raise InputError(f"{id_from} {process_id} is not below --workers {args.workers}")
    return True, Cluster(process_id, args.workers, host, int(port))


def _environment_number(name: str, within):
    """The number in the environment variable ``name``; ``InputError`` naming it otherwise."""
    try:
        return number_from_text(os.environ[name], within)
    except InputError as err:
        raise InputError(f"{name}: {err}") from None
