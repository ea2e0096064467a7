"""``torch.optim.Adafactor`` (:func:`wd_jax.optim.adafactor.torch_adafactor`) against torch
itself, and its port.

torch's Adafactor is not optax's: it factors the last two dims of every >= 2-D parameter
(optax: the two largest, from 128 elements), clamps with ``eps1`` where optax adds
``epsilon`` to ``g**2``, caps a relative step ``min(lr, 1/sqrt t)`` (optax: a constant lr) and
decays ``(1 - lr*wd) p`` (optax: ``wd*p``, not scaled by the lr). float64, drawn N(0, 1)
gradients, the policy's two groups (decayed weights; biases and norms undecayed), on the
MLP and on the conv model (a 3-D convolution weight: factored over its last two dims):

- the builder alone, 50 steps, hypothesis over every hyper-parameter (decay > 0 always,
  ``maximize``, ``foreach`` and the default, ``eps1`` None or given, an lr above ``1/sqrt t``
  so that the cap acts): parameters and state (``row_var``, ``col_var``, ``variance``,
  ``step``) within rtol 1e-12;
- the port (``check_round_trips``), a scheduler's lr included; ``port-check`` exits 0 on a
  trained optimizer;
- optax's namesake measured (:func:`naive_error`).
"""

from __future__ import annotations

import textwrap
from functools import partial

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from parity_tests import optim_checks
from parity_tests.test_port_models import make_model, one_torch_thread  # noqa: F401
from wd_core.errors import InputError
from wd_core.tolerances import assert_close

torch = pytest.importorskip("torch")
jax = pytest.importorskip("jax")
import jax.numpy as jnp  # noqa: E402
from torch.optim import lr_scheduler  # noqa: E402

from wd_jax import port  # noqa: E402
from wd_jax.optim.adafactor import (  # noqa: E402
    TorchAdafactorState,
    naive_adafactor,
    torch_adafactor,
)
from wd_jax.optim.registry import states_of  # noqa: E402

STEPS = 50
IMPLEMENTATIONS = ({}, {"foreach": False}, {"foreach": True})


#: torch's Adafactor over the policy's two groups (``weight_decay`` on the first)
adafactor = partial(optim_checks.two_group_optimizer, torch.optim.Adafactor)


ARGS = st.fixed_dictionaries({
    "kind": st.sampled_from(["mlp", "conv"]),
    "lr": st.sampled_from([1e-2, 0.3]) | st.floats(1e-3, 0.5),
    "beta2_decay": st.sampled_from([-0.8]) | st.floats(-1.0, -0.1),
    "eps": st.tuples(st.none() | st.floats(1e-30, 1e-3), st.floats(0.0, 1e-2)),
    "d": st.sampled_from([1.0]) | st.floats(1.0, 3.0),
    "weight_decay": st.floats(1e-3, 0.5),
    "maximize": st.booleans(),
    "implementation": st.sampled_from(range(len(IMPLEMENTATIONS))),
})


@settings(max_examples=8, deadline=None, derandomize=True)
@given(args=ARGS)
def test_builder_matches_torch_adafactor_params_and_state(args):
    """50 steps of ``torch_adafactor`` equal torch's, float64: every parameter and every state
    entry torch has (and only those), ``step`` exactly."""
    args = dict(args)
    kind, implementation = args.pop("kind"), IMPLEMENTATIONS[args.pop("implementation")]
    model, optimizer, params, state = optim_checks.builder_run(
        partial(adafactor, implementation=implementation, **args),
        partial(torch_adafactor, **args), op_by_op=False, kind=kind)
    (factored,) = states_of(state, TorchAdafactorState)
    assert int(factored.count) == STEPS
    for name, p in model.named_parameters():
        assert_close(params[name], p.detach().numpy(), "float64", err_msg=f"param {name}")
        torch_state = optimizer.state[p]
        keys = ("row_var", "col_var") if p.ndim > 1 else ("variance",)
        assert sorted(torch_state) == sorted((*keys, "step")), name
        assert float(torch_state["step"]) == STEPS
        for key in keys:
            mine = np.asarray(getattr(factored, key)[name])
            assert mine.shape == tuple(torch_state[key].shape), (key, name)
            assert_close(mine, torch_state[key].numpy(), "float64",
                         err_msg=f"state {key} of {name}")


@pytest.mark.parametrize(("kind", "options", "scheduler"), [
    ("mlp", {"weight_decay": 0.1}, None),
    ("conv", {"weight_decay": 0.2, "lr": 0.3, "maximize": True, "eps": (1e-20, 1e-2),
              "d": 1.5, "foreach": True}, None),
    ("mlp", {"weight_decay": 0.1, "lr": 0.3, "beta2_decay": -0.6},
     lambda o: lr_scheduler.CosineAnnealingLR(o, T_max=30)),
], ids=["mlp-defaults", "conv-options", "mlp-cosine"])
def test_the_port_round_trips_adafactor(kind, options, scheduler):
    """optimizer_from_torch / state_from_torch / state_to_torch, both ways, key by key; a
    scheduler's lr drives the relative step's cap and the decay (lr 0.3: ``1/sqrt t`` is the
    smaller from step 12)."""
    optim_checks.check_two_group_round_trips(partial(adafactor, **options), scheduler, kind=kind)


