"""History: what a training run returns, as float64 numpy, with a strict-JSON round trip."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from wd_core.atomic import write_text_atomic
from wd_core.errors import InputError, MissingPathError, PathError

FORMAT = "weight-decay/history"
FORMAT_VERSION = 1
_ARRAYS = ("w", "b", "train_loss", "val_loss")
_EPOCH_ARRAYS = ("epoch_w", "epoch_b")


@dataclass(eq=False)
class History:
    """The result of one training run, every array float64 numpy.

    Attributes:
        w, b: final parameters, (d, 1) and (1,).
        train_loss, val_loss: (epochs_run,) data loss ``mean((Xw + b - y)**2) / 2`` (no
            penalty) on the whole training / validation set after each epoch.
        epoch_w, epoch_b: (epochs_run, d, 1) and (epochs_run, 1), parameters after each epoch,
            or ``None`` when the run was not asked for them (``epoch_params=False``, the
            default: they grow with epochs x d; the losses are always kept).
        config: backend, method, lambd, lr, max_epochs, dtype, device, seed, and the data sizes.
        diverged: True when a loss became NaN or infinite; training stopped after
            ``diverged_epoch`` (0-based), so ``epochs_run = diverged_epoch + 1``.
    """

    w: np.ndarray
    b: np.ndarray
    train_loss: np.ndarray
    val_loss: np.ndarray
    epoch_w: np.ndarray | None = None
    epoch_b: np.ndarray | None = None
    config: dict = field(default_factory=dict)
    diverged: bool = False
    diverged_epoch: int | None = None

    def __post_init__(self):
        for name in (*_ARRAYS, *_EPOCH_ARRAYS):
            # A copy: writable float64 arrays that own their data, whatever the backend gave.
            if getattr(self, name) is not None:
                setattr(self, name, np.array(getattr(self, name), dtype=np.float64))

    @property
    def l2_penalty(self) -> float:
        """``||w||**2 / 2`` of the final ``w`` (what the book prints as "L2 norm of w")."""
        with np.errstate(over="ignore", invalid="ignore"):
            return float(np.sum(self.w**2) / 2)

    @property
    def l2_norm(self) -> float:
        """``||w||`` of the final ``w``."""
        with np.errstate(over="ignore", invalid="ignore"):
            return float(np.sqrt(np.sum(self.w**2)))

    def to_dict(self) -> dict:
        """A strict-JSON-ready dict; NaN and infinities become ``None``."""
        out = {"format": FORMAT, "version": FORMAT_VERSION, "config": dict(self.config)}
        for name in (*_ARRAYS, *_EPOCH_ARRAYS):
            value = getattr(self, name)
            out[name] = None if value is None else _to_json_list(value)
        out["l2_penalty"] = _to_json_float(self.l2_penalty)
        out["l2_norm"] = _to_json_float(self.l2_norm)
        out["diverged"] = bool(self.diverged)
        out["diverged_epoch"] = self.diverged_epoch
        return out

    def to_json(self, path) -> Path:
        """Write the History to ``path`` atomically as strict JSON (``null`` for NaN/inf)."""
        return write_text_atomic(path, dumps_strict(self.to_dict()) + "\n")

    @classmethod
    def from_dict(cls, payload) -> History:
        """Rebuild a History from :meth:`to_dict`'s output; ``InputError`` if it is not one."""
        if not isinstance(payload, dict) or payload.get("format") != FORMAT:
            raise InputError(f"not a weight-decay History (expected \"format\": \"{FORMAT}\")")
        missing = [k for k in (*_ARRAYS, "config") if k not in payload]
        if missing:
            raise InputError(f"not a weight-decay History: missing {', '.join(missing)}")
        arrays = {name: _from_json_list(payload[name]) for name in _ARRAYS}
        for name in _EPOCH_ARRAYS:  # absent or null: the run kept no per-epoch parameters
            value = payload.get(name)
            arrays[name] = None if value is None else _from_json_list(value)
        return cls(
            **arrays,
            config=dict(payload["config"]),
            diverged=bool(payload.get("diverged", False)),
            diverged_epoch=payload.get("diverged_epoch"),
        )

    @classmethod
    def from_json(cls, path) -> History:
        """Read a History written by :meth:`to_json`. float64 values come back bit-exact."""
        path = Path(path)
        payload = read_json(path)
        try:
            return cls.from_dict(payload)
        except InputError as err:
            raise InputError(f"{str(path)!r}: {err}") from None


def read_json(path: Path):
    """The JSON value in the file ``path``; :class:`~wd_core.errors.InputError` naming the
    file when it cannot be read (:class:`~wd_core.errors.MissingPathError` when it does not
    exist) or is not JSON."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise MissingPathError(f"cannot read {str(path)!r}: {err.strerror}") from None
    except OSError as err:
        raise PathError(f"cannot read {str(path)!r}: {err.strerror}") from None
    except json.JSONDecodeError as err:
        raise InputError(f"{str(path)!r} is not JSON ({err.msg} at line {err.lineno})") from None
    except UnicodeDecodeError:
        raise InputError(f"{str(path)!r} is not a text (JSON) file") from None


def dumps_strict(payload) -> str:
    """``json.dumps`` that refuses NaN/inf (callers convert them to ``None`` first)."""
    return json.dumps(payload, allow_nan=False, indent=1)


def _to_json_float(x: float):
    return float(x) if math.isfinite(x) else None


def _to_json_list(array: np.ndarray):
    array = np.asarray(array, dtype=np.float64)
    if array.ndim == 0:
        return _to_json_float(float(array))
    return [_to_json_list(row) if array.ndim > 1 else _to_json_float(float(row)) for row in array]


def _from_json_list(values) -> np.ndarray:
    def convert(item):
        if isinstance(item, list):
            return [convert(x) for x in item]
        return math.nan if item is None else item

    try:
        return np.array(convert(values), dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError("an array field holds non-numeric values") from None
