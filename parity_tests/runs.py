"""Training runs of the parity suite, computed once per process and shared by its modules."""

from __future__ import annotations

import functools
import importlib

from parity_tests.cases import RUN_CASES
from wd_core import reference


@functools.cache
def backend_run(backend: str, case: str, method: str, lambd: float, dtype: str):
    """``wd_<backend>.train`` on ``RUN_CASES[case]``: a :class:`wd_core.History`."""
    c = RUN_CASES[case]
    module = importlib.import_module(f"wd_{backend}")
    return module.train(c.data(), method=method, lambd=lambd, lr=c.lr,
                        max_epochs=c.max_epochs, dtype=dtype, epoch_params=True)


@functools.cache
def reference_run(case: str, lambd: float):
    """``reference.train`` (float64) on ``RUN_CASES[case]``."""
    c = RUN_CASES[case]
    return reference.train(c.data(), lambd=lambd, lr=c.lr, max_epochs=c.max_epochs,
                           epoch_params=True)
