"""The book's model and data pitfalls (DESIGN.md 2, 3, 4), each built wrong and caught.

2. an init set on ``nn.LazyLinear`` before its first forward is silently replaced;
3. ``nn.MSELoss`` has no 1/2, so the torch tab's gradient is twice the JAX tab's (``l2_loss``);
4. the JAX data generator reuses one PRNG key, so its noise is a copy of ``X``.
"""

from __future__ import annotations

import numpy as np

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
    oracle_step,
    torch_modules,
    torch_tensor,
)
from wd_core import SyntheticData, init_params, reference
from wd_core.data import NOISE_STD
from wd_core.tolerances import assert_close


def test_pitfall2_init_on_a_lazy_layer_does_nothing():
    torch, nn = torch_modules()
    torch.manual_seed(0)
    lazy = nn.LazyLinear(1, dtype=torch.float64)
    lazy.weight.data.normal_(0, 0.01)  # the book's init: no error, and no effect
    lazy.bias.data.fill_(0)
    lazy(torch_tensor(X))  # materialised here, with nn.Linear's default (Kaiming) init
    weight, bias = lazy.weight.detach().numpy(), lazy.bias.detach().numpy()
    assert weight.shape == (1, X.shape[1])
    assert bias[0] != 0.0 and weight.std() > 2 * 0.01  # U(-1/sqrt(d), 1/sqrt(d)), not N(0, .01)
    # The project's concise model is a real nn.Linear: the shared init survives a forward pass.
    import wd_torch

    w0, b0 = init_params(X.shape[1], seed=3)
    model = wd_torch.WeightDecay(X.shape[1], lambd=LAMBD, lr=LR, dtype="float64")
    model.set_w_b(w0, b0)
    assert_close(model(torch_tensor(X)).detach().numpy(), X @ w0 + b0, "float64")
    w, b = model.get_w_b()
    np.testing.assert_array_equal(w.detach().numpy(), w0)
    np.testing.assert_array_equal(b.detach().numpy(), b0)
    assert not any(isinstance(p, nn.parameter.UninitializedParameter) for p in model.parameters())


def test_pitfall3_mse_loss_without_half_doubles_the_gradient():
    torch, nn = torch_modules()
    w, b = nn.Parameter(torch_tensor(W.T)), nn.Parameter(torch_tensor(B))
    opt = torch.optim.SGD([{"params": [w], "weight_decay": LAMBD},
                           {"params": [b], "weight_decay": 0.0}], lr=LR)
    y_hat = torch_tensor(X) @ w.T + b
    mse = nn.MSELoss()(y_hat, torch_tensor(Y))
    assert_close(float(mse.detach()), 2 * reference.loss(W, B, X, Y), "float64")
    mse.backward()
    opt.step()
    w_wrong, b_wrong = w.detach().numpy().T, b.detach().numpy()
    w_ok, b_ok = oracle_step()
    g_w, g_b = reference.grads(W, B, X, Y)
    assert error(w_wrong, w_ok) > GAP and error(b_wrong, b_ok) > GAP
    assert_close(w_wrong, (1 - LR * LAMBD) * W - 2 * LR * g_w, "float64")
    assert_close(b_wrong, B - 2 * LR * g_b, "float64")


def test_pitfall3_project_losses_have_the_half(backend):
    expected = reference.loss(W, B, X, Y)
    if backend.__name__ == "wd_torch":
        torch, _ = torch_modules()
        value = float(backend.squared_loss(torch_tensor(X @ W + B), torch_tensor(Y)))
    else:
        jax, jnp, optax = jax_modules()
        with jax.enable_x64(True):
            value = float(backend.squared_loss(jnp.asarray(X @ W + B), jnp.asarray(Y)))
            book = float(optax.l2_loss(jnp.asarray(X @ W + B), jnp.asarray(Y)).mean())
        assert_close(book, expected, "float64")  # the JAX tab's l2_loss has the 1/2
    assert_close(value, expected, "float64")


def _copied_fraction(unit_noise, X) -> float:
    """The fraction of the noise's standard-normal draws that occur verbatim among ``X``'s."""
    return float(np.isin(np.asarray(unit_noise), np.asarray(X)).mean())


def test_pitfall4_reused_prng_key_copies_x_into_the_noise():
    jax, _, _ = jax_modules()
    n, d = 120, 200
    key = jax.random.PRNGKey(0)
    X_book = np.asarray(jax.random.normal(key, (n, d)))
    unit_noise_book = np.asarray(jax.random.normal(key, (n, 1)))  # the same key again
    assert _copied_fraction(unit_noise_book, X_book) == 1.0  # noise = 0.01 * unit_noise_book
    np.testing.assert_array_equal(unit_noise_book.ravel(), X_book.ravel()[:n])
    # The project's data: two draws of one stream; the noise shares nothing with X.
    data = SyntheticData(num_train=20, num_val=100, num_inputs=d, batch_size=5, seed=0)
    X_all = np.vstack([data.X_train, data.X_val])
    noise = np.vstack([data.y_train, data.y_val]) - X_all @ data.true_w - data.true_b
    assert _copied_fraction(noise / NOISE_STD, X_all) == 0.0
    assert 0.8 * NOISE_STD < noise.std() < 1.2 * NOISE_STD
    correlations = (X_all - X_all.mean(0)).T @ (noise - noise.mean()) / (
        n * X_all.std(0)[:, None] * noise.std())
    assert np.abs(correlations).max() < 5 / np.sqrt(n)
