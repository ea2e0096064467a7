"""Set-ups that a port could get silently wrong: each is exact, or refused with the reason.

Exact (float64, rtol 1e-12 against torch, or bit for bit where nothing is computed):

* parameters frozen after training (``requires_grad_(False)`` on a layer with Adam state)
  keep their torch state through ``state_from_torch`` + ``state_to_torch``;
* the state is written back with the parameter's strides (a ``channels_last`` conv, a
  transposed parameter), which torch's ``fused=True`` kernels rely on: the round trip leaves
  torch's state bit-identical and its next steps unchanged;
* the schedule continues from the group's current lr: an optimizer resumed with
  ``load_state_dict`` before a new scheduler (an lr changed by hand and two schedulers on one
  optimizer: ``test_port_schedulers.py``);
* a group frozen by its learning rate (``lr=0``) under a scheduler;
* ``AdamW`` is recognised by its class, on a torch whose groups have no
  ``decoupled_weight_decay`` key.

Refused: a parameter the optimizer holds twice, complex parameters, hyper-parameters held as
tensors or numpy float32, a scheduler built before ``add_param_group``.
"""

from __future__ import annotations

import copy
import warnings

import numpy as np
import pytest

from parity_tests.test_port_models import (
    BATCHES,
    OptaxRun,
    assert_same_params,
    make_model,
    one_torch_thread,  # noqa: F401  (an autouse fixture)
    torch_run,
)
from parity_tests.test_port_refusals import refused

torch = pytest.importorskip("torch")
jax = pytest.importorskip("jax")
from torch import nn  # noqa: E402
from torch.optim import lr_scheduler  # noqa: E402

from wd_jax import port  # noqa: E402


def state_copy(optimizer) -> dict:
    """``{param index: {key: tensor clone}}`` of torch's state."""
    params = [p for g in optimizer.param_groups for p in g["params"]]
    return {i: {k: v.clone() for k, v in optimizer.state[p].items()}
            for i, p in enumerate(params) if optimizer.state.get(p)}


def assert_bit_identical(actual: dict, expected: dict) -> None:
    assert sorted(actual) == sorted(expected)
    for index, entries in expected.items():
        assert sorted(actual[index]) == sorted(entries), index
        for key, value in entries.items():
            got = actual[index][key]
            assert got.dtype == value.dtype and got.stride() == value.stride(), (index, key)
            assert torch.equal(got, value), (index, key)


def round_trip(model, optimizer, scheduler=None) -> None:
    """``state_from_torch`` then ``state_to_torch``, no step between."""
    with jax.enable_x64(True):
        params = port.params_from_torch(model)
        tx = port.optimizer_from_torch(optimizer, model, scheduler=scheduler)
        state = port.state_from_torch(optimizer, model, tx, params, scheduler=scheduler)
        port.state_to_torch(state, tx, optimizer, model, scheduler=scheduler)


# ---- exact -------------------------------------------------------------------------------------

@pytest.mark.parametrize("cls", [torch.optim.Adam, torch.optim.AdamW, torch.optim.SGD])
def test_parameters_frozen_after_training_keep_their_state(cls):
    options = {"momentum": 0.9} if cls is torch.optim.SGD else {}
    model = make_model("mlp")
    optimizer = cls(model.parameters(), lr=0.01, **options)
    torch_run(model, optimizer, BATCHES["mlp"][:3])
    model.body[0].requires_grad_(False)
    before = state_copy(optimizer)
    reference = copy.deepcopy((model, optimizer))
    round_trip(model, optimizer)
    assert_bit_identical(state_copy(optimizer), before)
    torch_run(model, optimizer, BATCHES["mlp"][3:6])
    torch_run(*reference, BATCHES["mlp"][3:6])
    for (name, p), q in zip(model.named_parameters(), reference[0].parameters(), strict=True):
        assert torch.equal(p, q), name
    assert_bit_identical(state_copy(optimizer), state_copy(reference[1]))


