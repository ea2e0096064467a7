"""What a framework module offers the runner: named implementations, prepared per workload.

``prepare(workload, data, dtype, device)`` does everything that is not timed (moving the data
to the device, building models and optimizers) and returns a :class:`Prepared` whose
``run()`` executes every step of the workload's run from the initial parameters.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

import numpy as np


@dataclass
class Prepared:
    """A ready-to-time run: ``sync(run())`` finishes it; ``final_w(result)`` is (d, 1) numpy."""

    run: object
    sync: object
    final_w: object
    block_rows: int | None = None


@dataclass(frozen=True)
class Implementation:
    """One way of running the steps; ``what`` says in a line what ``run()`` covers."""

    framework: str
    name: str
    what: str
    prepare: object


def no_sync(result):
    """``sync`` for results that are already on the host."""
    return result


def train_implementation(framework: str, implementation: str = "idiomatic") -> Implementation:
    """The project's whole ``wd_<framework>.train(method="concise", implementation=...)``
    call (moving the data, per-epoch losses on both sets and the History included): ``train``
    (the framework's optimizer) or ``train-fused`` (the public fast path)."""

    def prepare(workload, data, dtype, device):
        backend = importlib.import_module(f"wd_{framework}")

        def run():
            return backend.train(data, method="concise", lambd=workload.lambd, lr=workload.lr,
                                 max_epochs=workload.epochs, dtype=dtype, device=device,
                                 implementation=implementation)

        fused = importlib.import_module(f"wd_{framework}.fused")
        platform = "cpu" if device == "cpu" else "gpu"
        block_rows = fused.auto_block_rows(data.batch_size, data.num_inputs,
                                           np.dtype(dtype).itemsize, platform)
        return Prepared(run=run, sync=no_sync, final_w=lambda history: history.w,
                        block_rows=block_rows if implementation == "fused" else None)

    name = "train" if implementation == "idiomatic" else f"train-{implementation}"
    what = f"wd_{framework}.train(implementation={implementation!r}) whole call"
    return Implementation(framework, name, what, prepare)
