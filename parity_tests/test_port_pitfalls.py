"""Porting mistakes, each built wrong on purpose and shown to leave the torch trajectory.

Each test runs the torch optimizer itself (the oracle, float64), the port done right, and the
port done wrong, and measures the worst relative difference of the parameters after the run
(``wd_core.tolerances.required_rtol``: ``max |a - e| / (|e| + max|e|)``, the units of the
float64 rtol 1e-12). The right port must be within 1e-12 and the wrong one beyond 1e-6, a
million times the tolerance. ``python -m parity_tests.test_port_pitfalls`` prints the
measured table of ``docs/porting.md``.

1. the mask dropped: one chain decays every parameter, norms and biases included;
2. ``optax.adamw`` with its own default decay (1e-4) for torch's ``AdamW`` (1e-2);
3. Adam's coupled L2 (``torch.optim.Adam(weight_decay=)``) written as AdamW;
4. the state not carried: a fresh ``tx.init(params)`` after a torch checkpoint;
5. the step count off by one: Adam's bias correction of the wrong step.
"""

from __future__ import annotations

import numpy as np
import pytest

from parity_tests.test_port_models import (
    BATCHES,
    HALF,
    OptaxRun,
    make_model,
    one_torch_thread,  # noqa: F401  (an autouse fixture)
    torch_run,
)
from wd_core.tolerances import required_rtol

torch = pytest.importorskip("torch")
jax = pytest.importorskip("jax")
import optax  # noqa: E402

from wd_jax import optim as jopt  # noqa: E402
from wd_jax import port  # noqa: E402

LR, WD = 0.01, 0.1
RIGHT, WRONG = 1e-12, 1e-6
BATCHES_MLP = BATCHES["mlp"]


def _torch_end(make_optimizer, steps=None):
    """The torch oracle: the MLP and its optimizer after ``steps`` (default: all) steps."""
    model = make_model("mlp")
    optimizer = make_optimizer(model)
    torch_run(model, optimizer, BATCHES_MLP[:steps])
    return model, optimizer


def _difference(params, model) -> float:
    """Worst relative difference of the optax params from the torch model's parameters."""
    return max(required_rtol(np.asarray(params[n]), p.detach().numpy())
               for n, p in model.named_parameters())


def _optax_from(model, tx, state=None, batches=BATCHES_MLP):
    """``batches`` optax steps of ``tx`` from ``model``'s parameters (and ``state``)."""
    params = port.params_from_torch(model)
    state = tx.init(params) if state is None else state
    params, _ = OptaxRun("mlp", tx).run(params, state, batches)
    return params


def _adamw_policy(model):
    return torch.optim.AdamW(port.no_weight_decay_groups(model, WD), lr=LR)


def mask_dropped() -> tuple[float, float]:
    """torch: AdamW over the policy's groups; wrong: one ``torch_adamw`` decaying all."""
    expected, _ = _torch_end(_adamw_policy)
    with jax.enable_x64(True):
        start = make_model("mlp")
        right = _optax_from(start, jopt.torch_adamw(LR, weight_decay=WD, mask=port.decay_mask(
            port.params_from_torch(start))))
        wrong = _optax_from(start, jopt.torch_adamw(LR, weight_decay=WD))
    return _difference(right, expected), _difference(wrong, expected)


def optax_default_decay() -> tuple[float, float]:
    """torch: ``AdamW(groups, lr)`` (decay 1e-2 on the decayed group); wrong: ``optax.adamw``
    with its own default, under the same mask."""
    def make(model):
        decayed, others = port.no_weight_decay_groups(model, 0.0)
        del decayed["weight_decay"]  # torch's default
        return torch.optim.AdamW([decayed, others], lr=LR)

    expected, _ = _torch_end(make)
    with jax.enable_x64(True):
        start = make_model("mlp")
        mask = port.decay_mask(port.params_from_torch(start))
        right = _optax_from(start, port.optimizer_from_torch(make(start), start))
        wrong = _optax_from(start, optax.adamw(LR, mask=mask))
    return _difference(right, expected), _difference(wrong, expected)


def coupled_as_decoupled() -> tuple[float, float]:
    """torch: ``Adam(groups, weight_decay=0.1)`` (L2 through the moments); wrong:
    ``torch_adamw`` with the same decay and mask."""
    def make(model):
        return torch.optim.Adam(port.no_weight_decay_groups(model, WD), lr=LR)

    expected, _ = _torch_end(make)
    with jax.enable_x64(True):
        start = make_model("mlp")
        mask = port.decay_mask(port.params_from_torch(start))
        right = _optax_from(start, jopt.torch_adam(LR, weight_decay=WD, mask=mask))
        wrong = _optax_from(start, jopt.torch_adamw(LR, weight_decay=WD, mask=mask))
    return _difference(right, expected), _difference(wrong, expected)


def _resumed(edit_state) -> tuple[float, float]:
    """torch 10 steps -> port -> optax 10 steps against torch 20; the wrong variant's state
    is ``edit_state(tx, params, carried_state)``."""
    expected, _ = _torch_end(_adamw_policy)
    checkpoint, optimizer = _torch_end(_adamw_policy, HALF)
    with jax.enable_x64(True):
        params = port.params_from_torch(checkpoint)
        tx = port.optimizer_from_torch(optimizer, checkpoint)
        state = port.state_from_torch(optimizer, checkpoint, tx, params)
        run = OptaxRun("mlp", tx)
        right, _ = run.run(params, state, BATCHES_MLP[HALF:])
        wrong, _ = run.run(params, edit_state(tx, params, state), BATCHES_MLP[HALF:])
    return _difference(right, expected), _difference(wrong, expected)


def state_not_carried() -> tuple[float, float]:
    """A fresh ``tx.init(params)`` after 10 torch steps (moments and step count lost)."""
    return _resumed(lambda tx, params, state: tx.init(params))


def step_off_by_one() -> tuple[float, float]:
    """Adam's count one ahead of torch's ``step`` (e.g. counting the step being taken)."""
    def ahead(tx, params, state):
        return jax.tree.map(lambda s: s._replace(count=s.count + 1)
                            if isinstance(s, optax.ScaleByAdamState) else s,
                            state, is_leaf=lambda s: isinstance(s, optax.ScaleByAdamState))

    return _resumed(ahead)


PITFALLS = {
    "the mask dropped (norms and biases decayed)": mask_dropped,
    "optax.adamw with its own default decay (1e-4, torch 1e-2)": optax_default_decay,
    "Adam's coupled decay written as AdamW": coupled_as_decoupled,
    "the state not carried (fresh tx.init after a torch checkpoint)": state_not_carried,
    "Adam's step count off by one": step_off_by_one,
}


@pytest.mark.parametrize("name", list(PITFALLS))
def test_pitfall_leaves_the_torch_trajectory(name):
    right, wrong = PITFALLS[name]()
    assert right <= RIGHT, f"the right port differs by {right:.2e}"
    assert wrong > WRONG, f"the wrong port differs by only {wrong:.2e}"


if __name__ == "__main__":  # the table of docs/porting.md
    for name, measure in PITFALLS.items():
        right, wrong = measure()
        print(f"| {name} | {wrong:.1e} | {right:.1e} |")
