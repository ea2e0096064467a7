"""``torch.optim.Muon`` and :func:`wd_jax.optim.muon.torch_muon`, its tolerance, and its port.

torch's Muon (2-D parameters only) keeps a ``lerp`` momentum, orthogonalises the (nesterov)
update with a Newton-Schulz quintic run in **bfloat16**, scales it by a shape ratio and decays
the parameters decoupled, ``p*(1 - lr*wd)``. The bfloat16 iteration is why the update cannot be
compared to 1e-12; :mod:`wd_jax.optim.muon` derives the tolerance (``tau = 2u*ns_steps`` per
element of the update, ``u = 2**-8``; ``S*lr*ratio*tau*max|O|`` on the parameters after ``S``
steps). On three ``Linear(..., bias=False)`` layers (5->8, 8->8, 8->3: both orientations and a
square), float64, two groups (decay on the first two, none on the last) and drawn N(0, 1)
gradients:

- the rest of the rule exact: hypothesis over every option (``lr``, ``weight_decay > 0``,
  ``momentum``, ``nesterov``, ``ns_coefficients``, ``eps``, ``ns_steps``, ``adjust_lr_fn``)
  with both iterations in float64 (torch's function with its ``bfloat16()`` replaced by a
  float64 copy, the builder's ``ns_dtype=float64``): parameters and ``momentum_buffer``
  within rtol 1e-12 after 50 steps;
- torch's own rule (bfloat16): the iteration against torch's ``_zeropower_via_newtonschulz``
  within ``tau`` (mostly bit-identical on small matrices), 50-step runs within the parameter
  tolerance, the momentum buffers within 1e-12, and the decay alone (zero gradients) exact to
  1e-12;
- the port: the three round trips of ``parity_tests.port_runs`` (from the start, mid-run,
  back) with the parameters judged by Muon's tolerance (``check_round_trips`` asserts
  1e-12), with a scheduler on the lr and one cycling the momentum; ``port-check`` on a trained
  optimizer exits 0: its state judged at 1e-12, its parameters by Muon's tolerance (the
  registry's ``parameter_tolerance``, printed as their tolerance);
- optax's namesake (``optax.contrib.muon``) measured: :func:`naive_error`, far beyond the
  tolerance.
"""

from __future__ import annotations

import textwrap
from unittest import mock

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from parity_tests import optim_checks
from parity_tests.port_runs import (
    check_round_trips,
    drawn_gradients,
    torch_steps,
)
from parity_tests.test_port_models import (  # noqa: F401
    OptaxRun,
    assert_same_states,
    one_torch_thread,
    torch_state_by_name,
)
from wd_core.tolerances import assert_close

torch = pytest.importorskip("torch")
jax = pytest.importorskip("jax")
import jax.numpy as jnp  # noqa: E402
from torch import nn  # noqa: E402
from torch.optim import _muon as torch_muon_module  # noqa: E402
from torch.optim import lr_scheduler  # noqa: E402

from wd_jax import port  # noqa: E402
from wd_jax.optim import PORTS  # noqa: E402
from wd_jax.optim.muon import (  # noqa: E402
    DEFAULT_NS_COEFFICIENTS,
    MuonMomentumState,
    adjusted_ratio,
    measure_update_error,
    newton_schulz,
    parameter_tolerance,
    torch_muon,
)
from wd_jax.optim.registry import states_of  # noqa: E402

STEPS = 50
MID = 7
DECAYED = ("0.weight", "1.weight")


def make_matrices(seed: int = 0) -> nn.Module:
    """``Linear(5, 8) -> Linear(8, 8) -> Linear(8, 3)``, no biases, float64, weights drawn
    from a seeded numpy generator: Muon's 2-D parameters, shapes (8, 5), (8, 8), (3, 8)."""
    model = nn.Sequential(*(nn.Linear(i, o, bias=False, dtype=torch.float64)
                            for i, o in ((5, 8), (8, 8), (8, 3))))
    rng = np.random.default_rng(np.random.SeedSequence((19, seed)))
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.tensor(0.5 * rng.standard_normal(tuple(p.shape))))
    return model


