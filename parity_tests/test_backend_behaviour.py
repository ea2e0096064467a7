"""Backend behaviour that is not a number: compilation cache, x64 scope, devices, errors."""

from __future__ import annotations

import numpy as np
import pytest

from wd_core import DeviceUnavailableError, SyntheticData, reference
from wd_core.errors import InputTypeError
from wd_core.tolerances import assert_close


def test_jax_second_call_does_not_recompile():
    import wd_jax
    from wd_jax.training import TRACE_COUNTS

    data = SyntheticData(num_train=12, num_val=5, num_inputs=7, batch_size=4, seed=1)
    first = TRACE_COUNTS["concise"]
    wd_jax.train(data, method="concise", lambd=1.0, lr=0.01, max_epochs=3)
    wd_jax.train(data, method="concise", lambd=1.0, lr=0.01, max_epochs=4)  # a new shape
    before = TRACE_COUNTS["concise"]
    assert before >= first + 1  # the counter counts (the 4-epoch run was new)
    wd_jax.train(data, method="concise", lambd=2.5, lr=0.02, max_epochs=3)
    wd_jax.train(SyntheticData(num_train=12, num_val=5, num_inputs=7, batch_size=4, seed=9),
                 method="concise", lambd=0.0, lr=0.03, max_epochs=3)
    assert TRACE_COUNTS["concise"] == before


def test_jax_float64_does_not_enable_x64_globally():
    import jax

    import wd_jax

    data = SyntheticData(num_train=6, num_val=3, num_inputs=4, batch_size=3)
    history = wd_jax.train(data, method="scratch", lambd=1.0, lr=0.1, max_epochs=2,
                           dtype="float64")
    assert history.config["dtype"] == "float64"
    assert not jax.config.jax_enable_x64
    assert jax.numpy.ones(1).dtype == np.float32


class Stop(Exception):
    """What a user's progress callable might raise to end a run early."""


def stop_at_one(epoch):
    if epoch == 1:
        raise Stop(f"stopped at epoch {epoch}")


@pytest.mark.parametrize("entry", ["train", "sweep"])
def test_progress_must_be_callable_and_its_exception_reaches_the_caller(backend, entry):
    data = SyntheticData(num_train=6, num_val=3, num_inputs=4, batch_size=3)
    run = getattr(backend, entry)
    kwargs = {"lambd": 1.0} if entry == "train" else {"lambdas": [0.0, 1.0]}
    kwargs.update(method="concise", lr=0.1, max_epochs=3)
    with pytest.raises(InputTypeError, match="progress must be None or a callable"):
        run(data, progress="bar", **kwargs)
    with pytest.raises(Stop, match="stopped at epoch 1"):
        run(data, progress=stop_at_one, **kwargs)


def test_concurrent_jax_runs_report_to_their_own_progress():
    import threading

    import wd_jax

    data = SyntheticData(num_train=6, num_val=3, num_inputs=4, batch_size=3)
    seen = {0: [], 1: []}

    def run(i):
        wd_jax.train(data, method="concise", lambd=1.0, lr=0.1, max_epochs=500 + i,
                     progress=seen[i].append)

    threads = [threading.Thread(target=run, args=(i,)) for i in seen]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert seen[0] == list(range(500)) and seen[1] == list(range(501))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_history_arrays_are_writable_float64_copies(backend, dtype):
    data = SyntheticData(num_train=6, num_val=3, num_inputs=4, batch_size=3)
    history = backend.train(data, method="concise", lambd=1.0, lr=0.1, max_epochs=2,
                            dtype=dtype, epoch_params=True)
    for name in ("w", "b", "train_loss", "val_loss", "epoch_w", "epoch_b"):
        array = getattr(history, name)
        assert array.dtype == np.float64 and array.flags.writeable and array.flags.owndata
    history.w *= 2  # a user's own copy


def test_torch_models_draw_no_random_numbers():
    import torch

    import wd_torch

    data = SyntheticData(num_train=6, num_val=3, num_inputs=4, batch_size=3)
    torch.manual_seed(0)
    expected = torch.rand(3)
    for method in ("scratch", "concise"):
        torch.manual_seed(0)
        wd_torch.train(data, method=method, lambd=1.0, lr=0.1, max_epochs=2)
        assert torch.equal(torch.rand(3), expected), method


