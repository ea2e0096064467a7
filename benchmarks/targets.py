"""The issue's targets, checked against what one run measured (rows, GEMM rate, memory).

Each target is a dict: ``target`` (a name), ``workload``, ``framework``, ``device``,
``measured``, ``goal``, ``bound`` (``"at least"`` or ``"at most"``; None when only reported),
``unit``, ``met`` (True/False; None: reported only, or not measured) and ``detail``.

* chapter (200 epochs with per-epoch losses), whole runs, ratio of median times: the public
  fast path ``train-fused`` at least ``CHAPTER_SPEEDUP`` times faster than the framework's
  ``idiomatic`` loop (JAX 12x, torch 8x), JAX ``train`` (the idiomatic default) at least 8x,
  torch ``train`` reported; JAX ``train`` and ``train-fused`` at most ``PROGRAM_OVERHEAD``
  (1.5) times the time of their own compiled program (``program``, ``program-fused``);
* bandwidth-bound size: the best public call (``train``, ``train-fused``) of each framework
  at least ``BANDWIDTH_PCT`` (65) percent of the read bandwidth measured in the same run
  (``BANDWIDTH_PCT_GPU`` on CUDA), counting ``X`` once per step and once per evaluation;
* sweep at scale: the best public sweep call (``sweep``, ``sweep-fused``) of each framework at
  least ``GEMM_PCT`` (50) percent of the best GEMM rate for the same shapes measured in the
  same run (:mod:`benchmarks.gemm`);
* memory (:mod:`benchmarks.memory`): each framework's long run peaks at most ``RSS_RATIO``
  (1.2) times its short run; the issue's CLI sweep under ``SWEEP_SECONDS`` with a file under
  ``SWEEP_FILE_MB``.
"""

from __future__ import annotations

from .memory import RSS_RATIO, SWEEP_FILE_MB, SWEEP_SECONDS

#: (framework, implementation) -> least speed-up over the framework's idiomatic loop (None:
#: reported only).
CHAPTER_SPEEDUP = {("jax", "train-fused"): 12.0, ("torch", "train-fused"): 8.0,
                   ("jax", "train"): 8.0, ("torch", "train"): None}
PROGRAM_OVERHEAD = 1.5
BANDWIDTH_PCT = 65.0
BANDWIDTH_PCT_GPU = 70.0
GEMM_PCT = 50.0
PUBLIC_RUNS = ("train", "train-fused")
PUBLIC_SWEEPS = ("sweep", "sweep-fused")
MIB = 2**20


def _find(rows, **match):
    return [r for r in rows if all(r.get(k) == v for k, v in match.items())]


def _one(rows, **match):
    found = _find(rows, **match)
    return found[0] if found else None


def target(name, *, workload, framework, device, measured, goal, unit, detail,
           bound="at least", met=None) -> dict:
    """One target entry; ``met`` is computed from ``measured``, ``goal`` and ``bound`` unless
    given (None when ``goal`` or ``measured`` is None)."""
    if goal is None:
        bound = None
    if met is None and goal is not None and measured is not None:
        met = measured >= goal if bound == "at least" else measured <= goal
    return {"target": name, "workload": workload, "framework": framework, "device": device,
            "measured": measured, "goal": goal, "bound": bound, "unit": unit, "met": met,
            "detail": detail}


def _chapter(rows, device, dtype):
    out = []
    chapter = _find(rows, workload="chapter", device=device, dtype=dtype)
    for (framework, name), goal in CHAPTER_SPEEDUP.items():
        base = _one(chapter, framework=framework, implementation="idiomatic")
        row = _one(chapter, framework=framework, implementation=name)
        if base is None or row is None:
            continue
        out.append(target(
            f"chapter: {framework} {name} vs idiomatic", workload="chapter",
            framework=framework, device=device, measured=base["median_s"] / row["median_s"],
            goal=goal, unit="x faster", detail=f"{base['median_s'] * 1e3:.3f} / "
            f"{row['median_s'] * 1e3:.3f} ms per {row['epochs']}-epoch run with losses"))
    for name, program in (("train", "program"), ("train-fused", "program-fused")):
        row = _one(chapter, framework="jax", implementation=name)
        base = _one(chapter, framework="jax", implementation=program)
        if base is None or row is None:
            continue
        out.append(target(
            f"chapter: jax {name} vs its compiled program", workload="chapter",
            framework="jax", device=device, measured=row["median_s"] / base["median_s"],
            goal=PROGRAM_OVERHEAD, bound="at most", unit="x the program's time",
            detail=f"{row['median_s'] * 1e3:.3f} / {base['median_s'] * 1e3:.3f} ms "
                   f"({(row['median_s'] - base['median_s']) * 1e3:.3f} ms per call outside "
                   f"the compiled chunks)"))
    return out


def _best(rows, key):
    candidates = [r for r in rows if r.get(key) is not None]
    return max(candidates, key=lambda r: r[key]) if candidates else None


def _others(rows, best, key, unit):
    return "; ".join(f"{r['implementation']} {r[key]:.1f}{unit}" for r in rows
                     if r is not best and r.get(key) is not None)


