"""Rows, the JSON document, and the markdown table printed to the terminal.

JSON schema (``format: "weight-decay/benchmark"``, ``version: 1``; strict JSON):
``created_utc``, ``argv``, ``quick``, ``settings`` (repeats, dtype, torch threads),
``machine`` (cpu, logical_cpus, memory_gib, platform, env), ``libraries`` (versions),
``devices`` (measured), ``cuda`` (``measured`` and, when not, ``reason``), ``bandwidth``
(per device: ``read_gbs``, ``size_bytes``, ``probes``), ``cold_start`` (per backend:
``median_s``, ``min_s``, ``max_s``, ``import_s``, ``first_result_s``), ``rows`` (below),
``targets`` (:mod:`benchmarks.targets`), ``extras`` (``sweep_cost``: :mod:`benchmarks.sweep_cost`).

A row: ``workload``, ``group``, ``framework``, ``implementation``, ``device``, ``dtype``,
``num_train``, ``batch_size``, ``num_inputs``, ``epochs``, ``steps``, ``block_rows``,
``what``; timings of one ``run()`` (every step of the run) ``median_s``, ``min_s``,
``max_s``, ``warmup_s``, ``repeats``, ``calls_per_sample``; ``us_per_step = median_s / steps
* 1e6``; ``bytes_per_step = num_train * num_inputs * itemsize / steps_per_epoch`` (X read
once per step); ``gbs = epochs * num_train * num_inputs * itemsize / median_s / 1e9``;
``pct_of_bandwidth = 100 * gbs / bandwidth[device].read_gbs``; ``matches_reference``: the
final ``w`` agrees with the float64 reference run (``wd_core.tolerances``, float32 entry).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from wd_core.atomic import write_text_atomic
from wd_core.history import dumps_strict

FORMAT = "weight-decay/benchmark"
FORMAT_VERSION = 1
ROW_KEYS = (
    "workload", "group", "framework", "implementation", "device", "dtype", "num_train",
    "batch_size", "num_inputs", "epochs", "steps", "block_rows", "what", "median_s", "min_s",
    "max_s", "warmup_s", "repeats", "calls_per_sample", "us_per_step", "bytes_per_step", "gbs",
    "pct_of_bandwidth", "matches_reference",
)
TOP_KEYS = ("format", "version", "created_utc", "argv", "quick", "settings", "machine",
            "libraries", "devices", "cuda", "bandwidth", "cold_start", "rows", "targets",
            "extras")


def make_row(workload, implementation, *, device, dtype, timing, block_rows, read_gbs,
             matches) -> dict:
    """One result row (see the module docstring for every field)."""
    itemsize = np.dtype(dtype).itemsize
    run_bytes = workload.bytes_per_run(itemsize)
    gbs = run_bytes / timing.median_s / 1e9
    return {
        "workload": workload.name, "group": workload.group,
        "framework": implementation.framework, "implementation": implementation.name,
        "device": device, "dtype": dtype, "num_train": workload.num_train,
        "batch_size": workload.batch_size, "num_inputs": workload.num_inputs,
        "epochs": workload.epochs, "steps": workload.steps, "block_rows": block_rows,
        "what": implementation.what,
        "median_s": timing.median_s, "min_s": timing.min_s, "max_s": timing.max_s,
        "warmup_s": timing.warmup_s, "repeats": timing.repeats,
        "calls_per_sample": timing.calls_per_sample,
        "us_per_step": timing.median_s / workload.steps * 1e6,
        "bytes_per_step": run_bytes / workload.steps,
        "gbs": gbs,
        "pct_of_bandwidth": 100 * gbs / read_gbs if read_gbs else None,
        "matches_reference": bool(matches),
    }


def _fmt(value, spec):
    return "-" if value is None else format(value, spec)


def format_table(rows) -> str:
    """Markdown: one line per row, times per run in ms and per step in us."""
    lines = [
        "| workload | framework | implementation | device | dtype | d | B | steps "
        "| median ms | min ms | max ms | us/step | GB/s | % of BW | warm-up s | ok |",
        "|---|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['workload']} | {r['framework']} | {r['implementation']} | {r['device']} "
            f"| {r['dtype']} | {r['num_inputs']} | {r['batch_size']} | {r['steps']} "
            f"| {r['median_s'] * 1e3:.3f} | {r['min_s'] * 1e3:.3f} | {r['max_s'] * 1e3:.3f} "
            f"| {r['us_per_step']:.2f} | {r['gbs']:.2f} | {_fmt(r['pct_of_bandwidth'], '.1f')} "
            f"| {r['warmup_s']:.3f} | {'yes' if r['matches_reference'] else 'NO'} |"
        )
    return "\n".join(lines)


def format_targets(targets) -> str:
    """Markdown: one line per target."""
    lines = ["| target | measured | goal | met | detail |", "|---|---:|---:|---|---|"]
    for t in targets:
        measured = _fmt(t["measured"], ".1f")
        if t["goal"] is None:
            verdict = "(reported)"
        else:
            verdict = {True: "yes", False: "NO", None: "not measured"}[t["met"]]
        lines.append(f"| {t['target']} | {measured} {t['unit']} | {_fmt(t['goal'], 'g')} "
                     f"| {verdict} "
                     f"| {t['detail']} |")
    return "\n".join(lines)


def format_summary(payload) -> str:
    """Bandwidth, cold start and the CUDA line, for the terminal."""
    lines = []
    for device, bw in payload["bandwidth"].items():
        probes = ", ".join(f"{p['name']} {p['gbs']:.1f}" for p in bw["probes"])
        lines.append(f"read bandwidth on {device}: {_fmt(bw['read_gbs'], '.1f')} GB/s "
                     f"(largest of: {probes} GB/s; {bw['size_bytes'] / 2**20:.0f} MiB summed)")
    for c in payload["cold_start"]:
        lines.append(f"cold start {c['backend']}: {c['median_s']:.2f} s to the first result "
                     f"(min {c['min_s']:.2f}, max {c['max_s']:.2f}; import {c['import_s']:.2f} s,"
                     f" {c['repeats']} processes)")
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


def write_json(path, payload) -> Path:
    """Write ``payload`` atomically as strict JSON (NaN/inf refused)."""
    return write_text_atomic(path, dumps_strict(payload) + "\n")
