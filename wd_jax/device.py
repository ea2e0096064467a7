"""Map the project's dtype and device names onto JAX, and scope the run's numerics."""

from __future__ import annotations

import contextlib

import jax
import jax.numpy as jnp
import numpy as np

from wd_core.errors import DeviceUnavailableError

JAX_DTYPES = {"float32": jnp.float32, "float64": jnp.float64}


def jax_dtype(dtype: str):
    """``"float32"`` or ``"float64"`` as a JAX dtype (float64 needs :func:`numerics`)."""
    return JAX_DTYPES[dtype]


def jax_device(name: str) -> jax.Device:
    """``"cpu"``/``"cuda"``/``"cuda:N"`` (a name :func:`wd_core.validation.check_device_name`
    returned) as a ``jax.Device`` that exists here.

    Raises :class:`wd_core.DeviceUnavailableError` when CUDA is asked for and JAX has no
    GPU backend (or not that many GPUs).
    """
    if name == "cpu":
        return jax.devices("cpu")[0]
    try:
        gpus = jax.devices("gpu")
    except RuntimeError:
        gpus = []
    index = int(name.partition(":")[2] or 0)
    if index >= len(gpus):
        raise DeviceUnavailableError(
            f"device {name!r} was asked for but JAX sees {len(gpus)} GPU(s) "
            f"(jax.devices() is {[d.platform for d in jax.devices()]}); use --device cpu"
        )
    return gpus[index]


@contextlib.contextmanager
def numerics(dtype: str):
    """Scope for one run: x64 on only for float64; float32 matmuls at full precision.

    ``jax.default_matmul_precision("highest")`` keeps GPUs from using TF32, so float32 means
    float32 as in ``torch`` (whose CUDA matmuls default to full float32).
    """
    with jax.enable_x64(dtype == "float64"):
        with jax.default_matmul_precision("highest"):
            yield


def to_device(arrays, dtype, device):
    """The numpy array (any shape, or a scalar) as ``dtype`` (a numpy or JAX dtype) on
    ``device``; a tuple of them in one transfer. Inside :func:`numerics` for float64."""
    if isinstance(arrays, tuple):
        return jax.device_put(tuple(np.asarray(a, dtype=dtype) for a in arrays), device)
    return jax.device_put(np.asarray(arrays, dtype=dtype), device)


def arrays_on_device(data, dtype: str, device) -> tuple:
    """``(X_train (n, d), y_train (n, 1), X_val, y_val)`` of a :class:`wd_core.SyntheticData`
    in ``dtype`` on ``device``, moved once per data, dtype and device
    (:meth:`wd_core.SyntheticData.derived`). Inside :func:`numerics` for float64."""
    return data.derived(("jax", dtype, device), lambda: to_device(
        (data.X_train, data.y_train, data.X_val, data.y_val), jax_dtype(dtype), device))


def schedule_on_device(data, num_epochs: int, device, first_epoch: int = 0) -> tuple:
    """``SyntheticData.batch_schedule(num_epochs, first_epoch)`` (``full`` (E, S, B),
    ``last`` (E, r)) as int32 row indices on ``device``. The first window of a run (from
    epoch 0: all of a run of one chunk) is kept with the data (``SyntheticData.derived``), so a
    repeated run moves nothing; later windows are moved when asked for."""

    def move():
        return to_device(data.batch_schedule(num_epochs, first_epoch), np.int32, device)

    if first_epoch:
        return move()
    return data.derived(("jax schedule", num_epochs, device), move)


def block(tree):
    """``jax.block_until_ready``: wait for the device before reading a clock."""
    return jax.block_until_ready(tree)
