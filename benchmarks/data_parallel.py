"""Data parallel: the bandwidth-bound workload on 1 process x all threads against W processes
x fewer threads, each strategy, both frameworks (``python -m benchmarks.data_parallel``).

What one row times: a whole training run of the workload through
``wd_<framework>.distributed.train_worker`` (every global step of every epoch, the per-epoch
losses included), inside the workers of one launch (:func:`wd_core.workers.launch`, this
module as the worker), after a warm-up run (compilation, ``torch._dynamo``'s import, caches);
the workers meet at a barrier before each timed run, and rank 0's clock is read after its
run, which ends with a collective. ``ms_per_step`` is the median run over its global steps.
``comm_share`` is the time torch's profiler attributes to the gloo (or nccl) collectives over
the run's wall time, from one more, profiled run (collectives run on gloo's threads and may
overlap computation, so this is an upper bound of what they cost); JAX reports nothing
comparable on CPU (``None``). ``speedup`` is the 1-process run of the same framework and
strategy over this one. ``matches_single_process``: the final ``w`` equals the plain
single-process ``train()``'s within the float32 tolerance.

On a 2-core machine W = 2 processes share one memory bus and two cores; the figures say what
the collectives and the per-process overheads cost, not what W machines would gain (see
``docs/data_parallel.md``). With ``device="cuda"`` the runs use one process per GPU.

:func:`measure` returns JSON-ready rows (``python -m benchmarks`` adds them as its
data-parallel group); the ``__main__`` prints them as a table.
"""

from __future__ import annotations

import importlib
import os
import statistics
import sys
import time

from wd_core import SyntheticData
from wd_core.errors import MissingFrameworkError
from wd_core.shards import BACKEND_STRATEGIES as STRATEGIES
from wd_core.validation import BACKENDS as FRAMEWORKS
from wd_core.workers import launch, serve, visible_gpu_count

from .workloads import workloads

#: The module the workers run (``benchmarks.data_parallel`` from a checkout, or the installed
#: ``wd_benchmarks.data_parallel``).
WORKER_MODULE = __spec__.name if __spec__ is not None else "benchmarks.data_parallel"
ROW_KEYS = ("group", "workload", "framework", "strategy", "processes", "threads_per_process",
            "device", "dtype", "num_train", "batch_size", "num_inputs", "epochs", "steps",
            "median_s", "min_s", "max_s", "repeats", "ms_per_step", "comm_share", "speedup",
            "matches_single_process", "what")


