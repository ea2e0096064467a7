"""sweep: each lambda's History equals the single run with that lambda (and the reference).

The oracle of a sweep entry is ``train(..., lambd=l, ...)`` of the same backend (float32
whole-run tolerance; the matmuls are batched over lambda, so rounding may differ) and, in
float64, the float64 reference at 1e-12.
"""

from __future__ import annotations

import numpy as np
import pytest

from parity_tests.cases import assert_computed_in
from parity_tests.conftest import require_backends
from wd_core import SyntheticData, reference
from wd_core.errors import InputTypeError
from wd_core.tolerances import assert_close

FIELDS = ("epoch_w", "epoch_b", "train_loss", "val_loss", "w", "b")
#: lambda 0 first (the shared start must not leak decay), the chapter's 3, uneven values.
LAMBDAS = (0.0, 0.37, 3.0, 10.0)
RAGGED = SyntheticData(num_train=11, num_val=6, num_inputs=9, batch_size=4, seed=5)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("method", ["scratch", "concise"])
def test_sweep_equals_single_runs(backend, chapter_data, method, dtype):
    histories = backend.sweep(chapter_data, lambdas=list(LAMBDAS), method=method, lr=0.01,
                              max_epochs=10, dtype=dtype, epoch_params=True)
    assert len(histories) == len(LAMBDAS)
    for lambd, history in zip(LAMBDAS, histories, strict=True):
        single = backend.train(chapter_data, method=method, lambd=lambd, lr=0.01, max_epochs=10,
                               dtype=dtype, epoch_params=True)
        assert history.config == single.config
        assert not history.diverged
        assert_computed_in(dtype, *(getattr(history, field) for field in FIELDS))
        for field in FIELDS:
            assert_close(getattr(history, field), getattr(single, field), dtype,
                         f"{field}, lambd={lambd}")


@pytest.mark.parametrize("method", ["scratch", "concise"])
def test_float64_sweep_matches_the_reference_with_a_ragged_batch(backend, method):
    lambdas = [2.0, 0.0, 0.5]  # unsorted: the order of the result is the order given
    histories = backend.sweep(RAGGED, lambdas=lambdas, method=method, lr=0.05, max_epochs=4,
                              dtype="float64", epoch_params=True)
    for lambd, history in zip(lambdas, histories, strict=True):
        oracle = reference.train(RAGGED, lambd=lambd, lr=0.05, max_epochs=4, epoch_params=True)
        assert history.config["lambd"] == lambd
        for field in FIELDS:
            assert_close(getattr(history, field), getattr(oracle, field), "float64", field)


def test_explicit_init_is_shared_by_every_lambda(backend):
    rng = np.random.default_rng(7)
    init = (rng.standard_normal((9, 1)), np.array([0.3]))
    (history,) = backend.sweep(RAGGED, lambdas=[1.5], lr=0.05, max_epochs=2, init=init,
                               dtype="float64", epoch_params=True)
    oracle = reference.train(RAGGED, lambd=1.5, lr=0.05, max_epochs=2, init=init, epoch_params=True)
    assert_close(history.epoch_w, oracle.epoch_w, "float64")


def test_a_diverging_lambda_is_marked_and_leaves_the_others_alone(backend, chapter_data):
    # lr * lambd = 100 > 2: the decay factor 1 - lr*lambd = -99 makes that column blow up.
    lambdas = [0.0, 1000.0, 3.0]
    histories = backend.sweep(chapter_data, lambdas=lambdas, lr=0.1, max_epochs=40,
                              method="concise", dtype="float64", epoch_params=True)
    for lambd, history in zip(lambdas, histories, strict=True):
        oracle = reference.train(chapter_data, lambd=lambd, lr=0.1, max_epochs=40,
                                 epoch_params=True)
        assert history.diverged == oracle.diverged
        assert history.diverged_epoch == oracle.diverged_epoch
        if not oracle.diverged:
            assert_close(history.val_loss, oracle.val_loss, "float64")
    assert histories[1].diverged and not histories[0].diverged and not histories[2].diverged


