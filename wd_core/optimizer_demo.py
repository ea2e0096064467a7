"""Demo rows for the chapter's concise model trained with momentum SGD and with AdamW.

:func:`optimizer_rows` returns rows in the layout of ``weight-decay demo``'s table (the keys
of ``wd_core.commands.demo``'s rows), so they can be appended to it. For each optimizer and
lambda the first row is the oracle, ``torch.optim`` itself run in float64 through the torch
backend (the definition the JAX chain reproduces); every backend's run in ``dtype`` is then
compared with it within the tolerance table (``float32``, or ``float32_adam`` for the Adam
family). Backends are loaded only when called; this module imports no framework.
"""

from __future__ import annotations

from wd_core.backends import BACKENDS, load_backend
from wd_core.optimizers import ADAM_FAMILIES, OptimizerSpec
from wd_core.tolerances import is_close

#: Momentum 0.5, not the customary 0.9: at the chapter's lr=0.01 on its 20 examples, 0.9
#: makes the minibatch run oscillate (training loss rising to 2e-2 by epoch 10), which
#: amplifies float32 rounding beyond the whole-run tolerance; 0.5 converges.
DEMO_OPTIMIZERS = (OptimizerSpec("sgd", momentum=0.5), OptimizerSpec("adamw"))
DEMO_LAMBDAS = (0.0, 3.0)
COMPARED_FIELDS = ("w", "b", "train_loss", "val_loss")
ORACLE_BACKEND = "torch"


def tolerance_kind(spec: OptimizerSpec, dtype: str) -> str:
    """The tolerance-table entry that judges a ``dtype`` run of ``spec``."""
    if dtype == "float64":
        return "float64"
    return "float32_adam" if spec.family in ADAM_FAMILIES else "float32"


def agrees(history, oracle, kind: str) -> bool:
    """Every compared field within ``kind``; diverged runs agree when they diverge together."""
    if history.diverged or oracle.diverged:
        return history.diverged_epoch == oracle.diverged_epoch
    return all(is_close(getattr(history, f), getattr(oracle, f), kind) for f in COMPARED_FIELDS)


def row(name: str, dtype: str, lambd: float, history, agrees_with_oracle) -> dict:
    """One table row: ``agrees_with_oracle`` is None for the oracle row itself."""
    return {
        "implementation": name, "dtype": dtype, "lambd": lambd,
        "train_loss": history.train_loss[-1], "val_loss": history.val_loss[-1],
        "l2_penalty": history.l2_penalty, "l2_norm": history.l2_norm,
        "agrees": agrees_with_oracle,
    }


def optimizer_rows(data, *, backends=BACKENDS, dtype="float32", lr=0.01, max_epochs=10,
                   optimizers=DEMO_OPTIMIZERS, lambdas=DEMO_LAMBDAS) -> list[dict]:
    """Rows for the concise model trained with each of ``optimizers`` (``lr`` the learning
    rate, each lambda the weight decay of ``w``), every backend against the float64
    ``torch.optim`` oracle. Needs the torch backend for the oracle (``ImportError`` with the
    install command otherwise)."""
    oracle_backend = load_backend(ORACLE_BACKEND)
    rows = []
    for spec in optimizers:
        kind = tolerance_kind(spec, dtype)
        for lambd in lambdas:
            oracle = oracle_backend.train(data, method="concise", lambd=lambd, lr=lr,
                                          max_epochs=max_epochs, dtype="float64",
                                          optimizer=spec)
            rows.append(row(f"torch.optim {spec.label()}", "float64", lambd, oracle, None))
            for name in backends:
                history = load_backend(name).train(data, method="concise", lambd=lambd, lr=lr,
                                                   max_epochs=max_epochs, dtype=dtype,
                                                   optimizer=spec)
                rows.append(row(f"{name} concise {spec.label()}", dtype, lambd, history,
                                agrees(history, oracle, kind)))
    return rows
