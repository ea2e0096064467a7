"""Measure the gradient-clipping pitfalls: ``python -m parity_tests.measure_clipping``.

Prints the markdown table of ``docs/clipping.md``. Each row trains the same small model for
20 steps in float64 three times: torch with ``clip_grad_norm_`` before every
``optimizer.step()`` (the oracle), the optax port with the twin
(:func:`wd_jax.clipping.torch_clip_grad_norm`) where torch clips, and the port done wrong.
An error is the smallest ``rtol`` with which :func:`wd_core.tolerances.assert_close` would
pass on the final parameters (all tensors), against torch.

The model is ``y_hat = tanh(X w1 + b1) w2 + b2`` with the loss ``mean((y_hat - y)**2) / 2``
on a different pair of rows at every step (as ``parity_tests/test_optim_parity.py``);
inputs and initial parameters come from one seeded numpy generator. Each framework
differentiates its own copy of the model, as a port does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
import optax
import torch

from wd_core.tolerances import required_rtol
from wd_jax import optim as jopt
from wd_jax.clipping import torch_clip_grad_norm

STEPS = 20
SHAPES = {"w1": (3, 4), "b1": (4,), "w2": (4, 2), "b2": (2,)}
_rng = np.random.default_rng(np.random.SeedSequence((7, 1)))
X = _rng.standard_normal((8, 3))
Y = _rng.standard_normal((8, 2))
PARAMS0 = {name: 0.5 * _rng.standard_normal(shape) for name, shape in SHAPES.items()}

LR_SGD, LR_ADAMW = 0.1, 0.01
CLIPPED, UNCLIPPED = 0.05, 100.0  # max_norm far below / far above every gradient norm seen
DECAY = 0.1


def batch_rows(step: int) -> np.ndarray:
    return np.array([(2 * step) % len(X), (2 * step + 1) % len(X)])


def torch_loss(params, X_b, y_b):
    y_hat = torch.tanh(X_b @ params["w1"] + params["b1"]) @ params["w2"] + params["b2"]
    return ((y_hat - y_b) ** 2).mean() / 2


def jax_loss(params, X_b, y_b):
    y_hat = jnp.tanh(X_b @ params["w1"] + params["b1"]) @ params["w2"] + params["b2"]
    return jnp.mean((y_hat - y_b) ** 2) / 2


_jax_grad = jax.jit(jax.grad(jax_loss))


@dataclass(frozen=True)
class Case:
    """One torch set-up: ``optimizer`` is ``"sgd"`` (``SGD(lr, weight_decay)``) or
    ``"adamw"`` (``AdamW(lr, weight_decay)``); ``frozen`` parameters have
    ``requires_grad=False`` (no ``.grad``, so neither clipped nor stepped)."""

    optimizer: str
    max_norm: float
    weight_decay: float = 0.0
    frozen: tuple[str, ...] = ()

    @property
    def lr(self) -> float:
        return LR_SGD if self.optimizer == "sgd" else LR_ADAMW

    @property
    def trainable(self) -> dict[str, bool]:
        return {name: name not in self.frozen for name in SHAPES}


def run_torch(case: Case) -> dict[str, np.ndarray]:
    """The oracle: ``clip_grad_norm_(all parameters, max_norm)`` then ``optimizer.step()``."""
    params = {k: torch.tensor(v, dtype=torch.float64, requires_grad=k not in case.frozen)
              for k, v in PARAMS0.items()}
    trainable = [p for p in params.values() if p.requires_grad]
    if case.optimizer == "sgd":
        optimizer = torch.optim.SGD(trainable, lr=case.lr, weight_decay=case.weight_decay)
    else:
        optimizer = torch.optim.AdamW(trainable, lr=case.lr, weight_decay=case.weight_decay)
    X_t, Y_t = torch.tensor(X), torch.tensor(Y)
    for step in range(STEPS):
        rows = batch_rows(step)
        optimizer.zero_grad()
        torch_loss(params, X_t[rows], Y_t[rows]).backward()
        torch.nn.utils.clip_grad_norm_(params.values(), case.max_norm)
        optimizer.step()
    return {k: p.detach().numpy().copy() for k, p in params.items()}


def run_jax(tx: optax.GradientTransformation) -> dict[str, np.ndarray]:
    """``STEPS`` optax updates of the same model in float64 (every leaf gets a gradient)."""
    with jax.enable_x64(True):
        params = {k: jnp.asarray(v) for k, v in PARAMS0.items()}
        opt_state = tx.init(params)
        update = jax.jit(tx.update)
        X_j, Y_j = jnp.asarray(X), jnp.asarray(Y)
        for step in range(STEPS):
            rows = batch_rows(step)
            updates, opt_state = update(_jax_grad(params, X_j[rows], Y_j[rows]), opt_state,
                                        params)
            params = optax.apply_updates(params, updates)
        return {k: np.asarray(v, dtype=np.float64) for k, v in params.items()}


def optimizer_tx(case: Case) -> optax.GradientTransformation:
    """The port of the case's torch optimizer (``wd_jax.optim``), frozen leaves held fixed."""
    if case.optimizer == "sgd":
        tx = jopt.torch_sgd(case.lr, weight_decay=case.weight_decay)
    else:
        tx = jopt.torch_adamw(case.lr, weight_decay=case.weight_decay)
    if case.frozen:
        tx = optax.selective_transform(
            tx, freeze_mask={name: not keep for name, keep in case.trainable.items()})
    return tx


