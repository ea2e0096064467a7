"""The float64 oracle against the update written out by hand and independent solvers."""

from __future__ import annotations

import numpy as np
import pytest

from wd_core import SyntheticData, init_params, reference


def _rand(seed, *shape):
    return np.random.default_rng(seed).standard_normal(shape)


def test_loss_and_penalty_by_hand():
    X, y = np.array([[1.0, 2.0], [3.0, -1.0]]), np.array([[1.0], [0.0]])
    w, b = np.array([[0.5], [-1.0]]), np.array([0.25])
    # residuals: 0.5 - 2 + 0.25 - 1 = -2.25 ; 1.5 + 1 + 0.25 - 0 = 2.75
    assert reference.loss(w, b, X, y) == pytest.approx((2.25**2 + 2.75**2) / 2 / 2, rel=1e-15)
    assert reference.l2_penalty(w) == pytest.approx((0.25 + 1.0) / 2, rel=1e-15)


def test_sgd_step_against_the_update_written_out_by_hand():
    X, y, w, b = _rand(0, 5, 3), _rand(1, 5, 1), _rand(2, 3, 1), np.array([0.3])
    lr, lambd = 0.1, 2.0
    n, d = X.shape
    w_new, b_new = reference.sgd_step(w, b, X, y, lr=lr, lambd=lambd)
    for j in range(d):
        grad_j = sum(X[i, j] * (sum(X[i, k] * w[k, 0] for k in range(d)) + b[0] - y[i, 0])
                     for i in range(n)) / n
        assert w_new[j, 0] == pytest.approx((1 - lr * lambd) * w[j, 0] - lr * grad_j, rel=1e-13)
    grad_b = sum(sum(X[i, k] * w[k, 0] for k in range(d)) + b[0] - y[i, 0] for i in range(n)) / n
    assert b_new[0] == pytest.approx(b[0] - lr * grad_b, rel=1e-13)


def test_grads_against_central_differences():
    X, y, w, b = _rand(3, 6, 4), _rand(4, 6, 1), _rand(5, 4, 1), np.array([-0.2])
    gw, gb = reference.grads(w, b, X, y)
    h = 1e-6
    for j in range(4):
        e = np.zeros_like(w)
        e[j] = h
        numeric = (reference.loss(w + e, b, X, y) - reference.loss(w - e, b, X, y)) / (2 * h)
        assert gw[j, 0] == pytest.approx(numeric, rel=1e-7)
    numeric_b = (reference.loss(w, b + h, X, y) - reference.loss(w, b - h, X, y)) / (2 * h)
    assert gb[0] == pytest.approx(numeric_b, rel=1e-7)
    assert gw.shape == (4, 1) and gb.shape == (1,)


def _augmented_lstsq(X, y, lambd):
    """The ridge objective as least squares on [X 1; sqrt(n lambd) I 0] [w; b] = [y; 0]."""
    n, d = X.shape
    A = np.block([[X, np.ones((n, 1))], [np.sqrt(n * lambd) * np.eye(d), np.zeros((d, 1))]])
    target = np.vstack([y, np.zeros((d, 1))])
    solution = np.linalg.lstsq(A, target, rcond=None)[0]
    return solution[:d], solution[d:, 0]


@pytest.mark.parametrize(("n", "d", "lambd"),
                         [(30, 5, 0.0), (30, 5, 0.5), (30, 5, 3.0), (8, 20, 0.5), (8, 20, 3.0)])
def test_ridge_against_lstsq_on_the_augmented_system(n, d, lambd):
    X, y = _rand(6, n, d), _rand(7, n, 1)
    w, b = reference.ridge(X, y, lambd)
    w_expected, b_expected = _augmented_lstsq(X, y, lambd)
    np.testing.assert_allclose(w, w_expected, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(b, b_expected, rtol=1e-9, atol=1e-12)


def test_unregularised_ridge_with_d_above_n_is_the_small_lambda_limit():
    # Without decay the fit interpolates and w is not unique: ridge returns the limit
    # lambd -> 0+ (minimum-norm w, the bias free).
    X, y = _rand(6, 8, 20), _rand(7, 8, 1)
    w, b = reference.ridge(X, y, 0.0)
    w_small, b_small = _augmented_lstsq(X, y, 1e-10)
    np.testing.assert_allclose(w, w_small, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(b, b_small, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(X @ w + b, y, atol=1e-12)


def test_ridge_gradient_vanishes():
    X, y = _rand(8, 10, 25), _rand(9, 10, 1)
    w, b = reference.ridge(X, y, 0.7)
    gw, gb = reference.grads(w, b, X, y)
    np.testing.assert_allclose(gw + 0.7 * w, 0, atol=1e-13)
    np.testing.assert_allclose(gb, 0, atol=1e-13)


def test_train_follows_epoch_batches_with_sgd_step():
    data = SyntheticData(num_train=7, num_val=3, num_inputs=4, batch_size=3, seed=5)
    history = reference.train(data, lambd=0.5, lr=0.1, max_epochs=2, epoch_params=True)
    w, b = init_params(4, seed=5)
    for epoch in range(2):
        for rows in data.epoch_batches(epoch):
            w, b = reference.sgd_step(w, b, data.X_train[rows], data.y_train[rows],
                                      lr=0.1, lambd=0.5)
        np.testing.assert_array_equal(history.epoch_w[epoch], w)
    assert history.train_loss[-1] == reference.loss(w, b, data.X_train, data.y_train)
    assert history.val_loss[-1] == reference.loss(w, b, data.X_val, data.y_val)
    assert history.l2_penalty == reference.l2_penalty(w)
    assert history.l2_norm == pytest.approx(np.linalg.norm(w), rel=1e-15)


@pytest.mark.parametrize("bad", [-1.0, float("nan"), float("inf")])
def test_sgd_step_rejects_bad_hyperparameters(bad):
    X, y, w, b = _rand(0, 2, 2), _rand(1, 2, 1), _rand(2, 2, 1), np.zeros(1)
    with pytest.raises(ValueError, match="lr must be a finite number >= 0"):
        reference.sgd_step(w, b, X, y, lr=bad, lambd=1.0)
    with pytest.raises(ValueError, match="lambd must be a finite number >= 0"):
        reference.sgd_step(w, b, X, y, lr=0.1, lambd=bad)


def test_the_oracle_refuses_shapes_that_would_broadcast():
    w, b = np.zeros((3, 1)), np.zeros(1)
    X = np.ones((4, 3))
    for bad_w, bad_y in ((w, np.ones(4)), (np.zeros(3), np.ones((4, 1)))):
        for function in (reference.loss, reference.grads):
            with pytest.raises(ValueError, match="do not fit X"):
                function(bad_w, b, X, bad_y)
        with pytest.raises(ValueError, match="do not fit X"):
            reference.sgd_step(bad_w, b, X, bad_y, lr=0.1, lambd=1.0)
