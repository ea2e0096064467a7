"""``torch.optim.RMSprop`` and :func:`wd_jax.optim.rmsprop.torch_rmsprop`, and its port.

torch's RMSprop adds the decay to the gradient (coupled), puts eps *outside* the root
(``g / (sqrt(v) + eps)``, centered: ``sqrt(v - m**2) + eps``), starts its averages at 0 with no
bias correction, and traces the momentum of ``g/a`` *before* the lr. On the MLP of
``test_port_models`` with two groups (the policy's decayed weights; biases and norms
undecayed) and drawn N(0, 1) gradients, float64:

- the builder alone, 50 steps, hypothesis over the hyper-parameters (decay > 0 on the first
  group always, ``alpha``, ``eps``, ``momentum``, ``centered``, ``maximize``, ``foreach``
  True / False / the default): parameters and the state key by key within rtol 1e-12;
- the port (``check_round_trips``: from the start, mid-run, back), with ``OneCycleLR``
  driving the lr and cycling the momentum too; ``port-check`` exits 0 on a trained
  optimizer; ``capturable`` / ``differentiable`` refused, naming the option;
- optax's namesake measured: :func:`naive_error`, far above 1e-12 (``optax.rmsprop``'s
  default ``eps_in_sqrt=True`` divides by ``sqrt(v + eps)``).
"""

from __future__ import annotations

import textwrap
from functools import partial

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from parity_tests import optim_checks
from parity_tests.test_port_models import one_torch_thread  # noqa: F401
from wd_core.tolerances import assert_close

torch = pytest.importorskip("torch")
jax = pytest.importorskip("jax")
import optax  # noqa: E402

from wd_jax.optim import PORTS  # noqa: E402
from wd_jax.optim.registry import states_of  # noqa: E402
from wd_jax.optim.rmsprop import torch_rmsprop  # noqa: E402
from wd_jax.optim.transforms import TorchStepState  # noqa: E402

STEPS = 50
IMPLEMENTATIONS = ({}, {"foreach": False}, {"foreach": True})


#: ``RMSprop`` over the policy's two groups (``weight_decay`` on the first, 0 on the second)
torch_optimizer = partial(optim_checks.two_group_optimizer, torch.optim.RMSprop)


def optax_state_by_name(state) -> dict[str, dict[str, np.ndarray]]:
    """The optax state under torch's keys, read from optax's own state classes (not through
    the port): ``step``, ``square_avg`` and, when present, ``grad_avg``,
    ``momentum_buffer``."""
    (counter,) = states_of(state, TorchStepState)
    trees = {}
    for s in states_of(state, optax.ScaleByRmsState):
        trees["square_avg"] = s.nu
    for s in states_of(state, optax.ScaleByRStdDevState):
        trees.update(square_avg=s.nu, grad_avg=s.mu)
    for s in states_of(state, optax.TraceState):
        trees["momentum_buffer"] = s.trace
    names = trees["square_avg"]
    return {n: {"step": np.asarray(float(counter.step)),
                **{key: np.asarray(tree[n]) for key, tree in trees.items()}} for n in names}


ARGS = st.fixed_dictionaries({
    "lr": st.floats(1e-4, 0.05),
    "alpha": st.floats(0.5, 0.999),
    "eps": st.sampled_from([1e-8, 1e-6, 1e-3]),
    "weight_decay": st.floats(1e-3, 1.0),
    "momentum": st.one_of(st.just(0.0), st.floats(0.1, 0.95)),
    "centered": st.booleans(),
    "maximize": st.booleans(),
    "implementation": st.sampled_from(range(len(IMPLEMENTATIONS))),
})


@settings(max_examples=10, deadline=None, derandomize=True)
@given(args=ARGS)
def test_builder_matches_torch_rmsprop_params_and_state(args):
    """50 steps of ``torch_rmsprop`` (decay masked to the first group) equal torch's RMSprop
    over two groups, float64: every parameter and every state entry (``step`` exactly; no
    ``grad_avg`` / ``momentum_buffer`` where torch has none)."""
    args = dict(args)
    implementation = IMPLEMENTATIONS[args.pop("implementation")]
    model, optimizer, params, state = optim_checks.builder_run(
        partial(torch_optimizer, implementation=implementation, **args),
        partial(torch_rmsprop, **args))
    optim_checks.assert_same_params_and_states(params, optax_state_by_name(state), model, optimizer,
                                               "torch_rmsprop")


