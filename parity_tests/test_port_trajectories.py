"""A live torch optimizer carried to optax and back: 20 steps, resumed either way, exactly.

For SGD (momentum, dampening, nesterov, maximize), Adam (coupled L2), AdamW (torch's default
decay among the draws) and ``wd_torch.optim.SGDW``, each over three parameter groups
(decayed body weights, undecayed biases and norms, a head with its own lr and decay; or a
layout drawn by hypothesis, frozen parameters included), on the float64 ``MLP`` (and the
``ConvText`` model below):

1. 20 torch steps equal 20 steps of ``optimizer_from_torch``'s chain (params and state);
2. 10 torch steps, ``params_from_torch`` + ``state_from_torch``, 10 optax steps equal the
   20 torch steps;
3. 10 optax steps, ``params_to_torch`` + ``state_to_torch`` into a fresh torch optimizer, 10
   torch steps equal the 20 torch steps.

The oracle is ``torch.optim`` itself. Gradients: each framework's own autodiff of the same loss
on the same batches (hypothesis draws), and torch's gradients fed to optax (the explicit
rows of ``test_torch_gradients_fed_to_both``). Tolerance: float64, rtol 1e-12 (atol 1e-12 times
the largest magnitude), every parameter and state tensor; ``step`` exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from parity_tests.test_port_models import (
    BATCHES,
    HALF,
    OptaxRun,
    assert_same_params,
    assert_same_states,
    make_model,
    one_torch_thread,  # noqa: F401  (an autouse fixture)
    optax_state_by_name,
    torch_run,
    torch_state_by_name,
)

torch = pytest.importorskip("torch")
jax = pytest.importorskip("jax")
from torch.optim import lr_scheduler  # noqa: E402

from wd_jax import port  # noqa: E402
from wd_torch.optim import SGDW  # noqa: E402

CLASSES = {"sgd": torch.optim.SGD, "sgdw": SGDW, "adam": torch.optim.Adam,
           "adamw": torch.optim.AdamW}
ROLES = ("decay", "no_decay", "head")
REALISTIC = {
    "mlp": {"body.0.weight": "decay", "body.0.bias": "no_decay", "body.1.weight": "no_decay",
            "body.1.bias": "no_decay", "body.3.weight": "decay", "body.3.bias": "no_decay",
            "head.weight": "head", "head.bias": "head"},
    "conv": {"embed.weight": "decay", "conv.weight": "decay", "conv.bias": "no_decay",
             "norm.weight": "no_decay", "norm.bias": "no_decay", "head.weight": "head",
             "head.bias": "head"},
}
FROZEN_BODY = {**REALISTIC["mlp"], "body.0.weight": "frozen", "body.0.bias": "frozen"}
ONE_PARAM_HEAD = {**REALISTIC["mlp"], "head.bias": "no_decay"}


@dataclass(frozen=True)
class Case:
    """An optimizer over a model: class, keyword defaults, each role's group options, and
    ``layout`` (parameter name -> role, or ``"frozen"``: in no group)."""

    family: str
    defaults: dict
    groups: dict
    layout: dict = field(default_factory=lambda: REALISTIC["mlp"])
    kind: str = "mlp"
    scheduler: tuple | None = None  # (lr_scheduler class, keyword arguments)
    no_grad: tuple = ()  # parameters set to requires_grad=False (frozen inside their group)

    @property
    def sign(self) -> float:
        """-1 with maximize: the model maximizes -loss, the same well-behaved descent."""
        return -1.0 if self.defaults.get("maximize") else 1.0

    def build(self):
        """A fresh model, its torch optimizer (and scheduler, or None)."""
        model = make_model(self.kind)
        for name in self.no_grad:
            model.get_parameter(name).requires_grad_(False)
        named = list(model.named_parameters())
        groups = [{"params": [p for n, p in named if self.layout[n] == role],
                   **self.groups.get(role, {})} for role in ROLES]
        optimizer = CLASSES[self.family]([g for g in groups if g["params"]], **self.defaults)
        scheduler = None
        if self.scheduler is not None:
            cls, kwargs = self.scheduler
            scheduler = cls(optimizer, **kwargs)
        return model, optimizer, scheduler


def check_port(case: Case, grads: str = "own") -> None:
    """The three trips of the module docstring; ``grads``: ``"own"`` or ``"torch"``."""
    batches = BATCHES[case.kind]
    model, optimizer, scheduler = case.build()
    torch_grads = torch_run(model, optimizer, batches, scheduler=scheduler, sign=case.sign)
    expected_state = torch_state_by_name(optimizer, model)

    def fed(start, stop):
        return {"grads": torch_grads[start:stop]} if grads == "torch" else {
            "batches": batches[start:stop]}

    with jax.enable_x64(True):
        # 1. optax from torch's initial state (never stepped: empty torch state), 20 steps
        m0, o0, s0 = case.build()
        params = port.params_from_torch(m0)
        tx = port.optimizer_from_torch(o0, m0, scheduler=s0)
        state = port.state_from_torch(o0, m0, tx, params, scheduler=s0)
        run = OptaxRun(case.kind, tx, case.sign)
        params_10, state_10 = run.run(params, state, **fed(0, HALF))
        params_20, state_20 = run.run(params_10, state_10, **fed(HALF, None))
        assert_same_params(params_20, model, "optax 20")
        assert_same_states(optax_state_by_name(state_20), expected_state, "optax 20")

        # 2. torch 10 steps -> optax 10 steps
        m1, o1, s1 = case.build()
        torch_run(m1, o1, batches[:HALF], scheduler=s1, sign=case.sign)
        params = port.params_from_torch(m1)
        state = port.state_from_torch(o1, m1, tx, params, scheduler=s1)
        params, state = run.run(params, state, **fed(HALF, None))
        assert_same_params(params, model, "torch 10 + optax 10")
        assert_same_states(optax_state_by_name(state), expected_state, "torch 10 + optax 10")

    # 3. optax 10 steps -> torch 10 steps
    m2, o2, s2 = case.build()
    port.params_to_torch(params_10, m2)
    port.state_to_torch(state_10, tx, o2, m2, scheduler=s2)
    torch_run(m2, o2, batches[HALF:], scheduler=s2, sign=case.sign)
    assert_same_params({n: p.detach().numpy() for n, p in m2.named_parameters()}, model,
                       "optax 10 + torch 10")
    assert_same_states(torch_state_by_name(o2, m2), expected_state, "optax 10 + torch 10")
    if scheduler is not None:
        assert s2.last_epoch == scheduler.last_epoch


# ---- hypothesis: hyper-parameters and group layouts --------------------------------------------

NAMES = tuple(REALISTIC["mlp"])
LR = st.floats(1e-3, 0.2)
WD = st.sampled_from([0.0, 0.1]) | st.floats(0.0, 0.5)
LAYOUTS = st.just(REALISTIC["mlp"]) | st.fixed_dictionaries(
    {n: st.sampled_from((*ROLES, "frozen")) for n in NAMES}
).filter(lambda layout: set(layout.values()) != {"frozen"})


@st.composite
def sgd_cases(draw, family):
    nesterov = draw(st.booleans())
    momentum = st.floats(0.1, 0.95) if nesterov else (
        st.sampled_from([0.0, 0.9]) | st.floats(0.0, 0.95))
    defaults = {"lr": draw(LR), "momentum": draw(momentum), "nesterov": nesterov,
                "dampening": 0.0 if nesterov else draw(st.sampled_from([0.0, 0.0, 0.3])),
                "maximize": draw(st.booleans())}
    groups = {"decay": {"weight_decay": draw(WD)}, "no_decay": {"weight_decay": 0.0},
              "head": {"lr": draw(LR), "weight_decay": draw(WD), "momentum": draw(momentum)}}
    return Case(family, defaults, groups, draw(LAYOUTS))


BETAS = st.tuples(st.floats(0.0, 0.95), st.floats(0.9, 0.9999))


@st.composite
def adam_cases(draw, family):
    defaults = {"lr": draw(st.floats(1e-3, 0.05)), "betas": draw(BETAS),
                "eps": draw(st.sampled_from([1e-8, 1e-6])), "maximize": draw(st.booleans())}
    decay = draw(st.none() | WD) if family == "adamw" else draw(WD)
    groups = {"decay": {} if decay is None else {"weight_decay": decay},  # None: torch's default
              "no_decay": {"weight_decay": 0.0},
              "head": {"lr": draw(st.floats(1e-3, 0.05)), "weight_decay": draw(WD),
                       "betas": draw(BETAS)}}
    return Case(family, defaults, groups, draw(LAYOUTS))


SGD_DEFAULTS = {"lr": 0.1, "momentum": 0.9, "dampening": 0.0, "nesterov": False,
                "maximize": False}
SGD_GROUPS = {"decay": {"weight_decay": 0.1}, "no_decay": {"weight_decay": 0.0},
              "head": {"lr": 0.05, "weight_decay": 0.3, "momentum": 0.5}}
ADAM_DEFAULTS = {"lr": 0.01, "betas": (0.9, 0.999), "eps": 1e-8}
ADAM_GROUPS = {"decay": {"weight_decay": 0.1}, "no_decay": {"weight_decay": 0.0},
               "head": {"lr": 0.02, "weight_decay": 0.3, "betas": (0.8, 0.99)}}
NO_DECAY = {"decay": {"weight_decay": 0.0}, "no_decay": {"weight_decay": 0.0},
            "head": {"lr": 0.05, "weight_decay": 0.0}}
ROWS = {
    # family: the realistic case, then zero decay, a frozen body layer, a one-parameter group
    "sgd": [Case("sgd", SGD_DEFAULTS, SGD_GROUPS),
            Case("sgd", {**SGD_DEFAULTS, "nesterov": True}, NO_DECAY),
            Case("sgd", {**SGD_DEFAULTS, "dampening": 0.3, "maximize": True}, SGD_GROUPS,
                 FROZEN_BODY),
            Case("sgd", {**SGD_DEFAULTS, "momentum": 0.0}, SGD_GROUPS, ONE_PARAM_HEAD)],
    "sgdw": [Case("sgdw", SGD_DEFAULTS, SGD_GROUPS),
             Case("sgdw", SGD_DEFAULTS, NO_DECAY),
             Case("sgdw", {**SGD_DEFAULTS, "dampening": 0.3}, SGD_GROUPS, FROZEN_BODY),
             Case("sgdw", {**SGD_DEFAULTS, "nesterov": True, "maximize": True}, SGD_GROUPS,
                  ONE_PARAM_HEAD)],
    "adam": [Case("adam", ADAM_DEFAULTS, ADAM_GROUPS),
             Case("adam", ADAM_DEFAULTS, NO_DECAY),
             Case("adam", {**ADAM_DEFAULTS, "maximize": True}, ADAM_GROUPS, FROZEN_BODY),
             Case("adam", ADAM_DEFAULTS, ADAM_GROUPS, ONE_PARAM_HEAD)],
    "adamw": [Case("adamw", ADAM_DEFAULTS, {**ADAM_GROUPS, "decay": {}}),  # torch's 1e-2
              Case("adamw", ADAM_DEFAULTS, NO_DECAY),
              Case("adamw", ADAM_DEFAULTS, ADAM_GROUPS, FROZEN_BODY),
              Case("adamw", ADAM_DEFAULTS, ADAM_GROUPS, ONE_PARAM_HEAD)],
}
STRATEGIES = {"sgd": sgd_cases("sgd"), "sgdw": sgd_cases("sgdw"), "adam": adam_cases("adam"),
              "adamw": adam_cases("adamw")}
# 0.1 to 0.3 s an example (three trips): 15 draws per family beside the four explicit rows.
DRAWS = settings(max_examples=15, deadline=None, derandomize=True)


def _port_test(family: str):
    @DRAWS
    @given(case=STRATEGIES[family])
    def test(case):
        check_port(case)

    for row in reversed(ROWS[family]):
        test = example(case=row)(test)
    test.__doc__ = f"{family}: the three trips, hypothesis' draws and the explicit rows."
    return test


test_sgd_port = _port_test("sgd")
test_sgdw_port = _port_test("sgdw")
test_adam_port = _port_test("adam")
test_adamw_port = _port_test("adamw")


@pytest.mark.parametrize("family", sorted(ROWS))
def test_torch_gradients_fed_to_both(family):
    """The optax chain fed the gradients torch computed: the optimizers alone under test."""
    check_port(ROWS[family][0], grads="torch")


@pytest.mark.parametrize("family", sorted(ROWS))
def test_embedding_and_conv1d_model(family):
    case = ROWS[family][0]
    check_port(replace(case, kind="conv", layout=REALISTIC["conv"]))


def test_adam_with_decoupled_weight_decay_is_adamw():
    """``Adam(decoupled_weight_decay=True)`` is AdamW: ported as ``torch_adamw``."""
    check_port(Case("adam", {**ADAM_DEFAULTS, "decoupled_weight_decay": True}, ADAM_GROUPS))


@pytest.mark.parametrize("implementation", [{"foreach": True}, {"foreach": False},
                                            {"fused": True}], ids=str)
@pytest.mark.parametrize("family", ["sgd", "adamw"])
def test_foreach_and_fused_are_accepted(family, implementation):
    row = ROWS[family][0]
    check_port(replace(row, defaults={**row.defaults, **implementation}), grads="torch")


@pytest.mark.parametrize("scheduler", [
    (lr_scheduler.StepLR, {"step_size": 3, "gamma": 0.5}),
    (lr_scheduler.CosineAnnealingLR, {"T_max": 24, "eta_min": 1e-3}),
], ids=["step", "cosine"])
@pytest.mark.parametrize("family", ["sgd", "adamw"])
def test_scheduler_is_carried(family, scheduler):
    """The schedule's position travels too: optax's count is the scheduler's last_epoch."""
    check_port(replace(ROWS[family][0], scheduler=scheduler))