def test_progress_called_once_per_epoch(backend):
    data = SyntheticData(num_train=6, num_val=3, num_inputs=4, batch_size=3)
    seen = []
    backend.train(data, method="concise", lambd=1.0, lr=0.1, max_epochs=4, progress=seen.append)
    assert seen == [0, 1, 2, 3]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"method": "sgd"}, "unknown method 'sgd'"),
        ({"dtype": "float16"}, "unknown dtype 'float16'"),
        ({"device": "tpu"}, "unknown device 'tpu'"),
        ({"lr": -0.1}, "lr must be a finite number >= 0, got -0.1"),
        ({"lambd": float("nan")}, "lambd must be a finite number >= 0, got nan"),
        ({"lambd": float("inf")}, "lambd must be a finite number >= 0, got inf"),
        ({"max_epochs": 0}, "max_epochs must be a positive integer"),
        ({"init": (np.zeros((3, 1)), np.zeros(1))}, "accepted: w(200, 1), b(1,)"),
        ({"init": (np.zeros((200, 1), complex), np.zeros(1))},
         "init w has dtype complex128; accepted: real numbers"),
        ({"dtype": np.dtype("float32")}, "unknown dtype dtype('float32')"),
    ],
)
def test_bad_arguments_name_the_value(backend, chapter_data, kwargs, message):
    arguments = {"method": "concise", "lambd": 3.0, "lr": 0.01, "max_epochs": 1, **kwargs}
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        backend.train(chapter_data, **arguments)


def _has_gpu(backend) -> bool:
    if backend.__name__ == "wd_torch":
        import torch

        return torch.cuda.is_available()
    import jax

    try:
        return bool(jax.devices("gpu"))
    except RuntimeError:
        return False


def test_cuda_without_gpu_is_a_clear_error(backend, chapter_data):
    if _has_gpu(backend):
        pytest.skip("this machine has a GPU; the error path needs one without")
    with pytest.raises(DeviceUnavailableError, match="'cuda' was asked for"):
        backend.train(chapter_data, method="concise", lambd=3.0, lr=0.01, max_epochs=1,
                      device="cuda")


def skip_without_gpu(backend) -> None:
    if not _has_gpu(backend):
        pytest.skip(f"no CUDA GPU visible to {backend.__name__} (CPU-only build or no device); "
                    f"these tests run on a machine with an NVIDIA GPU and CUDA builds installed")


def _no_tf32(backend) -> None:
    # JAX: wd_jax runs inside jax.default_matmul_precision("highest"). torch: its CUDA matmuls
    # are full float32 unless a user allows TF32; a TF32 run would miss rtol 1e-5 by ~100x.
    if backend.__name__ == "wd_torch":
        import torch

        assert not torch.backends.cuda.matmul.allow_tf32, "TF32 matmuls are enabled in torch"


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("method", ["scratch", "concise"])
def test_cuda_matches_cpu(backend, chapter_data, method, dtype):
    """The chapter's run on the GPU equals the CPU run and the float64 reference."""
    skip_without_gpu(backend)
    _no_tf32(backend)
    from wd_core.tolerances import assert_close

    kwargs = {"method": method, "lambd": 3.0, "lr": 0.01, "max_epochs": 10, "dtype": dtype}
    on_cpu = backend.train(chapter_data, device="cpu", epoch_params=True, **kwargs)
    on_gpu = backend.train(chapter_data, device="cuda", epoch_params=True, **kwargs)
    oracle = reference.train(chapter_data, lambd=3.0, lr=0.01, max_epochs=10, epoch_params=True)
    for field in ("epoch_w", "epoch_b", "train_loss", "val_loss"):
        assert_close(getattr(on_gpu, field), getattr(on_cpu, field), dtype,
                     err_msg=f"{field}: GPU vs CPU")
        assert_close(getattr(on_gpu, field), getattr(oracle, field), dtype,
                     err_msg=f"{field}: GPU vs reference")
    assert on_gpu.config["device"] == "cuda"


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("method", ["scratch", "concise"])
def test_cuda_step_matches_reference(backend, method, dtype):
    """One GPU step, from float32-rounded inputs, equals the update rule in float64."""
    skip_without_gpu(backend)
    _no_tf32(backend)
    from parity_tests.cases import as_dtype, random_step_inputs, step_scale
    from wd_core.tolerances import assert_close

    w, b, X, y = as_dtype(dtype, *random_step_inputs(np.random.default_rng(5), 64, 256))
    kind = "float32_step" if dtype == "float32" else "float64"
    got = backend.sgd_step(w, b, X, y, method=method, lambd=3.0, lr=0.01, dtype=dtype,
                           device="cuda")
    expected = reference.sgd_step(w, b, X, y, lr=0.01, lambd=3.0)
    scales = step_scale(w, b, X, y, lr=0.01, lambd=3.0)
    for actual, want, scale in zip(got, expected, scales, strict=True):
        assert_close(actual, want, kind, scale=scale)


