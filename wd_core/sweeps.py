"""A sweep over lambda: validation, the lambda grid, and the sweep-result JSON format.

Both backends' ``sweep`` functions call :func:`prepare_sweep` at their public boundary and
:func:`histories_from_sweep` to package what they computed, so a sweep's Histories are laid
out exactly like those of single runs (same ``config``, same divergence marking).

A sweep file is strict JSON::

    {"format": "weight-decay/sweep", "version": 1, "lambdas": [l_0, ..., l_{L-1}],
     "histories": [<History.to_dict()> for each lambda, in order]}
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from numbers import Real
from pathlib import Path

import numpy as np

from wd_core.atomic import write_text_atomic
from wd_core.data import ARGUMENTS, SyntheticData
from wd_core.errors import InputError, InputTypeError
from wd_core.history import FORMAT as HISTORY_FORMAT
from wd_core.history import History, dumps_strict, read_json
from wd_core.runspec import RunSpec, history_from_epochs, prepare_run
from wd_core.validation import POSITIVE, POSITIVE_INT, check_number, is_number

SWEEP_FORMAT = "weight-decay/sweep"
SWEEP_VERSION = 1

#: ``lambda_grid`` spans this many decades below its largest value.
GRID_DECADES = 3


def check_lambdas(lambdas) -> np.ndarray:
    """``lambdas`` as a (L,) float64 array, L >= 1, every value finite and >= 0.

    Accepts a sequence or 1-D array of real numbers. Raises ``InputError``
    (``InputTypeError`` for a value that is not a number) naming the first bad value and its
    position.
    """
    def not_a_sequence():
        return InputTypeError(f"lambdas must be a sequence of numbers >= 0, got {lambdas!r}")

    if isinstance(lambdas, (str, bytes)) or isinstance(lambdas, Real):
        raise not_a_sequence()
    try:
        values = list(lambdas)
    except TypeError:
        raise not_a_sequence() from None
    if not values:
        raise InputError("lambdas is empty; accepted: one or more finite numbers >= 0")
    for i, value in enumerate(values):
        if not is_number(value):
            raise InputTypeError(f"lambdas[{i}] = {value!r} is not a number; accepted: finite "
                            f"numbers >= 0")
        if not math.isfinite(float(value)) or value < 0:
            raise InputError(f"lambdas[{i}] = {float(value)!r} is not a finite number >= 0")
    return np.array(values, dtype=np.float64)


def lambda_grid(num: int, max_lambda: float, decades: int = GRID_DECADES) -> np.ndarray:
    """``num`` lambdas for a regularization path: 0, then ``num - 1`` log-spaced values.

    ``[0, max_lambda * 10**-decades, ..., max_lambda]`` (``numpy.geomspace`` for the positive
    part), float64 of shape (num,). ``num = 1`` gives ``[0]``. Lambda 0 is always included: it
    is the chapter's unregularized run.
    """
    num = check_number("num", num, POSITIVE_INT)
    max_lambda = check_number("max lambda", max_lambda, POSITIVE)
    if num == 1:
        return np.zeros(1)
    positive = np.geomspace(max_lambda * 10.0**-decades, max_lambda, num - 1)
    return np.concatenate([[0.0], positive])


@dataclass(frozen=True)
class SweepSpec:
    """Validated inputs of a sweep: one :class:`RunSpec` (its ``lambd`` unused) and lambdas."""

    run: RunSpec
    lambdas: np.ndarray

    def for_lambda(self, lambd: float) -> RunSpec:
        """The :class:`RunSpec` of the single run with ``lambd``."""
        return dataclasses.replace(self.run, lambd=float(lambd))


def prepare_sweep(data, *, lambdas, method, lr, max_epochs, init, dtype, device,
                  progress=None, epoch_params=False, implementation="idiomatic") -> SweepSpec:
    """Validate a sweep's arguments like :func:`wd_core.runspec.prepare_run`, plus lambdas."""
    lambdas = check_lambdas(lambdas)
    run = prepare_run(data, method=method, lambd=0.0, lr=lr, max_epochs=max_epochs, init=init,
                      dtype=dtype, device=device, progress=progress, epoch_params=epoch_params,
                      implementation=implementation)
    return SweepSpec(run, lambdas)


