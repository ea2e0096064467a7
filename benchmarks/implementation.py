"""What a framework module offers the runner: named implementations, prepared per workload.

``prepare(workload, data, dtype, device)`` does everything that is not timed (moving the data
to the device, building models and optimizers) and returns a :class:`Prepared` whose
``run()`` executes every step of the workload's run from the initial parameters.
"""

from __future__ import annotations

from dataclasses import dataclass


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
