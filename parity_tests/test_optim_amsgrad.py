"""``Adam`` / ``AdamW`` with ``amsgrad=True`` (:func:`wd_jax.optim.adam.scale_by_torch_amsgrad`)
against ``torch.optim`` itself, and their port.

torch keeps the maximum of the raw second moment and bias-corrects it with the current step,
``denom = sqrt(max(vmax, v_t))/sqrt(1 - b2**t) + eps``; ``optax.amsgrad`` keeps the maximum of
the bias-corrected moment. On the MLP of ``test_port_models`` with two groups (the policy's
decayed weights; biases and norms undecayed) and drawn N(0, 1) gradients, float64:

- the builders alone, 50 steps, hypothesis over the hyper-parameters (decay > 0 on the first
  group always, ``maximize``, ``foreach`` / ``fused`` / the default, Adam's
  ``decoupled_weight_decay``): parameters and the state key by key within rtol 1e-12;
- the port (``check_round_trips``: from the start, mid-run, back), with a scheduler that
  cycles beta1 too; ``port-check`` exits 0 on a trained optimizer;
- optax's namesake measured: :func:`naive_error`, far above 1e-12.
"""

from __future__ import annotations

import textwrap
from functools import partial

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from parity_tests import optim_checks
from parity_tests.test_port_models import one_torch_thread  # noqa: F401
from wd_core.tolerances import assert_close

torch = pytest.importorskip("torch")
jax = pytest.importorskip("jax")
import jax.numpy as jnp  # noqa: E402
import optax  # noqa: E402

from wd_jax.optim import PORTS  # noqa: E402
from wd_jax.optim.adam import ScaleByTorchAmsgradState, torch_adam  # noqa: E402
from wd_jax.optim.adamw import torch_adamw  # noqa: E402
from wd_jax.optim.registry import states_of  # noqa: E402