def groups(model, weight_decay) -> list[dict]:
    """Decay ``weight_decay`` on the first two matrices, none on the last."""
    named = dict(model.named_parameters())
    return [{"params": [named[n] for n in DECAYED], "weight_decay": weight_decay},
            {"params": [p for n, p in named.items() if n not in DECAYED], "weight_decay": 0.0}]


def decay_mask(params) -> dict[str, bool]:
    return {n: n in DECAYED for n in params}


def torch_newton_schulz_float64(grad, ns_coefficients, ns_steps, eps):
    """torch's ``_zeropower_via_newtonschulz`` line by line with its ``grad.bfloat16()`` (a
    copy) replaced by a float64 copy: the iteration without bfloat16's rounding."""
    a, b, c = ns_coefficients
    ortho_grad = grad.to(torch.float64, copy=True)
    if grad.size(0) > grad.size(1):
        ortho_grad = ortho_grad.T
    ortho_grad.div_(ortho_grad.norm().clamp(min=eps))
    for _ in range(ns_steps):
        gram_matrix = ortho_grad @ ortho_grad.T
        gram_update = torch.addmm(gram_matrix, gram_matrix, gram_matrix, beta=b, alpha=c)
        ortho_grad = torch.addmm(ortho_grad, gram_update, ortho_grad, beta=a)
    if grad.size(0) > grad.size(1):
        ortho_grad = ortho_grad.T
    return ortho_grad


def optax_state_by_name(state) -> dict[str, dict[str, np.ndarray]]:
    """The optax state under torch's key ``momentum_buffer``."""
    (momentum,) = states_of(state, MuonMomentumState)
    return {n: {"momentum_buffer": np.asarray(b)} for n, b in momentum.momentum_buffer.items()}


def builder_run(options, *, ns_dtype=jnp.bfloat16, zero_gradients=False):
    """50 steps of torch's Muon and of ``torch_muon`` (decay masked to the first group) on the
    same gradients: ``(model, optimizer, start params, optax params, optax state)``. With
    ``ns_dtype=float64`` torch's iteration is replaced by its float64 copy."""
    options = dict(options)
    weight_decay = options.pop("weight_decay")
    model = make_matrices()
    grads = drawn_gradients(model, STEPS)
    if zero_gradients:
        grads = [{n: np.zeros_like(g) for n, g in step.items()} for step in grads]
    optimizer = torch.optim.Muon(groups(model, weight_decay), **options)
    if ns_dtype == jnp.float64:
        with mock.patch.object(torch_muon_module, "_zeropower_via_newtonschulz",
                               torch_newton_schulz_float64):
            torch_steps(model, optimizer, None, grads)
    else:
        torch_steps(model, optimizer, None, grads)
    with jax.enable_x64(True):
        start = port.params_from_torch(make_matrices())
        tx = torch_muon(**options, weight_decay=weight_decay, mask=decay_mask(start),
                        ns_dtype=ns_dtype)
        # op by op (OptaxRun): compiling the chain would cost a compile per drawn example
        params, state = OptaxRun("matrices", tx).run(start, tx.init(start), grads=grads)
    return model, optimizer, start, params, state


def assert_within_muon_tolerance(actual: dict, model, steps: int, lr: float, adjust_lr_fn,
                                 what: str) -> None:
    """Each parameter within :func:`parameter_tolerance` (absolute) of torch's, plus the
    float64 1e-12 of everything else."""
    for name, p in model.named_parameters():
        atol = parameter_tolerance(steps, lr, adjusted_ratio(tuple(p.shape), adjust_lr_fn))
        np.testing.assert_allclose(np.asarray(actual[name]), p.detach().numpy(), rtol=1e-12,
                                   atol=atol, err_msg=f"{what}: {name}")


# ---- the iteration -------------------------------------------------------------------------

def test_newton_schulz_is_within_tau_of_torchs():
    """The bfloat16 iteration against torch's own, Gaussian matrices from 8x5 to 100x60:
    every element within ``tau*max|O|`` (``ns_steps`` bfloat16 ulps of the largest; measured
    0 to 1.5, see the module)."""
    with jax.enable_x64(True):
        worst = measure_update_error(shapes=((8, 5), (3, 8), (8, 8), (64, 32), (100, 60)),
                                     trials=3)
    assert all(ulps <= 5 for ulps in worst.values()), worst


