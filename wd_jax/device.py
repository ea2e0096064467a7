"""Map the project's dtype and device names onto JAX, and scope the run's numerics."""

from __future__ import annotations

import contextlib

import jax
import jax.numpy as jnp

from wd_core.errors import DeviceUnavailableError
from wd_core.validation import DTYPES, check_choice, check_device_name

JAX_DTYPES = {"float32": jnp.float32, "float64": jnp.float64}


def jax_dtype(dtype: str):
    """``"float32"`` or ``"float64"`` as a JAX dtype (float64 needs :func:`numerics`)."""
    return JAX_DTYPES[check_choice("dtype", dtype, DTYPES)]


def jax_device(device) -> jax.Device:
    """``None``/``"cpu"``/``"cuda"``/``"cuda:N"`` as a ``jax.Device`` that exists here.

    Raises :class:`wd_core.DeviceUnavailableError` when CUDA is asked for and JAX has no
    GPU backend (or not that many GPUs).
    """
    name = check_device_name(device)
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
    with jax.enable_x64(check_choice("dtype", dtype, DTYPES) == "float64"):
        with jax.default_matmul_precision("highest"):
            yield


def block(tree):
    """``jax.block_until_ready``: wait for the device before reading a clock."""
    return jax.block_until_ready(tree)
