"""wd_jax.optim's builders against torch.optim itself: 20 steps, parameters and state.

The model is small but has several parameter tensors, two of which are masked out of the
weight decay (torch: a parameter group with ``weight_decay=0``; optax: ``mask``):
``y_hat = tanh(X w1 + b1) w2 + b2`` with the loss ``mean((y_hat - y)**2) / 2`` on a
different pair of rows at every step. Each framework differentiates its own copy of the
model, as a port would. float64 must agree within rtol 1e-12 (parameters and every state
tensor); float32 within the tolerance table.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from wd_core.tolerances import assert_close, run_kind

jax = pytest.importorskip("jax")
torch = pytest.importorskip("torch")
import jax.numpy as jnp  # noqa: E402
import optax  # noqa: E402

from wd_jax import optim as jopt  # noqa: E402
from wd_torch.optim import SGDW  # noqa: E402

STEPS = 20
SHAPES = {"w1": (3, 4), "b1": (4,), "w2": (4, 2), "b2": (2,)}
DECAY_MASK = {"w1": True, "b1": False, "w2": True, "b2": False}
_rng = np.random.default_rng(np.random.SeedSequence((5, 0)))
X = _rng.standard_normal((8, 3))
Y = _rng.standard_normal((8, 2))
PARAMS0 = {name: 0.5 * _rng.standard_normal(shape) for name, shape in SHAPES.items()}
TORCH_DTYPES = {"float32": torch.float32, "float64": torch.float64}


def batch_rows(step: int) -> np.ndarray:
    return np.array([(2 * step) % len(X), (2 * step + 1) % len(X)])


def torch_loss(params, X_b, y_b, sign=1.0):
    y_hat = torch.tanh(X_b @ params["w1"] + params["b1"]) @ params["w2"] + params["b2"]
    return sign * ((y_hat - y_b) ** 2).mean() / 2


def jax_loss(params, X_b, y_b, sign=1.0):
    y_hat = jnp.tanh(X_b @ params["w1"] + params["b1"]) @ params["w2"] + params["b2"]
    return sign * jnp.mean((y_hat - y_b) ** 2) / 2


_jax_grad = jax.jit(jax.grad(jax_loss))


def torch_groups(params, mask=DECAY_MASK, weight_decay=None):
    """torch parameter groups: decayed (mask True) and ``weight_decay=0`` (mask False)."""
    decayed = {"params": [params[k] for k in params if mask[k]]}
    if weight_decay is not None:
        decayed["weight_decay"] = weight_decay
    others = {"params": [params[k] for k in params if not mask[k]], "weight_decay": 0.0}
    return [decayed, others]


def run_torch(make_optimizer, dtype, steps=STEPS, schedule=None, params0=PARAMS0,
              loss=torch_loss, sign=1.0):
    """``steps`` torch steps; returns (params, {state name: {param name: array}}, lrs)."""
    tdtype = TORCH_DTYPES[dtype]
    params = {k: torch.tensor(v, dtype=tdtype, requires_grad=True) for k, v in params0.items()}
    optimizer = make_optimizer(params)
    scheduler = schedule(optimizer) if schedule is not None else None
    X_t, Y_t = torch.tensor(X, dtype=tdtype), torch.tensor(Y, dtype=tdtype)
    lrs = []
    for step in range(steps):
        rows = batch_rows(step)
        optimizer.zero_grad()
        loss(params, X_t[rows], Y_t[rows], sign).backward()
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
    state = {}
    for name, p in params.items():
        for key, value in optimizer.state.get(p, {}).items():
            state.setdefault(key, {})[name] = np.asarray(value.detach().numpy())
    return {k: p.detach().numpy().astype(np.float64) for k, p in params.items()}, state, lrs


def run_jax(tx, dtype, steps=STEPS, params0=PARAMS0, grad=None, sign=1.0):
    """``steps`` optax updates; returns (params, torch_state(opt_state) as numpy)."""
    grad = grad or _jax_grad
    with jax.enable_x64(dtype == "float64"):
        params = {k: jnp.asarray(v, dtype=dtype) for k, v in params0.items()}
        opt_state = tx.init(params)
        update = tx.update  # eager: a compile per drawn hyper-parameter set costs more
        X_j, Y_j = jnp.asarray(X, dtype=dtype), jnp.asarray(Y, dtype=dtype)
        for step in range(steps):
            rows = batch_rows(step)
            grads = grad(params, X_j[rows], Y_j[rows], sign)
            updates, opt_state = update(grads, opt_state, params)
            params = optax.apply_updates(params, updates)
        state = jax.tree.map(np.asarray, jopt.torch_state(opt_state))
        return {k: np.asarray(v, dtype=np.float64) for k, v in params.items()}, state


def assert_same_run(jax_run, torch_run, kind):
    (j_params, j_state), (t_params, t_state, _) = jax_run, torch_run
    for name in SHAPES:
        assert_close(j_params[name], t_params[name], kind, err_msg=f"param {name}")
    assert set(j_state) == set(t_state), (sorted(j_state), sorted(t_state))
    for key, per_param in t_state.items():
        for name, value in per_param.items():
            mine = j_state[key] if key == "step" else j_state[key][name]
            if key == "step":
                assert float(mine) == float(value) == STEPS
            else:
                assert_close(mine, value, kind, err_msg=f"state {key} of {name}")


LR = st.floats(1e-3, 0.3)
WD = st.floats(0.0, 1.0)
SGD_ARGS = st.fixed_dictionaries({
    "lr": LR,
    "momentum": st.sampled_from([0.0, 0.5, 0.9]) | st.floats(0.0, 0.99),
    "dampening": st.sampled_from([0.0, 0.0, 0.1, 0.5]),
    "weight_decay": WD,
    "nesterov": st.booleans(),
    "maximize": st.booleans(),
}).filter(lambda a: not a["nesterov"] or (a["momentum"] > 0 and a["dampening"] == 0))
ADAM_ARGS = st.fixed_dictionaries({
    "lr": st.floats(1e-4, 0.05),
    "betas": st.tuples(st.floats(0.0, 0.99), st.floats(0.5, 0.9999)),
    "eps": st.floats(1e-10, 1e-6),
    "weight_decay": WD,
})
CHECKS = settings(max_examples=20, deadline=None, derandomize=True)


def _ascent_sign(args) -> float:
    """With ``maximize`` the model maximises ``-loss``: the same well-behaved descent, so
    rounding is not amplified by a diverging ascent (the comparison stays meaningful)."""
    return -1.0 if args.get("maximize") else 1.0


def _sgd_torch(args):
    a = dict(args)
    return lambda params: torch.optim.SGD(torch_groups(params), lr=a["lr"],
                                          momentum=a["momentum"], dampening=a["dampening"],
                                          weight_decay=a["weight_decay"],
                                          nesterov=a["nesterov"], maximize=a["maximize"])


def _sgd(**kwargs):
    return {"lr": 0.1, "momentum": 0.0, "dampening": 0.0, "weight_decay": 0.0,
            "nesterov": False, "maximize": False, **kwargs}


# One explicit example per row of docs/optimizers.md, then hypothesis' own draws.
SGD_ROWS = [
    _sgd(),
    _sgd(weight_decay=0.3),
    _sgd(weight_decay=0.3, momentum=0.9),
    _sgd(weight_decay=0.3, momentum=0.9, nesterov=True),
    _sgd(weight_decay=0.3, momentum=0.9, dampening=0.5),
    _sgd(weight_decay=0.3, momentum=0.9, maximize=True),
]


def with_rows(rows):
    def decorate(test):
        for row in reversed(rows):
            test = example(args=row)(test)
        return test
    return decorate


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@CHECKS
@with_rows(SGD_ROWS)
@given(args=SGD_ARGS)
def test_torch_sgd_matches_torch_optim_sgd(dtype, args):
    sign = _ascent_sign(args)
    expected = run_torch(_sgd_torch(args), dtype, sign=sign)
    actual = run_jax(jopt.torch_sgd(**args, mask=DECAY_MASK), dtype, sign=sign)
    assert_same_run(actual, expected, run_kind(dtype))


ADAM_ROWS = [
    {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0},
    {"lr": 1e-2, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.3},
]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("family", ["adam", "adamw"])
@CHECKS
@with_rows(ADAM_ROWS)
@given(args=ADAM_ARGS)
def test_torch_adam_family_matches_torch_optim(dtype, family, args):
    torch_class = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[family]
    builder = {"adam": jopt.torch_adam, "adamw": jopt.torch_adamw}[family]
    expected = run_torch(lambda params: torch_class(torch_groups(params), **args), dtype)
    actual = run_jax(builder(**args, mask=DECAY_MASK), dtype)
    assert_same_run(actual, expected, run_kind(dtype, adam=True))


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@CHECKS
@with_rows(SGD_ROWS)
@given(args=SGD_ARGS)
def test_sgdw_same_rule_in_both_frameworks(dtype, args):
    sign = _ascent_sign(args)
    expected = run_torch(lambda params: SGDW(torch_groups(params), **args), dtype, sign=sign)
    actual = run_jax(jopt.sgdw(**args, mask=DECAY_MASK), dtype, sign=sign)
    assert_same_run(actual, expected, run_kind(dtype))


@settings(max_examples=8, deadline=None, derandomize=True)
@given(args=SGD_ARGS)
def test_sgdw_without_decay_is_torch_sgd(args):
    """The direction of SGDW is torch.optim.SGD's (decay 0): params and buffers."""
    args = {**args, "weight_decay": 0.0}
    sign = _ascent_sign(args)
    expected = run_torch(_sgd_torch(args), "float64", sign=sign)
    actual = run_torch(lambda params: SGDW(torch_groups(params), **args), "float64", sign=sign)
    for name in SHAPES:
        assert_close(actual[0][name], expected[0][name], "float64")
    for name, value in expected[1].get("momentum_buffer", {}).items():
        assert_close(actual[1]["momentum_buffer"][name], value, "float64")


