"""The fused fast paths (``wd_torch.fused``, ``wd_jax.fused``) against the idiomatic step.

One step: float64 against ``wd_core.reference.sgd_step`` at rtol 1e-12, float32 against the
backend's own idiomatic step (``torch.optim.SGD`` / ``optax.chain``) at the one-step float32
tolerance; whole runs against the reference and against ``train(method="concise")``; every
block size, including one that does not divide the batch (a ragged last block).
"""

from __future__ import annotations

import importlib
import inspect

import numpy as np
import pytest

from parity_tests.cases import assert_computed_in
from parity_tests.conftest import require_backends
from wd_core import SyntheticData, reference
from wd_core.errors import InputTypeError
from wd_core.tolerances import assert_close

BLOCKS = [None, 1, 3, 64]  # whole batch, one row, ragged blocks, one block larger than n
LR, LAMBD = 0.05, 2.5


def fused_of(backend):
    return importlib.import_module(f"{backend.__name__}.fused")


def _batch(n, d, seed):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((d, 1)), rng.standard_normal(1), rng.standard_normal((n, d)),
            rng.standard_normal((n, 1)))


@pytest.mark.parametrize("block_rows", BLOCKS)
@pytest.mark.parametrize(("n", "d"), [(7, 5), (10, 300)])
def test_step_float64_matches_reference(backend, n, d, block_rows):
    w, b, X, y = _batch(n, d, seed=n + d)
    expected = reference.sgd_step(w, b, X, y, lr=LR, lambd=LAMBD)
    actual = fused_of(backend).fused_sgd_step(w, b, X, y, lr=LR, lambd=LAMBD, dtype="float64",
                                              block_rows=block_rows)
    for got, want in zip(actual, expected, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12 * np.max(np.abs(want)))


@pytest.mark.parametrize("block_rows", BLOCKS)
def test_step_float32_matches_idiomatic_step(backend, block_rows):
    """Against ``torch.optim.SGD``'s own step (wd_torch) and ``optax.chain``'s (wd_jax)."""
    w, b, X, y = _batch(10, 300, seed=1)
    expected = backend.sgd_step(w, b, X, y, method="concise", lr=LR, lambd=LAMBD)
    actual = fused_of(backend).fused_sgd_step(w, b, X, y, lr=LR, lambd=LAMBD,
                                              block_rows=block_rows)
    assert_computed_in("float32", *actual)
    for got, want in zip(actual, expected, strict=True):
        assert_close(got, want, "float32_step")


def test_step_on_framework_arrays_updates_and_returns_w_b(backend):
    """``fused_step`` on the framework's own arrays gives ``fused_sgd_step``'s numbers."""
    w, b, X, y = _batch(6, 4, seed=2)
    expected = reference.sgd_step(w, b, X, y, lr=LR, lambd=LAMBD)
    fused = fused_of(backend)
    if backend.__name__ == "wd_torch":
        import torch

        arrays = [torch.as_tensor(a) for a in (w, b, X, y)]
        got = fused.fused_step(*arrays, LAMBD, LR, block_rows=4)
        assert got[0] is arrays[0] and got[1] is arrays[1]  # in place
    else:
        import jax

        with jax.enable_x64(True):
            got = fused.fused_step(*(jax.numpy.asarray(a) for a in (w, b, X, y)), LAMBD, LR,
                                   block_rows=4)
            got = [np.asarray(a) for a in got]
    for actual, want in zip(got, expected, strict=True):
        assert_close(np.asarray(actual), want, "float64")


@pytest.fixture(params=[None, 1], ids=["whole-batch", "blocks-of-1-row"])
def block_rows(request, backend, monkeypatch):
    """The row blocks ``train(implementation="fused")`` chooses: the whole batch, or (every
    batch blocked, blocks of 1 byte: at least one row each) the single-read step row by row."""
    if request.param is not None:
        import wd_core.blocking

        monkeypatch.setattr(wd_core.blocking, "UNBLOCKED_BYTES", 0)
        monkeypatch.setattr(fused_of(backend), "BLOCK_BYTES", 1)
        assert fused_of(backend).auto_block_rows(5, 11, 8) == 1
    return request.param


@pytest.mark.parametrize("entry", ["train", "sweep"])
@pytest.mark.parametrize("method", ["scratch", "concise"])
def test_fused_float64_matches_reference(backend, block_rows, entry, method):
    data = SyntheticData(num_train=23, num_val=7, num_inputs=11, batch_size=5, seed=3)
    kwargs = {"method": method, "lr": 0.01, "max_epochs": 4, "dtype": "float64",
              "epoch_params": True, "implementation": "fused"}
    if entry == "train":
        histories = [backend.train(data, lambd=3.0, **kwargs)]
    else:
        histories = backend.sweep(data, lambdas=[3.0, 0.0], **kwargs)
    for history, lambd in zip(histories, (3.0, 0.0), strict=False):
        oracle = reference.train(data, lambd=lambd, lr=0.01, max_epochs=4, epoch_params=True)
        assert history.config["implementation"] == "fused"
        for name in ("w", "b", "train_loss", "val_loss", "epoch_w", "epoch_b"):
            assert_close(getattr(history, name), getattr(oracle, name), "float64", err_msg=name)


def test_fused_float32_matches_the_idiomatic_run(backend, chapter_data, block_rows):
    kwargs = {"method": "concise", "lambd": 3.0, "lr": 0.01, "max_epochs": 10,
              "epoch_params": True}
    expected = backend.train(chapter_data, **kwargs)
    history = backend.train(chapter_data, implementation="fused", **kwargs)
    assert expected.config["implementation"] == "idiomatic"
    assert_computed_in("float32", history.epoch_w, history.epoch_b, history.train_loss)
    for name in ("w", "b", "train_loss", "val_loss", "epoch_w"):
        assert_close(getattr(history, name), getattr(expected, name), "float32", err_msg=name)


