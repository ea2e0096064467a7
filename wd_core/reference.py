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

from wd_core.driver import chunk_epochs, drive
from wd_core.runspec import history_from_epochs, prepare_run
from wd_core.validation import check_number, check_step_arrays


def _f64(a) -> np.ndarray:
    return np.asarray(a, dtype=np.float64)


def l2_penalty(w) -> float:
    """``sum(w**2) / 2`` in float64."""
    w = _f64(w)
    return float(np.sum(w * w) / 2)


def residual(w, b, X, y) -> np.ndarray:
    """``X w + b - y``: (n, 1) float64, from w (d, 1), b (1,), X (n, d), y (n, 1) (``ValueError``
    for other shapes: a (n,) ``y`` would broadcast to (n, n) silently)."""
    return _residual(*check_step_arrays(w, b, X, y))


def _residual(w, b, X, y) -> np.ndarray:
    return X @ w + b - y


def loss(w, b, X, y) -> float:
    """``mean((X w + b - y)**2) / 2`` in float64 (no penalty)."""
    return _loss(residual(w, b, X, y))


def _loss(r) -> float:
    return float(np.mean(r * r) / 2)


def grads(w, b, X, y) -> tuple[np.ndarray, np.ndarray]:
    """Gradient of :func:`loss` (no penalty): ``(X^T r / n, mean(r))``, shapes (d, 1), (1,)."""
    w, b, X, y = check_step_arrays(w, b, X, y)
    return _grads(X, _residual(w, b, X, y))


def _grads(X, r) -> tuple[np.ndarray, np.ndarray]:
    return X.T @ r / len(r), np.mean(r, axis=0)


def sgd_step(w, b, X, y, *, lr, lambd) -> tuple[np.ndarray, np.ndarray]:
    """One minibatch SGD step with weight decay on ``w`` only, float64.

    ``w' = (1 - lr*lambd) w - lr * g_w``, ``b' = b - lr * g_b``, with ``(g_w, g_b) =
    grads(w, b, X, y)``. Returns new arrays of shapes (d, 1), (1,).
    """
    lr, lambd = check_number("lr", lr), check_number("lambd", lambd)
    return _sgd_step(*check_step_arrays(w, b, X, y), lr=lr, lambd=lambd)


def _sgd_step(w, b, X, y, *, lr, lambd):
    gw, gb = _grads(X, _residual(w, b, X, y))
    return (1.0 - lr * lambd) * w - lr * gw, b - lr * gb


def train(data, *, lambd, lr, max_epochs, init=None, epoch_params=False):
    """Minibatch SGD over ``data.epoch_batches(e)`` for ``max_epochs`` epochs, float64.

    ``init=None`` uses ``init_params(data.num_inputs, seed=data.seed)``. Returns a
    :class:`wd_core.History` whose losses are evaluated on the whole training and
    validation sets after each epoch; ``epoch_params`` keeps the parameters after each
    epoch too (``History.epoch_w``, ``epoch_b``).
    """
    spec = prepare_run(
        data, method="scratch", lambd=lambd, lr=lr, max_epochs=max_epochs, init=init,
        dtype="float64", device="cpu", epoch_params=epoch_params,
    )
    X, y, X_val, y_val = data.X_train, data.y_train, data.X_val, data.y_val

    def run_epochs(params, first, count):
        w, b = params
        per_epoch = []
        for epoch in range(first, first + count):
            for rows in data.epoch_batches(epoch):
                w, b = _sgd_step(w, b, X[rows], y[rows], lr=spec.lr, lambd=spec.lambd)
            per_epoch.append((w, b, _loss(_residual(w, b, X, y)),
                              _loss(_residual(w, b, X_val, y_val))))
        return (w, b), [np.array(a) for a in zip(*per_epoch, strict=True)]

    with np.errstate(over="ignore", invalid="ignore"):
        per_epoch = drive(run_epochs, (spec.w0, spec.b0), max_epochs=spec.max_epochs,
                          chunk=chunk_epochs(data, spec.max_epochs),
                          epoch_params=spec.epoch_params)
    return history_from_epochs(spec, "reference", *per_epoch)


def ridge(X, y, lambd) -> tuple[np.ndarray, np.ndarray]:
    """Closed form of ``argmin_{w,b} mean((X w + b - y)**2) / 2 + lambd * ||w||**2 / 2``.

    With centred ``Xc = X - mean(X)``, ``yc = y - mean(y)``: ``(Xc^T Xc / n + lambd I) w =
    Xc^T yc / n`` and ``b = mean(y) - mean(X) w``. Solved in the primal when d <= n and in the
    dual ``w = Xc^T (Xc Xc^T + n lambd I)^{-1} yc`` when d > n. For ``lambd = 0`` the
    minimum-norm least-squares solution (the limit lambd -> 0+). Returns (d, 1), (1,).
    """
    lambd = check_number("lambd", lambd)
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