STEPS = 50
CLASSES = {"Adam": torch.optim.Adam, "AdamW": torch.optim.AdamW}
IMPLEMENTATIONS = ({}, {"foreach": False}, {"foreach": True}, {"fused": True})
#: torch's state key -> the field of ``ScaleByTorchAmsgradState`` that holds it (the same name)
FIELDS = {key: key for key in ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")}


def torch_optimizer(cls: str, model, *, weight_decay, implementation=(), **options):
    """``cls`` with ``amsgrad=True`` over the policy's two groups (``weight_decay`` on the
    first, 0 on the second)."""
    return optim_checks.two_group_optimizer(CLASSES[cls], model, weight_decay=weight_decay,
                                            implementation=implementation, amsgrad=True, **options)


def builder(cls: str, decoupled_weight_decay: bool = False):
    """The builder of a group of ``cls``: AdamW's rule for AdamW or a decoupled Adam."""
    return torch_adamw if cls == "AdamW" or decoupled_weight_decay else torch_adam


ARGS = st.fixed_dictionaries({
    "cls": st.sampled_from(sorted(CLASSES)),
    "lr": st.floats(1e-4, 0.05),
    "betas": st.tuples(st.floats(0.0, 0.99), st.floats(0.5, 0.9999)),
    "eps": st.floats(1e-10, 1e-6),
    "weight_decay": st.floats(1e-3, 1.0),
    "maximize": st.booleans(),
    "implementation": st.sampled_from(range(len(IMPLEMENTATIONS))),
    "decoupled_weight_decay": st.booleans(),
})


@settings(max_examples=10, deadline=None, derandomize=True)
@given(args=ARGS)
def test_builders_match_torch_amsgrad_params_and_state(args):
    """50 steps of ``torch_adam`` / ``torch_adamw(amsgrad=True)`` equal torch's, float64:
    every parameter and every state entry (``step`` exactly)."""
    args = dict(args)
    cls, implementation = args.pop("cls"), IMPLEMENTATIONS[args.pop("implementation")]
    decoupled = args.pop("decoupled_weight_decay") and cls == "Adam"
    model, optimizer, params, state = optim_checks.builder_run(
        partial(torch_optimizer, cls, implementation=implementation,
                **({"decoupled_weight_decay": True} if decoupled else {}), **args),
        partial(builder(cls, decoupled), **args, amsgrad=True), op_by_op=False)
    (amsgrad,) = states_of(state, ScaleByTorchAmsgradState)
    assert int(amsgrad.count) == STEPS
    optim_checks.assert_params_and_state_fields(params, amsgrad, model, optimizer, FIELDS, STEPS)


@pytest.mark.parametrize(("cls", "options", "scheduled"), [
    ("Adam", {"lr": 0.01, "weight_decay": 0.3}, False),
    ("Adam", {"lr": 0.01, "weight_decay": 0.3, "decoupled_weight_decay": True,
              "maximize": True}, False),
    ("AdamW", {"lr": 0.01, "weight_decay": 0.1, "betas": (0.8, 0.99), "foreach": True},
     False),
    ("AdamW", {"lr": 0.01, "weight_decay": 0.1}, True),
], ids=["Adam", "Adam-decoupled-maximize", "AdamW-foreach", "AdamW-OneCycleLR"])
def test_the_port_round_trips_amsgrad(cls, options, scheduled):
    """optimizer_from_torch / state_from_torch / state_to_torch, both ways, key by key
    (``max_exp_avg_sq`` included); OneCycleLR drives the lr and cycles beta1 through the
    injected AMSGrad transform."""
    optim_checks.check_two_group_round_trips(partial(torch_optimizer, cls, **options),
                                             optim_checks.one_cycle if scheduled else None)


FACTORY = textwrap.dedent('''
    import torch

    from parity_tests.optim_checks import stepped_three_times
    from parity_tests.test_port_models import make_model
    from wd_jax import port


    def trained_amsgrad():
        """AdamW(amsgrad=True) over two groups, stepped three times."""
        model = make_model("mlp")
        return stepped_three_times(model, torch.optim.AdamW(
            port.no_weight_decay_groups(model, 0.1), lr=0.01, amsgrad=True))
''')


def test_port_check_exits_0_on_a_trained_amsgrad_optimizer(tmp_path, monkeypatch, capsys):
    out = optim_checks.port_check_output(tmp_path, monkeypatch, capsys, FACTORY,
                                         "amsgrad_factories:trained_amsgrad")
    assert "state max_exp_avg_sq body.0.weight" in out and "BEYOND" not in out


@pytest.mark.parametrize("cls", sorted(CLASSES))
@pytest.mark.parametrize("option", ["capturable", "differentiable"])
def test_options_without_a_twin_stay_refused_with_amsgrad(cls, option):
    optim_checks.assert_refused_without_a_twin(partial(torch_optimizer, cls, weight_decay=0.1),
                                               option)


# ---- optax's namesake ----------------------------------------------------------------------

NAIVE = {"lr": 0.01, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.1,
         "maximize": False}


def port_error(make_tx, cls: str = "Adam", steps: int = STEPS, **options) -> float:
    """The relative error (``optim_checks.relative_error``) after ``steps`` drawn-gradient
    steps of ``make_tx(weight_decay) -> tx`` per group (the policy's two groups, decay on the
    first) against torch's ``cls(**NAIVE, **options, amsgrad=True)``, float64."""
    hyper = {**NAIVE, **options}
    return optim_checks.port_error(partial(torch_optimizer, cls, **hyper), make_tx,
                                   hyper["weight_decay"], steps)


def naive_error(steps: int = STEPS, cls: str = "Adam") -> float:
    """optax's namesake (the registry's ``naive``: ``optax.amsgrad`` after
    ``add_decayed_weights`` for Adam; ``scale_by_amsgrad`` in ``adamw``'s chain for AdamW)
    against torch's ``cls(lr=0.01, weight_decay=0.1, amsgrad=True)``: relative error of the
    parameters after ``steps`` steps."""
    naive = PORTS[f"torch.optim.{cls}"].naive
    return port_error(optim_checks.group_tx(naive, NAIVE, amsgrad=True), cls, steps)


def twin_error(steps: int = STEPS, cls: str = "Adam") -> float:
    """The same error of the exact twin (the builder), for the docs' table."""
    return port_error(optim_checks.group_tx(builder(cls), NAIVE, amsgrad=True), cls, steps)


@pytest.mark.parametrize("cls", sorted(CLASSES))
def test_optax_namesake_is_not_torch_amsgrad_and_the_twin_is(cls):
    """optax.amsgrad's maximum of the bias-corrected moment trains another model: its error
    after 50 steps is far above 1e-12; the twin's is within it."""
    assert naive_error(cls=cls) > 1e-4
    assert twin_error(cls=cls) < 1e-12


def test_the_two_maxima_differ_from_the_first_steps():
    """Why: with v_1 = (1-b2) g_1**2, optax keeps max(v_t/(1-b2**t)) = g_1**2 after step 1,
    torch sqrt(max(v_t))/sqrt(1-b2**t); a gradient that shrinks shows the difference."""
    with jax.enable_x64(True):
        grads = [jnp.asarray([2.0]), jnp.asarray([1.0])]
        ours, theirs = (torch_adam(0.1, amsgrad=True), optax.amsgrad(0.1))
        p = torch.tensor([0.0], dtype=torch.float64, requires_grad=True)
        optimizer = torch.optim.Adam([p], lr=0.1, amsgrad=True)
        results = []
        for tx in (ours, theirs):
            params = {"p": jnp.zeros(1)}
            state = tx.init(params)
            for g in grads:
                updates, state = tx.update({"p": g}, state, params)
                params = optax.apply_updates(params, updates)
            results.append(float(params["p"][0]))
        for g in grads:
            p.grad = torch.tensor([float(g[0])], dtype=torch.float64)
            optimizer.step()
    assert_close(results[0], p.item(), "float64")
    assert abs(results[1] - p.item()) > 1e-3
