"""``python -m benchmarks.blocks``: the bandwidth-bound step by block size, and its ceilings.

Times one SGD step on a contiguous batch ``X`` (B, d) float32 already on the CPU, for:

* ``wd_torch.fused.fused_step`` and ``wd_jax.fused.fused_step`` with ``block_rows=None``
  (two whole-batch products: ``X`` read twice) and with each block size in ``--blocks``
  (single read: each row block used twice while in cache);
* one pass ceilings: ``X @ v`` in numpy (BLAS), torch and JAX (reads ``X`` once and does half
  the arithmetic of a step), and the read bandwidth probes of :mod:`benchmarks.bandwidth`.

``gbs = B * d * 4 / median_s / 1e9`` (``X`` counted once per step), interleaved samples as in
:mod:`benchmarks.timing`. This is the experiment behind ``BLOCK_BYTES`` in both fused modules
and behind "What limits the targets" in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse

import numpy as np

from . import bandwidth
from .implementation import no_sync
from .timing import Candidate, measure_interleaved


def _candidates(X_np, blocks):
    import jax
    import jax.numpy as jnp
    import torch

    from wd_jax.fused import fused_step as jax_step
    from wd_torch.fused import fused_step as torch_step

    B, d = X_np.shape
    w_np = np.full((d, 1), 1e-3, np.float32)
    y_np = np.ones((B, 1), np.float32)
    b_np = np.zeros(1, np.float32)
    X_t, y_t = torch.from_numpy(X_np), torch.from_numpy(y_np)
    w_t, b_t = torch.from_numpy(w_np.copy()), torch.from_numpy(b_np.copy())
    X_j, y_j, w_j, b_j = (jnp.asarray(a) for a in (X_np, y_np, w_np, b_np))
    v_np, v_t, v_j = w_np[:, 0], w_t[:, 0].clone(), w_j[:, 0]
    one_pass = jax.jit(lambda X, v: X @ v)
    found = [
        Candidate(("numpy", "X @ v (one pass)"), lambda: X_np @ v_np, no_sync),
        Candidate(("torch", "X @ v (one pass)"), lambda: X_t @ v_t, no_sync),
        Candidate(("jax", "X @ v (one pass)"), lambda: one_pass(X_j, v_j),
                  jax.block_until_ready),
    ]
    for k in (None, *blocks):
        found.append(Candidate(("torch", f"fused_step block_rows={k}"),
                               lambda k=k: torch_step(w_t, b_t, X_t, y_t, 0.0, 0.0,
                                                      block_rows=k), no_sync))
        found.append(Candidate(("jax", f"fused_step block_rows={k}"),
                               lambda k=k: jax_step(w_j, b_j, X_j, y_j, 0.0, 0.0,
                                                    block_rows=k), jax.block_until_ready))
    return found


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.blocks", description=__doc__
                                     .split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--d", type=int, default=65536)
    parser.add_argument("--blocks", default="1,2,4,8,16,32,64,128",
                        help="comma-separated block sizes (rows)")
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)
    blocks = [int(k) for k in args.blocks.split(",") if k.strip()]
    X = np.random.default_rng(0).standard_normal((args.batch, args.d), dtype=np.float32)
    read = bandwidth.measure("cpu", ("numpy", "torch", "jax"), size_bytes=bandwidth.FULL_BYTES)
    print(f"read bandwidth: {read['read_gbs']:.1f} GB/s ("
          + ", ".join(f"{p['name']} {p['gbs']:.1f}" for p in read["probes"]) + ")")
    timings = measure_interleaved(_candidates(X, blocks), args.repeats)
    print(f"| framework | step (B={args.batch}, d={args.d}, float32) | median ms | min ms "
          f"| GB/s | % of read bandwidth |\n|---|---|---:|---:|---:|---:|")
    for (framework, name), t in timings.items():
        gbs = X.nbytes / t.median_s / 1e9
        print(f"| {framework} | {name} | {t.median_s * 1e3:.2f} | {t.min_s * 1e3:.2f} "
              f"| {gbs:.1f} | {100 * gbs / read['read_gbs']:.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
