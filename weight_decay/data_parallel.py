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
0. A failed worker ends the command with one line on stderr and exit status 4
(:data:`wd_core.workers.EXIT_WORKER_FAILED`); no result file is written.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from wd_core.errors import InputError
from wd_core.shards import DEFAULT_STRATEGY, STRATEGIES
from wd_core.validation import NONNEGATIVE_INT, POSITIVE_INT, number_from_text
from wd_core.workers import EXIT_WORKER_FAILED, Cluster, WorkerError
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
    """The History of the data-parallel run ``args`` describe (worker 0's).

    Raises ``InputError`` for bad options (before any process starts); on a worker that is
    not worker 0 of a multi-machine run, prints one line and exits 0; when a worker fails,
    prints one line naming it and the cause and exits with status 4.
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
    try:
        if not external:
            return module.train(data, **options)
        history = module.train_worker(data, cluster=cluster, **options)
    except WorkerError as err:
        print(f"weight-decay: error: {err}", file=sys.stderr)
        raise SystemExit(EXIT_WORKER_FAILED) from None
    if history is None:
        print(f"weight-decay: this worker of {args.workers} is done; worker 0 has the result"
              + (f" ({args.out})" if args.out else ""))
        raise SystemExit(0)
    return history


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
