"""Demo rows for the chapter's concise model trained with momentum SGD and with AdamW.

:func:`optimizer_rows` returns :mod:`weight_decay.demo_table` rows, the second table of
``weight-decay demo``. For each optimizer and
lambda the first row is the oracle, ``torch.optim`` itself run in float64 through the torch
backend (the definition the JAX chain reproduces); every backend's run in ``dtype`` is then
compared with it within the tolerance table (``float32``, or ``float32_adam`` for the Adam
family). Backends are loaded only when called; this module imports no framework.
"""

from __future__ import annotations

from wd_core.optimizers import ADAM_FAMILIES, OptimizerSpec
from wd_core.tolerances import run_kind
from weight_decay.backends import BACKENDS, load_backend
from weight_decay.demo_table import row

#: Momentum 0.5, not the customary 0.9: at the chapter's lr=0.01 on its 20 examples, 0.9
#: makes the minibatch run oscillate (training loss rising to 2e-2 by epoch 10), which
#: amplifies float32 rounding beyond the whole-run tolerance; 0.5 converges.
DEMO_OPTIMIZERS = (OptimizerSpec("sgd", momentum=0.5), OptimizerSpec("adamw"))
DEMO_LAMBDAS = (0.0, 3.0)
ORACLE_BACKEND = "torch"


def runs_per_call(backends=BACKENDS, optimizers=DEMO_OPTIMIZERS, lambdas=DEMO_LAMBDAS) -> int:
    """How many runs :func:`optimizer_rows` makes (the oracle's included)."""
    return len(optimizers) * len(lambdas) * (1 + len(backends))


def optimizer_rows(data, *, backends=BACKENDS, dtype="float32", lr=0.01, max_epochs=10,
                   optimizers=DEMO_OPTIMIZERS, lambdas=DEMO_LAMBDAS, progress=None) -> list[dict]:
    """Rows (:mod:`weight_decay.demo_table`) for the concise model trained with each of
    ``optimizers`` (``lr`` the learning rate, each lambda the weight decay of ``w``), every
    backend against the float64 ``torch.optim`` oracle. Needs the torch backend for the
    oracle (``ImportError`` with the install command otherwise). ``progress``: ``None`` or a
    callable called with no argument after each run."""
    oracle_backend = load_backend(ORACLE_BACKEND)
    tick = progress or (lambda: None)
    rows = []
    for spec in optimizers:
        kind = run_kind(dtype, adam=spec.family in ADAM_FAMILIES)
        for lambd in lambdas:
            oracle = oracle_backend.train(data, method="concise", lambd=lambd, lr=lr,
                                          max_epochs=max_epochs, dtype="float64",
                                          optimizer=spec)
            tick()
            rows.append(row(f"torch.optim {spec.label()}", "float64", lambd, oracle))
            for name in backends:
                history = load_backend(name).train(data, method="concise", lambd=lambd, lr=lr,
                                                   max_epochs=max_epochs, dtype=dtype,
                                                   optimizer=spec)
                tick()
                rows.append(row(f"{name} concise {spec.label()}", dtype, lambd, history,
                                oracle=oracle, kind=kind))
    return rows