@pytest.mark.parametrize("optimizer", [{"family": "sgd", "momentum": 0.9}, {"family": "adamw"},
                                       {"family": "sgdw"}])
def test_fused_refuses_what_it_does_not_compute(backend, optimizer):
    from wd_core.optimizers import OptimizerSpec

    data = SyntheticData(num_train=6, num_val=3, num_inputs=4, batch_size=3)
    with pytest.raises(ValueError, match="implementation='fused' runs plain SGD"):
        backend.train(data, method="concise", lambd=1.0, lr=0.1, max_epochs=1,
                      implementation="fused", optimizer=OptimizerSpec(**optimizer))
    with pytest.raises(ValueError, match="unknown implementation 'fast'"):
        backend.sweep(data, lambdas=[1.0], implementation="fast")
    plain = backend.train(data, method="concise", lambd=1.0, lr=0.1, max_epochs=2,
                          implementation="fused", optimizer=OptimizerSpec("sgd"))
    assert plain.config["implementation"] == "fused"


def test_auto_block_rows(backend):
    fused = fused_of(backend)
    auto = fused.auto_block_rows
    assert auto(5, 200, 4) is None  # the chapter: whole batch
    assert auto(1024, 65536, 4, "gpu") is None and auto(1024, 65536, 4, "cuda") is None
    k = fused.block_rows_for(1024, 65536, 4)
    assert 1 <= k < 1024 and k * 65536 * 4 <= fused.BLOCK_BYTES
    assert auto(1024, 65536, 4) == k


@pytest.mark.parametrize(("block_rows", "error"), [(0, ValueError), (2.5, InputTypeError),
                                                   ("4", InputTypeError)])
def test_bad_block_rows_name_the_value(backend, block_rows, error):
    w, b, X, y = _batch(4, 3, seed=0)
    with pytest.raises(error, match="block_rows"):
        fused_of(backend).fused_sgd_step(w, b, X, y, lr=0.1, lambd=1.0, block_rows=block_rows)


def test_fused_modules_mirror_each_other():
    torch_fused = pytest.importorskip("wd_torch.fused")
    jax_fused = pytest.importorskip("wd_jax.fused")
    names = ("block_rows_for", "auto_block_rows", "fused_step", "fused_sgd_step")
    for name in names:
        a, b = getattr(torch_fused, name), getattr(jax_fused, name)
        assert inspect.signature(a) == inspect.signature(b), name


@pytest.mark.parametrize("chunk", [2, 5], ids=["chunks-of-2", "one-chunk"])
@pytest.mark.parametrize("entry", ["train", "sweep"])
def test_full_batch_fused_runs_take_the_training_loss_from_the_next_step(backend, block_rows,
                                                                        entry, chunk,
                                                                        monkeypatch):
    """With one batch of every training row per epoch, the fused path reads the training loss
    after epoch e off the residual of epoch e + 1's step (and evaluates only a chunk's last
    epoch itself): the losses still equal the reference's, across chunk boundaries."""
    import wd_core.driver

    data = SyntheticData(num_train=9, num_val=4, num_inputs=6, batch_size=9, seed=6)
    lanes = 1 if entry == "train" else 2
    monkeypatch.setattr(wd_core.driver, "MIN_CHUNK_BATCHES", 0)
    monkeypatch.setattr(wd_core.driver, "CHUNK_WORK", chunk * (3 * 9 + 4) * 6 * lanes)
    assert wd_core.driver.chunk_epochs(data, 5, lanes) == chunk
    kwargs = {"method": "concise", "lr": 0.05, "max_epochs": 5, "dtype": "float64",
              "epoch_params": True, "implementation": "fused"}
    if entry == "train":
        histories = [backend.train(data, lambd=2.0, **kwargs)]
    else:
        histories = backend.sweep(data, lambdas=[2.0, 0.0], **kwargs)
    for history, lambd in zip(histories, (2.0, 0.0), strict=False):
        oracle = reference.train(data, lambd=lambd, lr=0.05, max_epochs=5, epoch_params=True)
        for name in ("train_loss", "val_loss", "epoch_w", "w", "b"):
            assert_close(getattr(history, name), getattr(oracle, name), "float64", err_msg=name)



def test_torch_s_fused_run_changes_no_thread_setting(monkeypatch):
    """The single-read step runs on torch's own intra-op threads: the caller's thread count
    and the default that a thread started afterwards takes are what they were, and no thread
    of the library's is left running."""
    import threading

    import wd_core.blocking

    (wd_torch,) = require_backends("torch")
    import torch

    monkeypatch.setattr(wd_core.blocking, "UNBLOCKED_BYTES", 0)  # every batch blocked
    monkeypatch.setattr(fused_of(wd_torch), "BLOCK_BYTES", 1)  # in blocks of one row
    before = torch.get_num_threads()
    data = SyntheticData(num_train=23, num_val=7, num_inputs=11, batch_size=5, seed=3)
    history = wd_torch.train(data, method="concise", lambd=LAMBD, lr=LR, max_epochs=3,
                             dtype="float64", implementation="fused")
    oracle = reference.train(data, lambd=LAMBD, lr=LR, max_epochs=3)
    assert_close(history.w, oracle.w, "float64")
    later = []
    thread = threading.Thread(target=lambda: later.append(torch.get_num_threads()))
    thread.start()
    thread.join()
    assert torch.get_num_threads() == before and later == [before]
    assert [t.name for t in threading.enumerate() if t.name.startswith("wd_torch")] == []
