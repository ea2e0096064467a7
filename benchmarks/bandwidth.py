"""The machine's memory read bandwidth, measured in the same run as the workloads.

Each probe reads one large float32 array (``size_bytes``, far larger than any cache) once
and writes almost nothing: ``gbs = size_bytes / seconds / 1e9`` at the median of ``repeats``
timed calls after one warm-up call. Probes on the CPU: ``numpy.sum`` (one thread),
``numpy.matvec`` (the array as a (rows, 4096) matrix times a vector: numpy's BLAS, its
threads), ``torch.sum`` (torch's intra-op threads), a jitted ``jnp.sum`` (XLA's thread pool);
on CUDA the torch and JAX sums on the GPU. The device's *read bandwidth* is the largest
probe, so that percentages of it are not flattered by a slow probe.
"""

from __future__ import annotations

import statistics
import time

import numpy as np

FULL_BYTES = 1024 * 2**20
QUICK_BYTES = 256 * 2**20


def _gbs(fn, sync, size_bytes: int, repeats: int) -> float:
    sync(fn())
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        sync(fn())
        times.append(time.perf_counter() - start)
    return size_bytes / statistics.median(times) / 1e9


def _numpy_probe(size_bytes, repeats):
    array = np.ones(size_bytes // 4, dtype=np.float32)
    return _gbs(array.sum, lambda r: r, array.nbytes, repeats)


def _numpy_matvec_probe(size_bytes, repeats):
    matrix = np.ones((size_bytes // 4 // 4096, 4096), dtype=np.float32)
    vector = np.ones(4096, dtype=np.float32)
    return _gbs(lambda: matrix @ vector, lambda r: r, matrix.nbytes, repeats)


def _torch_probe(device, size_bytes, repeats):
    import torch

    from wd_torch.device import synchronize, torch_device

    dev = torch_device(device)
    tensor = torch.ones(size_bytes // 4, dtype=torch.float32, device=dev)
    return _gbs(tensor.sum, lambda r: synchronize(dev), size_bytes, repeats)


def _jax_probe(device, size_bytes, repeats):
    import jax
    import jax.numpy as jnp

    from wd_jax.device import jax_device

    array = jax.device_put(np.ones(size_bytes // 4, dtype=np.float32), jax_device(device))
    total = jax.jit(jnp.sum)
    return _gbs(lambda: total(array), jax.block_until_ready, size_bytes, repeats)


def probe_names(device: str, frameworks) -> list[str]:
    """The probes that :func:`measure` runs on ``device`` for ``frameworks``."""
    names = ["numpy.sum", "numpy.matvec"] if device == "cpu" and "numpy" in frameworks else []
    names += [name for fw, name in (("torch", "torch.sum"), ("jax", "jax.numpy.sum"))
              if fw in frameworks]
    return names


def measure(device: str, frameworks, *, size_bytes: int, repeats: int = 5) -> dict:
    """``{"read_gbs", "size_bytes", "probes": [{"name", "gbs"}]}`` for ``device``."""
    runners = {
        "numpy.sum": lambda: _numpy_probe(size_bytes, repeats),
        "numpy.matvec": lambda: _numpy_matvec_probe(size_bytes, repeats),
        "torch.sum": lambda: _torch_probe(device, size_bytes, repeats),
        "jax.numpy.sum": lambda: _jax_probe(device, size_bytes, repeats),
    }
    probes = [{"name": name, "gbs": runners[name]()} for name in probe_names(device, frameworks)]
    best = max((p["gbs"] for p in probes), default=None)
    return {"read_gbs": best, "size_bytes": size_bytes, "repeats": repeats, "probes": probes}
