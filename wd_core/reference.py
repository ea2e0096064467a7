"""The float64 oracle: the chapter's mathematics in plain numpy.

Conventions (shapes at every boundary): ``w`` (d, 1), ``b`` (1,), ``X`` (n, d), ``y`` (n, 1).

* loss ``L(w, b) = mean((X w + b - y)**2) / 2``
* penalty ``lambd * ||w||**2 / 2`` (gradient ``lambd * w``); the bias is never penalised.
* one SGD step ``w <- (1 - lr*lambd) w - lr * dL/dw``, ``b <- b - lr * dL/db``.

The chapter's text writes the total loss as ``L + lambd * ||w||**2``; its update rule
``(1 - lr*lambd) w`` and its code need ``lambd * ||w||**2 / 2``, which is what is used here.
"""

from __future__ import annotations

import numpy as np

from wd_core.runspec import history_from_epochs, prepare_run
from wd_core.validation import check_nonnegative_float, check_step_arrays


def _f64(a) -> np.ndarray:
    return np.asarray(a, dtype=np.float64)


def l2_penalty(w) -> float:
    """``sum(w**2) / 2`` in float64."""
    w = _f64(w)
    return float(np.sum(w * w) / 2)


def residual(w, b, X, y) -> np.ndarray:
    """``X w + b - y``: (n, 1) float64, from w (d, 1), b (1,), X (n, d), y (n, 1) (``ValueError``
    for other shapes: a (n,) ``y`` would broadcast to (n, n) silently)."""
    w, b, X, y = check_step_arrays(w, b, X, y)
    return X @ w + b - y


def loss(w, b, X, y) -> float:
    """``mean((X w + b - y)**2) / 2`` in float64 (no penalty)."""
    r = residual(w, b, X, y)
    return float(np.mean(r * r) / 2)


def grads(w, b, X, y) -> tuple[np.ndarray, np.ndarray]:
    """Gradient of :func:`loss` (no penalty): ``(X^T r / n, mean(r))``, shapes (d, 1), (1,)."""
    r = residual(w, b, X, y)
    return _f64(X).T @ r / len(r), np.mean(r, axis=0)


def sgd_step(w, b, X, y, *, lr, lambd) -> tuple[np.ndarray, np.ndarray]:
    """One minibatch SGD step with weight decay on ``w`` only, float64.

    ``w' = (1 - lr*lambd) w - lr * g_w``, ``b' = b - lr * g_b``, with ``(g_w, g_b) =
    grads(w, b, X, y)``. Returns new arrays of shapes (d, 1), (1,).
    """
    lr = check_nonnegative_float("lr", lr)
    lambd = check_nonnegative_float("lambd", lambd)
    gw, gb = grads(w, b, X, y)
    return (1.0 - lr * lambd) * _f64(w) - lr * gw, _f64(b) - lr * gb


def train(data, *, lambd, lr, max_epochs, init=None):
    """Minibatch SGD over ``data.epoch_batches(e)`` for ``max_epochs`` epochs, float64.

    ``init=None`` uses ``init_params(data.num_inputs, seed=data.seed)``. Returns a
    :class:`wd_core.History` whose losses are evaluated on the whole training and
    validation sets after each epoch.
    """
    spec = prepare_run(
        data, method="scratch", lambd=lambd, lr=lr, max_epochs=max_epochs, init=init,
        dtype="float64", device="cpu",
    )
    w, b = spec.w0.copy(), spec.b0.copy()
    epoch_w, epoch_b, train_loss, val_loss = [], [], [], []
    with np.errstate(over="ignore", invalid="ignore"):
        for epoch in range(spec.max_epochs):
            for rows in data.epoch_batches(epoch):
                w, b = sgd_step(w, b, data.X_train[rows], data.y_train[rows],
                                lr=spec.lr, lambd=spec.lambd)
            epoch_w.append(w)
            epoch_b.append(b)
            train_loss.append(loss(w, b, data.X_train, data.y_train))
            val_loss.append(loss(w, b, data.X_val, data.y_val))
            if not (np.isfinite(train_loss[-1]) and np.isfinite(val_loss[-1])):
                break
    history = history_from_epochs(spec, "reference", epoch_w, epoch_b, train_loss, val_loss)
    history.config["method"] = "reference"
    return history


def ridge(X, y, lambd) -> tuple[np.ndarray, np.ndarray]:
    """Closed form of ``argmin_{w,b} mean((X w + b - y)**2) / 2 + lambd * ||w||**2 / 2``.

    With centred ``Xc = X - mean(X)``, ``yc = y - mean(y)``: ``(Xc^T Xc / n + lambd I) w =
    Xc^T yc / n`` and ``b = mean(y) - mean(X) w``. Solved in the primal when d <= n and in the
    dual ``w = Xc^T (Xc Xc^T + n lambd I)^{-1} yc`` when d > n. For ``lambd = 0`` the
    minimum-norm least-squares solution (the limit lambd -> 0+). Returns (d, 1), (1,).
    """
    lambd = check_nonnegative_float("lambd", lambd)
    X, y = _f64(X), _f64(y).reshape(-1, 1)
    n, d = X.shape
    x_mean, y_mean = X.mean(axis=0, keepdims=True), y.mean(axis=0)
    Xc, yc = X - x_mean, y - y_mean
    if lambd == 0:
        w = np.linalg.lstsq(Xc, yc, rcond=None)[0]
    elif d <= n:
        w = np.linalg.solve(Xc.T @ Xc + n * lambd * np.eye(d), Xc.T @ yc)
    else:
        w = Xc.T @ np.linalg.solve(Xc @ Xc.T + n * lambd * np.eye(n), yc)
    b = y_mean - (x_mean @ w).reshape(1)
    return w, b
