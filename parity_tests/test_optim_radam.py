"""``torch.optim.RAdam`` (:func:`wd_jax.optim.radam.torch_radam`), coupled and decoupled
decay, against torch itself, and its port.

torch's rule: ``m_hat = m_t/(1 - b1**t)``; where ``rho_t > 5`` (strictly) the step is
``lr * m_hat * r_t * sqrt(1 - b2**t)/(sqrt(v_t) + eps)`` (eps on the raw root), otherwise
``lr * m_hat``; the decay coupled (``g + wd*p``) or, with ``decoupled_weight_decay``,
``(1 - lr*wd) p``. On the MLP of ``test_port_models`` with two groups (the policy's decayed
weights; biases and norms undecayed) and drawn N(0, 1) gradients, float64:

- the builder alone, 50 steps, hypothesis over the hyper-parameters (decay > 0 on the first
  group always, ``decoupled_weight_decay``, ``maximize``, ``foreach`` True / False / the
  default): parameters and the state key by key within rtol 1e-12;
- the port (``check_round_trips``: from the start, mid-run, back), with a scheduler that
  cycles beta1 too; ``port-check`` exits 0 on a trained optimizer; ``capturable`` and
  ``differentiable`` refused;
- optax's namesake measured: :func:`naive_error` (its eps on the bias-corrected root) far
  above 1e-12; its threshold (``rho_t >= 5``) shown apart where ``rho_t`` is exactly 5.
"""

from __future__ import annotations

import textwrap
from functools import partial

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from parity_tests import optim_checks
from parity_tests.test_port_models import one_torch_thread  # noqa: F401
from wd_core.tolerances import assert_close

torch = pytest.importorskip("torch")
jax = pytest.importorskip("jax")
import jax.numpy as jnp  # noqa: E402
import optax  # noqa: E402

from wd_jax.optim import PORTS  # noqa: E402
from wd_jax.optim.radam import ScaleByTorchRAdamState, torch_radam  # noqa: E402
from wd_jax.optim.registry import states_of  # noqa: E402

STEPS = 50
IMPLEMENTATIONS = ({}, {"foreach": False}, {"foreach": True})
#: torch's state key -> the field of ``ScaleByTorchRAdamState`` that holds it (the same name)
FIELDS = {key: key for key in ("exp_avg", "exp_avg_sq")}


#: ``RAdam`` over the policy's two groups (``weight_decay`` on the first, 0 on the second)
torch_optimizer = partial(optim_checks.two_group_optimizer, torch.optim.RAdam)


ARGS = st.fixed_dictionaries({
    "lr": st.floats(1e-4, 0.05),
    # b2 >= 0.8: rho_inf = 2/(1 - b2) - 1 >= 9, so every draw reaches the rectified steps
    # (from t = 6 at b2 near 1, later as b2 falls; never below b2 = 2/3)
    "betas": st.tuples(st.floats(0.0, 0.99), st.floats(0.8, 0.9999)),
    "eps": st.floats(1e-10, 1e-2),
    "weight_decay": st.floats(1e-3, 1.0),
    "decoupled_weight_decay": st.booleans(),
    "maximize": st.booleans(),
    "implementation": st.sampled_from(range(len(IMPLEMENTATIONS))),
})


@settings(max_examples=8, deadline=None, derandomize=True)
@given(args=ARGS)
@example(args={"lr": 0.01, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.1,
               "decoupled_weight_decay": True, "maximize": False, "implementation": 0})
def test_builder_matches_torch_radam_params_and_state(args):
    """50 steps of ``torch_radam`` (the decay masked to torch's first group) equal torch's,
    float64: every parameter and every state entry (``step`` exactly)."""
    args = dict(args)
    implementation = IMPLEMENTATIONS[args.pop("implementation")]
    model, optimizer, params, state = optim_checks.builder_run(
        partial(torch_optimizer, implementation=implementation, **args),
        partial(torch_radam, **args), op_by_op=False)
    (radam,) = states_of(state, ScaleByTorchRAdamState)
    assert int(radam.step) == STEPS
    optim_checks.assert_params_and_state_fields(params, radam, model, optimizer, FIELDS, STEPS)


@pytest.mark.parametrize(("options", "scheduled"), [
    ({"lr": 0.01, "weight_decay": 0.3}, False),
    ({"lr": 0.01, "weight_decay": 0.3, "decoupled_weight_decay": True, "maximize": True,
      "foreach": True}, False),
    ({"lr": 0.01, "weight_decay": 0.1, "decoupled_weight_decay": True}, True),
], ids=["coupled", "decoupled-maximize-foreach", "decoupled-OneCycleLR"])
def test_the_port_round_trips_radam(options, scheduled):
    """optimizer_from_torch / state_from_torch / state_to_torch, both ways, key by key (the
    switch to the rectified step at t = 6 falls in every trip); OneCycleLR drives the lr (and
    the decoupled decay with it) and cycles beta1 through the injected transform."""
    optim_checks.check_two_group_round_trips(partial(torch_optimizer, **options),
                                             optim_checks.one_cycle if scheduled else None)


