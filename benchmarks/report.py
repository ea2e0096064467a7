"""Rows, the JSON document, and the markdown tables printed to the terminal.

The JSON schema is documented once, in docs/benchmarks.md ("JSON schema"). A row's derived
fields: ``us_per_step = median_s / steps * 1e6``; ``bytes_per_run`` and ``flops_per_run`` as
:class:`benchmarks.workloads.Workload` counts them (``X`` once per step and once per
evaluation; the matrix products of steps and losses, all lambdas); ``gbs = bytes_per_run /
median_s / 1e9``, ``pct_of_bandwidth = 100 * gbs / bandwidth[device].read_gbs``; ``gflops =
flops_per_run / median_s / 1e9``, ``pct_of_gemm = 100 * gflops / gemm[device].gflops`` (sweep
workloads, else None); ``matches_reference``: the final ``w`` and every epoch's two losses
agree with the float64 reference run (``wd_core.tolerances``, the run entry of the dtype).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from wd_core.atomic import write_text_atomic
from wd_core.history import dumps_strict

FORMAT = "weight-decay/benchmark"
FORMAT_VERSION = 2
ROW_KEYS = (
    "workload", "group", "framework", "implementation", "device", "dtype", "num_train",
    "num_val", "batch_size", "num_inputs", "lambdas", "epochs", "steps", "block_rows", "what",
    "median_s", "min_s", "max_s", "warmup_s", "repeats", "calls_per_sample", "us_per_step",
    "bytes_per_run", "gbs", "pct_of_bandwidth", "flops_per_run", "gflops", "pct_of_gemm",
    "matches_reference",
)
TOP_KEYS = ("format", "version", "created_utc", "argv", "quick", "settings", "machine",
            "libraries", "devices", "cuda", "bandwidth", "gemm", "cold_start", "memory", "rows",
            "data_parallel", "targets", "extras")
MIB = 2**20


def make_row(workload, implementation, *, device, dtype, timing, block_rows, read_gbs,
             matches, gemm_gflops=None) -> dict:
    """One result row (see the module docstring and docs/benchmarks.md for every field)."""
    run_bytes = workload.bytes_per_run(np.dtype(dtype).itemsize)
    run_flops = workload.flops_per_run()
    gbs = run_bytes / timing.median_s / 1e9
    gflops = run_flops / timing.median_s / 1e9
    return {
        "workload": workload.name, "group": workload.group,
        "framework": implementation.framework, "implementation": implementation.name,
        "device": device, "dtype": dtype, "num_train": workload.num_train,
        "num_val": workload.num_val, "batch_size": workload.batch_size,
        "num_inputs": workload.num_inputs, "lambdas": workload.lambdas,
        "epochs": workload.epochs, "steps": workload.steps, "block_rows": block_rows,
        "what": implementation.what,
        "median_s": timing.median_s, "min_s": timing.min_s, "max_s": timing.max_s,
        "warmup_s": timing.warmup_s, "repeats": timing.repeats,
        "calls_per_sample": timing.calls_per_sample,
        "us_per_step": timing.median_s / workload.steps * 1e6,
        "bytes_per_run": run_bytes, "gbs": gbs,
        "pct_of_bandwidth": 100 * gbs / read_gbs if read_gbs else None,
        "flops_per_run": run_flops, "gflops": gflops,
        "pct_of_gemm": 100 * gflops / gemm_gflops if gemm_gflops else None,
        "matches_reference": bool(matches),
    }


def _fmt(value, spec):
    return "-" if value is None else format(value, spec)


def format_table(rows) -> str:
    """Markdown: one line per row, times per run in ms and per step in us."""
    lines = [
        "| workload | framework | implementation | device | dtype | d | B | L | epochs "
        "| median ms | min ms | max ms | us/step | GB/s | % of BW | GFLOPS | % of GEMM "
        "| warm-up s | ok |",
        "|---|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:"
        "|---:|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['workload']} | {r['framework']} | {r['implementation']} | {r['device']} "
            f"| {r['dtype']} | {r['num_inputs']} | {r['batch_size']} | {r['lambdas']} "
            f"| {r['epochs']} "
            f"| {r['median_s'] * 1e3:.3f} | {r['min_s'] * 1e3:.3f} | {r['max_s'] * 1e3:.3f} "
            f"| {r['us_per_step']:.2f} | {r['gbs']:.2f} | {_fmt(r['pct_of_bandwidth'], '.1f')} "
            f"| {r['gflops']:.2f} | {_fmt(r['pct_of_gemm'], '.1f')} "
            f"| {r['warmup_s']:.3f} | {'yes' if r['matches_reference'] else 'NO'} |"
        )
    return "\n".join(lines)


def _verdict(t) -> str:
    if t["goal"] is None:
        return "(reported)"
    return {True: "yes", False: "NO", None: "not measured"}[t["met"]]


def format_targets(targets) -> str:
    """Markdown: one line per target; the goal with its bound (``>=`` or ``<=``)."""
    lines = ["| target | measured | goal | met | detail |", "|---|---:|---:|---|---|"]
    for t in targets:
        bound = {"at least": ">= ", "at most": "<= "}.get(t["bound"], "")
        goal = "-" if t["goal"] is None else f"{bound}{t['goal']:g}"
        lines.append(f"| {t['target']} | {_fmt(t['measured'], '.2f')} {t['unit']} | {goal} "
                     f"| {_verdict(t)} | {t['detail']} |")
    return "\n".join(lines)


def _gemm_lines(payload):
    for device, entry in payload["gemm"].items():
        probes = ", ".join(f"{p['framework']} {p['product']} {p['gflops']:.0f}"
                           for p in entry["probes"])
        yield (f"best float32 GEMM rate on {device} for {entry['workload']}'s step products: "
               f"{_fmt(entry['gflops'], '.0f')} GFLOPS (fastest samples: {probes} GFLOPS)")


def _memory_lines(memory):
    if memory is None:
        return
    case = memory["case"]
    for r in memory["runs"]:
        state = r["error"] or f"train {r['train_s']:.1f} s"
        yield (f"memory: {r['framework']} train d={case['num_inputs']} n={case['num_train']} "
               f"{r['epochs']} epochs: peak RSS {r['peak_rss_bytes'] / MIB:.0f} MiB "
               f"({state}; process {r['seconds']:.1f} s)")
    sweep = memory["sweep"]
    if sweep is not None:
        size = "no file" if sweep["file_bytes"] is None else \
            f"file {sweep['file_bytes'] / 1e6:.1f} MB"
        yield (f"memory: {' '.join(sweep['command'])}: {sweep['seconds']:.1f} s, {size}, "
               f"peak RSS {sweep['peak_rss_bytes'] / MIB:.0f} MiB"
               + (f" ({sweep['error']})" if sweep["error"] else ""))


def format_summary(payload) -> str:
    """Bandwidth, GEMM rate, cold start, memory, sweep cost and the CUDA line."""
    lines = []
    for device, bw in payload["bandwidth"].items():
        probes = ", ".join(f"{p['name']} {p['gbs']:.1f}" for p in bw["probes"])
        lines.append(f"read bandwidth on {device}: {_fmt(bw['read_gbs'], '.1f')} GB/s "
                     f"(largest of: {probes} GB/s; {bw['size_bytes'] / MIB:.0f} MiB summed)")
    lines += _gemm_lines(payload)
    for c in payload["cold_start"]:
        lines.append(f"cold start {c['backend']}: {c['median_s']:.2f} s to the first result "
                     f"(min {c['min_s']:.2f}, max {c['max_s']:.2f}; import {c['import_s']:.2f} s,"
                     f" {c['repeats']} processes)")
    lines += _memory_lines(payload["memory"])
    for e in payload["extras"].get("sweep_cost", []):
        if e["measured"]:
            lines.append(f"{e['name']} ({e['framework']}, {e['device']}): {e['ratio']:.2f}x the "
                         f"time ({e['median_s_many'] * 1e3:.2f} vs {e['median_s_1'] * 1e3:.2f} ms)")
        else:
            lines.append(f"{e['name']} ({e['framework']}): not measured: {e['reason']}")
    cuda = payload["cuda"]
    if not cuda["measured"]:
        lines.append(f"CUDA: not measured: {cuda['reason']}")
    env = payload["machine"]["env"]
    if env:
        lines.append("environment left as found: "
                     + ", ".join(f"{k}={v}" for k, v in env.items()))
    return "\n".join(lines)


def format_data_parallel(payload) -> str:
    """The data-parallel group's table (:func:`benchmarks.data_parallel.format_rows`), or ""
    when that group did not run."""
    if not payload["data_parallel"]:
        return ""
    from .data_parallel import format_rows

    return "data parallel (the bandwidth workload in worker processes):\n" + \
        format_rows(payload["data_parallel"])


def write_json(path, payload) -> Path:
    """Write ``payload`` atomically as strict JSON (NaN/inf refused)."""
    return write_text_atomic(path, dumps_strict(payload) + "\n")
