"""Benchmarks of the chapter's SGD-with-weight-decay step: ``python -m benchmarks``.

Every implementation (idiomatic loop, the project's ``train()``, the fused fast path, a numpy
float32 floor) runs the same steps on the same data; timings are compared as ratios within
one run, and each implementation's achieved bandwidth (the bytes of ``X`` read once per
step) is set against a read bandwidth measured in the same run. See docs/benchmarks.md.
"""