@settings(max_examples=8, deadline=None, derandomize=True)
@given(lr=LR, weight_decay=WD, maximize=st.booleans())
def test_sgdw_without_momentum_is_torch_sgd_with_weight_decay(lr, weight_decay, maximize):
    args = {"lr": lr, "weight_decay": weight_decay, "maximize": maximize}
    sign = _ascent_sign(args)
    expected = run_torch(lambda params: torch.optim.SGD(torch_groups(params), **args),
                         "float64", sign=sign)
    actual = run_torch(lambda params: SGDW(torch_groups(params), **args), "float64", sign=sign)
    for name in SHAPES:
        assert_close(actual[0][name], expected[0][name], "float64")


def test_sgdw_one_step_is_the_documented_rule():
    """``p <- (1 - lr*wd)*p - lr*g`` on the first step (the buffer starts at ``g``)."""
    lr, wd, mu = 0.1, 0.5, 0.9
    p0 = np.array([1.0, -2.0, 3.0])
    g = np.array([0.5, 0.25, -1.0])
    p = torch.tensor(p0, requires_grad=True)
    p.grad = torch.tensor(g)
    opt = SGDW([p], lr=lr, momentum=mu, weight_decay=wd)
    opt.step()
    np.testing.assert_allclose(p.detach().numpy(), (1 - lr * wd) * p0 - lr * g, rtol=1e-15)
    p.grad = torch.tensor(2 * g)
    opt.step()
    p1 = (1 - lr * wd) * p0 - lr * g
    np.testing.assert_allclose(p.detach().numpy(), (1 - lr * wd) * p1 - lr * (mu * g + 2 * g),
                               rtol=1e-15)


