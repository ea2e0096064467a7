"""``torch.optim.Rprop`` and :func:`wd_jax.optim.rprop.torch_rprop`, and its port.

torch's Rprop steps by ``-sign(g)*size`` with per-element sizes that grow by ``eta_plus`` while
the gradient keeps its sign and shrink by ``eta_minus`` (skipping the step) when it flips,
clamped to ``step_sizes``; the lr is only the initial size, and there is no weight decay.
``optax.rprop`` lags its update by one step (its first update is zero). On the MLP of
``test_port_models`` with two groups (the policy's split; different lr and etas, since Rprop
has no decay to tell them apart) and drawn N(0, 1) gradients, float64:

- the builder alone, 50 steps, hypothesis over ``lr``, ``etas``, ``step_sizes`` (clamping
  on both sides), ``maximize``, ``foreach`` True / False / the default: parameters and the
  state key by key (``step``, ``prev``, ``step_size``) within rtol 1e-12;
- the port (``check_round_trips``: from the start, mid-run, back), with a scheduler whose lr
  sets the initial sizes; ``port-check`` exits 0 on a trained optimizer; ``capturable`` /
  ``differentiable`` refused, naming the option; a group's ``weight_decay`` key, which torch's
  Rprop ignores, is ignored by the port too;
- optax's namesake measured: :func:`naive_error`, far from torch.
"""

from __future__ import annotations

import inspect
import textwrap
from functools import partial

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from parity_tests import optim_checks
from parity_tests.port_runs import drawn_gradients, optax_steps, torch_steps
from parity_tests.test_port_models import make_model, one_torch_thread  # noqa: F401
from wd_core.tolerances import assert_close

torch = pytest.importorskip("torch")
jax = pytest.importorskip("jax")
import optax  # noqa: E402
from torch.optim import lr_scheduler  # noqa: E402

from wd_jax import port  # noqa: E402
from wd_jax.optim import PORTS  # noqa: E402
from wd_jax.optim.registry import states_of  # noqa: E402
from wd_jax.optim.rprop import RpropState, torch_rprop  # noqa: E402

STEPS = 50
IMPLEMENTATIONS = ({}, {"foreach": False}, {"foreach": True})


def two_groups(model, first: dict, second: dict) -> list[dict]:
    """The policy's split (``port.no_weight_decay_groups``) with ``first`` and ``second``'s
    options; the ``weight_decay`` keys that split writes are dropped (Rprop has none)."""
    groups = port.no_weight_decay_groups(model, 0.0)
    return [{"params": g["params"], **options} for g, options in zip(groups, (first, second),
                                                                      strict=True)]


def torch_optimizer(model, *, second=None, implementation=(), **options):
    """``Rprop`` over two groups: ``options`` on the first, those updated by ``second`` (a
    different lr, by default three times the first) on the other."""
    lr = options.get("lr", 1e-2)
    second = {**options, **(second if second is not None else {"lr": 3 * lr})}
    return torch.optim.Rprop(two_groups(model, {}, second), **dict(implementation), **options)


def labels(mask) -> dict[str, str]:
    """The policy's split (its decay ``mask``) as the labels of an optax partition."""
    return {n: "first" if first else "second" for n, first in mask.items()}


def optax_state_by_name(state) -> dict[str, dict[str, np.ndarray]]:
    """The optax state under torch's keys (``step``, ``prev``, ``step_size``), read from
    every :class:`RpropState` (one per group)."""
    out = {}
    for rprop in states_of(state, RpropState):
        for name, prev in rprop.prev.items():
            if not isinstance(prev, optax.MaskedNode):
                out[name] = {"step": np.asarray(float(rprop.count)), "prev": np.asarray(prev),
                             "step_size": np.asarray(rprop.step_size[name])}
    return out


ARGS = st.fixed_dictionaries({
    "lr": st.floats(1e-4, 0.1),
    "etas": st.tuples(st.floats(0.1, 0.9), st.floats(1.05, 2.0)),
    "step_sizes": st.tuples(st.sampled_from([1e-6, 1e-4, 1e-3]),
                            st.sampled_from([1e-2, 0.05, 50.0])),
    "maximize": st.booleans(),
    "second": st.fixed_dictionaries({"lr": st.floats(1e-4, 0.1),
                                     "etas": st.tuples(st.floats(0.1, 0.9),
                                                       st.floats(1.05, 2.0))}),
    "implementation": st.sampled_from(range(len(IMPLEMENTATIONS))),
})


@settings(max_examples=8, deadline=None, derandomize=True)
@given(args=ARGS)
def test_builder_matches_torch_rprop_params_and_state(args):
    """50 steps of ``torch_rprop`` (one per group, in an optax partition) equal torch's Rprop
    over two groups, float64: every parameter and every state entry (``step`` exactly)."""
    args = dict(args)
    implementation = IMPLEMENTATIONS[args.pop("implementation")]
    second = {**args, **args.pop("second")}
    del second["second"]
    model, optimizer, params, state = optim_checks.builder_run(
        partial(torch_optimizer, second=second, implementation=implementation, **args),
        lambda mask: optax.partition({"first": torch_rprop(**args, **dict(implementation)),
                                      "second": torch_rprop(**second)}, labels(mask)))
    optim_checks.assert_same_params_and_states(params, optax_state_by_name(state), model, optimizer,
                                               "torch_rprop")


