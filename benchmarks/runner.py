"""Run the benchmark: cold starts, bandwidth, then every workload x device x implementation
(with the GEMM rate of a sweep's shapes before the sweep), then the memory group.

For each workload the data are generated once (float64, seed 0) and the float64 reference
run is computed once; every implementation is then prepared (untimed), warmed up and timed
with its samples interleaved with the others' (:mod:`benchmarks.timing`), and its final
``w`` and per-epoch losses are checked against the reference.
"""

from __future__ import annotations

import contextlib
import datetime
import gc
import importlib
import sys
import types
from dataclasses import dataclass

from wd_core import reference
from wd_core.tolerances import is_close, run_kind

from . import bandwidth, coldstart, gemm, machine, memory, sweep_cost, targets, timing
from .implementation import forget_host_arrays
from .report import FORMAT, FORMAT_VERSION, make_row
from .workloads import DEFAULT_GROUPS, workloads

FRAMEWORKS = ("torch", "jax", "numpy")
DEVICES = ("cpu", "cuda")


@dataclass
class Options:
    """What to run; ``cli.py`` builds it from the command line."""

    quick: bool = False
    repeats: int = 7
    dtype: str = "float32"
    frameworks: tuple = FRAMEWORKS
    groups: tuple = DEFAULT_GROUPS
    devices: tuple = DEVICES
    cold_start: bool = True
    cold_start_repeats: int = 3
    quiet: bool = False

    @property
    def min_sample_s(self) -> float:
        """Shortest sample (seconds): 50 ms, 20 ms in ``--quick`` runs."""
        return 0.02 if self.quick else timing.MIN_SAMPLE_S


def framework_module(name: str):
    """``benchmarks.impl_<name>``; ``MissingFrameworkError`` with the install hint when missing."""
    return importlib.import_module(f".impl_{name}", __package__)


def cuda_report(frameworks) -> dict:
    """Which frameworks can run on CUDA here: ``{"measured", "reason", "frameworks"}``."""
    status = {}
    for name in frameworks:
        if name == "numpy":
            continue
        status[name] = dict(zip(("available", "reason"),
                                framework_module(name).cuda_status(), strict=True))
    usable = [n for n, s in status.items() if s["available"]]
    reason = "; ".join(f"{n}: {s['reason']}" for n, s in status.items()) or \
        "no framework with CUDA support was asked for"

    return {"measured": bool(usable), "frameworks": status,
            "reason": reason if usable else f"no GPU visible ({reason})"}


def _candidates(workload, data, device, options, cuda):
    found = []
    for name in options.frameworks:
        if device == "cuda" and not cuda["frameworks"].get(name, {}).get("available"):
            continue
        module = framework_module(name)
        for impl in module.implementations(workload, device, options.dtype):
            prepared = impl.prepare(workload, data, options.dtype, device)
            found.append((impl, prepared, timing.Candidate((name, impl.name), prepared.run,
                                                           prepared.sync)))
    return found


def _progress_bar(total: int, desc: str, quiet: bool):
    """A tqdm bar (on a terminal, after a second, when tqdm is installed), else a stand-in."""
    if not quiet and sys.stdout.isatty():
        try:
            from tqdm import tqdm
        except ImportError:
            pass
        else:
            return tqdm(total=total, desc=desc, unit="sample", delay=1.0, leave=False,
                        file=sys.stderr)
    return contextlib.nullcontext(types.SimpleNamespace(update=lambda n=1: None))


def matches_reference(outcome, oracle, kind: str) -> bool:
    """The final ``w`` and both per-epoch losses of ``outcome`` agree with ``oracle`` (a
    History of the float64 reference run) under the ``kind`` tolerance."""
    w, train_loss, val_loss = outcome
    return all(is_close(actual, expected, kind) for actual, expected in (
        (w, oracle.w), (train_loss, oracle.train_loss), (val_loss, oracle.val_loss)))