@pytest.mark.parametrize("family", ["sgd", "adam"])
def test_a_parameter_without_gradient_inside_a_group_is_frozen(family):
    """``requires_grad=False`` inside a group: torch never gets its gradient, so never steps
    it; the port labels it frozen (the JAX loss still differentiates it)."""
    check_port(replace(ROWS[family][2], no_grad=("body.3.weight", "head.bias")))


def test_named_state_is_torch_state():
    """``torch_named_state`` reads the converted state under torch's keys, equal to torch's."""
    case = ROWS["sgd"][2]  # dampening: the hand-written momentum
    model, optimizer, _ = case.build()
    torch_run(model, optimizer, BATCHES["mlp"][:3], sign=case.sign)
    with jax.enable_x64(True):
        params = port.params_from_torch(model)
        tx = port.optimizer_from_torch(optimizer, model)
        state = port.state_from_torch(optimizer, model, tx, params)
        named = port.torch_named_state(state, optimizer, model)
    named = {n: entries for n, entries in named.items() if entries}
    assert_same_states(named, torch_state_by_name(optimizer, model), "torch_named_state")
    assert "body.0.weight" not in named  # frozen: no state, as in torch


@pytest.mark.parametrize("family", ["sgd", "adamw"])
def test_never_stepped_state_goes_back_empty(family):
    """A fresh optax state written to torch leaves torch's lazy state to its first step."""
    case = replace(ROWS[family][0], defaults={**ROWS[family][0].defaults, "dampening": 0.3}
                   ) if family == "sgd" else ROWS[family][0]
    model, optimizer, _ = case.build()
    with jax.enable_x64(True):
        params = port.params_from_torch(model)
        tx = port.optimizer_from_torch(optimizer, model)
        port.state_to_torch(tx.init(params), tx, optimizer, model)
    assert not any(optimizer.state.values())