def test_torchs_bfloat16_update_is_far_from_float64():
    """Why the update has a tolerance: torch's bfloat16 iteration is ~1e-2 away from the same
    iteration in float64, ten orders of magnitude above float64's 1e-12."""
    rng = np.random.default_rng(3)
    g = torch.tensor(rng.standard_normal((8, 5)))
    bf16 = torch_muon_module._zeropower_via_newtonschulz(g, DEFAULT_NS_COEFFICIENTS, 5, 1e-7)
    exact = torch_newton_schulz_float64(g, DEFAULT_NS_COEFFICIENTS, 5, 1e-7)
    assert 1e-3 < float((bf16.double() - exact).abs().max() / exact.abs().max()) < 0.1
    with jax.enable_x64(True):
        ours = newton_schulz(jnp.asarray(g.numpy()), dtype=jnp.float64)
    assert_close(np.asarray(ours), exact.numpy(), "float64")


def test_non_2d_leaves_are_refused_as_torch_refuses_them():
    with jax.enable_x64(True), pytest.raises(ValueError, match="takes a 2-D matrix"):
        tx = torch_muon()
        params = {"bias": jnp.zeros(3)}
        tx.update(params, tx.init(params), params)


# ---- the builder -----------------------------------------------------------------------------

COEFFICIENTS = (DEFAULT_NS_COEFFICIENTS, (2.0, -1.5, 0.5), (3.0, -3.2, 1.2))
ARGS = st.fixed_dictionaries({
    "lr": st.floats(1e-3, 0.1),
    "weight_decay": st.floats(1e-3, 0.5),
    "momentum": st.sampled_from([0.0, 0.5, 0.9, 0.95, 0.99]),
    "nesterov": st.booleans(),
    "ns_coefficients": st.sampled_from(COEFFICIENTS),
    "eps": st.sampled_from([1e-7, 1e-3]),
    "ns_steps": st.integers(1, 6),
    "adjust_lr_fn": st.sampled_from([None, "original", "match_rms_adamw"]),
})


@settings(max_examples=8, deadline=None, derandomize=True)
@given(args=ARGS)
def test_the_rule_is_exact_with_the_iteration_in_float64(args):
    """Every option, both iterations in float64: 50 steps of ``torch_muon`` equal torch's
    Muon over two groups within rtol 1e-12, parameters and ``momentum_buffer``: the momentum,
    nesterov, normalisation, quintic, shape ratio, decay and their order are torch's."""
    model, optimizer, _, params, state = builder_run(args, ns_dtype=jnp.float64)
    for name, p in model.named_parameters():
        assert_close(params[name], p.detach().numpy(), "float64", err_msg=f"param {name}")
    assert_same_states(optax_state_by_name(state), torch_state_by_name(optimizer, model),
                       "torch_muon, float64 iteration")


@settings(max_examples=5, deadline=None, derandomize=True)
@given(args=ARGS.map(lambda a: {**a, "ns_coefficients": DEFAULT_NS_COEFFICIENTS,
                                "eps": 1e-7, "ns_steps": 5}))
def test_torchs_rule_in_bfloat16_is_within_the_derived_tolerance(args):
    """torch's own Muon (bfloat16 iteration): 50 steps within ``S*lr*ratio*tau*max|O|`` per
    parameter, and the momentum buffers (the inputs of the iteration) within 1e-12."""
    model, optimizer, _, params, state = builder_run(args)
    assert_within_muon_tolerance(params, model, STEPS, args["lr"], args["adjust_lr_fn"],
                                 "torch_muon")
    assert_same_states(optax_state_by_name(state), torch_state_by_name(optimizer, model),
                       "torch_muon")


