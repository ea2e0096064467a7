"""Backend behaviour that is not a number: compilation cache, x64 scope, devices, errors."""

from __future__ import annotations

import numpy as np
import pytest

from wd_core import DeviceUnavailableError, SyntheticData, reference


def test_l2_penalty_matches_reference(backend):
    w = np.linspace(-1, 2, 12).reshape(-1, 1)
    if backend.__name__ == "wd_torch":
        import torch

        value = float(backend.l2_penalty(torch.as_tensor(w)))
    else:
        import jax

        with jax.enable_x64(True):
            value = float(backend.l2_penalty(jax.numpy.asarray(w)))
    assert value == pytest.approx(reference.l2_penalty(w), rel=1e-15)


def test_jax_second_call_does_not_recompile():
    import wd_jax
    from wd_jax.training import TRACE_COUNTS

    data = SyntheticData(num_train=12, num_val=5, num_inputs=7, batch_size=4, seed=1)
    wd_jax.train(data, method="concise", lambd=1.0, lr=0.01, max_epochs=3)
    before = TRACE_COUNTS["concise"]
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


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("method", ["scratch", "concise"])
def test_cuda_matches_cpu(backend, chapter_data, method, dtype):
    if not _has_gpu(backend):
        pytest.skip(f"no CUDA GPU visible to {backend.__name__}")
    kwargs = {"method": method, "lambd": 3.0, "lr": 0.01, "max_epochs": 10, "dtype": dtype}
    from wd_core.tolerances import assert_close

    on_cpu = backend.train(chapter_data, device="cpu", **kwargs)
    on_gpu = backend.train(chapter_data, device="cuda", **kwargs)
    for field in ("epoch_w", "epoch_b", "train_loss", "val_loss"):
        assert_close(getattr(on_gpu, field), getattr(on_cpu, field), dtype)
    assert on_gpu.config["device"] == "cuda"