def test_adamw_default_decay_is_torch_not_optax():
    """torch AdamW decays by 1e-2 by default, optax.adamw by 1e-4; torch_adamw follows torch."""
    import inspect

    assert inspect.signature(torch.optim.AdamW).parameters["weight_decay"].default == 1e-2
    assert inspect.signature(optax.adamw).parameters["weight_decay"].default == 1e-4
    expected = run_torch(lambda params: torch.optim.AdamW(params.values(), lr=0.01), "float64")
    actual = run_jax(jopt.torch_adamw(0.01), "float64")
    assert_same_run(actual, expected, "float64")
    optax_default = run_jax(optax.adamw(0.01), "float64")
    with pytest.raises(AssertionError):
        assert_close(optax_default[0]["w1"], expected[0]["w1"], "float64")


def test_adam_weight_decay_is_coupled_and_adamw_decoupled():
    """Same hyper-parameters, different rules: Adam(weight_decay) != AdamW(weight_decay)."""
    args = {"lr": 0.01, "weight_decay": 0.5}
    adam = run_jax(jopt.torch_adam(**args), "float64")
    adamw = run_jax(jopt.torch_adamw(**args), "float64")
    assert not np.allclose(adam[0]["w1"], adamw[0]["w1"], rtol=1e-6)


# ---- invalid combinations: the builders reject what torch rejects, with the same type ----

SGD_REJECTED = [
    {"lr": -0.1},
    {"lr": 0.1, "weight_decay": -1e-3},
    {"lr": 0.1, "momentum": -0.5},
    {"lr": 0.1, "nesterov": True},
    {"lr": 0.1, "momentum": 0.9, "dampening": 0.1, "nesterov": True},
]
ADAM_REJECTED = [
    {"lr": -1e-3},
    {"lr": 1e-3, "weight_decay": -0.01},
    {"lr": 1e-3, "eps": -1e-8},
    {"lr": 1e-3, "betas": (1.0, 0.999)},
    {"lr": 1e-3, "betas": (0.9, -0.1)},
    {"lr": 1e-3, "betas": (-0.1, 0.999)},
]


def _torch_error(make) -> type:
    with pytest.raises(Exception) as caught:
        make()
    return caught.type


@pytest.mark.parametrize("kwargs", SGD_REJECTED, ids=str)
def test_sgd_builders_reject_what_torch_rejects(kwargs):
    params = [torch.zeros(2, requires_grad=True)]
    error = _torch_error(lambda: torch.optim.SGD(params, **kwargs))
    assert error is ValueError
    for make in (lambda: jopt.torch_sgd(**kwargs), lambda: jopt.sgdw(**kwargs),
                 lambda: SGDW(params, **kwargs)):
        with pytest.raises(error):
            make()


@pytest.mark.parametrize("family", ["adam", "adamw"])
@pytest.mark.parametrize("kwargs", ADAM_REJECTED, ids=str)
def test_adam_builders_reject_what_torch_rejects(family, kwargs):
    torch_class = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[family]
    builder = {"adam": jopt.torch_adam, "adamw": jopt.torch_adamw}[family]
    error = _torch_error(lambda: torch_class([torch.zeros(2, requires_grad=True)], **kwargs))
    assert error is ValueError
    with pytest.raises(error):
        builder(**kwargs)


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_builders_reject_non_finite_values_torch_lets_through(value):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=value)  # torch accepts it
    with pytest.raises(ValueError, match="lr must be a finite number >= 0"):
        jopt.torch_sgd(value)
