"""weight_decay.plotting: the plotted lines carry the Histories' values and the ridge closed form.

The ridge oracle here is independent of :func:`wd_core.reference.ridge`: the penalized least
squares problem written as one augmented ``numpy.linalg.lstsq``.
"""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest

from wd_core import SyntheticData, reference
from wd_core.errors import MissingFrameworkError, MissingPathError
from weight_decay.plotting import (
    history_label,
    lines_by_gid,
    loss_curves,
    regularization_path,
    save_figure,
)

pytest.importorskip("matplotlib")

DATA = SyntheticData(num_train=12, num_val=30, num_inputs=40, batch_size=4, seed=1)


def augmented_ridge(X, y, lambd):
    """argmin ||X w + b - y||**2 / (2n) + lambd ||w||**2 / 2 via lstsq on the stacked system
    [[X, 1], [sqrt(n lambd) I, 0]] [w; b] = [y; 0]."""
    n, d = X.shape
    top = np.hstack([X, np.ones((n, 1))])
    bottom = np.hstack([np.sqrt(n * lambd) * np.eye(d), np.zeros((d, 1))])
    solution = np.linalg.lstsq(np.vstack([top, bottom]), np.vstack([y, np.zeros((d, 1))]),
                               rcond=None)[0]
    return solution[:d], solution[d:].reshape(1)


def half_mse(w, b, X, y):
    return float(np.mean((X @ w + b - y) ** 2) / 2)


@pytest.fixture(scope="module")
def sweep():
    return [reference.train(DATA, lambd=lambd, lr=0.02, max_epochs=6, epoch_params=True)
            for lambd in (3.0, 0.0, 0.1, 1.0)]  # unsorted on purpose


def test_loss_curves_plot_every_history_on_a_log_axis():
    histories = [reference.train(DATA, lambd=lambd, lr=0.02, max_epochs=5,
                                 epoch_params=True) for lambd in (0, 3)]
    fig = loss_curves(histories)
    (ax,) = fig.axes
    assert ax.get_yscale() == "log"
    lines = lines_by_gid(fig)
    for history in histories:
        label = history_label(history)
        [(x_train, y_train)] = lines[f"train:{label}"]
        [(x_val, y_val)] = lines[f"val:{label}"]
        np.testing.assert_array_equal(x_train, [1, 2, 3, 4, 5])
        np.testing.assert_array_equal(x_val, [1, 2, 3, 4, 5])
        # the value after epoch e is the loss of that epoch's parameters, from scratch here
        expected = [half_mse(w, b, DATA.X_train, DATA.y_train)
                    for w, b in zip(history.epoch_w, history.epoch_b, strict=True)]
        np.testing.assert_allclose(y_train, expected, rtol=1e-12)
        np.testing.assert_allclose(y_val, [half_mse(w, b, DATA.X_val, DATA.y_val)
                                           for w, b in zip(history.epoch_w, history.epoch_b,
                                                           strict=True)], rtol=1e-12)
    assert len(ax.get_legend().get_texts()) == 4