def test_an_initial_lr_outside_the_step_sizes_is_clamped_at_the_first_step():
    """torch clamps ``size*1`` where ``g*prev == 0`` (all of the first step): an lr above
    ``step_sizes[1]`` gives steps of ``step_sizes[1]`` at once. The builder does the same."""
    model = make_model("mlp")
    grads = drawn_gradients(model, 1)
    optimizer = torch.optim.Rprop(model.parameters(), lr=0.5, step_sizes=(1e-6, 0.01))
    torch_steps(model, optimizer, None, grads)
    with jax.enable_x64(True):
        start = port.params_from_torch(make_model("mlp"))
        tx = torch_rprop(lr=0.5, step_sizes=(1e-6, 0.01))
        params, _ = optax_steps(tx, start, tx.init(start), grads)
    for name, p in model.named_parameters():
        moved = np.abs(np.asarray(params[name]) - np.asarray(start[name]))
        assert_close(moved, np.full(moved.shape, 0.01), "float64", err_msg=name)
        assert_close(params[name], p.detach().numpy(), "float64", err_msg=name)


@pytest.mark.parametrize(("options", "scheduled"), [
    ({}, False),
    ({"lr": 0.05, "etas": (0.3, 1.5), "step_sizes": (1e-4, 0.08), "maximize": True,
      "foreach": True}, False),
    ({"lr": 0.02}, True),
], ids=["defaults", "etas-clamp-maximize-foreach", "LinearLR"])
def test_the_port_round_trips_rprop(options, scheduled):
    """optimizer_from_torch / state_from_torch / state_to_torch, both ways, key by key; a
    scheduler's lr sets the initial sizes (its value at the first step) and nothing else."""
    optim_checks.check_two_group_round_trips(
        partial(torch_optimizer, **options),
        partial(lr_scheduler.LinearLR, start_factor=0.5, total_iters=5) if scheduled else None)


def test_rprop_has_no_weight_decay_and_a_decay_key_is_ignored_as_torch_ignores_it():
    """torch's Rprop has no ``weight_decay`` option, nor does the builder; a group holding a
    ``weight_decay`` key (the policy's groups write one) is stepped without decay by torch,
    and by the port."""
    model = make_model("mlp")
    assert "weight_decay" not in torch.optim.Rprop(model.parameters()).defaults
    assert "weight_decay" not in inspect.signature(torch_rprop).parameters

    optim_checks.check_two_group_round_trips(
        lambda model: torch.optim.Rprop(port.no_weight_decay_groups(model, 0.5)),
        steps=10, mid=3)


FACTORY = textwrap.dedent('''
    import torch

    from parity_tests.optim_checks import stepped_three_times
    from parity_tests.test_port_models import make_model
    from wd_jax import port


    def trained_rprop():
        """Rprop over two groups (different lr), stepped three times."""
        model = make_model("mlp")
        groups = port.no_weight_decay_groups(model, 0.0)
        groups[1]["lr"] = 0.03
        return stepped_three_times(model, torch.optim.Rprop(groups, lr=0.01, etas=(0.4, 1.3)))
''')


def test_port_check_exits_0_on_a_trained_rprop(tmp_path, monkeypatch, capsys):
    out = optim_checks.port_check_output(tmp_path, monkeypatch, capsys, FACTORY,
                                         "rprop_factories:trained_rprop")
    assert "state step_size body.0.weight" in out and "state prev head.bias" in out
    assert "BEYOND" not in out


@pytest.mark.parametrize("option", ["capturable", "differentiable"])
def test_options_without_a_twin_are_refused(option):
    optim_checks.assert_refused_without_a_twin(torch_optimizer, option)


# ---- optax's namesake ----------------------------------------------------------------------

NAIVE = {"lr": 1e-2, "etas": (0.5, 1.2), "step_sizes": (1e-6, 50.0), "maximize": False}


def port_error(make_tx, steps: int = STEPS, **options) -> float:
    """The relative error (``optim_checks.relative_error``) after ``steps`` drawn-gradient
    steps of ``make_tx(**hyper-parameters) -> tx`` on both groups (torch's defaults, one lr:
    Rprop has no decay to set apart) against torch's Rprop, float64."""
    hyper = {**NAIVE, **options}
    return optim_checks.relative_error_after(partial(torch_optimizer, second={}, **hyper),
                                             lambda start: make_tx(**hyper), steps)


def naive_error(steps: int = STEPS, **options) -> float:
    """optax's namesake (the registry's ``naive``: ``optax.rprop(lr, eta_minus, eta_plus,
    min_step_size, max_step_size)``) against torch's ``Rprop(lr=1e-2)`` with its default
    etas and step sizes (no weight decay: Rprop has none): relative error of the parameters
    after ``steps`` steps."""
    return port_error(PORTS["torch.optim.Rprop"].naive, steps, **options)


def twin_error(steps: int = STEPS, **options) -> float:
    """The same error of the exact twin (:func:`torch_rprop`)."""
    return port_error(torch_rprop, steps, **options)


def test_optax_namesake_is_far_from_torch_rprop():
    """optax.rprop lags its update by a step (the first is zero): after 50 steps the
    parameters are far from torch's (measured 3.7e-2 relative), while the twin is within
    1e-12."""
    assert naive_error() > 1e-3
    assert twin_error() < 1e-12
