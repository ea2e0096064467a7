"""The workloads: sizes of data, batch and run, for the full and the ``--quick`` benchmark.

A workload is one training run with per-epoch losses, as ``train()`` returns it: ``epochs``
epochs of minibatch SGD over ``num_train`` rows of ``num_inputs`` features in batches of
``batch_size``, in the order ``wd_core`` gives, and after every epoch the data loss on the
whole training set (``num_train`` rows) and on the validation set (``num_val`` rows). A sweep
workload (``lambdas > 1``) is that run for ``lambdas`` values of lambda at once.

What a run must at least read and compute (every implementation does this work):

* ``bytes_per_run = epochs * (num_train + num_train + num_val) * num_inputs * itemsize``:
  ``X`` once per step (each training row is in exactly one batch per epoch) and once per
  evaluation (training and validation rows); the lambdas of a sweep share every read.
* ``flops_per_run = epochs * (4 * num_train + 2 * (num_train + num_val)) * num_inputs *
  lambdas``: per step the two products ``X_b W`` and ``X_b^T R`` (``2 * 2 * B * d * L``
  flops, ``B`` summed over the epoch's batches is ``num_train``), per epoch the two loss
  products over the training and validation rows (``2 * (n + n_val) * d * L``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from wd_core import SyntheticData

LAMBD = 3.0
CHAPTER_LR = 0.01
#: The timed groups (``--workloads``), ``memory`` (peak RSS of child processes,
#: :mod:`benchmarks.memory`), and two groups that run only when asked for: ``memory-n1024``
#: (the same at the issue's n = 1,024, about 18 minutes on two cores) and ``data-parallel``
#: (:mod:`benchmarks.data_parallel`, several worker processes at the bandwidth size); in run
#: order.
TIMED_GROUPS = ("chapter", "middle", "sizes", "bandwidth", "sweep")
GROUPS = (*TIMED_GROUPS, "memory", "memory-n1024", "data-parallel")
DEFAULT_GROUPS = (*TIMED_GROUPS, "memory")


def stable_lr(batch_size: int, num_inputs: int) -> float:
    """``min(0.01, 0.5 / s)``, ``s = (sqrt(d) + sqrt(B))**2 / B``, the Marchenko-Pastur edge
    of ``X^T X / B`` for ``X ~ N(0, 1)``: SGD stays stable at every size."""
    edge = (math.sqrt(num_inputs) + math.sqrt(batch_size)) ** 2 / batch_size
    return min(CHAPTER_LR, 0.5 / edge)


@dataclass(frozen=True)
class Workload:
    """One timed training run (or sweep of ``lambdas`` runs); ``group`` is one of
    ``TIMED_GROUPS``."""

    name: str
    group: str
    num_train: int
    batch_size: int
    num_inputs: int
    epochs: int
    num_val: int = 16
    lr: float = CHAPTER_LR
    lambd: float = LAMBD
    lambdas: int = 1

    @property
    def steps(self) -> int:
        """SGD steps in the run: ``epochs * ceil(num_train / batch_size)``."""
        return self.epochs * -(-self.num_train // self.batch_size)

    def bytes_per_run(self, itemsize: int) -> int:
        """Bytes of ``X`` read once per step and once per evaluation, over the run."""
        return self.epochs * (2 * self.num_train + self.num_val) * self.num_inputs * itemsize

    def flops_per_run(self) -> int:
        """Flops of the run's matrix products (steps and losses), all lambdas."""
        per_epoch = (4 * self.num_train + 2 * (self.num_train + self.num_val)) * self.num_inputs
        return self.epochs * per_epoch * self.lambdas

    def lambda_values(self) -> list[float]:
        """The lambdas of the run: ``[lambd]``, or for a sweep ``lambd * i / (L // 2)`` for
        ``i < L``, so that lane :attr:`check_lane` is ``lambd`` itself (checked against the
        float64 reference run)."""
        if self.lambdas == 1:
            return [self.lambd]
        half = self.lambdas // 2
        return [self.lambd * i / half for i in range(self.lambdas)]

    @property
    def check_lane(self) -> int:
        """The lane whose run is compared with the reference (its lambda is ``lambd``)."""
        return self.lambdas // 2 if self.lambdas > 1 else 0

    def data(self) -> SyntheticData:
        """The run's data (seed 0), float64."""
        return SyntheticData(num_train=self.num_train, num_val=self.num_val,
                             num_inputs=self.num_inputs, batch_size=self.batch_size, seed=0)

    def describe(self) -> str:
        lanes = f", {self.lambdas} lambdas" if self.lambdas > 1 else ""
        return (f"n={self.num_train} n_val={self.num_val} B={self.batch_size} "
                f"d={self.num_inputs} epochs={self.epochs} ({self.steps} steps{lanes})")


def _sized(name, group, num_train, batch_size, num_inputs, epochs, **more):
    return Workload(name, group, num_train, batch_size, num_inputs, epochs,
                    lr=more.pop("lr", stable_lr(batch_size, num_inputs)), **more)


def chapter(epochs: int = 200) -> Workload:
    """D2L 3.7: n=20, n_val=100, d=200, B=5, lr=0.01, lambd=3; 200 epochs (800 steps), as
    in the issue's table (the book's figure runs 100 epochs of this data)."""
    return Workload("chapter", "chapter", 20, 5, 200, epochs, num_val=100, lr=CHAPTER_LR)


def workloads(quick: bool = False, groups=DEFAULT_GROUPS) -> list[Workload]:
    """The benchmark's timed workloads in run order, restricted to ``groups``."""
    if quick:
        sizes = [
            chapter(),
            _sized("middle", "middle", 1024, 256, 1024, 2),
            *[_sized(f"size-d{d}", "sizes", 256, 64, d, 1) for d in (64, 1024, 16384)],
            _sized("bandwidth", "bandwidth", 4096, 1024, 4096, 2),
            _sized("sweep-L64", "sweep", 1024, 256, 1024, 2, num_val=100, lambdas=64),
        ]
    else:
        sizes = [
            chapter(),
            _sized("middle", "middle", 4096, 256, 4096, 2),
            *[_sized(f"size-d{d}", "sizes", 1024, 256, d, 2)
              for d in (64, 256, 1024, 4096, 16384, 65536)],
            _sized("bandwidth", "bandwidth", 16384, 1024, 16384, 2),
            _sized("sweep-L64", "sweep", 4096, 256, 1024, 5, num_val=100, lambdas=64),
        ]
    return [w for w in sizes if w.group in groups]
