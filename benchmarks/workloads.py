"""The workloads: sizes of data, batch and run, for the full and the ``--quick`` benchmark.

A workload is one training run: ``epochs`` epochs of minibatch SGD over ``num_train`` rows
of ``num_inputs`` features in batches of ``batch_size``, in the order ``wd_core`` gives. Its
byte count is the bytes of ``X`` that every step must read at least once:
``bytes_per_run = epochs * num_train * num_inputs * itemsize`` (each training row is in
exactly one batch per epoch).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from wd_core import SyntheticData

LAMBD = 3.0
CHAPTER_LR = 0.01
GROUPS = ("chapter", "middle", "bandwidth", "sweep")


def stable_lr(batch_size: int, num_inputs: int) -> float:
    """``min(0.01, 0.5 / s)``, ``s = (sqrt(d) + sqrt(B))**2 / B``, the Marchenko-Pastur edge
    of ``X^T X / B`` for ``X ~ N(0, 1)``: SGD stays stable at every size."""
    edge = (math.sqrt(num_inputs) + math.sqrt(batch_size)) ** 2 / batch_size
    return min(CHAPTER_LR, 0.5 / edge)


@dataclass(frozen=True)
class Workload:
    """One timed training run; ``group`` is one of ``GROUPS``."""

    name: str
    group: str
    num_train: int
    batch_size: int
    num_inputs: int
    epochs: int
    num_val: int = 16
    lr: float = CHAPTER_LR
    lambd: float = LAMBD

    @property
    def steps(self) -> int:
        """SGD steps in the run: ``epochs * ceil(num_train / batch_size)``."""
        return self.epochs * -(-self.num_train // self.batch_size)

    def bytes_per_run(self, itemsize: int) -> int:
        """Bytes of ``X`` read once per step, summed over the run."""
        return self.epochs * self.num_train * self.num_inputs * itemsize

    def data(self) -> SyntheticData:
        """The run's data (seed 0), float64."""
        return SyntheticData(num_train=self.num_train, num_val=self.num_val,
                             num_inputs=self.num_inputs, batch_size=self.batch_size, seed=0)

    def describe(self) -> str:
        return (f"n={self.num_train} B={self.batch_size} d={self.num_inputs} "
                f"epochs={self.epochs} ({self.steps} steps)")


def _sized(name, group, num_train, batch_size, num_inputs, epochs, **more):
    return Workload(name, group, num_train, batch_size, num_inputs, epochs,
                    lr=more.pop("lr", stable_lr(batch_size, num_inputs)), **more)


def chapter() -> Workload:
    """D2L 3.7: n=20, d=200, B=5, 10 epochs, lr=0.01, lambd=3 (40 steps)."""
    return Workload("chapter", "chapter", 20, 5, 200, 10, num_val=100, lr=CHAPTER_LR)


def workloads(quick: bool = False, groups=GROUPS) -> list[Workload]:
    """The benchmark's workloads in run order, restricted to ``groups``."""
    if quick:
        sizes = [
            chapter(),
            _sized("middle", "middle", 1024, 256, 1024, 2),
            *[_sized(f"sweep-d{d}", "sweep", 256, 64, d, 1) for d in (64, 1024, 16384)],
            _sized("bandwidth", "bandwidth", 512, 256, 16384, 1),
        ]
    else:
        sizes = [
            chapter(),
            _sized("middle", "middle", 4096, 256, 4096, 2),
            *[_sized(f"sweep-d{d}", "sweep", 1024, 256, d, 2)
              for d in (64, 256, 1024, 4096, 16384, 65536)],
            _sized("bandwidth", "bandwidth", 1024, 1024, 65536, 4),
        ]
    return [w for w in sizes if w.group in groups]
