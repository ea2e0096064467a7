"""Two real models for the port's parity tests, their JAX forwards, and the runs both sides make.

* ``MLP``: ``Linear(5, 8) -> LayerNorm(8) -> GELU -> Linear(8, 8) -> Tanh`` as ``body`` and a
  ``Linear(8, 3)`` ``head``.
* ``ConvText``: ``Embedding(11, 4) -> Conv1d(4, 6, 3, padding=1) -> Tanh -> mean over the
  sequence -> LayerNorm(6)`` and a ``Linear(6, 2)`` ``head``.

Both are built in float64 (``dtype=torch.float64``, never the global default) and filled from
a seeded numpy generator. The JAX forwards read the flat dict of
``wd_jax.port.params_from_torch`` in torch's layout (``x @ W.T + b``, layer norm with torch's
``eps``, cross-correlation with ``OIH`` kernels). The loss is ``mean((y_hat - y)**2) / 2``,
times -1 when the optimizer maximizes (so that it still descends). The tests here check the
forwards and gradients against torch, and the parameter round trip.

Gradients: each framework differentiates its own model (``grads="own"``), or the optax chain
is fed the gradients torch computed on its own trajectory (``grads="torch"``), which leaves
the optimizers alone under test.
"""

from __future__ import annotations

import copy
import functools

import numpy as np
import pytest

from wd_core.tolerances import assert_close

torch = pytest.importorskip("torch")
jax = pytest.importorskip("jax")
import jax.numpy as jnp  # noqa: E402
import optax  # noqa: E402
from torch import nn  # noqa: E402

from wd_jax import port  # noqa: E402

F64 = torch.float64
STEPS = 20
HALF = STEPS // 2
LN_EPS = 1e-5


class MLP(nn.Module):
    """``head(tanh(Linear(gelu(LayerNorm(Linear(x))))))``; ``x`` (n, 5) -> (n, 3)."""

    def __init__(self, dtype=F64):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(5, 8, dtype=dtype), nn.LayerNorm(8, dtype=dtype),
                                  nn.GELU(), nn.Linear(8, 8, dtype=dtype), nn.Tanh())
        self.head = nn.Linear(8, 3, dtype=dtype)

    def forward(self, x):
        return self.head(self.body(x))


class ConvText(nn.Module):
    """Tokens (n, L) -> ``head(LayerNorm(mean_L(tanh(Conv1d(Embedding(tokens))))))`` (n, 2)."""

    def __init__(self, dtype=F64):
        super().__init__()
        self.embed = nn.Embedding(11, 4, dtype=dtype)
        self.conv = nn.Conv1d(4, 6, kernel_size=3, padding=1, dtype=dtype)
        self.norm = nn.LayerNorm(6, dtype=dtype)
        self.head = nn.Linear(6, 2, dtype=dtype)

    def forward(self, tokens):
        h = torch.tanh(self.conv(self.embed(tokens).transpose(1, 2)))
        return self.head(self.norm(h.mean(dim=2)))


def layer_norm(h, weight, bias, eps=LN_EPS):
    """torch's ``nn.LayerNorm`` over the last axis: biased variance, ``eps`` inside the root."""
    mean = h.mean(axis=-1, keepdims=True)
    var = ((h - mean) ** 2).mean(axis=-1, keepdims=True)
    return (h - mean) / jnp.sqrt(var + eps) * weight + bias


def linear(h, params, name):
    return h @ params[f"{name}.weight"].T + params[f"{name}.bias"]


def mlp_forward(params, x):
    h = linear(x, params, "body.0")
    h = layer_norm(h, params["body.1.weight"], params["body.1.bias"])
    h = jnp.tanh(linear(jax.nn.gelu(h, approximate=False), params, "body.3"))
    return linear(h, params, "head")


def conv_forward(params, tokens):
    e = params["embed.weight"][tokens].transpose(0, 2, 1)  # (n, E, L)
    h = jax.lax.conv_general_dilated(e, params["conv.weight"], window_strides=(1,),
                                     padding=[(1, 1)], dimension_numbers=("NCH", "OIH", "NCH"))
    h = jnp.tanh(h + params["conv.bias"][None, :, None]).mean(axis=2)
    return linear(layer_norm(h, params["norm.weight"], params["norm.bias"]), params, "head")


def _mlp_batch(rng):
    return rng.standard_normal((4, 5)), rng.standard_normal((4, 3))


def _conv_batch(rng):
    return rng.integers(0, 11, size=(3, 7)), rng.standard_normal((3, 2))