def time_workload(workload, device, options, cuda, read_gbs, gemm_gflops=None) -> list[dict]:
    """Rows of every implementation of ``workload`` on ``device``."""
    data = workload.data()
    oracle = reference.train(data, lambd=workload.lambd, lr=workload.lr,
                             max_epochs=workload.epochs)
    kind = run_kind(options.dtype)
    entries = _candidates(workload, data, device, options, cuda)
    total = len(entries) * options.repeats
    with _progress_bar(total, f"{workload.name} {device}", options.quiet) as bar:
        timings = timing.measure_interleaved([c for _, _, c in entries], options.repeats,
                                             min_sample_s=options.min_sample_s,
                                             on_sample=lambda: bar.update(1))
    rows = []
    for impl, prepared, candidate in entries:
        matches = matches_reference(prepared.outcome(candidate.result), oracle, kind)
        rows.append(make_row(workload, impl, device=device, dtype=options.dtype,
                             timing=timings[candidate.key], block_rows=prepared.block_rows,
                             read_gbs=read_gbs, gemm_gflops=gemm_gflops, matches=matches))
    del entries
    forget_host_arrays()
    gc.collect()
    return rows


def run(options: Options, argv=None, log=print) -> dict:
    """Everything; returns the JSON payload (see :mod:`benchmarks.report`)."""
    cuda = cuda_report(options.frameworks)
    devices = [d for d in options.devices if d == "cpu" or cuda["measured"]]
    if "cuda" in options.devices and not cuda["measured"]:
        log(f"CUDA: not measured: {cuda['reason']}")
    cold = []
    if options.cold_start:
        for name in options.frameworks:
            cold.append(coldstart.measure(name, 1 if options.quick else
                                          options.cold_start_repeats))
    size = bandwidth.QUICK_BYTES if options.quick else bandwidth.FULL_BYTES
    bw = {device: bandwidth.measure(device, options.frameworks, size_bytes=size)
          for device in devices}
    rows, gemms = [], {}
    for workload in workloads(options.quick, options.groups):
        for device in devices:
            gemm_gflops = None
            if workload.lambdas > 1:
                log(f"GEMM rate on {device} for {workload.name}'s products")
                gemms[device] = gemm.measure(workload, device, options.frameworks,
                                             repeats=options.repeats,
                                             min_sample_s=options.min_sample_s)
                gemm_gflops = gemms[device]["gflops"]
            log(f"{workload.name} on {device}: {workload.describe()}")
            rows += time_workload(workload, device, options, cuda, bw[device]["read_gbs"],
                                  gemm_gflops)
    # information only (no target): full runs with the chapter group
    sweeps = sweep_cost.sweep_cost(options.frameworks, "cpu", options.repeats,
                                   options.dtype) \
        if "chapter" in options.groups and not options.quick else []
    issue_size = "memory-n1024" in options.groups  # the issue's n; in place of memory's n = 32
    memory_entry = memory.measure(options.frameworks, memory.case_for(options.quick, issue_size),
                                  log) \
        if ("memory" in options.groups or issue_size) \
        and set(options.frameworks) & set(memory.BACKENDS) else None
    parallel = data_parallel_rows(options, devices, log) \
        if "data-parallel" in options.groups else []
    return {
        "format": FORMAT, "version": FORMAT_VERSION,
        "created_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(
            timespec="seconds"),
        "argv": list(sys.argv if argv is None else argv), "quick": options.quick,
        "settings": settings(options),
        "machine": machine.describe(), "libraries": machine.versions(),
        "devices": devices, "cuda": cuda, "bandwidth": bw, "gemm": gemms, "cold_start": cold,
        "memory": memory_entry, "rows": rows, "data_parallel": parallel,
        "targets": targets.evaluate(rows, devices, options.dtype, cuda, gemms, memory_entry),
        "extras": {"sweep_cost": sweeps},
    }


def data_parallel_rows(options: Options, devices, log=print) -> list[dict]:
    """The rows of :func:`benchmarks.data_parallel.measure` (its own schema) per device."""
    from . import data_parallel

    frameworks = tuple(f for f in options.frameworks if f in data_parallel.FRAMEWORKS)
    found = []
    for device in devices:
        log(f"data parallel on {device}: the bandwidth workload in worker processes")
        found += data_parallel.measure(quick=options.quick, frameworks=frameworks,
                                       repeats=min(options.repeats, 3), device=device,
                                       dtype=options.dtype)
    return found


def settings(options: Options) -> dict:
    """Timing settings and the thread counts the frameworks ran with."""
    found = {"repeats": options.repeats, "dtype": options.dtype,
             "frameworks": list(options.frameworks), "groups": list(options.groups)}
    if "torch" in options.frameworks:
        import torch

        found["torch_threads"] = torch.get_num_threads()
    return found
