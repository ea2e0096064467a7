"""The issue's performance targets, checked against the rows of one run.

* chapter size: the public fast path (``train(implementation="fused")``) at least
  ``CHAPTER_SPEEDUP[fw]`` times faster per step than the fastest idiomatic loop of the same
  framework (ratio of ``us_per_step``); the project's ``train()`` ratio is reported beside
  it (``goal`` None);
* bandwidth-bound size: at least ``BANDWIDTH_PCT_CPU`` (CPU) / ``BANDWIDTH_PCT_GPU`` (CUDA)
  percent of the read bandwidth measured in the same run, counting ``X`` once per step.
"""

from __future__ import annotations

CHAPTER_SPEEDUP = {"jax": 50.0, "torch": 5.0}
BANDWIDTH_PCT_CPU = 80.0
BANDWIDTH_PCT_GPU = 70.0


def _find(rows, **match):
    return [r for r in rows if all(r[k] == v for k, v in match.items())]


def _speedups(rows, device, dtype):
    out = []
    for framework, bar in CHAPTER_SPEEDUP.items():
        base = _find(rows, workload="chapter", framework=framework, device=device, dtype=dtype)
        idiomatic = [r for r in base if r["implementation"].startswith("idiomatic")]
        if not idiomatic:
            continue
        fastest = min(idiomatic, key=lambda r: r["us_per_step"])
        for name in ("train-fused", "train"):
            for row in _find(base, implementation=name):
                ratio = fastest["us_per_step"] / row["us_per_step"]
                goal = bar if name == "train-fused" else None  # train(): reported
                out.append({
                    "target": f"chapter: {framework} {name} vs {fastest['implementation']}",
                    "workload": "chapter", "framework": framework, "device": device,
                    "measured": ratio, "goal": goal, "unit": "x faster per step",
                    "met": None if goal is None else ratio >= goal,
                    "detail": f"{fastest['us_per_step']:.2f} / {row['us_per_step']:.2f} us/step",
                })
    return out


def _bandwidth(rows, device, dtype):
    bar = BANDWIDTH_PCT_CPU if device == "cpu" else BANDWIDTH_PCT_GPU
    out = []
    for framework in ("torch", "jax"):
        candidates = [r for r in _find(rows, workload="bandwidth", framework=framework,
                                       device=device, dtype=dtype)
                      if r["pct_of_bandwidth"] is not None]
        if not candidates:
            continue
        best = max(candidates, key=lambda r: r["pct_of_bandwidth"])
        out.append({
            "target": f"bandwidth: {framework} best implementation on {device}",
            "workload": "bandwidth", "framework": framework, "device": device,
            "measured": best["pct_of_bandwidth"], "goal": bar, "unit": "% of read bandwidth",
            "met": best["pct_of_bandwidth"] >= bar,
            "detail": f"{best['implementation']} (block_rows={best['block_rows']}): "
                      f"{best['gbs']:.1f} GB/s",
        })
    return out


def evaluate(rows, devices, dtype, cuda=None) -> list[dict]:
    """One entry per target and device: ``measured``, ``goal``, ``met``, ``detail``.

    When CUDA was not measured, the GPU target is listed with ``met: None`` and the reason.
    """
    found = []
    for device in devices:
        found += _speedups(rows, device, dtype) + _bandwidth(rows, device, dtype)
    if cuda is not None and not cuda["measured"]:
        found.append({
            "target": "bandwidth: GPU", "workload": "bandwidth", "framework": None,
            "device": "cuda", "measured": None, "goal": BANDWIDTH_PCT_GPU,
            "unit": "% of read bandwidth", "met": None, "detail": cuda["reason"],
        })
    return found