MODELS = {
    # kind: (torch class, JAX forward, one batch from a generator)
    "mlp": (MLP, mlp_forward, _mlp_batch),
    "conv": (ConvText, conv_forward, _conv_batch),
}


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """torch on one thread while these tiny models run: its thread pool costs more than the
    work (twice the time on two busy cores). Restored afterwards. Modules that import the
    fixture get it too."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def make_model(kind: str, seed: int = 0, dtype=F64) -> nn.Module:
    """A ``kind`` model whose parameters are drawn from numpy (seeded), not from torch."""
    model = MODELS[kind][0](dtype=dtype)
    rng = np.random.default_rng(np.random.SeedSequence((7, seed)))
    with torch.no_grad():
        for name, p in model.named_parameters():
            draw = 0.5 * rng.standard_normal(tuple(p.shape))
            p.copy_(torch.tensor(1.0 + 0.2 * draw if name.endswith("norm.weight")
                                 or name == "body.1.weight" else draw))
    return model


def make_batches(kind: str, steps: int = STEPS, seed: int = 0) -> list:
    """``steps`` batches ``(x, y)`` of numpy arrays, the same for both frameworks."""
    rng = np.random.default_rng(np.random.SeedSequence((8, seed)))
    return [MODELS[kind][2](rng) for _ in range(steps)]


BATCHES = {kind: make_batches(kind) for kind in MODELS}


def _torch_input(x):
    return torch.tensor(x) if x.dtype.kind == "f" else torch.tensor(x, dtype=torch.long)


def torch_loss(model, x, y, sign=1.0):
    y_hat = model(_torch_input(x))
    return sign * ((y_hat - torch.tensor(y, dtype=y_hat.dtype)) ** 2).mean() / 2


def jax_loss(forward, params, x, y, sign=1.0):
    return sign * jnp.mean((forward(params, x) - y) ** 2) / 2


def torch_run(model, optimizer, batches, *, scheduler=None, sign=1.0) -> list[dict]:
    """One ``optimizer.step()`` (then ``scheduler.step()``) per batch; returns torch's
    gradients of each step as ``{name: numpy array}``."""
    grads = []
    for x, y in batches:
        optimizer.zero_grad()
        torch_loss(model, x, y, sign).backward()
        grads.append({n: p.grad.detach().numpy().copy() for n, p in model.named_parameters()
                      if p.grad is not None})
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
    return grads


@functools.cache
def jax_grad(kind: str):
    """``jax.grad`` of the loss of ``kind``'s forward, compiled once per model and dtype."""
    forward = MODELS[kind][1]
    return jax.jit(jax.grad(lambda params, x, y, sign: jax_loss(forward, params, x, y, sign)))


class OptaxRun:
    """The optax side: gradients from ``jax.grad`` of the same loss (or given), then
    ``tx.update`` and ``optax.apply_updates``.

    ``run(params, state, batches)`` takes a step per batch with ``jax.grad``;
    ``run(params, state, grads=[...])`` takes a step per given gradient dict (torch's: frozen
    parameters, which torch gives none, get zeros). The update runs op by op: its hyper-
    parameters are constants of the chain, so compiling it would cost a compile per drawn
    example, while JAX caches each operation across examples. Call inside
    ``jax.enable_x64(True)``.
    """

    def __init__(self, kind: str, tx, sign: float = 1.0):
        self._kind, self._tx, self._sign = kind, tx, sign

    def _step(self, params, state, grads):
        updates, state = self._tx.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    def run(self, params, state, batches=(), grads=None):
        if grads is not None:
            for g in grads:
                full = {n: jnp.asarray(g[n]) if n in g else jnp.zeros_like(v)
                        for n, v in params.items()}
                params, state = self._step(params, state, full)
            return params, state
        grad = jax_grad(self._kind)
        for x, y in batches:
            params, state = self._step(params, state, grad(params, x, y, self._sign))
        return params, state


# ---- reading both states under torch's names (independently of wd_jax.port) -------------

def torch_state_by_name(optimizer, model) -> dict[str, dict[str, np.ndarray]]:
    """``{name: {key: array}}`` of ``optimizer.state``; parameters without state left out."""
    out = {}
    for name, p in model.named_parameters():
        state = optimizer.state.get(p, {})
        if state:
            out[name] = {k: np.asarray(v.detach().numpy(), dtype=np.float64)
                         for k, v in state.items() if v is not None}
    return out


