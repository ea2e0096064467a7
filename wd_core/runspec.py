"""One validated description of a training run, shared by the reference and both backends.

Backends call :func:`prepare_run` at their public boundary and :func:`history_from_epochs`
to package what they computed, so validation and the History layout live in one place.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from wd_core.data import SyntheticData
from wd_core.errors import InputError, InputTypeError
from wd_core.history import History
from wd_core.optimizers import OptimizerSpec, check_optimizer
from wd_core.params import resolve_init
from wd_core.validation import (
    DTYPES,
    METHODS,
    POSITIVE_INT,
    check_choice,
    check_device_name,
    check_number,
    check_step_arrays,
)

IMPLEMENTATIONS = ("idiomatic", "fused")
PLAIN_SGD = OptimizerSpec("sgd")


@dataclass(frozen=True)
class RunSpec:
    """Validated inputs of one run; ``w0`` (d, 1) and ``b0`` (1,) are float64."""

    data: SyntheticData
    method: str
    lambd: float
    lr: float
    max_epochs: int
    w0: np.ndarray
    b0: np.ndarray
    dtype: str
    device: str
    epoch_params: bool = False
    implementation: str = "idiomatic"
    optimizer: OptimizerSpec | None = None

    def config(self, backend: str) -> dict:
        """The History's ``config`` for ``backend`` (``"optimizer"`` only when one was
        given). The float64 reference (``backend="reference"``) is its own method and has no
        implementation."""
        data = self.data
        config = {
            "backend": backend,
            "method": "reference" if backend == "reference" else self.method,
            "lambd": self.lambd,
            "lr": self.lr,
            "max_epochs": self.max_epochs,
            "dtype": self.dtype,
            "device": self.device,
            "seed": data.seed,
            "num_train": data.num_train,
            "num_val": data.num_val,
            "num_inputs": data.num_inputs,
            "batch_size": data.batch_size,
        }
        if backend != "reference":
            config["implementation"] = self.implementation
        if self.optimizer is not None:
            config["optimizer"] = self.optimizer.to_config()
        return config


def prepare_run(data, *, method, lambd, lr, max_epochs, init, dtype, device,
                progress=None, epoch_params=False, implementation="idiomatic",
                optimizer=None) -> RunSpec:
    """Validate a run's arguments (:class:`~wd_core.errors.InputError` naming the bad value);
    ``progress`` must be None or callable. Everything below this boundary trusts the spec.

    ``implementation``: ``"idiomatic"`` (the framework's optimizer: ``torch.optim``, optax)
    or ``"fused"`` (the analytic step of ``wd_torch.fused``/``wd_jax.fused``), which runs
    plain SGD only: ``optimizer`` None or ``OptimizerSpec("sgd")`` without momentum.
    """
    if progress is not None and not callable(progress):
        raise InputTypeError(
            f"progress must be None or a callable progress(epoch), got {progress!r}")
    if not isinstance(data, SyntheticData):
        raise InputTypeError(f"data must be a wd_core.SyntheticData, got {type(data).__name__}")
    check_choice("method", method, METHODS)
    lambd, lr = check_number("lambd", lambd), check_number("lr", lr)
    max_epochs = check_number("max_epochs", max_epochs, POSITIVE_INT)
    check_choice("dtype", dtype, DTYPES)
    device = check_device_name(device)
    if not isinstance(epoch_params, bool):
        raise InputTypeError(f"epoch_params must be True or False, got {epoch_params!r}")
    check_choice("implementation", implementation, IMPLEMENTATIONS)
    optimizer = check_optimizer(optimizer)
    if implementation == "fused" and optimizer is not None and optimizer != PLAIN_SGD:
        raise InputError(
            f"implementation='fused' runs plain SGD with weight decay on w only; it does not "
            f"run optimizer={optimizer.label()}; accepted: optimizer=None or "
            f"OptimizerSpec('sgd'), or implementation='idiomatic'")
    w0, b0 = resolve_init(data.num_inputs, data.seed, init)
    return RunSpec(data, method, lambd, lr, max_epochs, w0, b0, dtype, device, epoch_params,
                   implementation, optimizer)


def history_from_epochs(spec: RunSpec, backend: str, epoch_w, epoch_b, train_loss, val_loss):
    """Package per-epoch results (epochs leading axis) as a :class:`History`.

    Args:
        epoch_w: (E, d, 1); epoch_b: (E, 1); train_loss, val_loss: (E,), any float dtype.
            Without ``spec.epoch_params``, ``epoch_w`` and ``epoch_b`` hold only the final
            parameters, (1, d, 1) and (1, 1) (:func:`wd_core.driver.drive`), and the History
            keeps no per-epoch parameters.

    A run is diverged at the first epoch whose training or validation loss is NaN or
    infinite; the History then keeps the epochs up to and including that one.
    """
    train_loss = np.asarray(train_loss, dtype=np.float64)
    val_loss = np.asarray(val_loss, dtype=np.float64)
    bad = np.flatnonzero(~(np.isfinite(train_loss) & np.isfinite(val_loss)))
    epochs_run = int(bad[0]) + 1 if bad.size else len(train_loss)
    epoch_w = np.asarray(epoch_w[:epochs_run], dtype=np.float64)
    epoch_b = np.asarray(epoch_b[:epochs_run], dtype=np.float64)
    kept = spec.epoch_params
    return History(
        w=epoch_w[-1],
        b=epoch_b[-1],
        train_loss=train_loss[:epochs_run],
        val_loss=val_loss[:epochs_run],
        epoch_w=epoch_w if kept else None,
        epoch_b=epoch_b if kept else None,
        config=spec.config(backend),
        diverged=bool(bad.size),
        diverged_epoch=int(bad[0]) if bad.size else None,
    )


@dataclass(frozen=True)
class StepSpec:
    """Validated float64 inputs of one step: w (d, 1), b (1,), X (n, d), y (n, 1)."""

    w: np.ndarray
    b: np.ndarray
    X: np.ndarray
    y: np.ndarray
    method: str
    lambd: float
    lr: float
    dtype: str
    device: str


def prepare_step(w, b, X, y, *, method, lambd, lr, dtype, device) -> StepSpec:
    """Validate one step's arguments (``InputError`` naming the bad shape or value)."""
    check_choice("method", method, METHODS)
    lambd, lr = check_number("lambd", lambd), check_number("lr", lr)
    check_choice("dtype", dtype, DTYPES)
    device = check_device_name(device)
    w, b, X, y = check_step_arrays(w, b, X, y)
    return StepSpec(w, b, X, y, method, lambd, lr, dtype, device)