FACTORY = textwrap.dedent('''
    import torch

    from parity_tests.optim_checks import stepped_three_times
    from parity_tests.test_port_models import make_model
    from wd_jax import port


    def trained_radam():
        """RAdam with decoupled decay over two groups (decay on the first), stepped three
        times: the port continues into the rectified steps."""
        model = make_model("mlp")
        return stepped_three_times(model, torch.optim.RAdam(
            port.no_weight_decay_groups(model, 0.1), lr=0.01, decoupled_weight_decay=True))
''')


def test_port_check_exits_0_on_a_trained_radam(tmp_path, monkeypatch, capsys):
    out = optim_checks.port_check_output(tmp_path, monkeypatch, capsys, FACTORY,
                                         "radam_factories:trained_radam")
    assert "state exp_avg_sq body.0.weight" in out and "BEYOND" not in out


@pytest.mark.parametrize("option", ["capturable", "differentiable"])
def test_options_without_a_twin_are_refused(option):
    optim_checks.assert_refused_without_a_twin(partial(torch_optimizer, weight_decay=0.1), option)


# ---- optax's namesake ----------------------------------------------------------------------

NAIVE = {"lr": 0.01, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.1,
         "maximize": False}


def port_error(make_tx, steps: int = STEPS, decoupled_weight_decay: bool = False) -> float:
    """The relative error (``optim_checks.relative_error``) after ``steps`` drawn-gradient
    steps of ``make_tx(weight_decay) -> tx`` per group (the policy's two groups, decay on the
    first) against torch's ``RAdam(**NAIVE, decoupled_weight_decay=...)``, float64."""
    return optim_checks.port_error(
        partial(torch_optimizer, **NAIVE, decoupled_weight_decay=decoupled_weight_decay),
        make_tx, NAIVE["weight_decay"], steps)


def naive_error(steps: int = STEPS, decoupled_weight_decay: bool = False) -> float:
    """optax's namesake (the registry's ``naive``: ``optax.radam`` after
    ``add_decayed_weights``; ``scale_by_radam`` in ``adamw``'s chain when decoupled) against
    torch's ``RAdam(lr=0.01, weight_decay=0.1)``: relative error of the parameters after
    ``steps`` steps."""
    naive = PORTS["torch.optim.RAdam"].naive
    return port_error(optim_checks.group_tx(naive, NAIVE,
                                            decoupled_weight_decay=decoupled_weight_decay),
                      steps, decoupled_weight_decay)


def twin_error(steps: int = STEPS, decoupled_weight_decay: bool = False) -> float:
    """The same error of the exact twin (the builder), for the docs' table."""
    return port_error(optim_checks.group_tx(torch_radam, NAIVE,
                                            decoupled_weight_decay=decoupled_weight_decay),
                      steps, decoupled_weight_decay)


@pytest.mark.parametrize("decoupled", [False, True], ids=["coupled", "decoupled"])
def test_optax_namesake_is_not_torch_radam_and_the_twin_is(decoupled):
    """optax's eps on the bias-corrected root (torch's is ``eps/sqrt(1 - b2**t)`` there, 13
    times larger at the first rectified step) trains another model: with unit gradients and
    the default eps, 6.8e-10 after 50 steps (the gap is eps against ``sqrt(v)``, so it grows
    as the gradients shrink), far above 1e-12; the twin within it."""
    assert naive_error(decoupled_weight_decay=decoupled) > 1e-10
    assert twin_error(decoupled_weight_decay=decoupled) < 1e-12


#: ``rho_6`` is exactly 5.0 with this b2 (in torch's Python floats and in XLA's float64)
B2_AT_THE_THRESHOLD = 0.8397685748659791


def test_the_threshold_is_strict_as_torch_where_optax_rectifies():
    """At ``rho_t == 5`` torch takes the plain step ``lr * m_hat``; ``optax.scale_by_radam``
    (``rho_t >= 5``) the rectified one. The twin follows torch at every step; optax.radam
    parts at step 6 by a whole step's size."""
    b2 = B2_AT_THE_THRESHOLD
    rho_inf = 2 / (1 - b2) - 1
    assert rho_inf - 2 * 6 * b2 ** 6 / (1 - b2 ** 6) == 5.0
    grads = np.random.default_rng(0).standard_normal((8, 3))
    p = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.RAdam([p], lr=0.1, betas=(0.9, b2))
    expected = []
    for g in grads:
        p.grad = torch.tensor(g)
        optimizer.step()
        expected.append(p.detach().numpy().copy())
    with jax.enable_x64(True):
        for tx, parts_at in ((torch_radam(0.1, betas=(0.9, b2)), None),
                             (optax.radam(0.1, b1=0.9, b2=b2), 6)):
            params, state = {"p": jnp.zeros(3)}, tx.init({"p": jnp.zeros(3)})
            update = jax.jit(tx.update)
            for step, (g, torch_p) in enumerate(zip(grads, expected, strict=True), start=1):
                updates, state = update({"p": jnp.asarray(g)}, state, params)
                params = optax.apply_updates(params, updates)
                if parts_at is None or step < parts_at:
                    assert_close(params["p"], torch_p, "float64", err_msg=f"step {step}")
                elif step == parts_at:
                    assert np.max(np.abs(np.asarray(params["p"]) - torch_p)) > 1e-2