def histories_from_sweep(spec: SweepSpec, backend: str, epoch_w, epoch_b, train_loss,
                         val_loss) -> list[History]:
    """One :class:`History` per lambda from per-epoch, per-lambda arrays.

    Args:
        epoch_w: (E, L, d, 1); epoch_b: (E, L, 1); train_loss, val_loss: (E, L); any float
            dtype, epochs first (as :func:`wd_core.driver.drive` returns them), lambdas in the
            order of ``spec.lambdas``.

    Each History is what :func:`wd_core.runspec.history_from_epochs` makes of a single run
    with that lambda (its own divergence marking and truncation).
    """
    # One float64 conversion for all lambdas; the per-lambda slices are then views.
    epoch_w, epoch_b, train_loss, val_loss = (
        np.asarray(a, dtype=np.float64) for a in (epoch_w, epoch_b, train_loss, val_loss))
    return [
        history_from_epochs(spec.for_lambda(lambd), backend, epoch_w[:, i], epoch_b[:, i],
                            train_loss[:, i], val_loss[:, i])
        for i, lambd in enumerate(spec.lambdas)
    ]


def sweep_to_dict(histories) -> dict:
    """The strict-JSON-ready dict of a sweep (see the module docstring)."""
    histories = list(histories)
    if not histories or not all(isinstance(h, History) for h in histories):
        raise InputTypeError("a sweep is a non-empty list of wd_core.History")
    return {
        "format": SWEEP_FORMAT,
        "version": SWEEP_VERSION,
        "lambdas": [float(h.config.get("lambd", math.nan)) for h in histories],
        "histories": [h.to_dict() for h in histories],
    }


def write_sweep(histories, path) -> Path:
    """Write a sweep's Histories to ``path`` atomically as strict JSON."""
    return write_text_atomic(path, dumps_strict(sweep_to_dict(histories)) + "\n")


def sweep_from_dict(payload) -> list[History]:
    """The Histories of :func:`sweep_to_dict`'s output; ``InputError`` if it is not one."""
    if not isinstance(payload, dict) or payload.get("format") != SWEEP_FORMAT:
        raise InputError(f"not a weight-decay sweep (expected \"format\": \"{SWEEP_FORMAT}\")")
    entries = payload.get("histories")
    if not isinstance(entries, list) or not entries:
        raise InputError("not a weight-decay sweep: \"histories\" is not a non-empty list")
    histories = []
    for i, entry in enumerate(entries):
        try:
            histories.append(History.from_dict(entry))
        except InputError as err:
            raise InputError(f"histories[{i}]: {err}") from None
    return histories


def read_results(path) -> tuple[str, list[History]]:
    """Read a History file or a sweep file: ``("run", [h])`` or ``("sweep", [h_0, ...])``.

    Raises :class:`~wd_core.errors.InputError` (``MissingPathError``, a
    ``FileNotFoundError``, when it does not exist) naming the file when it is neither.
    """
    path = Path(path)
    payload = read_json(path)
    kind = payload.get("format") if isinstance(payload, dict) else None
    try:
        if kind == SWEEP_FORMAT:
            return "sweep", sweep_from_dict(payload)
        if kind == HISTORY_FORMAT:
            return "run", [History.from_dict(payload)]
    except InputError as err:
        raise InputError(f"{str(path)!r}: {err}") from None
    raise InputError(f"{str(path)!r} is neither a weight-decay History nor a sweep "
                     f"(expected \"format\": \"{HISTORY_FORMAT}\" or \"{SWEEP_FORMAT}\")")


def read_sweep(path) -> list[History]:
    """The Histories of a sweep file written by :func:`write_sweep`."""
    kind, histories = read_results(path)
    if kind != "sweep":
        raise InputError(f"{str(path)!r} is a single run, not a sweep")
    return histories


def data_from_config(config: dict) -> SyntheticData:
    """The :class:`SyntheticData` a History was trained on, rebuilt from its ``config``."""
    try:
        return SyntheticData(**{name: config[name] for name in ARGUMENTS})
    except KeyError as err:
        raise InputError(f"the History's config lacks {err.args[0]!r}; cannot rebuild its "
                         f"data") from None
