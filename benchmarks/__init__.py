"""Benchmarks of the chapter's SGD with weight decay: ``python -m benchmarks``.

Every implementation (idiomatic loop, the project's ``train()`` and ``sweep()`` with and
without the fused fast path, ``train()``'s compiled program alone, a numpy float32 floor) runs
the same whole runs, per-epoch losses included, on the same data; timings are compared as
ratios within one run, each run's bytes (``X`` once per step and once per evaluation) are set
against a read bandwidth, and a sweep's matrix-product rate against a GEMM rate, both measured
in the same run; child processes measure the peak memory of long runs. See docs/benchmarks.md.
"""