def test_the_decay_alone_is_exact():
    """Zero gradients: the buffer stays 0, the iteration gives ``NS(0) = 0`` and only the
    decoupled decay acts, ``p*(1 - lr*wd)`` per step on the decayed group, nothing on the
    other: torch and the builder (bfloat16, torch's rule) agree to 1e-12, and both equal
    ``p0*(1 - lr*wd)**50``."""
    lr, weight_decay = 0.02, 0.3
    model, _, start, params, _ = builder_run({"lr": lr, "weight_decay": weight_decay},
                                             zero_gradients=True)
    for name, p in model.named_parameters():
        assert_close(params[name], p.detach().numpy(), "float64", err_msg=name)
        factor = (1 - lr * weight_decay) ** STEPS if name in DECAYED else 1.0
        assert_close(params[name], np.asarray(start[name]) * factor, "float64", err_msg=name)


# ---- the port ----------------------------------------------------------------------------

def check_round_trips_within_muon_tolerance(make, lr: float, adjust_lr_fn=None,
                                            steps: int = STEPS, mid: int = MID) -> None:
    """``parity_tests.port_runs.check_round_trips`` with the parameters judged by Muon's
    tolerance (``lr``: the largest lr of the run) instead of 1e-12; the state (the momentum
    buffers) and the scheduler's position still to 1e-12."""
    def judge(params, model, what):
        assert_within_muon_tolerance(params, model, steps, lr, adjust_lr_fn, what)

    check_round_trips(make, steps, mid, judge_params=judge)


@pytest.mark.parametrize(("options", "scheduler"), [
    ({"lr": 0.02}, None),
    ({"lr": 0.02, "weight_decay": 0.2, "momentum": 0.9, "nesterov": False, "ns_steps": 4,
      "adjust_lr_fn": "match_rms_adamw"}, None),
    ({"lr": 0.02}, "StepLR"),
    ({"lr": 0.02}, "OneCycleLR"),
], ids=["defaults", "match_rms_adamw-plain-momentum", "StepLR", "OneCycleLR-momentum"])
def test_the_port_round_trips_muon(options, scheduler):
    """optimizer_from_torch / state_from_torch / state_to_torch, both ways: the buffers key by
    key to 1e-12, the parameters within Muon's tolerance; a scheduler's lr is the last factor,
    and OneCycleLR's cycled momentum enters the lerp as torch's group momentum does."""
    options = dict(options)
    weight_decay = options.pop("weight_decay", 0.1)

    def make():
        model = make_matrices()
        optimizer = torch.optim.Muon(groups(model, weight_decay), **options)
        if scheduler == "StepLR":
            return model, optimizer, lr_scheduler.StepLR(optimizer, step_size=5, gamma=0.8)
        if scheduler == "OneCycleLR":
            return model, optimizer, lr_scheduler.OneCycleLR(optimizer, max_lr=0.03,
                                                             total_steps=60)
        return model, optimizer, None

    lr = 0.03 if scheduler == "OneCycleLR" else options["lr"]
    check_round_trips_within_muon_tolerance(make, lr, options.get("adjust_lr_fn"))


FACTORY = textwrap.dedent('''
    import torch
    from torch import nn


    def trained_muon():
        """Muon over two groups of matrices (decay on the first two), stepped three times."""
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(5, 8, bias=False, dtype=torch.float64),
                              nn.Linear(8, 8, bias=False, dtype=torch.float64),
                              nn.Linear(8, 3, bias=False, dtype=torch.float64))
        optimizer = torch.optim.Muon(
            [{"params": [model[0].weight, model[1].weight], "weight_decay": 0.1},
             {"params": [model[2].weight], "weight_decay": 0.0}], lr=0.02)
        for step in range(3):
            for p in model.parameters():
                p.grad = torch.full_like(p, 0.5 - step) + torch.eye(*p.shape, dtype=p.dtype)
            optimizer.step()
        return model, optimizer
''')


