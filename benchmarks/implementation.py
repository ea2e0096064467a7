"""What a framework module offers the runner: named implementations, prepared per workload.

``prepare(workload, data, dtype, device)`` does everything that is not timed (moving the data
to the device, building models and optimizers, compiling nothing yet) and returns a
:class:`Prepared` whose ``run()`` executes the workload's whole run from the initial
parameters: every step, and the losses on the training and validation sets after every epoch.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

import numpy as np

#: Host copies of a workload's data in the timed dtype, shared by the implementations that
#: read host arrays (one copy per data and dtype; :func:`forget_host_arrays` drops them).
_HOST_ARRAYS: dict = {}


@dataclass
class Prepared:
    """A ready-to-time run: ``sync(run())`` finishes it; ``outcome(result)`` is the final
    ``w`` (d, 1) and the per-epoch ``train_loss``, ``val_loss`` (E,) as numpy float64 (of the
    checked lane, for a sweep)."""

    run: object
    sync: object
    outcome: object
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


def host_arrays(data, dtype: str) -> tuple:
    """``(X_train, y_train, X_val, y_val)`` of ``data`` as writable ``dtype`` numpy arrays,
    made once per data and dtype (untimed preparation)."""
    key = (id(data), dtype)
    if key not in _HOST_ARRAYS:
        arrays = tuple(np.array(a, dtype=dtype)
                       for a in (data.X_train, data.y_train, data.X_val, data.y_val))
        _HOST_ARRAYS[key] = (data, arrays)  # the data kept alive: its id is not reused
    return _HOST_ARRAYS[key][1]


def forget_host_arrays() -> None:
    """Drop the copies made by :func:`host_arrays` (after each workload)."""
    _HOST_ARRAYS.clear()


def _history_outcome(history):
    return history.w, history.train_loss, history.val_loss


def _backend(framework: str):
    return importlib.import_module(f"wd_{framework}")


def _block_rows(framework, workload, dtype, device, implementation):
    if implementation != "fused":
        return None
    fused = importlib.import_module(f"wd_{framework}.fused")
    platform = "cpu" if device == "cpu" else "gpu"
    return fused.auto_block_rows(workload.batch_size, workload.num_inputs,
                                 np.dtype(dtype).itemsize, platform)


def train_implementation(framework: str, implementation: str = "idiomatic") -> Implementation:
    """The project's whole ``wd_<framework>.train(method="concise", implementation=...)``
    call (moving the data, per-epoch losses on both sets and the History included): ``train``
    (the framework's optimizer, the default) or ``train-fused`` (the public fast path)."""

    def prepare(workload, data, dtype, device):
        backend = _backend(framework)

        def run():
            return backend.train(data, method="concise", lambd=workload.lambd, lr=workload.lr,
                                 max_epochs=workload.epochs, dtype=dtype, device=device,
                                 implementation=implementation)

        return Prepared(run=run, sync=no_sync, outcome=_history_outcome,
                        block_rows=_block_rows(framework, workload, dtype, device,
                                               implementation))

    name = "train" if implementation == "idiomatic" else f"train-{implementation}"
    what = f"wd_{framework}.train(implementation={implementation!r}), whole call"
    return Implementation(framework, name, what, prepare)


def sweep_implementation(framework: str, implementation: str = "idiomatic") -> Implementation:
    """The project's whole ``wd_<framework>.sweep(method="concise", implementation=...)``
    call over the workload's lambdas: ``sweep`` or ``sweep-fused``."""

    def prepare(workload, data, dtype, device):
        backend = _backend(framework)
        lambdas = workload.lambda_values()

        def run():
            return backend.sweep(data, lambdas=lambdas, method="concise", lr=workload.lr,
                                 max_epochs=workload.epochs, dtype=dtype, device=device,
                                 implementation=implementation)

        return Prepared(run=run, sync=no_sync,
                        outcome=lambda histories: _history_outcome(
                            histories[workload.check_lane]),
                        block_rows=_block_rows(framework, workload, dtype, device,
                                               implementation))

    name = "sweep" if implementation == "idiomatic" else f"sweep-{implementation}"
    what = f"wd_{framework}.sweep(implementation={implementation!r}), whole call"
    return Implementation(framework, name, what, prepare)