def optax_state_by_name(opt_state) -> dict[str, dict[str, np.ndarray]]:
    """The same from an optax state, found by optax's own state classes: ``TraceState.trace``
    and ``TorchMomentumState.momentum_buffer`` -> ``momentum_buffer``; ``ScaleByAdamState``
    ``count``/``mu``/``nu`` -> ``step``/``exp_avg``/``exp_avg_sq``."""
    out = {}

    def put(tree, key, count=None):
        for name, value in tree.items():
            if not isinstance(value, optax.MaskedNode):
                entry = out.setdefault(name, {})
                entry[key] = np.asarray(value, dtype=np.float64)
                if count is not None:
                    entry["step"] = np.asarray(float(count))

    for _, s in optax.tree.get_all_with_path(opt_state, "TraceState"):
        put(s.trace, "momentum_buffer")
    for _, s in optax.tree.get_all_with_path(opt_state, "TorchMomentumState"):
        put(s.momentum_buffer, "momentum_buffer")
    for _, s in optax.tree.get_all_with_path(opt_state, "ScaleByAdamState"):
        put(s.mu, "exp_avg", count=s.count)
        put(s.nu, "exp_avg_sq")
    return out


def assert_same_states(actual: dict, expected: dict, what: str) -> None:
    """Every torch state entry equal (``step`` exactly, arrays within float64's 1e-12)."""
    assert sorted(actual) == sorted(expected), (what, sorted(actual), sorted(expected))
    for name, entries in expected.items():
        assert sorted(actual[name]) == sorted(entries), (what, name)
        for key, value in entries.items():
            if key == "step":
                assert float(actual[name][key]) == float(value), (what, name)
            else:
                assert_close(actual[name][key], value, "float64",
                             err_msg=f"{what}: {key} of {name}")


def assert_same_params(actual: dict, model, what: str) -> None:
    expected = {n: p.detach().numpy() for n, p in model.named_parameters()}
    assert sorted(actual) == sorted(expected)
    for name, value in expected.items():
        assert_close(np.asarray(actual[name]), value, "float64", err_msg=f"{what}: {name}")


def torch_snapshot(model, optimizer, scheduler=None):
    """Deep copies of the three state dicts, to restart a run in the middle."""
    return tuple(copy.deepcopy(x.state_dict()) if x is not None else None
                 for x in (model, optimizer, scheduler))


# ---- tests: the forwards and the parameter round trip ----------------------------------------

@pytest.mark.parametrize("kind", sorted(MODELS))
def test_jax_forward_and_gradients_equal_torch(kind):
    model = make_model(kind)
    x, y = BATCHES[kind][0]
    loss = torch_loss(model, x, y)
    loss.backward()
    with jax.enable_x64(True):
        params = port.params_from_torch(model)
        value, grads = jax.jit(jax.value_and_grad(
            lambda p: jax_loss(MODELS[kind][1], p, x, y)))(params)
        assert_close(value, loss.item(), "float64")
        for name, p in model.named_parameters():
            assert grads[name].shape == tuple(p.shape)
            assert_close(grads[name], p.grad.numpy(), "float64", err_msg=name)


@pytest.mark.parametrize("kind", sorted(MODELS))
def test_params_keep_torch_names_layout_and_dtype_and_go_back(kind):
    model = make_model(kind)
    torch_params = {n: p.detach().numpy().copy() for n, p in model.named_parameters()}
    with jax.enable_x64(True):
        params = port.params_from_torch(model)
        assert list(params) == list(torch_params)
        for name, value in torch_params.items():
            assert params[name].dtype == jnp.float64
            np.testing.assert_array_equal(np.asarray(params[name]), value)
        if kind == "mlp":
            assert params["body.0.weight"].shape == (8, 5)  # Linear(5, 8).weight: (out, in)
        moved = {n: v * 2 - 1 for n, v in params.items()}
        port.params_to_torch(moved, model)
    for name, p in model.named_parameters():
        np.testing.assert_array_equal(p.detach().numpy(), torch_params[name] * 2 - 1)


def test_float64_params_need_x64_and_float32_do_not():
    with pytest.raises(ValueError, match=r"'body.0.weight' is float64.*enable_x64"):
        port.params_from_torch(make_model("mlp"))
    params = port.params_from_torch(make_model("mlp", dtype=torch.float32))
    assert {np.dtype(v.dtype) for v in params.values()} == {np.dtype("float32")}


def test_bfloat16_parameters_travel_bit_for_bit():
    model = make_model("mlp", dtype=torch.bfloat16)
    params = port.params_from_torch(model)
    assert params["head.weight"].dtype == jnp.bfloat16
    before = model.head.weight.detach().clone()
    port.params_to_torch({n: -v for n, v in params.items()}, model)
    assert torch.equal(model.head.weight.detach(), -before)