def test_port_check_on_a_trained_muon(tmp_path, monkeypatch, capsys):
    """port-check judges Muon's parameters by the derived tolerance (the registry's
    ``parameter_tolerance``: ``S*lr*ratio*tau*max|O|`` relative to torch's largest element,
    printed as each parameter's tolerance) and its state at float64's 1e-12: it exits 0. Its
    own run (``run_both``, the same steps on the same gradients) is then judged by Muon's
    tolerance directly."""
    import importlib

    from weight_decay.cli import main
    from weight_decay.commands.port_check import run_both

    with optim_checks.factory_module(tmp_path, monkeypatch, "muon_factories", FACTORY):
        code = main(["port-check", "muon_factories:trained_muon", "--steps", "10"])
        model, optimizer = importlib.import_module("muon_factories").trained_muon()
    out = capsys.readouterr().out
    assert "state momentum_buffer 2.weight" in out and "param 0.weight" in out
    assert code == 0 and "BEYOND" not in out, out
    printed = {tuple(line.split()[:-2]): float(line.split()[-1])  # (what, name): tolerance
               for line in out.splitlines() if line.startswith(("param ", "state "))}
    with jax.enable_x64(True):
        params, named_state, _ = run_both(model, optimizer, None, steps=10, seed=0)
    assert_within_muon_tolerance(params, model, 10, 0.02, None, "port-check's run")
    assert_same_states(named_state, torch_state_by_name(optimizer, model), "port-check's run")
    for name, p in model.named_parameters():  # torch's parameters after port-check's steps
        derived = parameter_tolerance(10, 0.02, adjusted_ratio(tuple(p.shape)))
        expected = max(1e-12, derived / float(p.detach().abs().max()))
        assert expected > 1e-6
        assert printed["param", name] == pytest.approx(expected, rel=5e-3), (name, out)
        assert printed["state", "momentum_buffer", name] == 1e-12, out


# ---- optax's namesake ----------------------------------------------------------------------

NAIVE = {"lr": 0.02, "weight_decay": 0.1, "momentum": 0.95, "nesterov": True,
         "ns_coefficients": DEFAULT_NS_COEFFICIENTS, "eps": 1e-7, "ns_steps": 5,
         "adjust_lr_fn": None}


def port_error(make_tx, steps: int = STEPS, **options) -> float:
    """The relative error (``optim_checks.relative_error``) after ``steps`` drawn-gradient
    steps of ``make_tx(weight_decay) -> tx`` per group (decay on the first, :data:`DECAYED`)
    against torch's Muon (bfloat16, its own rule), float64."""
    hyper = {**NAIVE, **options}
    weight_decay = hyper.pop("weight_decay")
    return optim_checks.port_error(
        lambda model: torch.optim.Muon(groups(model, weight_decay), **hyper), make_tx,
        weight_decay, steps, new_model=make_matrices, decay_mask=decay_mask)


def naive_error(steps: int = STEPS, **options) -> float:
    """optax's namesake (the registry's ``naive``: ``optax.contrib.muon(lr, ns_coeffs,
    ns_steps, beta=momentum, eps, weight_decay, nesterov)``) against torch's
    ``Muon(lr=0.02, weight_decay=0.1)`` (its other defaults): relative error of the parameters
    after ``steps`` steps."""
    naive = PORTS["torch.optim.Muon"].naive
    return port_error(optim_checks.group_tx(naive, {**NAIVE, **options}), steps, **options)


def twin_error(steps: int = STEPS, **options) -> float:
    """The same error of the twin (:func:`torch_muon`, bfloat16 as torch)."""
    return port_error(optim_checks.group_tx(torch_muon, {**NAIVE, **options}), steps, **options)


def tolerance_relative(steps: int = STEPS) -> float:
    """Muon's parameter tolerance for :data:`NAIVE` (the largest ratio, 8x5's), relative to
    the parameters' largest element at the start: the scale :func:`naive_error` is judged
    against."""
    model = make_matrices()
    ratio = max(adjusted_ratio(tuple(p.shape)) for p in model.parameters())
    largest = max(float(p.detach().abs().max()) for p in model.parameters())
    return parameter_tolerance(steps, NAIVE["lr"], ratio) / largest


def test_optax_namesake_is_far_beyond_muons_tolerance():
    """optax.contrib.muon with torch's hyper-parameters (bias-corrected momentum, another
    nesterov mix, the iteration in float64 with eps added, the ratio of an (in, out) layout)
    is farther from torch than the derived tolerance allows; the twin is within it (on this
    CPU: to rounding, its bfloat16 iteration being bit-identical here)."""
    assert naive_error() > 2 * tolerance_relative()
    assert twin_error() < tolerance_relative()
