"""Map the project's dtype and device names onto torch objects."""

from __future__ import annotations

import numpy as np
import torch

from wd_core.errors import DeviceUnavailableError

TORCH_DTYPES = {"float32": torch.float32, "float64": torch.float64}


def torch_dtype(dtype: str) -> torch.dtype:
    """``"float32"`` or ``"float64"`` (a validated name) as a ``torch.dtype``."""
    return TORCH_DTYPES[dtype]


def torch_device(name: str) -> torch.device:
    """``"cpu"``/``"cuda"``/``"cuda:N"`` (a name :func:`wd_core.validation.check_device_name`
    returned) as a ``torch.device`` that exists here.

    Raises :class:`wd_core.DeviceUnavailableError` when CUDA is asked for and torch sees
    no GPU (or not that many).
    """
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise DeviceUnavailableError(
                f"device {name!r} was asked for but torch sees no CUDA GPU "
                f"(torch.cuda.is_available() is False); use --device cpu"
            )
        index = int(name.partition(":")[2] or 0)
        if index >= torch.cuda.device_count():
            raise DeviceUnavailableError(
                f"device {name!r} was asked for but torch sees "
                f"{torch.cuda.device_count()} CUDA GPU(s)"
            )
    return torch.device(name)


def to_tensor(array, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """A copy of the numpy ``array`` (any shape) as a ``dtype`` tensor on ``device``.

    Always a copy (``torch.tensor``, not ``torch.as_tensor``): the data arrays are read-only
    and must stay untouched by anything a run does in place.
    """
    return torch.tensor(np.asarray(array), dtype=dtype, device=device)


def arrays_on_device(data, dtype: str, device: torch.device) -> tuple:
    """``(X_train (n, d), y_train (n, 1), X_val, y_val)`` of a :class:`wd_core.SyntheticData`
    in ``dtype`` on ``device``, moved once per data, dtype and device
    (:meth:`wd_core.SyntheticData.derived`); nothing a run does writes to them."""
    as_type = torch_dtype(dtype)
    return data.derived(("torch", dtype, str(device)), lambda: tuple(
        to_tensor(a, as_type, device) for a in (data.X_train, data.y_train, data.X_val,
                                                data.y_val)))


def schedule_on_device(data, num_epochs: int, device: torch.device,
                       first_epoch: int = 0) -> tuple:
    """``SyntheticData.batch_schedule(num_epochs, first_epoch)`` (``full`` (E, S, B),
    ``last`` (E, r)) as int64 row indices on ``device``."""
    return tuple(to_tensor(a, torch.long, device)
                 for a in data.batch_schedule(num_epochs, first_epoch))


def chunk_batches(data, first_epoch: int, num_epochs: int, device: torch.device):
    """For each epoch of a chunk, the list of its row-index batches (int64 tensors on
    ``device``) in step order: the chunk's schedule (:func:`schedule_on_device`), moved once."""
    full, last = schedule_on_device(data, num_epochs, device, first_epoch)
    for epoch in range(num_epochs):
        yield [*full[epoch], last[epoch]] if last.shape[1] else list(full[epoch])


class RowGather:
    """The rows of ``X`` (n, d) and ``y`` (n, 1) that a batch names, gathered into buffers
    kept for the whole run (``index_select(out=)``): a fresh (B, d) tensor per step would be
    allocated and freed again every step, and for large batches the allocator's pages then
    grow with the number of steps."""

    def __init__(self, X, y, batch_size: int):
        self.X, self.y = X, y
        self.X_rows = X.new_empty(batch_size, X.shape[1])
        self.y_rows = y.new_empty(batch_size, y.shape[1])

    def __call__(self, rows):
        """``(X[rows], y[rows])`` as views of the buffers (valid until the next call)."""
        k = rows.shape[0]
        return (torch.index_select(self.X, 0, rows, out=self.X_rows[:k]),
                torch.index_select(self.y, 0, rows, out=self.y_rows[:k]))


def epochs_to_numpy(per_epoch) -> list:
    """A list of per-epoch tuples of tensors as one numpy array per tuple position, epochs
    first (what :func:`wd_core.driver.drive` takes)."""
    return [torch.stack(column).cpu().numpy() for column in zip(*per_epoch, strict=True)]


def synchronize(device: torch.device) -> None:
    """Wait for queued work on ``device`` (a no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