def twin_tx(case: Case) -> optax.GradientTransformation:
    """The right port: the twin on the raw gradients of the trainable leaves, first."""
    return optax.chain(torch_clip_grad_norm(case.max_norm, mask=case.trainable),
                       optimizer_tx(case))


def first_norm() -> float:
    """torch's total 2-norm of the first step's gradients (a ``max_norm`` at the threshold)."""
    params = {k: torch.tensor(v, requires_grad=True) for k, v in PARAMS0.items()}
    rows = batch_rows(0)
    torch_loss(params, torch.tensor(X)[rows], torch.tensor(Y)[rows]).backward()
    return float(torch.nn.utils.get_total_norm([p.grad for p in params.values()]))


@dataclass(frozen=True)
class Row:
    """A pitfall measured on one case: ``wrong(case)`` is the mistaken optax chain."""

    pitfall: str
    situation: str
    case: Callable[[], Case]
    wrong: Callable[[Case], optax.GradientTransformation]
    harmless: bool = False  # the mistake happens to change nothing in this situation


def _global_norm_instead(case: Case) -> optax.GradientTransformation:
    return optax.chain(optax.clip_by_global_norm(case.max_norm), optimizer_tx(case))


def _clip_after_decay(case: Case) -> optax.GradientTransformation:
    return optax.chain(optax.add_decayed_weights(case.weight_decay),
                       torch_clip_grad_norm(case.max_norm), optax.sgd(case.lr))


def _no_mask(case: Case) -> optax.GradientTransformation:
    return optax.chain(torch_clip_grad_norm(case.max_norm), optimizer_tx(case))


GLOBAL_NORM = "`optax.clip_by_global_norm` for `clip_grad_norm_`"
AFTER_DECAY = "clip after `add_decayed_weights` (the decay clipped too)"
NO_MASK = "no `mask`: frozen gradients counted in the norm"

ROWS = {
    "a1": Row(GLOBAL_NORM, "SGD, norm above max_norm",
              lambda: Case("sgd", CLIPPED), _global_norm_instead),
    "a2": Row(GLOBAL_NORM, "SGD, norm below max_norm",
              lambda: Case("sgd", UNCLIPPED), _global_norm_instead, harmless=True),
    "a3": Row(GLOBAL_NORM, "SGD, max_norm = the first step's norm",
              lambda: Case("sgd", first_norm()), _global_norm_instead),
    "a4": Row(GLOBAL_NORM, "AdamW (wd 0.1), norm above max_norm",
              lambda: Case("adamw", CLIPPED, DECAY), _global_norm_instead),
    "b1": Row(AFTER_DECAY, "SGD (wd 0.1), norm above max_norm",
              lambda: Case("sgd", CLIPPED, DECAY), _clip_after_decay),
    "b2": Row(AFTER_DECAY, "SGD (wd 0.1), norm below max_norm",
              lambda: Case("sgd", UNCLIPPED, DECAY), _clip_after_decay, harmless=True),
    "c1": Row(NO_MASK, "SGD, `b1` frozen, norm above max_norm",
              lambda: Case("sgd", CLIPPED, frozen=("b1",)), _no_mask),
}


def error(mine: dict[str, np.ndarray], oracle: dict[str, np.ndarray]) -> float:
    """The worst :func:`~wd_core.tolerances.required_rtol` over the parameter tensors."""
    return max(required_rtol(mine[k], oracle[k]) for k in SHAPES)


def measure(row_id: str) -> tuple[float, float]:
    """``(twin's error, pitfall's error)`` of row ``row_id`` against torch."""
    row = ROWS[row_id]
    case = row.case()
    oracle = run_torch(case)
    return error(run_jax(twin_tx(case)), oracle), error(run_jax(row.wrong(case)), oracle)


def format_error(value: float) -> str:
    """Two significant figures (``0`` for an exact match)."""
    return "0" if value == 0 else f"{value:.1e}"


def table() -> list[str]:
    lines = ["| row | pitfall | situation | twin's error | pitfall's error |",
             "|---|---|---|---:|---:|"]
    for row_id, row in ROWS.items():
        twin, wrong = measure(row_id)
        lines.append(f"| {row_id} | {row.pitfall} | {row.situation} | {format_error(twin)} "
                     f"| {format_error(wrong)} |")
    return lines


if __name__ == "__main__":
    print("\n".join(table()))