def test_both_backends_sweep_alike(chapter_data):
    wd_torch, wd_jax = require_backends("torch", "jax")
    lambdas = [0.0, 0.1, 1.0, 3.0]
    by_torch = wd_torch.sweep(chapter_data, lambdas=lambdas, epoch_params=True)
    by_jax = wd_jax.sweep(chapter_data, lambdas=lambdas, epoch_params=True)
    for a, b in zip(by_torch, by_jax, strict=True):
        for field in FIELDS:
            assert_close(getattr(a, field), getattr(b, field), "float32", field)


@pytest.mark.parametrize(
    ("lambdas", "error", "message"),
    [
        ([], ValueError, "lambdas is empty"),
        ([1.0, -0.5], ValueError, r"lambdas\[1\] = -0.5 is not a finite number >= 0"),
        ([float("nan")], ValueError, r"lambdas\[0\] = nan is not a finite number >= 0"),
        ([0.0, float("inf")], ValueError, r"lambdas\[1\] = inf is not a finite number >= 0"),
        (["1"], InputTypeError, r"lambdas\[0\] = '1' is not a number"),
        ("0,1", InputTypeError, "lambdas must be a sequence of numbers"),
        (3.0, InputTypeError, "lambdas must be a sequence of numbers"),
    ],
)
def test_bad_lambdas_name_the_value(backend, chapter_data, lambdas, error, message):
    with pytest.raises(error, match=message):
        backend.sweep(chapter_data, lambdas=lambdas, epoch_params=True)


def test_other_bad_arguments_are_checked_like_train(backend, chapter_data):
    with pytest.raises(ValueError, match="unknown method 'adam'"):
        backend.sweep(chapter_data, lambdas=[1.0], method="adam", epoch_params=True)
    with pytest.raises(ValueError, match="unknown dtype 'float16'"):
        backend.sweep(chapter_data, lambdas=[1.0], dtype="float16", epoch_params=True)
    with pytest.raises(ValueError, match="max_epochs must be a positive integer"):
        backend.sweep(chapter_data, lambdas=[1.0], max_epochs=0, epoch_params=True)


def test_progress_is_called_once_per_epoch_for_the_whole_sweep(backend):
    seen = []
    backend.sweep(RAGGED, lambdas=[0.0, 1.0, 2.0], max_epochs=3, progress=seen.append,
                  epoch_params=True)
    assert seen == [0, 1, 2]


def test_jax_concise_sweep_decays_through_optax_add_decayed_weights(monkeypatch):
    """Doubling the rate inside ``optax.add_decayed_weights`` must double every lambda: the
    sweep's decay is optax's transform (vmapped over lambda), not a hand-written term."""
    import optax

    (wd_jax,) = require_backends("jax")
    real = optax.add_decayed_weights
    monkeypatch.setattr(optax, "add_decayed_weights",
                        lambda weight_decay, mask=None: real(2 * weight_decay, mask))
    from wd_jax.training import run_chunk, start_state

    data = SyntheticData(num_train=5, num_val=3, num_inputs=3, batch_size=5, seed=8)
    lambdas = [0.0, 0.5, 2.0]
    for compiled in (run_chunk, start_state):
        compiled.clear_cache()  # trace anew with the patched transform...
    try:
        histories = wd_jax.sweep(data, lambdas=lambdas, lr=0.1, max_epochs=3, dtype="float64",
                                 epoch_params=True)
    finally:
        for compiled in (run_chunk, start_state):
            compiled.clear_cache()  # ...and leave no program that holds it
    for lambd, history in zip(lambdas, histories, strict=True):
        doubled = reference.train(data, lambd=2 * lambd, lr=0.1, max_epochs=3, epoch_params=True)
        assert_close(history.epoch_w, doubled.epoch_w, "float64", f"lambd={lambd}")
