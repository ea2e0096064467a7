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


def train_implementation(framework: str) -> Implementation:
    """The project's whole ``wd_<framework>.train(method="concise")`` call (moving the data,
    per-epoch losses on both sets and the History included)."""

    def prepare(workload, data, dtype, device):
        backend = importlib.import_module(f"wd_{framework}")

        def run():
            return backend.train(data, method="concise", lambd=workload.lambd, lr=workload.lr,
                                 max_epochs=workload.epochs, dtype=dtype, device=device)

        return Prepared(run=run, sync=no_sync, final_w=lambda history: history.w)

    return Implementation(framework, "train", f"wd_{framework}.train() whole call", prepare)


def fused_implementations(framework: str, workload, device: str, dtype: str,
                          fused_preparer) -> list[Implementation]:
    """``fused`` (``FusedRun`` with ``block_rows="auto"``) and, where that blocks (large CPU
    batches), ``fused-unblocked`` beside it, to show what blocking gains.
    ``fused_preparer(block_rows)`` returns a ``prepare``."""
    fused = importlib.import_module(f"wd_{framework}.fused")
    found = [Implementation(framework, "fused", f"wd_{framework}.fused.FusedRun.run()",
                            fused_preparer("auto"))]
    platform = "cpu" if device == "cpu" else "gpu"
    itemsize = np.dtype(dtype).itemsize
    if fused.auto_block_rows(workload.batch_size, workload.num_inputs, itemsize,
                             platform) is not None:
        found.append(Implementation(framework, "fused-unblocked",
                                    "FusedRun(block_rows=None).run()", fused_preparer(None)))
    return found
