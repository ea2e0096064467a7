"""Measure the errors the tolerance table must cover: ``python -m parity_tests.measure_tolerances``.

Prints markdown tables (the numbers in ``docs/parity.md``): every error is given as the
smallest ``rtol`` with which :func:`wd_core.tolerances.assert_close` would pass, so it can be
set beside its entry of ``TOLERANCES``.
"""

from __future__ import annotations

import importlib

import numpy as np

from parity_tests.cases import (
    DTYPES,
    LAMBDAS,
    METHODS,
    RUN_CASES,
    STEP_INPUTS,
    STEP_LR_RANGE,
    STEP_ROWS,
    as_dtype,
    random_step_inputs,
    step_scale,
)
from parity_tests.runs import backend_run, reference_run
from wd_core import reference
from wd_core.tolerances import TOLERANCES, required_rtol

BACKENDS = ("torch", "jax")
PARAMS = ("epoch_w", "epoch_b")
LOSSES = ("train_loss", "val_loss")


def one_step_errors(draws: int = 300, seed: int = 0) -> list[str]:
    """Worst one-step error over random draws, against the reference on the same inputs."""
    rows = ["| backend | method | dtype | worst, scale of the terms | worst, scale of w' |",
            "|---|---|---|---:|---:|"]
    for backend in BACKENDS:
        module = importlib.import_module(f"wd_{backend}")
        for method in METHODS:
            for dtype in DTYPES:
                rng = np.random.default_rng(seed)
                by_terms = by_result = 0.0
                for _ in range(draws):
                    n, d = rng.choice(STEP_ROWS), rng.choice(STEP_INPUTS)
                    w, b, X, y = as_dtype(dtype, *random_step_inputs(rng, n, d))
                    lr = float(np.exp(rng.uniform(*np.log(STEP_LR_RANGE))))
                    lambd = float(rng.choice([0.0, rng.uniform(0, 1), 1 - 1e-6])) / lr
                    got = module.sgd_step(w, b, X, y, method=method, lambd=lambd, lr=lr,
                                          dtype=dtype)
                    want = reference.sgd_step(w, b, X, y, lr=lr, lambd=lambd)
                    scales = step_scale(w, b, X, y, lr=lr, lambd=lambd)
                    for g, e, s in zip(got, want, scales, strict=True):
                        by_terms = max(by_terms, required_rtol(g, e, scale=s))
                        by_result = max(by_result, required_rtol(g, e))
                rows.append(f"| {backend} | {method} | {dtype} | {by_terms:.1e} | "
                            f"{by_result:.1e} |")
    return rows


def run_errors() -> list[str]:
    """Worst whole-run error per case (over methods and lambdas), params and losses apart.

    "floor" columns use the table's absolute floor (``rtol * max|expected|``); "alone" columns
    are purely element-wise (atol 0), which a weight crossing zero or a small loss inflates.
    """
    rows = ["| case | steps | comparison | dtype | parameters | losses | parameters, alone "
            "| losses, alone |", "|---|---:|---|---|---:|---:|---:|---:|"]
    for name, case in RUN_CASES.items():
        steps = case.max_epochs * case.data().steps_per_epoch
        for dtype in DTYPES:
            pairs = {f"{b} vs reference": [] for b in BACKENDS}
            pairs["torch vs jax"] = []
            for method in METHODS:
                for lambd in LAMBDAS:
                    oracle = reference_run(name, lambd)
                    runs = {b: backend_run(b, name, method, lambd, dtype) for b in BACKENDS}
                    for b in BACKENDS:
                        pairs[f"{b} vs reference"].append((runs[b], oracle))
                    pairs["torch vs jax"].append((runs["torch"], runs["jax"]))
            for label, histories in pairs.items():
                worst = [max(required_rtol(getattr(h, f), getattr(o, f), atol_scale=floor)
                             for h, o in histories for f in fields)
                         for floor in (1.0, 0.0) for fields in (PARAMS, LOSSES)]
                rows.append(f"| {name} | {steps} | {label} | {dtype} | "
                            + " | ".join(f"{x:.1e}" for x in worst) + " |")
    return rows


def conditioning() -> list[str]:
    """The condition of each case: the spectrum of the centred training matrix (its null space
    is where lambda = 0 leaves rounding errors uncontracted) and, after the lambda = 0 run, how
    much larger the terms of the residual ``X w + b - y`` are than the residual itself (the
    factor by which cancellation inflates the relative error of the training loss)."""
    rows = ["| case | n x d | null space | cond(X_c) | train loss (lambda 0) | terms / residual |",
            "|---|---|---:|---:|---:|---:|"]
    for name, case in RUN_CASES.items():
        data = case.data()
        X, y = data.X_train, data.y_train
        Xc = X - X.mean(axis=0)
        sv = np.linalg.svd(Xc, compute_uv=False)
        sv = sv[sv > sv[0] * 1e-12]
        oracle = reference_run(name, 0.0)
        w, b = oracle.w, oracle.b
        terms = np.mean((np.abs(X) @ np.abs(w) + np.abs(b) + np.abs(y)) ** 2) / 2  # as a loss
        rows.append(f"| {name} | {X.shape[0]} x {X.shape[1]} | {X.shape[1] - len(sv)} | "
                    f"{sv[0] / sv[-1]:.1f} | {oracle.train_loss[-1]:.1e} | "
                    f"{np.sqrt(terms / oracle.train_loss[-1]):.0f} |")
    return rows


def main() -> None:
    print("Tolerances:", {k: v[0] for k, v in TOLERANCES.items()})
    for title, rows in (("One step (same inputs)", one_step_errors()),
                        ("Whole runs", run_errors()), ("Conditioning", conditioning())):
        print(f"\n{title}\n")
        print("\n".join(rows))


if __name__ == "__main__":
    main()