def test_regularization_path_plots_trained_values_and_the_ridge_closed_form(sweep):
    fig = regularization_path([sweep])
    ax_val, ax_norm = fig.axes[:2]
    lines = lines_by_gid(fig)
    [(trained_key)] = [k for k in lines if k.startswith("trained:")]
    (x_val, y_val), (x_norm, y_norm) = lines[trained_key]
    by_lambda = {h.config["lambd"]: h for h in sweep}
    np.testing.assert_array_equal(x_val, [0.0, 0.1, 1.0, 3.0])
    np.testing.assert_array_equal(x_norm, x_val)
    for lambd, val, norm in zip(x_val, y_val, y_norm, strict=True):
        w = by_lambda[lambd].w
        assert val == pytest.approx(half_mse(w, by_lambda[lambd].b, DATA.X_val, DATA.y_val),
                                    rel=1e-12)
        assert norm == pytest.approx(np.sqrt(np.sum(w**2)), rel=1e-12)
    (rx, ry_val), (rx2, ry_norm) = lines["ridge"]
    np.testing.assert_array_equal(rx, rx2)
    assert rx[0] == 0.0 and rx[-1] == 3.0 and len(rx) > 50 and np.all(np.diff(rx) > 0)
    for lambd, val, norm in list(zip(rx, ry_val, ry_norm, strict=True))[1::7]:
        w, b = augmented_ridge(DATA.X_train, DATA.y_train, lambd)
        assert val == pytest.approx(half_mse(w, b, DATA.X_val, DATA.y_val), rel=1e-8)
        assert norm == pytest.approx(np.linalg.norm(w), rel=1e-8)
    # lambda 0 cannot sit on a log axis: symlog, linear up to the smallest positive lambda
    for ax in (ax_val, ax_norm):
        assert ax.get_xscale() == "symlog" and ax.get_yscale() == "log"
        assert ax.xaxis.get_transform().linthresh == pytest.approx(0.1)
    assert "lambda = 0 can be shown" in fig.get_supxlabel()
    assert "epochs -> infinity" in fig.get_supxlabel()


def test_ridge_is_where_long_training_ends():
    """The legend's claim: for lambda > 0, training for ever reaches the ridge solution
    (full-batch gradient descent here, so that there is no minibatch noise)."""
    data = SyntheticData(num_train=12, num_val=30, num_inputs=40, batch_size=12, seed=1)
    history = reference.train(data, lambd=1.0, lr=0.2, max_epochs=400, epoch_params=True)
    w, b = augmented_ridge(data.X_train, data.y_train, 1.0)
    np.testing.assert_allclose(history.w, w, rtol=1e-9, atol=1e-12)
    fig = regularization_path([[history]])
    (x, y), _ = lines_by_gid(fig)["ridge"]
    assert x.tolist() == [1.0] and y[0] == pytest.approx(history.val_loss[-1], rel=1e-9)


def test_without_lambda_zero_the_axis_is_log(sweep):
    fig = regularization_path([[h for h in sweep if h.config["lambd"] > 0]])
    assert fig.axes[0].get_xscale() == "log"


def test_two_sweeps_are_overlaid_and_different_data_is_refused(sweep):
    other = [reference.train(DATA, lambd=lambd, lr=0.02, max_epochs=3,
                             epoch_params=True) for lambd in (0.0, 1.0)]
    for h in other:
        h.config["backend"] = "other"
    fig = regularization_path([sweep, other])
    assert sum(k.startswith("trained:") for k in lines_by_gid(fig)) == 2
    elsewhere = reference.train(SyntheticData(num_train=12, num_val=30, num_inputs=40,
                                              batch_size=4, seed=2), lambd=1.0, lr=0.02,
                                max_epochs=3, epoch_params=True)
    with pytest.raises(ValueError, match="different data"):
        regularization_path([sweep, [elsewhere]])


def test_save_figure_writes_a_png_of_the_figure_size(tmp_path):
    from matplotlib.image import imread

    fig = loss_curves([reference.train(DATA, lambd=1.0, lr=0.02, max_epochs=3, epoch_params=True)])
    path = save_figure(fig, tmp_path / "curves.png", dpi=50)
    image = imread(path)
    assert image.shape[:2] == (round(4.2 * 50), round(6.4 * 50))
    assert image[..., :3].std() > 0.05  # something was drawn
    assert os.listdir(tmp_path) == ["curves.png"]
    with pytest.raises(MissingPathError, match="does not exist"):
        save_figure(fig, tmp_path / "missing" / "curves.png")


def test_missing_matplotlib_names_the_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(MissingFrameworkError, match=r"pip install 'weight-decay\[plot\]'"):
        loss_curves([reference.train(DATA, lambd=1.0, lr=0.02, max_epochs=1, epoch_params=True)])
