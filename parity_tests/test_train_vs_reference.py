"""Whole runs: each backend's ``train()`` against ``reference.train()``, and torch against jax.

Every case of :data:`parity_tests.cases.RUN_CASES` (the chapter's 20 x 200, a ragged last
batch, ``batch_size=1``, full batch, d = 8 n; five seeds) x both methods x lambda in
{0, 3, two drawn values} x float32 and float64. The parameters after every epoch and both loss
curves are compared, not only the final ``w``.
"""

from __future__ import annotations

import numpy as np
import pytest

from parity_tests.cases import DTYPES, LAMBDAS, METHODS, RUN_CASES, assert_computed_in
from parity_tests.conftest import require_backends
from parity_tests.runs import backend_run, reference_run
from wd_core import reference
from wd_core.tolerances import assert_close

FIELDS = ("epoch_w", "epoch_b", "train_loss", "val_loss", "w", "b")

run_grid = pytest.mark.parametrize(
    ("case", "lambd"), [(c, lam) for c in RUN_CASES for lam in LAMBDAS],
    ids=[f"{c}-lambd{lam:g}" for c in RUN_CASES for lam in LAMBDAS],
)


def backend_name(module) -> str:
    return module.__name__.removeprefix("wd_")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("method", METHODS)
@run_grid
def test_run_matches_reference(backend, case, lambd, method, dtype):
    history = backend_run(backend_name(backend), case, method, lambd, dtype)
    oracle = reference_run(case, lambd)
    assert not history.diverged and len(history.train_loss) == RUN_CASES[case].max_epochs
    assert_computed_in(dtype, *(getattr(history, field) for field in FIELDS))
    for field in FIELDS:
        assert_close(getattr(history, field), getattr(oracle, field), dtype,
                     err_msg=f"{field} of {backend.__name__} {method} {case} lambd={lambd}")
    assert history.config["backend"] == backend_name(backend)
    assert (history.config["method"], history.config["dtype"]) == (method, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("method", METHODS)
@run_grid
def test_torch_matches_jax(case, lambd, method, dtype):
    require_backends("torch", "jax")
    by_torch = backend_run("torch", case, method, lambd, dtype)
    by_jax = backend_run("jax", case, method, lambd, dtype)
    for field in FIELDS:
        assert_close(getattr(by_torch, field), getattr(by_jax, field), dtype,
                     err_msg=f"{field}: torch vs jax, {method} {case} lambd={lambd}")


def test_explicit_init_is_used(backend, chapter_data):
    w0 = np.linspace(-0.1, 0.1, chapter_data.num_inputs).reshape(-1, 1)
    b0 = np.array([0.3])
    oracle = reference.train(chapter_data, lambd=3.0, lr=0.01, max_epochs=2, init=(w0, b0),
                             epoch_params=True)
    history = backend.train(chapter_data, method="concise", lambd=3.0, lr=0.01, max_epochs=2,
                            init=(w0, b0), dtype="float64", epoch_params=True)
    assert_close(history.epoch_w, oracle.epoch_w, "float64")
    assert_close(history.epoch_b, oracle.epoch_b, "float64")


@pytest.mark.parametrize("method", METHODS)
def test_divergence_is_marked_like_the_reference(backend, chapter_data, method):
    # lr=10 grows w by ~x30 per epoch: float64 overflows at epoch 20 (float32 at epoch 2).
    oracle = reference.train(chapter_data, lambd=0.0, lr=10.0, max_epochs=30, epoch_params=True)
    history = backend.train(chapter_data, method=method, lambd=0.0, lr=10.0, max_epochs=30,
                            dtype="float64", epoch_params=True)
    assert oracle.diverged and oracle.diverged_epoch == 20
    assert history.diverged and history.diverged_epoch == oracle.diverged_epoch
    assert len(history.train_loss) == len(history.epoch_w) == oracle.diverged_epoch + 1
    assert_close(history.epoch_w[:5], oracle.epoch_w[:5], "float64")


def test_float32_divergence_is_marked_identically_in_both_backends(chapter_data):
    wd_torch, wd_jax = require_backends("torch", "jax")
    kwargs = {"method": "concise", "lambd": 0.0, "lr": 10.0, "max_epochs": 10,
              "epoch_params": True}
    by_torch, by_jax = wd_torch.train(chapter_data, **kwargs), wd_jax.train(chapter_data, **kwargs)
    assert by_torch.diverged and by_jax.diverged
    assert by_torch.diverged_epoch == by_jax.diverged_epoch == 2


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize(("dtype", "lr", "diverged_epoch"), [("float32", 10.0, 2),
                                                              ("float64", 10.0, 20)])
def test_a_diverged_run_stops_at_the_divergent_epoch(backend, chapter_data, method, dtype, lr,
                                                      diverged_epoch):
    """No epoch after the divergent one is trained (torch leaves its loop, JAX skips the
    later epochs inside its scan), so none is reported to ``progress``; the reference
    (float64) diverges in the same epoch."""
    epochs_seen = []
    history = backend.train(chapter_data, method=method, lambd=0.0, lr=lr, max_epochs=30,
                            dtype=dtype, progress=epochs_seen.append, epoch_params=True)
    assert history.diverged and history.diverged_epoch == diverged_epoch
    assert epochs_seen == list(range(diverged_epoch + 1))
    if dtype == "float64":
        oracle = reference.train(chapter_data, lambd=0.0, lr=lr, max_epochs=30, epoch_params=True)
        assert oracle.diverged_epoch == diverged_epoch
