"""The best matrix-product rate for a sweep's shapes, measured in the same run as the sweep.

A sweep step over ``L`` lambdas makes two products per batch of ``B`` rows and ``d`` inputs:
``X_b W`` ((B, d) @ (d, L)) and ``X_b^T R`` ((d, B) @ (B, L)), ``2 * B * d * L`` flops each.
Each product is timed on contiguous float32 operands (random normal, made once) with
``torch.mm`` and a jitted ``jnp.dot`` on the device, with the samples interleaved
(:mod:`benchmarks.timing`); each probe's rate is taken at its fastest sample (``min_s``):
the best the frameworks can do for that shape here. The reference rate is one step's two
products at the best time of each:

    gemm_gflops = 2 * (2 * B * d * L) / (best_s[(B, d) @ (d, L)] + best_s[(d, B) @ (B, L)]) / 1e9

so that a sweep's ``pct_of_gemm`` (its flops per second over this) is not flattered by a slow
probe.
"""

from __future__ import annotations

import numpy as np

from .timing import Candidate, measure_interleaved


def shapes(workload) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """The operand shapes of a step's two products: ``[((B, d), (d, L)), ((d, B), (B, L))]``."""
    B, d, L = workload.batch_size, workload.num_inputs, workload.lambdas
    return [((B, d), (d, L)), ((d, B), (B, L))]


def _label(left, right) -> str:
    return f"({left[0]}x{left[1]})@({right[0]}x{right[1]})"


def _candidates(workload, device, frameworks):
    rng = np.random.default_rng(0)
    operands = [tuple(rng.standard_normal(s, dtype=np.float32) for s in pair)
                for pair in shapes(workload)]
    found = []
    if "torch" in frameworks:
        import torch

        from wd_torch.device import synchronize, torch_device

        dev = torch_device(device)
        for a, b in operands:
            ta, tb = torch.from_numpy(a).to(dev), torch.from_numpy(b).to(dev)
            found.append(Candidate(("torch", _label(a.shape, b.shape)),
                                   lambda ta=ta, tb=tb: torch.mm(ta, tb),
                                   lambda _, dev=dev: synchronize(dev)))
    if "jax" in frameworks:
        import jax
        import jax.numpy as jnp

        from wd_jax.device import jax_device, numerics

        dev = jax_device(device)
        with numerics("float32"):
            dot = jax.jit(jnp.dot)
            for a, b in operands:
                ja, jb = jax.device_put(a, dev), jax.device_put(b, dev)
                found.append(Candidate(("jax", _label(a.shape, b.shape)),
                                       lambda ja=ja, jb=jb: dot(ja, jb),
                                       jax.block_until_ready))
    return found


def pair_gflops(probes, products, flops: int) -> float | None:
    """``2 * flops / sum of the best min_s of each of products`` / 1e9 (one step's two
    products, each at its fastest probe); None when a product has no probe."""
    best = []
    for product in products:
        times = [p["min_s"] for p in probes if p["product"] == product]
        if not times:
            return None
        best.append(min(times))
    return len(best) * flops / sum(best) / 1e9


def measure(workload, device: str, frameworks, *, repeats: int, min_sample_s: float) -> dict:
    """``{"workload", "shapes", "repeats", "probes": [{"framework", "product", "gflops",
    "min_s", "median_s"}], "gflops"}`` (``gflops`` None when no framework could be timed)."""
    flops = 2 * workload.batch_size * workload.num_inputs * workload.lambdas
    timings = measure_interleaved(_candidates(workload, device, frameworks), repeats,
                                  min_sample_s=min_sample_s)
    probes = [{"framework": framework, "product": product, "gflops": flops / t.min_s / 1e9,
               "min_s": t.min_s, "median_s": t.median_s}
              for (framework, product), t in timings.items()]
    return {"workload": workload.name,
            "shapes": [[list(left), list(right)] for left, right in shapes(workload)],
            "repeats": repeats, "probes": probes,
            "gflops": pair_gflops(probes, [_label(*pair) for pair in shapes(workload)], flops)}