def measure(*, quick: bool = False, frameworks=FRAMEWORKS, processes: int = 2,
            repeats: int = 3, device: str = "cpu", dtype: str = "float32") -> list[dict]:
    """Rows for the bandwidth workload: per framework, the plain single-process ``train()``,
    then every strategy on 1 process (all threads) and on ``processes`` processes (the threads
    shared out; on CUDA one GPU each). A framework or device that cannot run gives one row
    with ``measured: False`` and the reason."""
    (workload,) = workloads(quick, groups=("bandwidth",))
    cpus = os.cpu_count() or 1
    rows = []
    if device.startswith("cuda") and visible_gpu_count() < 1:
        return [{"group": "data_parallel", "device": device, "measured": False,
                 "reason": "no CUDA GPU on this machine"}]
    if device.startswith("cuda"):
        processes = visible_gpu_count()
    for framework in frameworks:
        try:
            importlib.import_module(f"wd_{framework}.distributed")
        except MissingFrameworkError as err:
            rows.append({"group": "data_parallel", "framework": framework, "measured": False,
                         "reason": f"wd_{framework} is not available ({err})"})
            continue
        base = {"framework": framework, "workload": workload, "repeats": repeats,
                "device": device, "dtype": dtype}
        one = _launch({**base, "strategies": STRATEGIES[framework], "single": True}, 1, cpus)
        many = _launch({**base, "strategies": STRATEGIES[framework], "single": False},
                       processes, max(1, cpus // processes))
        single_w = one["single"]["w"]
        rows.append(_row(workload, framework, "none (train())", 1, cpus, device, dtype,
                         one["single"], None, single_w))
        for strategy in STRATEGIES[framework]:
            first = one[strategy]
            rows.append(_row(workload, framework, strategy, 1, cpus, device, dtype, first,
                             first, single_w))
            rows.append(_row(workload, framework, strategy, processes,
                             max(1, cpus // processes), device, dtype, many[strategy], first,
                             single_w))
    return rows


def _row(workload, framework, strategy, processes, threads, device, dtype, timing, baseline,
         single_w) -> dict:
    from wd_core.tolerances import is_close

    median = statistics.median(timing["times"])
    return {
        "group": "data_parallel", "workload": workload.name, "framework": framework,
        "strategy": strategy, "processes": processes, "threads_per_process": threads,
        "device": device, "dtype": dtype, "num_train": workload.num_train,
        "batch_size": workload.batch_size, "num_inputs": workload.num_inputs,
        "epochs": workload.epochs, "steps": workload.steps, "median_s": median,
        "min_s": min(timing["times"]), "max_s": max(timing["times"]),
        "repeats": len(timing["times"]), "ms_per_step": 1e3 * median / workload.steps,
        "comm_share": timing.get("comm_share"),
        "speedup": (statistics.median(baseline["times"]) / median
                    if baseline is not None else None),
        "matches_single_process": bool(is_close(timing["w"], single_w, "float32")),
        "what": ("the single-process train(), no collectives" if baseline is None else
                 f"train_worker on {processes} process(es) x {threads} thread(s)"),
        "measured": True,
    }


def _launch(job, processes: int, threads: int) -> dict:
    """One launch of ``processes`` workers of this module with ``threads`` each."""
    cluster_env = importlib.import_module(f"wd_{job['framework']}.distributed").cluster_env

    def env_for_rank(cluster):
        env = {**cluster_env(cluster), "OMP_NUM_THREADS": str(threads)}
        if job["framework"] == "jax" and threads == 1:
            env["XLA_FLAGS"] = " ".join([os.environ.get("XLA_FLAGS", ""),
                                         "--xla_cpu_multi_thread_eigen=false"]).strip()
        return env

    return launch(WORKER_MODULE, job, processes, env_for_rank=env_for_rank)


# ---- inside the workers ------------------------------------------------------------------


def _worker(job, progress) -> dict:
    framework, workload = job["framework"], job["workload"]
    distributed = importlib.import_module(f"wd_{framework}.distributed")
    backend = importlib.import_module(f"wd_{framework}")
    data = SyntheticData(num_train=workload.num_train, num_val=workload.num_val,
                         num_inputs=workload.num_inputs, batch_size=workload.batch_size, seed=0)
    common = {"method": "concise", "lambd": workload.lambd, "lr": workload.lr,
              "max_epochs": workload.epochs, "dtype": job["dtype"], "device": job["device"]}
    barrier, comm = _engine(framework)
    results = {}
    if job["single"]:
        results["single"] = _timed(lambda: backend.train(data, **common), job["repeats"],
                                   barrier, None)
    for strategy in job["strategies"]:
        def run(strategy=strategy):
            return distributed.train_worker(data, workers=_world(framework),
                                            strategy=strategy, **common)

        results[strategy] = _timed(run, job["repeats"], barrier, comm)
    distributed.leave()  # serve() exits without the interpreter's shutdown
    return results


def _world(framework: str) -> int:
    if framework == "torch":
        return int(os.environ.get("WORLD_SIZE", "1"))
    return int(os.environ.get("JAX_NUM_PROCESSES", "1"))


def _engine(framework: str):
    """``(barrier(), comm_seconds(run) -> (seconds, wall) or None)`` of the framework."""
    if framework == "torch":
        import torch
        import torch.distributed as dist

        def barrier():
            if dist.is_initialized():
                dist.barrier()

        def comm(run):
            activities = [torch.profiler.ProfilerActivity.CPU]
            with torch.profiler.profile(activities=activities) as profile:
                start = time.perf_counter()
                run()
                wall = time.perf_counter() - start
            seconds = sum(e.cpu_time_total for e in profile.events()
                          if e.name.startswith(("gloo:", "nccl:"))) / 1e6
            return seconds, wall

        return barrier, comm

    def jax_barrier():
        import jax
        from jax.experimental import multihost_utils

        if jax.distributed.is_initialized():  # (the first run initializes it)
            multihost_utils.sync_global_devices("wd-benchmark")

    return jax_barrier, None


def _timed(run, repeats, barrier, comm) -> dict:
    barrier()
    history = run()  # warm-up
    times = []
    for _ in range(repeats):
        barrier()
        start = time.perf_counter()
        history = run()
        times.append(time.perf_counter() - start)
    out = {"times": times, "w": None if history is None else history.w}
    if comm is not None:
        barrier()
        seconds, wall = comm(run)
        out["comm_share"] = seconds / wall
    return out


# ---- the table ---------------------------------------------------------------------------


def format_rows(rows) -> str:
    """A markdown table of :func:`measure`'s rows."""
    lines = ["| framework | strategy | processes x threads | ms/step | min-max s | comm share "
             "| speed-up | = train() |", "|---|---|---|---:|---:|---:|---:|---|"]
    for row in rows:
        if not row.get("measured", True):
            lines.append(f"| {row.get('framework', '')} | not measured: {row['reason']} "
                         f"| | | | | | |")
            continue
        share = "-" if row["comm_share"] is None else f"{100 * row['comm_share']:.1f}%"
        speedup = "-" if row["speedup"] is None else f"{row['speedup']:.2f}x"
        lines.append(
            f"| {row['framework']} | {row['strategy']} | {row['processes']} x "
            f"{row['threads_per_process']} | {row['ms_per_step']:.1f} | {row['min_s']:.3f}-"
            f"{row['max_s']:.3f} | {share} | {speedup} | "
            f"{'yes' if row['matches_single_process'] else 'NO'} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    """``python -m benchmarks.data_parallel``: bad input is one line and exit status 2."""
    from wd_core.errors import run_command

    from .arguments import OneLineParser, names, positive_int

    prog = "python -m benchmarks.data_parallel"
    parser = OneLineParser(prog=prog, description=__doc__.split("\n\n")[0],
                            allow_abbrev=False)
    parser.add_argument("--quick", action="store_true", help="the quick bandwidth workload")
    parser.add_argument("--frameworks", type=names(FRAMEWORKS), default=FRAMEWORKS)
    parser.add_argument("--processes", type=positive_int, default=2)
    parser.add_argument("--repeats", type=positive_int, default=3)
    parser.add_argument("--device", default="cpu")
    return run_command(prog, lambda: parser.parse_args(argv), _print_rows)


def _print_rows(args) -> int:
    rows = measure(quick=args.quick, frameworks=args.frameworks, processes=args.processes,
                   repeats=args.repeats, device=args.device)
    (workload,) = workloads(args.quick, groups=("bandwidth",))
    print(f"data parallel, workload {workload.name}: {workload.describe()}, "
          f"{os.cpu_count()} CPUs")
    print(format_rows(rows))
    return 0


if __name__ == "__main__":
    if os.environ.get("WD_SUPERVISOR_PID"):
        serve(_worker)
    else:
        sys.exit(main())