@pytest.mark.parametrize(("options", "scheduled"), [
    ({"lr": 0.01, "weight_decay": 0.3}, False),
    ({"lr": 0.01, "weight_decay": 0.1, "alpha": 0.9, "centered": True, "momentum": 0.5,
      "maximize": True, "foreach": True}, False),
    ({"lr": 0.01, "weight_decay": 0.1, "momentum": 0.9}, True),
], ids=["plain", "centered-momentum-maximize-foreach", "momentum-OneCycleLR"])
def test_the_port_round_trips_rmsprop(options, scheduled):
    """optimizer_from_torch / state_from_torch / state_to_torch, both ways, key by key;
    OneCycleLR drives the lr and cycles the momentum (the injected trace)."""
    optim_checks.check_two_group_round_trips(partial(torch_optimizer, **options),
                                             optim_checks.one_cycle if scheduled else None)


FACTORY = textwrap.dedent('''
    import torch

    from parity_tests.optim_checks import stepped_three_times
    from parity_tests.test_port_models import make_model
    from wd_jax import port


    def trained_rmsprop():
        """RMSprop (centered, momentum) over two groups, stepped three times."""
        model = make_model("mlp")
        return stepped_three_times(model, torch.optim.RMSprop(
            port.no_weight_decay_groups(model, 0.1), lr=0.01, momentum=0.9, centered=True))
''')


def test_port_check_exits_0_on_a_trained_rmsprop(tmp_path, monkeypatch, capsys):
    out = optim_checks.port_check_output(tmp_path, monkeypatch, capsys, FACTORY,
                                         "rmsprop_factories:trained_rmsprop")
    assert "state grad_avg body.0.weight" in out and "BEYOND" not in out


@pytest.mark.parametrize("option", ["capturable", "differentiable"])
def test_options_without_a_twin_are_refused(option):
    optim_checks.assert_refused_without_a_twin(partial(torch_optimizer, weight_decay=0.1), option)


# ---- optax's namesake ----------------------------------------------------------------------

NAIVE = {"lr": 0.01, "alpha": 0.9, "eps": 1e-8, "weight_decay": 0.1, "momentum": 0.5,
         "centered": True, "maximize": False}


def port_error(make_tx, steps: int = STEPS, **options) -> float:
    """The relative error (``optim_checks.relative_error``) after ``steps`` drawn-gradient
    steps of ``make_tx(weight_decay) -> tx`` per group (the policy's two groups, decay on the
    first) against torch's ``RMSprop(**NAIVE, **options)``, float64."""
    hyper = {**NAIVE, **options}
    return optim_checks.port_error(partial(torch_optimizer, **hyper), make_tx,
                                   hyper["weight_decay"], steps)


def naive_error(steps: int = STEPS, **options) -> float:
    """optax's namesake (the registry's ``naive``: ``optax.rmsprop(lr, decay=alpha, eps=eps,
    momentum=, centered=)`` after ``add_decayed_weights``) against torch's
    ``RMSprop(lr=0.01, alpha=0.9, weight_decay=0.1, momentum=0.5, centered=True)``: relative
    error of the parameters after ``steps`` steps."""
    naive = PORTS["torch.optim.RMSprop"].naive
    return port_error(optim_checks.group_tx(naive, {**NAIVE, **options}), steps, **options)


def twin_error(steps: int = STEPS, **options) -> float:
    """The same error of the exact twin (:func:`torch_rmsprop`)."""
    return port_error(optim_checks.group_tx(torch_rmsprop, {**NAIVE, **options}), steps, **options)


@pytest.mark.parametrize("options", [{}, {"centered": False, "momentum": 0.0}],
                         ids=["centered-momentum", "plain"])
def test_optax_namesake_is_not_torch_rmsprop_and_the_twin_is(options):
    """optax.rmsprop's eps inside the root trains another model: its error after 50 steps is
    far above 1e-12 (a gradient entry near 1e-4 makes ``(1 - alpha)*g**2`` as small as eps);
    the twin's is within it."""
    assert naive_error(**options) > 1e-6
    assert twin_error(**options) < 1e-12


def test_the_namesake_differs_by_where_eps_sits():
    """Why, on one step from zero state: torch divides by ``sqrt(v) + eps``, optax.rmsprop
    by ``sqrt(v + eps)``; with ``v = (1 - alpha)*g**2`` near eps the two differ by far more
    than rounding, and ``eps_in_sqrt=False`` is torch's."""
    with jax.enable_x64(True):
        g = 1e-3
        p = torch.zeros(1, dtype=torch.float64, requires_grad=True)
        optimizer = torch.optim.RMSprop([p], lr=0.1)
        p.grad = torch.tensor([g], dtype=torch.float64)
        optimizer.step()
        results = []
        for tx in (torch_rmsprop(0.1), optax.rmsprop(0.1, decay=0.99, eps=1e-8)):
            params = {"p": jax.numpy.zeros(1)}
            updates, _ = tx.update({"p": jax.numpy.asarray([g])}, tx.init(params), params)
            results.append(float(optax.apply_updates(params, updates)["p"][0]))
    assert_close(results[0], p.item(), "float64")
    assert abs(results[1] - p.item()) > 1e-3 * abs(p.item())
