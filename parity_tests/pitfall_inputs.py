"""Inputs and framework handles shared by the pitfall tests (``test_pitfalls_*.py``).

Each pitfall test builds the book's wrong version inside the test, runs one float64 step on
:data:`W, B, X, Y` with :data:`LR`, :data:`LAMBD`, and asserts (a) that it differs from the
float64 reference by more than :data:`GAP` (ten times the float32 whole-run tolerance, so the
mistake would be caught in any dtype), usually by exactly the predicted amount, and (b) that
the project's own path agrees with the reference.
"""

from __future__ import annotations

import importlib

import numpy as np

from parity_tests.cases import random_step_inputs
from parity_tests.conftest import require_backends
from wd_core import reference
from wd_core.tolerances import TOLERANCES, required_rtol

W, B, X, Y = random_step_inputs(np.random.default_rng(11), 6, 10)
B = np.array([0.8])  # a bias far from zero, so that decaying it shows
for _array in (W, B, X, Y):
    _array.setflags(write=False)  # an optimizer stepping in place must not change the inputs
LR, LAMBD = 0.1, 3.0
GAP = 10 * TOLERANCES["float32"][0]


def oracle_step(lambd: float = LAMBD, lr: float = LR):
    """``reference.sgd_step`` on the shared inputs: ``(w', b')`` float64."""
    return reference.sgd_step(W, B, X, Y, lr=lr, lambd=lambd)


def error(actual, expected) -> float:
    """How far ``actual`` is from ``expected`` in the tolerance table's units (rtol)."""
    return required_rtol(actual, expected)


def jax_modules():
    """``(jax, jax.numpy, optax)``; skips the test unless ``WD_BACKENDS`` names jax."""
    require_backends("jax")
    return (importlib.import_module(m) for m in ("jax", "jax.numpy", "optax"))


def torch_modules():
    """``(torch, torch.nn)``; skips the test unless ``WD_BACKENDS`` names torch."""
    require_backends("torch")
    return (importlib.import_module(m) for m in ("torch", "torch.nn"))


def torch_tensor(array, requires_grad: bool = False):
    """A float64 torch copy of ``array`` (never a view: optimizers update in place)."""
    torch, _ = torch_modules()
    return torch.tensor(np.array(array), dtype=torch.float64, requires_grad=requires_grad)


def optax_step(tx, loss, params: dict, X=X, Y=Y) -> dict:
    """One float64 step of the optax transformation ``tx`` on ``loss(params, X, y)``."""
    jax, jnp, optax = jax_modules()
    with jax.enable_x64(True):
        params = {k: jnp.asarray(v, dtype=jnp.float64) for k, v in params.items()}
        grads = jax.grad(loss)(params, jnp.asarray(X), jnp.asarray(Y))
        updates, _ = tx.update(grads, tx.init(params), params)
        return {k: np.asarray(v) for k, v in optax.apply_updates(params, updates).items()}


def jax_squared_loss(params, X, y):
    """``mean((X w + b - y)**2) / 2`` (the book's ``l2_loss`` mean), for :func:`optax_step`."""
    return ((X @ params["w"] + params["b"] - y) ** 2).mean() / 2
