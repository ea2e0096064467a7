"""The usual weight-decay policy, twice: torch parameter groups and an optax mask.

``no_weight_decay_groups`` (torch) and ``decay_mask`` (optax) must select the same parameters
(checked name by name on both models, for drawn skip lists, and on a norm layer whose weight
is not 1-d); the expected selections are written out by hand. Then AdamW over the groups in
torch and ``torch_adamw(mask=decay_mask(params))`` in optax take the same 20 steps.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from parity_tests.test_port_models import (
    BATCHES,
    OptaxRun,
    assert_same_params,
    make_model,
    one_torch_thread,  # noqa: F401  (an autouse fixture)
    torch_run,
)

torch = pytest.importorskip("torch")
jax = pytest.importorskip("jax")
from torch import nn  # noqa: E402

from wd_jax import optim as jopt  # noqa: E402
from wd_jax import port  # noqa: E402

DECAYED = {  # the policy by hand: 2-d and larger weights, not biases, not norms
    "mlp": {"body.0.weight", "body.3.weight", "head.weight"},
    "conv": {"embed.weight", "conv.weight", "head.weight"},
}


def selections(model, skip=()):
    """(names in the decayed torch group, names the mask decays) of one model."""
    names = {id(p): n for n, p in model.named_parameters()}
    groups = port.no_weight_decay_groups(model, 0.1, skip=skip)
    in_group = {names[id(p)] for g in groups if g["weight_decay"] == 0.1 for p in g["params"]}
    with jax.enable_x64(True):
        mask = port.decay_mask(port.params_from_torch(model), skip=skip)
    return in_group, {n for n, decays in mask.items() if decays}


@pytest.mark.parametrize("kind", sorted(DECAYED))
def test_groups_and_mask_select_the_policy(kind):
    model = make_model(kind)
    groups = port.no_weight_decay_groups(model, 0.1)
    assert [g["weight_decay"] for g in groups] == [0.1, 0.0]
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))
    in_group, masked = selections(model)
    assert in_group == masked == DECAYED[kind]


MLP_SKIPS = ["body.0.weight", "body.0", "body", "head", "head.weight", "body.3", "body.1"]


@settings(max_examples=20, deadline=None, derandomize=True)
@given(skip=st.lists(st.sampled_from(MLP_SKIPS), unique=True, max_size=3))
def test_groups_and_mask_agree_for_any_skip_list(skip):
    in_group, masked = selections(make_model("mlp"), skip)
    assert in_group == masked
    expected = {n for n in DECAYED["mlp"]
                if not any(n == s or n.startswith(s + ".") for s in skip)}
    assert masked == expected


def test_a_norm_with_a_2d_weight_is_skipped_by_its_module_name():
    """``LayerNorm((2, 4))`` has a 2-d weight; name its module in ``skip``."""
    model = nn.Sequential(nn.Linear(8, 8, dtype=torch.float64),
                          nn.LayerNorm((2, 4), dtype=torch.float64))
    assert selections(model) == ({"0.weight", "1.weight"},) * 2
    assert selections(model, skip=["1"]) == ({"0.weight"},) * 2


def test_empty_group_is_left_out():
    model = nn.Linear(3, 1, bias=False, dtype=torch.float64)
    groups = port.no_weight_decay_groups(model, 0.5)
    assert len(groups) == 1 and groups[0]["weight_decay"] == 0.5


def test_torch_groups_and_optax_mask_take_the_same_steps():
    """AdamW over ``no_weight_decay_groups`` = ``torch_adamw(mask=decay_mask(params))``."""
    model = make_model("mlp")
    start = make_model("mlp")
    torch_run(model, torch.optim.AdamW(port.no_weight_decay_groups(model, 0.3), lr=0.01),
              BATCHES["mlp"])
    with jax.enable_x64(True):
        params = port.params_from_torch(start)
        tx = jopt.torch_adamw(0.01, weight_decay=0.3, mask=port.decay_mask(params))
        params, _ = OptaxRun("mlp", tx).run(params, tx.init(params), BATCHES["mlp"])
    assert_same_params(params, model, "policy")
    assert not np.array_equal(np.asarray(params["head.weight"]),
                              start.head.weight.detach().numpy())
