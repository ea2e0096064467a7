"""The limit: long full-batch float64 runs converge to the ridge closed form.

Full-batch SGD with decay is gradient descent on ``mean((Xw + b - y)**2) / 2 + lambd*||w||**2/2``,
a quadratic with Hessian ``H = [[X^T X / n + lambd I, mean(X)^T], [mean(X), 1]]``; with
``0 < lr < 2 / max eig(H)`` the error shrinks by ``max |1 - lr * eig(H)|`` per step, so the run
lengths below reach 1e-9 (computed from the spectrum in :func:`test_run_lengths_suffice`) and
the final parameters must equal ``reference.ridge`` within rtol 1e-8. ``reference.ridge`` itself
is checked against ``numpy.linalg.lstsq`` on the augmented system
``[[X, 1], [sqrt(n lambd) I, 0]] [w; b] = [y; 0]``, a different algorithm (no centring, no
primal/dual switch).
"""

from __future__ import annotations

import numpy as np
import pytest

from parity_tests.cases import LAMBDAS, METHODS, RUN_CASES
from wd_core import SyntheticData, reference

LIMIT_RTOL = 1e-8

# (num_train, num_inputs, seed, lambd, lr, epochs): d above n (the chapter's shape), d = 2.5 n,
# d below n without decay (ordinary least squares) and with it.
LIMIT_CASES = {
    "chapter-lambd3": (20, 200, 0, 3.0, 0.1, 900),
    "d50-lambd1": (20, 50, 5, 1.0, 0.2, 500),
    "d10-lambd0": (60, 10, 5, 0.0, 0.5, 300),
    "d10-lambd1": (60, 10, 5, 1.0, 0.5, 300),
}


def limit_data(num_train, num_inputs, seed) -> SyntheticData:
    return SyntheticData(num_train=num_train, num_val=10, num_inputs=num_inputs,
                         batch_size=num_train, seed=seed)


def contraction(X, lambd, lr) -> float:
    """``max |1 - lr * eig(H)|`` of gradient descent on the penalised loss in ``(w, b)``."""
    n, d = X.shape
    A = np.hstack([X, np.ones((n, 1))])
    H = A.T @ A / n
    H[:d, :d] += lambd * np.eye(d)
    eig = np.linalg.eigvalsh(H)
    return float(np.max(np.abs(1 - lr * eig)))


@pytest.mark.parametrize("name", LIMIT_CASES)
def test_run_lengths_suffice(name):
    num_train, num_inputs, seed, lambd, lr, epochs = LIMIT_CASES[name]
    data = limit_data(num_train, num_inputs, seed)
    assert contraction(data.X_train, lambd, lr) ** epochs < LIMIT_RTOL / 10


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("name", LIMIT_CASES)
def test_long_full_batch_run_converges_to_ridge(backend, name, method):
    num_train, num_inputs, seed, lambd, lr, epochs = LIMIT_CASES[name]
    data = limit_data(num_train, num_inputs, seed)
    history = backend.train(data, method=method, lambd=lambd, lr=lr, max_epochs=epochs,
                            dtype="float64")
    w, b = reference.ridge(data.X_train, data.y_train, lambd)
    np.testing.assert_allclose(history.w, w, rtol=LIMIT_RTOL, atol=LIMIT_RTOL * np.abs(w).max())
    np.testing.assert_allclose(history.b, b, rtol=LIMIT_RTOL)


def augmented_lstsq(X, y, lambd):
    """``argmin ||X w + b - y||**2 + n lambd ||w||**2`` by lstsq on the stacked system."""
    n, d = X.shape
    A = np.block([[X, np.ones((n, 1))], [np.sqrt(n * lambd) * np.eye(d), np.zeros((d, 1))]])
    solution = np.linalg.lstsq(A, np.vstack([y, np.zeros((d, 1))]), rcond=None)[0]
    return solution[:d], solution[d]


# lambd = 0 with d >= n has no unique minimiser (ridge gives the minimum-norm w, lstsq the
# minimum-norm (w, b)); those pairs are left out.
UNIQUE_MINIMISER = [
    (case, lambd) for case, c in RUN_CASES.items() for lambd in LAMBDAS
    if lambd > 0 or c.num_inputs < c.num_train
]


@pytest.mark.parametrize(("case", "lambd"), UNIQUE_MINIMISER)
def test_ridge_matches_augmented_lstsq(case, lambd):
    data = RUN_CASES[case].data()
    X, y = data.X_train, data.y_train
    w, b = reference.ridge(X, y, lambd)
    w_ls, b_ls = augmented_lstsq(X, y, lambd)
    np.testing.assert_allclose(w, w_ls, rtol=1e-9, atol=1e-9 * np.abs(w_ls).max())
    np.testing.assert_allclose(b, b_ls, rtol=1e-9)