def test_state_to_torch_keeps_the_factors_shapes():
    """Written back, ``row_var`` of an (8, 5) weight is (8, 1), as torch makes it, not the
    parameter's shape."""
    model = make_model("mlp")
    optimizer = adafactor(model, weight_decay=0.1)
    with jax.enable_x64(True):
        params = port.params_from_torch(model)
        tx = port.optimizer_from_torch(optimizer, model)
        grads = jax.tree.map(jnp.ones_like, params)
        _, state = jax.jit(tx.update)(grads, tx.init(params), params)
        port.state_to_torch(state, tx, optimizer, model)
    assert tuple(optimizer.state[model.body[0].weight]["row_var"].shape) == (8, 1)
    assert tuple(optimizer.state[model.body[0].weight]["col_var"].shape) == (1, 5)


FACTORY = textwrap.dedent('''
    import torch

    from parity_tests.optim_checks import stepped_three_times
    from parity_tests.test_port_models import make_model
    from wd_jax import port


    def trained_adafactor():
        """Adafactor over two groups of the conv model, stepped three times."""
        model = make_model("conv")
        return stepped_three_times(model, torch.optim.Adafactor(
            port.no_weight_decay_groups(model, 0.1), lr=0.3))
''')


def test_port_check_exits_0_on_a_trained_adafactor(tmp_path, monkeypatch, capsys):
    out = optim_checks.port_check_output(tmp_path, monkeypatch, capsys, FACTORY,
                                         "adafactor_factories:trained_adafactor")
    assert "state col_var conv.weight" in out and "state variance conv.bias" in out
    assert "BEYOND" not in out


def test_a_group_of_mixed_dtypes_without_eps1_is_refused():
    """torch takes the machine epsilon of a group's *first* parameter for all of them; optax's
    tree has no such order, so ``eps=(None, ...)`` over float32 and float64 is refused."""
    params = {"a": jnp.zeros((2, 3), jnp.float32), "b": jnp.zeros(3, jnp.float16)}
    with pytest.raises(InputError, match=r"eps=\(None, \.\.\.\) over parameters of dtypes "
                                         r"\['float16', 'float32'\]"):
        torch_adafactor().init(params)
    torch_adafactor(eps=(1e-30, 1e-3)).init(params)


@pytest.mark.parametrize(("options", "match"), [
    ({"beta2_decay": 0.5}, "beta2_decay should be <= 0"),
    ({"d": 0.5}, "d .* should be >= 1"),
    ({"eps": (-1.0, 1e-3)}, "eps\\[0\\]"),
    ({"lr": -0.1}, "lr should be >= 0"),
])
def test_torch_arguments_are_checked_as_torch_does(options, match):
    with pytest.raises(InputError, match=match):
        torch_adafactor(**options)
    with pytest.raises(ValueError):
        adafactor(make_model("mlp"), weight_decay=0.1, **options)


# ---- optax's namesake ----------------------------------------------------------------------

NAIVE = {"lr": 0.01, "beta2_decay": -0.8, "eps": (None, 1e-3), "d": 1.0, "weight_decay": 0.1,
         "maximize": False}


def port_error(make_tx, steps: int = STEPS, kind: str = "mlp") -> float:
    """``||params - torch's|| / ||torch's||`` over all parameters
    (``optim_checks.relative_error``) after ``steps`` drawn-gradient steps of
    ``make_tx(weight_decay)`` per group (the policy's two groups) against torch's
    ``Adafactor(**NAIVE)`` on ``kind``'s model, float64."""
    return optim_checks.port_error(partial(adafactor, **NAIVE), make_tx,
                                   NAIVE["weight_decay"], steps,
                                   new_model=partial(make_model, kind))


def naive_error(steps: int = STEPS) -> float:
    """``optax.adafactor`` with torch's hyper-parameters (the registry's ``naive``) against
    torch's ``Adafactor(lr=0.01, weight_decay=0.1)``: relative error after ``steps`` steps."""
    return port_error(optim_checks.group_tx(naive_adafactor, NAIVE), steps)


def twin_error(steps: int = STEPS) -> float:
    """The same for the exact twin."""
    return port_error(optim_checks.group_tx(torch_adafactor, NAIVE), steps)


def test_optax_namesake_is_not_torch_adafactor_and_the_twin_is():
    assert naive_error() > 1e-3
    assert twin_error() < 1e-12