def test_a_float64_jax_model_outside_x64_is_an_error_not_float32():
    import wd_jax
    from wd_jax.device import numerics

    with pytest.raises(ValueError, match="needs JAX's x64 mode"):
        wd_jax.WeightDecay(3, lambd=1.0, lr=0.1, dtype="float64")
    with numerics("float64"):
        params = wd_jax.WeightDecay(3, lambd=1.0, lr=0.1, dtype="float64").set_w_b(
            np.zeros((3, 1)), np.zeros(1))
        assert params["w"].dtype == np.float64


@pytest.mark.parametrize("entry", ["train", "sweep"])
def test_a_raising_progress_stops_the_run_after_the_current_chunk(backend, entry, monkeypatch):
    """Each backend feeds wd_core.driver: with chunks of 2 epochs, a progress that raises at
    epoch 0 of a 400-epoch run leaves after the first chunk (no later chunk is run)."""
    import importlib

    import wd_core.driver

    chunks = []
    real_drive = wd_core.driver.drive

    def counting_drive(run_epochs, state, **kwargs):
        def counted(state, first, count):
            chunks.append((first, count))
            return run_epochs(state, first, count)

        return real_drive(counted, state, **kwargs)

    data = SyntheticData(num_train=6, num_val=3, num_inputs=4, batch_size=3)
    per_epoch_work = (3 * 6 + 3) * 4 * (2 if entry == "sweep" else 1)
    monkeypatch.setattr(wd_core.driver, "CHUNK_WORK", 2 * per_epoch_work)
    monkeypatch.setattr(wd_core.driver, "MIN_CHUNK_BATCHES", 1)
    for name in ("training", "sweeping"):  # wherever the backend calls the driver from
        module = importlib.import_module(f"{backend.__name__}.{name}")
        if hasattr(module, "drive"):
            monkeypatch.setattr(module, "drive", counting_drive)
    kwargs = {"lambd": 1.0} if entry == "train" else {"lambdas": [0.0, 1.0]}

    def stop_at_once(epoch):
        raise Stop(f"stopped at epoch {epoch}")

    with pytest.raises(Stop, match="stopped at epoch 0"):
        getattr(backend, entry)(data, method="concise", lr=0.1, max_epochs=400,
                                progress=stop_at_once, **kwargs)
    assert chunks == [(0, 2)]


@pytest.mark.parametrize("entry", ["train", "sweep"])
def test_per_epoch_parameters_only_when_asked(backend, entry):
    """By default a run keeps its losses for every epoch and only its final parameters (memory
    does not grow with epochs x d); epoch_params=True keeps them all. Both give the same
    final parameters as the float64 reference."""
    data = SyntheticData(num_train=7, num_val=3, num_inputs=4, batch_size=3, seed=2)
    kwargs = {"method": "concise", "lr": 0.1, "max_epochs": 5, "dtype": "float64"}
    oracle = reference.train(data, lambd=1.0, lr=0.1, max_epochs=5, epoch_params=True)

    def run(**more):
        if entry == "train":
            return backend.train(data, lambd=1.0, **kwargs, **more)
        return backend.sweep(data, lambdas=[1.0], **kwargs, **more)[0]

    lean, full = run(), run(epoch_params=True)
    assert lean.epoch_w is None and lean.epoch_b is None
    assert full.epoch_w.shape == (5, 4, 1) and full.epoch_b.shape == (5, 1)
    assert_close(full.epoch_w, oracle.epoch_w, "float64")
    for history in (lean, full):
        assert_close(history.w, oracle.w, "float64")
        assert_close(history.b, oracle.b, "float64")
        assert_close(history.val_loss, oracle.val_loss, "float64")