class ConvNet(nn.Module):
    """A 2-d conv in ``channels_last`` and a transposed (non-contiguous) linear weight."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, dtype=torch.float64).to(
            memory_format=torch.channels_last)
        self.weight = nn.Parameter(torch.randn(4, 5, dtype=torch.float64).t())  # (5, 4)

    def forward(self, x):
        return (self.conv(x).mean((2, 3)) @ self.weight.t()).sum(1)


def conv_steps(model, optimizer, steps, seed):
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        optimizer.zero_grad()
        x = torch.tensor(rng.standard_normal((2, 3, 6, 6))).to(memory_format=torch.channels_last)
        (model(x) ** 2).mean().backward()
        optimizer.step()


@pytest.mark.parametrize("make", [
    lambda p: torch.optim.AdamW(p, lr=0.01, fused=True),
    lambda p: torch.optim.Adam(p, lr=0.01, weight_decay=0.1, fused=True),
    lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, weight_decay=0.1, fused=True),
    lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, foreach=True),
], ids=["AdamW-fused", "Adam-fused", "SGD-fused", "SGD-foreach"])
def test_state_goes_back_with_the_parameters_strides(make):
    torch.manual_seed(0)
    model = ConvNet()
    assert not model.conv.weight.is_contiguous() and not model.weight.is_contiguous()
    optimizer = make(model.parameters())
    conv_steps(model, optimizer, 3, seed=1)
    before = state_copy(optimizer)
    reference = copy.deepcopy((model, optimizer))
    round_trip(model, optimizer)
    assert_bit_identical(state_copy(optimizer), before)
    conv_steps(model, optimizer, 4, seed=2)
    conv_steps(*reference, 4, seed=2)
    for (name, p), q in zip(model.named_parameters(), reference[0].parameters(), strict=True):
        assert torch.equal(p, q), name


def resumed_with_a_new_scheduler():
    """SGD trained 5 steps under StepLR, its state loaded into a new optimizer (lr decayed to
    0.025, ``initial_lr`` kept), then a new ExponentialLR on it."""
    model = make_model("mlp")
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    scheduler = lr_scheduler.StepLR(optimizer, step_size=2, gamma=0.5)
    torch_run(model, optimizer, BATCHES["mlp"][:5], scheduler=scheduler)
    resumed = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    resumed.load_state_dict(optimizer.state_dict())
    return model, resumed, lr_scheduler.ExponentialLR(resumed, gamma=0.9)


def test_a_new_scheduler_on_a_resumed_optimizer_continues_from_its_lr():
    """torch's chainable schedulers continue from the loaded lr, and so does the port."""
    model, optimizer, scheduler = resumed_with_a_new_scheduler()
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.025, rel=1e-15)
    assert scheduler.base_lrs == [0.1]
    reference = resumed_with_a_new_scheduler()
    torch_run(*reference[:2], BATCHES["mlp"][5:], scheduler=reference[2])
    with jax.enable_x64(True):
        params = port.params_from_torch(model)
        tx = port.optimizer_from_torch(optimizer, model, scheduler=scheduler)
        state = port.state_from_torch(optimizer, model, tx, params, scheduler=scheduler)
        params, _ = OptaxRun("mlp", tx).run(params, state, BATCHES["mlp"][5:])
    assert_same_params(params, reference[0], "resumed optimizer, new scheduler")


def lr_zero_body(cls):
    model = make_model("mlp")
    options = {"momentum": 0.9} if cls is torch.optim.SGD else {}
    optimizer = cls([{"params": model.body.parameters(), "lr": 0.0},
                     {"params": model.head.parameters()}], lr=0.05, **options)
    return model, optimizer, lr_scheduler.CosineAnnealingLR(optimizer, T_max=10.0)


@pytest.mark.parametrize("cls", [torch.optim.SGD, torch.optim.AdamW])
def test_a_group_frozen_by_a_zero_lr_is_ported(cls):
    model, optimizer, scheduler = lr_zero_body(cls)
    body = [p.detach().clone() for p in model.body.parameters()]
    reference = lr_zero_body(cls)
    torch_run(*reference[:2], BATCHES["mlp"], scheduler=reference[2])
    with jax.enable_x64(True):
        params = port.params_from_torch(model)
        tx = port.optimizer_from_torch(optimizer, model, scheduler=scheduler)
        state = port.state_from_torch(optimizer, model, tx, params, scheduler=scheduler)
        params, _ = OptaxRun("mlp", tx).run(params, state, BATCHES["mlp"])
    assert_same_params(params, reference[0], "lr=0 group")
    for p, q in zip(reference[0].body.parameters(), body, strict=True):
        assert torch.equal(p, q)  # lr 0, and AdamW's decay is lr * wd: 0 too


def test_adamw_is_recognised_by_its_class():
    """On a torch whose AdamW groups carry no ``decoupled_weight_decay`` key (older ones),
    the port still decouples the decay."""
    model = make_model("mlp")
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.01, weight_decay=0.5)
    with jax.enable_x64(True):
        params = port.params_from_torch(model)
        grads = jax.tree.map(lambda v: v * 0 + 1.0, params)
        expected = port.optimizer_from_torch(optimizer, model)
        del optimizer.defaults["decoupled_weight_decay"]
        for group in optimizer.param_groups:
            del group["decoupled_weight_decay"]
        tx = port.optimizer_from_torch(optimizer, model)
        got, _ = tx.update(grads, tx.init(params), params)
        want, _ = expected.update(grads, expected.init(params), params)
    for name in params:
        np.testing.assert_array_equal(np.asarray(got[name]), np.asarray(want[name]))


# ---- refused -------------------------------------------------------------------------------

