"""Each backend's train() against the float64 reference, for both methods and lambda 0, 3."""

from __future__ import annotations

import pytest

from wd_core import SyntheticData, reference
from wd_core.tolerances import assert_close

FIELDS = ("epoch_w", "epoch_b", "train_loss", "val_loss", "w", "b")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("lambd", [0.0, 3.0])
@pytest.mark.parametrize("method", ["scratch", "concise"])
def test_train_matches_reference(backend, chapter_data, method, lambd, dtype):
    oracle = reference.train(chapter_data, lambd=lambd, lr=0.01, max_epochs=10)
    history = backend.train(chapter_data, method=method, lambd=lambd, lr=0.01, max_epochs=10,
                            dtype=dtype)
    for field in FIELDS:
        assert_close(getattr(history, field), getattr(oracle, field), dtype,
                     err_msg=f"{field} of {backend.__name__} {method} lambd={lambd} {dtype}")
    assert history.l2_penalty == pytest.approx(oracle.l2_penalty, rel=1e-5)
    assert history.config["backend"] == backend.__name__.removeprefix("wd_")
    assert history.config["dtype"] == dtype


@pytest.mark.parametrize("method", ["scratch", "concise"])
def test_ragged_last_batch_matches_reference(backend, method):
    data = SyntheticData(num_train=23, num_val=7, num_inputs=9, batch_size=5, seed=4)
    oracle = reference.train(data, lambd=1.5, lr=0.05, max_epochs=6)
    history = backend.train(data, method=method, lambd=1.5, lr=0.05, max_epochs=6,
                            dtype="float64")
    assert_close(history.epoch_w, oracle.epoch_w, "float64")
    assert_close(history.epoch_b, oracle.epoch_b, "float64")


def test_explicit_init_is_used(backend, chapter_data):
    import numpy as np

    w0 = np.linspace(-0.1, 0.1, chapter_data.num_inputs).reshape(-1, 1)
    b0 = np.array([0.3])
    oracle = reference.train(chapter_data, lambd=3.0, lr=0.01, max_epochs=2, init=(w0, b0))
    history = backend.train(chapter_data, method="concise", lambd=3.0, lr=0.01, max_epochs=2,
                            init=(w0, b0), dtype="float64")
    assert_close(history.w, oracle.w, "float64")
    assert_close(history.b, oracle.b, "float64")


@pytest.mark.parametrize("method", ["scratch", "concise"])
def test_divergence_is_marked_like_the_reference(backend, chapter_data, method):
    # lr=10 grows w by ~x30 per epoch: float64 overflows at epoch 20 (float32 at epoch 2).
    oracle = reference.train(chapter_data, lambd=0.0, lr=10.0, max_epochs=30)
    history = backend.train(chapter_data, method=method, lambd=0.0, lr=10.0, max_epochs=30,
                            dtype="float64")
    assert oracle.diverged and oracle.diverged_epoch == 20
    assert history.diverged and history.diverged_epoch == oracle.diverged_epoch
    assert len(history.train_loss) == len(history.epoch_w) == oracle.diverged_epoch + 1
    assert_close(history.epoch_w[:5], oracle.epoch_w[:5], "float64")


def test_float32_divergence_is_marked_identically_in_both_backends(chapter_data):
    import wd_jax
    import wd_torch

    kwargs = {"method": "concise", "lambd": 0.0, "lr": 10.0, "max_epochs": 10}
    by_torch, by_jax = wd_torch.train(chapter_data, **kwargs), wd_jax.train(chapter_data, **kwargs)
    assert by_torch.diverged and by_jax.diverged
    assert by_torch.diverged_epoch == by_jax.diverged_epoch == 2
