"""The book's weight-decay pitfalls (DESIGN.md 1, 5, 6, 7, 8), each built wrong and caught.

1. unmasked optax decay reaches the bias;   5. ``optax.additive_weight_decay`` is gone;
6. ``chain(sgd, add_decayed_weights)`` grows the weights;   7. torch skips a parameter whose
gradient is ``None`` while optax decays every leaf;   8. the penalty without its 1/2 decays
twice as fast.
"""

from __future__ import annotations

import numpy as np
import pytest

from parity_tests.pitfall_inputs import (
    GAP,
    LAMBD,
    LR,
    B,
    W,
    X,
    Y,
    error,
    jax_modules,
    jax_squared_loss,
    optax_step,
    oracle_step,
    torch_modules,
    torch_tensor,
)
from wd_core import reference
from wd_core.tolerances import assert_close

METHODS = ("scratch", "concise")


@pytest.mark.parametrize("method", METHODS)
def test_project_step_is_the_reference(backend, method):
    """The right path for every pitfall below: the project's step on the shared inputs."""
    # Writable copies: torch warns when it wraps a read-only numpy array.
    got = backend.sgd_step(*map(np.array, (W, B, X, Y)), method=method, lambd=LAMBD, lr=LR,
                           dtype="float64")
    for actual, expected in zip(got, oracle_step(), strict=True):
        assert_close(actual, expected, "float64")


def test_pitfall1_unmasked_optax_decay_reaches_the_bias():
    _, _, optax = jax_modules()
    params = {"w": W, "b": B}
    unmasked = optax.chain(optax.add_decayed_weights(LAMBD), optax.sgd(LR))
    masked = optax.chain(optax.add_decayed_weights(LAMBD, mask={"w": True, "b": False}),
                         optax.sgd(LR))
    w_ok, b_ok = oracle_step()
    wrong, right = optax_step(unmasked, jax_squared_loss, params), optax_step(
        masked, jax_squared_loss, params)
    assert error(wrong["b"], b_ok) > GAP
    assert_close(wrong["b"], b_ok - LR * LAMBD * B, "float64")  # exactly the bias decayed
    assert_close(right["b"], b_ok, "float64")
    assert_close(right["w"], w_ok, "float64")


def test_pitfall5_additive_weight_decay_is_gone():
    _, _, optax = jax_modules()
    with pytest.raises(AttributeError):
        optax.additive_weight_decay  # noqa: B018 - the book's call, removed in optax 0.1.8
    assert callable(optax.add_decayed_weights)


def test_pitfall6_chain_order_reversed_grows_the_weights():
    _, _, optax = jax_modules()
    mask = {"w": True, "b": False}
    reversed_chain = optax.chain(optax.sgd(LR), optax.add_decayed_weights(LAMBD, mask=mask))
    wrong = optax_step(reversed_chain, jax_squared_loss, {"w": W, "b": B})
    g_w, _ = reference.grads(W, B, X, Y)
    w_ok, _ = oracle_step()
    assert error(wrong["w"], w_ok) > GAP
    assert_close(wrong["w"], (1 + LAMBD) * W - LR * g_w, "float64")  # +lambd*w after -lr
    # With no data gradient (X = 0, y = b) the reversed chain multiplies w by 1 + lambd.
    X0, y0 = np.zeros_like(X), np.full_like(Y, B[0])
    grown = optax_step(reversed_chain, jax_squared_loss, {"w": W, "b": B}, X=X0, Y=y0)
    shrunk, _ = reference.sgd_step(W, B, X0, y0, lr=LR, lambd=LAMBD)
    assert np.linalg.norm(grown["w"]) > np.linalg.norm(W) > np.linalg.norm(shrunk)


def test_pitfall7_none_gradient_torch_skips_optax_decays():
    torch, nn = torch_modules()
    _, _, optax = jax_modules()
    u0 = np.array([0.5, -1.5])  # a parameter the loss never touches

    w = nn.Parameter(torch_tensor(W))
    b = nn.Parameter(torch_tensor(B))
    u = nn.Parameter(torch_tensor(u0))
    opt = torch.optim.SGD([{"params": [w, u], "weight_decay": LAMBD},
                           {"params": [b], "weight_decay": 0.0}], lr=LR)
    loss = ((torch_tensor(X) @ w + b - torch_tensor(Y)) ** 2).mean() / 2
    opt.zero_grad()
    loss.backward()
    opt.step()
    assert u.grad is None
    torch_u = u.detach().numpy()

    tx = optax.chain(optax.add_decayed_weights(LAMBD, mask={"w": True, "b": False, "u": True}),
                     optax.sgd(LR))
    optax_u = optax_step(tx, jax_squared_loss, {"w": W, "b": B, "u": u0})["u"]
    np.testing.assert_array_equal(torch_u, u0)  # skipped: no decay without a gradient
    assert_close(optax_u, (1 - LR * LAMBD) * u0, "float64")  # a zero gradient still decays
    assert error(torch_u, optax_u) > GAP
    # The project's models: every parameter is in the loss, so none is left without a gradient.
    import wd_torch

    for model_class in (wd_torch.WeightDecayScratch, wd_torch.WeightDecay):
        model = model_class(X.shape[1], lambd=LAMBD, lr=LR, dtype="float64")
        model.set_w_b(np.array(W), np.array(B))
        model.loss(model(torch_tensor(X)), torch_tensor(Y)).backward()
        assert all(p.grad is not None for p in model.parameters())


def _penalty_without_half_step(backend_name):
    """The scratch step with ``lambd * ||w||**2`` (the chapter's text, no 1/2)."""
    if backend_name == "torch":
        torch, nn = torch_modules()
        w, b = nn.Parameter(torch_tensor(W)), nn.Parameter(torch_tensor(B))
        r = torch_tensor(X) @ w + b - torch_tensor(Y)
        ((r**2).mean() / 2 + LAMBD * (w**2).sum()).backward()
        with torch.no_grad():
            return (w - LR * w.grad).numpy(), (b - LR * b.grad).numpy()
    jax, jnp, optax = jax_modules()

    def loss(params, X, y):
        return jax_squared_loss(params, X, y) + LAMBD * jnp.sum(params["w"] ** 2)

    new = optax_step(optax.sgd(LR), loss, {"w": W, "b": B})
    return new["w"], new["b"]


@pytest.mark.parametrize("framework", ["torch", "jax"])
def test_pitfall8_penalty_without_half_decays_twice(framework):
    w_wrong, b_wrong = _penalty_without_half_step(framework)
    w_ok, _ = oracle_step()
    assert error(w_wrong, w_ok) > GAP
    w_twice, b_twice = oracle_step(lambd=2 * LAMBD)  # it is the right step with 2*lambd
    assert_close(w_wrong, w_twice, "float64")
    assert_close(b_wrong, b_twice, "float64")


def test_pitfall8_project_penalty_has_the_half(backend):
    if backend.__name__ == "wd_torch":
        torch, _ = torch_modules()
        value = float(backend.l2_penalty(torch_tensor(W)))
    else:
        jax, jnp, _ = jax_modules()
        with jax.enable_x64(True):
            value = float(backend.l2_penalty(jnp.asarray(W)))
    assert_close(value, np.sum(W**2) / 2, "float64")