def test_a_tied_weight_listed_twice_is_refused():
    model = make_model("mlp")
    weight = model.head.weight
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "optimizer contains a parameter group with "
                                "duplicate parameters", UserWarning)
        optimizer = torch.optim.SGD([weight, weight, model.head.bias], lr=0.1)
    refused(r"parameter 'head.weight' is in the optimizer twice \(groups 0 and 0\): torch "
            r"steps it once per appearance",
            lambda: port.optimizer_from_torch(optimizer, model))


def test_a_parameter_in_two_groups_is_refused():
    model = make_model("mlp")
    optimizer = torch.optim.AdamW([{"params": model.body.parameters()},
                                   {"params": model.head.parameters()}], lr=0.01)
    optimizer.param_groups[1]["params"].append(model.body[0].weight)
    refused(r"parameter 'body.0.weight' is in the optimizer twice \(groups 0 and 1\)",
            lambda: port.optimizer_from_torch(optimizer, model))


@pytest.mark.parametrize("cls", [torch.optim.Adam, torch.optim.AdamW, torch.optim.SGD])
def test_complex_parameters_are_refused(cls):
    model = nn.Linear(3, 2, dtype=torch.complex128)
    optimizer = cls(model.parameters(), lr=0.01)
    refused(r"parameter group 0: parameters \['weight', 'bias'\] are complex; torch's "
            r"optimizers step them as view_as_real",
            lambda: port.optimizer_from_torch(optimizer, model))


@pytest.mark.parametrize("cls, options, key", [
    (torch.optim.SGD, {"lr": torch.tensor(0.01)}, "lr"),
    (torch.optim.SGD, {"lr": np.float32(0.01)}, "lr"),
    (torch.optim.SGD, {"lr": 0.1, "weight_decay": np.float32(0.1)}, "weight_decay"),
    (torch.optim.Adam, {"lr": 0.01, "betas": (torch.tensor(0.9), torch.tensor(0.999))},
     r"betas\[0\]"),
    (torch.optim.AdamW, {"lr": 0.01, "eps": np.float32(1e-8)}, "eps"),
], ids=["tensor-lr", "float32-lr", "float32-decay", "tensor-betas", "float32-eps"])
def test_float32_and_tensor_hyperparameters_are_refused(cls, options, key):
    model = make_model("mlp")
    optimizer = cls(model.parameters(), **options)
    refused(rf"parameter group 0: {key}=.* is a (numpy float32|torch.float32 tensor); torch "
            rf"computes with it in that dtype and the port in float64",
            lambda: port.optimizer_from_torch(optimizer, model))


def test_np_float64_hyperparameters_are_accepted():
    model = make_model("mlp")
    optimizer = torch.optim.SGD(model.parameters(), lr=np.float64(0.1), momentum=0.9)
    port.optimizer_from_torch(optimizer, model)


def test_a_scheduler_built_before_add_param_group_is_refused():
    model = make_model("mlp")
    optimizer = torch.optim.SGD(model.body.parameters(), lr=0.1)
    scheduler = lr_scheduler.CosineAnnealingLR(optimizer, T_max=10)
    optimizer.add_param_group({"params": model.head.parameters()})
    refused(r"the CosineAnnealingLR has 1 base_lrs for 2 parameter groups: a group was added "
            r"\(add_param_group\) after the scheduler was built",
            lambda: port.optimizer_from_torch(optimizer, model, scheduler=scheduler))


# ---- several optimizers over one module ------------------------------------------------------

def two_optimizers():
    """SGD (nesterov) on the body under a cosine schedule and AdamW on the head under none:
    the way Muon is paired with AdamW, with two optimizers any torch has."""
    model = make_model("mlp")
    decayed, others = port.no_weight_decay_groups(model.body, 0.1)
    sgd = torch.optim.SGD([decayed, others], lr=0.05, momentum=0.9, nesterov=True)
    adamw = torch.optim.AdamW(model.head.parameters(), lr=0.01)
    return model, [sgd, adamw], [lr_scheduler.CosineAnnealingLR(sgd, T_max=20), None]


def test_a_list_of_optimizers_over_one_module_ports_as_one_partition():
    from parity_tests.port_runs import check_round_trips

    model, optimizers, _ = two_optimizers()
    assert port.param_labels(optimizers, model)["head.weight"] == "group_2"
    check_round_trips(two_optimizers, steps=20, mid=7)


def test_a_parameter_in_two_optimizers_is_refused():
    model = make_model("mlp")
    optimizers = [torch.optim.SGD(model.parameters(), lr=0.1),
                  torch.optim.AdamW(model.head.parameters(), lr=0.01)]
    refused(r"parameter 'head.weight' is in the optimizer twice \(groups 0 and 1\)",
            lambda: port.optimizer_from_torch(optimizers, model))
    model, optimizers, schedulers = two_optimizers()
    refused(r"with 2 optimizers, scheduler= is a list with one entry per optimizer",
            lambda: port.optimizer_from_torch(optimizers, model, scheduler=schedulers[0]))