def _bandwidth(rows, device, dtype):
    goal = BANDWIDTH_PCT if device == "cpu" else BANDWIDTH_PCT_GPU
    out = []
    for framework in ("torch", "jax"):
        public = [r for r in _find(rows, group="bandwidth", framework=framework,
                                   device=device, dtype=dtype)
                  if r["implementation"] in PUBLIC_RUNS]
        best = _best(public, "pct_of_bandwidth")
        if best is None:
            continue
        others = _others(public, best, "pct_of_bandwidth", "%")
        out.append(target(
            f"bandwidth: {framework} public API, best", workload=best["workload"],
            framework=framework, device=device, measured=best["pct_of_bandwidth"], goal=goal,
            unit="% of read bandwidth",
            detail=f"{best['implementation']} (block_rows={best['block_rows']}): "
                   f"{best['gbs']:.1f} GB/s, n=d={best['num_inputs']}, B={best['batch_size']}"
                   + (f"; {others}" if others else "")))
    return out


def _sweep(rows, device, dtype, gemm):
    out = []
    for framework in ("torch", "jax"):
        public = [r for r in _find(rows, group="sweep", framework=framework, device=device,
                                   dtype=dtype) if r["implementation"] in PUBLIC_SWEEPS]
        best = _best(public, "pct_of_gemm")
        if best is None:
            continue
        others = "; ".join(f"{r['implementation']} {r['gflops']:.0f} GFLOPS" for r in public
                           if r is not best)
        out.append(target(
            f"sweep: {framework} public API, best", workload=best["workload"],
            framework=framework, device=device, measured=best["pct_of_gemm"], goal=GEMM_PCT,
            unit="% of the best GEMM rate",
            detail=f"{best['implementation']}: {best['gflops']:.0f} GFLOPS of "
                   f"{gemm['gflops']:.0f} (best float32 GEMM, same shapes, same run)"
                   + (f"; {others}" if others else "")))
    return out


def _memory(memory):
    out = []
    case = memory["case"]
    kept = memory["growth_if_kept_bytes"]
    for framework in ("torch", "jax"):
        runs = {r["epochs"]: r for r in memory["runs"] if r["framework"] == framework}
        short, long = runs.get(case["short_epochs"]), runs.get(case["long_epochs"])
        if short is None or long is None:
            continue
        name = (f"memory: {framework} train, {case['long_epochs']} vs {case['short_epochs']} "
                f"epochs, peak RSS")
        common = {"workload": "memory", "framework": framework, "device": "cpu",
                  "goal": RSS_RATIO, "bound": "at most", "unit": "x"}
        failed = [r for r in (short, long) if r["error"]]
        if failed:
            out.append(target(name, measured=None, met=False, **common,
                              detail=f"{failed[0]['epochs']}-epoch run: {failed[0]['error']}"))
            continue
        ratio = long["peak_rss_bytes"] / short["peak_rss_bytes"]
        out.append(target(
            name, measured=ratio, **common,
            detail=f"{long['peak_rss_bytes'] / MIB:.0f} vs {short['peak_rss_bytes'] / MIB:.0f} "
                   f"MiB (d={case['num_inputs']}, n={case['num_train']}; w kept per epoch "
                   f"would add >= {kept / MIB:.0f} MiB); train {long['train_s']:.1f} s vs "
                   f"{short['train_s']:.1f} s"))
    sweep = memory.get("sweep")
    if sweep is not None:
        out += _cli_sweep(sweep)
    return out


def _cli_sweep(sweep):
    name = f"weight-decay sweep --num {sweep['num']} --epochs {sweep['epochs']}"
    common = {"workload": "memory", "framework": "torch", "device": "cpu", "bound": "at most"}
    if sweep["timed_out"]:
        seconds = target(f"{name}: seconds", measured=None, met=False, goal=SWEEP_SECONDS,
                         unit="s", detail=sweep["error"], **common)
    else:
        seconds = target(f"{name}: seconds", measured=sweep["seconds"], goal=SWEEP_SECONDS,
                         unit="s", met=False if sweep["error"] else None, **common,
                         detail=(sweep["error"] or "exit status 0")
                         + f"; peak RSS {sweep['peak_rss_bytes'] / MIB:.0f} MiB")
    size = None if sweep["file_bytes"] is None else sweep["file_bytes"] / 1e6
    files = target(f"{name}: file size", measured=size, goal=SWEEP_FILE_MB, unit="MB",
                   met=False if size is None else None, **common,
                   detail="no file written" if size is None else f"{sweep['file_bytes']} bytes")
    return [seconds, files]


def evaluate(rows, devices, dtype, cuda=None, gemm=None, memory=None) -> list[dict]:
    """Every target that the run measured, per device; ``gemm`` maps a device to its
    :func:`benchmarks.gemm.measure` entry; ``memory`` is :func:`benchmarks.memory.measure`'s.

    When CUDA was not measured, the GPU bandwidth target is listed with ``met: None`` and the
    reason.
    """
    found = []
    for device in devices:
        found += _chapter(rows, device, dtype) + _bandwidth(rows, device, dtype)
        if gemm and gemm.get(device) and gemm[device]["gflops"]:
            found += _sweep(rows, device, dtype, gemm[device])
    if memory is not None:
        found += _memory(memory)
    if cuda is not None and not cuda["measured"]:
        found.append(target("bandwidth: GPU", workload="bandwidth", framework=None,
                            device="cuda", measured=None, goal=BANDWIDTH_PCT_GPU,
                            unit="% of read bandwidth", detail=cuda["reason"]))
    return found
