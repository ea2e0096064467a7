"""Parameters without a gradient: torch skips them; optax needs ``selective_transform``.

The model gets one more tensor, ``unused``, that the loss never reads. In torch its ``.grad``
stays ``None``, so every ``torch.optim`` optimizer leaves it untouched and keeps no state
for it. ``jax.grad`` returns zeros for it instead, and optax decays every leaf it is given:
the plain builder shrinks ``unused`` (pitfall 7). ``optax.selective_transform(tx,
freeze_mask=...)`` routes it to ``set_to_zero`` and restores torch's behaviour exactly.
A torch gradient of zeros (not ``None``) is decayed like the plain optax chain.
"""

from __future__ import annotations

import numpy as np
import pytest

from parity_tests.test_optim_parity import (
    PARAMS0,
    SHAPES,
    run_jax,
    run_torch,
    torch_groups,
)
from wd_core.tolerances import assert_close

torch = pytest.importorskip("torch")
optax = pytest.importorskip("optax")

from wd_jax import optim as jopt  # noqa: E402
from wd_torch.optim import SGDW  # noqa: E402

WITH_UNUSED = {**PARAMS0, "unused": np.array([0.5, -1.0, 2.0])}
DECAY_MASK = {"w1": True, "b1": False, "w2": True, "b2": False, "unused": True}
FREEZE_MASK = {name: name == "unused" for name in WITH_UNUSED}
CASES = {
    # name: (torch optimizer over groups, optax builder)
    "sgd": (lambda g: torch.optim.SGD(g, lr=0.1, momentum=0.9, weight_decay=0.3),
            lambda mask: jopt.torch_sgd(0.1, momentum=0.9, weight_decay=0.3, mask=mask)),
    "sgdw": (lambda g: SGDW(g, lr=0.1, momentum=0.9, dampening=0.2, weight_decay=0.3),
             lambda mask: jopt.sgdw(0.1, momentum=0.9, dampening=0.2, weight_decay=0.3,
                                    mask=mask)),
    "adam": (lambda g: torch.optim.Adam(g, lr=0.01, weight_decay=0.3),
             lambda mask: jopt.torch_adam(0.01, weight_decay=0.3, mask=mask)),
    "adamw": (lambda g: torch.optim.AdamW(g, lr=0.01, weight_decay=0.3),
              lambda mask: jopt.torch_adamw(0.01, weight_decay=0.3, mask=mask)),
}


def _zero_unused_grad(loss):
    """A torch loss that also gives ``unused`` a gradient of zeros (not ``None``)."""
    return lambda params, X_b, y_b, sign=1.0: loss(params, X_b, y_b, sign) + 0 * params[
        "unused"].sum()


def _run_torch(name, loss=None):
    from parity_tests.test_optim_parity import torch_loss

    make, _ = CASES[name]
    return run_torch(lambda params: make(torch_groups(params, DECAY_MASK)), "float64",
                     params0=WITH_UNUSED, loss=loss or torch_loss)


@pytest.mark.parametrize("name", sorted(CASES))
def test_torch_skips_a_parameter_without_grad_and_selective_transform_matches(name):
    t_params, t_state, _ = _run_torch(name)
    np.testing.assert_array_equal(t_params["unused"], WITH_UNUSED["unused"])
    assert all("unused" not in per_param for per_param in t_state.values())

    _, build = CASES[name]
    frozen = optax.selective_transform(build(DECAY_MASK), freeze_mask=FREEZE_MASK)
    j_params, j_state = run_jax(frozen, "float64", params0=WITH_UNUSED)
    np.testing.assert_array_equal(j_params["unused"], WITH_UNUSED["unused"])
    for param in SHAPES:
        assert_close(j_params[param], t_params[param], "float64", err_msg=param)
    for key, per_param in t_state.items():
        for param, value in per_param.items():
            mine = j_state[key] if key == "step" else j_state[key][param]
            assert_close(mine, value, "float64", err_msg=f"{key} of {param}")


@pytest.mark.parametrize("name", sorted(CASES))
def test_plain_optax_chain_decays_it_like_torch_with_a_zero_grad(name):
    from parity_tests.test_optim_parity import torch_loss

    _, build = CASES[name]
    j_params, _ = run_jax(build(DECAY_MASK), "float64", params0=WITH_UNUSED)
    assert not np.allclose(j_params["unused"], WITH_UNUSED["unused"])
    t_params, _, _ = _run_torch(name, loss=_zero_unused_grad(torch_loss))
    for param in WITH_UNUSED:
        assert_close(j_params[param], t_params[param], "float64", err_msg=param)
