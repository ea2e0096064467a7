"""Figures of runs and sweeps (the ``plot`` extra: matplotlib, imported only when drawing).

* :func:`loss_curves`: training and validation loss against the epoch, log y, one pair of
  lines per History (both backends overlaid when both are given) -- the chapter's figures.
* :func:`regularization_path`: validation loss and ``||w||`` against lambda for one or more
  sweeps, beside the ridge closed form (:func:`wd_core.reference.ridge`), which is where
  training would end with infinitely many epochs, not the value after ``max_epochs``.

Every function returns a ``matplotlib.figure.Figure`` built without pyplot (no global state,
no window); :func:`save_figure` writes it atomically. Each plotted line carries a ``gid``
(``"train:<label>"``, ``"val:<label>"``, ``"trained:<label>"``, ``"ridge"``) so that its data
can be read back.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from wd_core import reference
from wd_core.atomic import atomic_writer
from wd_core.data import ARGUMENTS
from wd_core.errors import InputError, framework_error
from wd_core.sweeps import data_from_config

#: Points of the ridge curve between the smallest positive lambda and the largest one.
RIDGE_POINTS = 60


def _figure_class():
    """``matplotlib.figure.Figure``; :class:`~wd_core.errors.MissingFrameworkError` with the
    install command if matplotlib is missing, :class:`~wd_core.errors.BrokenFrameworkError`
    with the cause if it fails to import."""
    try:
        from matplotlib.figure import Figure
    except Exception as err:
        raise framework_error("plotting", "matplotlib", "plot", err,
                              ("matplotlib", "matplotlib.figure")) from err
    return Figure


_MARKERS = ("o", "x", "+", "s", "^", "v")


def _overlay_style(i: int) -> dict:
    """Colour, marker and width of the ``i``-th overlaid curve: earlier curves are drawn wider
    so that identical curves (two backends agreeing) stay visible under later ones."""
    return {"color": f"C{i % 10}", "marker": _MARKERS[i % len(_MARKERS)],
            "linewidth": max(1.0, 3.5 - 1.5 * i), "markersize": max(3.0, 7.0 - 2.0 * i)}


def history_label(history) -> str:
    """``"<backend> <method> <dtype> lambda=<lambd>"`` from a History's config."""
    c = history.config
    return (f"{c.get('backend', '?')} {c.get('method', '?')} {c.get('dtype', '?')} "
            f"lambda={c.get('lambd', float('nan')):g}")


def loss_curves(histories, *, title=None):
    """Training and validation data loss against the epoch (1-based), log y.

    One solid (train) and one dashed (val) line per History, in the History's order; lines
    of different Histories get different colours and markers so that overlaid backends stay
    visible. A diverged History's non-finite epochs are not drawn.
    """
    Figure = _figure_class()
    histories = list(histories)
    if not histories:
        raise InputError("loss_curves needs at least one History")
    fig = Figure(figsize=(6.4, 4.2), layout="constrained")
    ax = fig.add_subplot()
    for i, history in enumerate(histories):
        label = history_label(history)
        epochs = np.arange(1, len(history.train_loss) + 1)
        style = _overlay_style(i)
        ax.plot(epochs, history.train_loss, "-", label=f"train  {label}",
                gid=f"train:{label}", **style)
        ax.plot(epochs, history.val_loss, "--", label=f"val  {label}", gid=f"val:{label}",
                **style)
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("data loss  mean((Xw + b - y)^2) / 2")
    if title is None:
        lambdas = sorted({h.config.get("lambd") for h in histories}, key=str)
        title = (f"weight decay, lambda = {lambdas[0]:g}" if len(lambdas) == 1
                 else "weight decay: loss curves")
    ax.set_title(title)
    ax.legend(fontsize="small")
    ax.grid(True, which="both", alpha=0.3)
    return fig


def ridge_path(data, lambdas) -> dict:
    """The ridge closed form at each of ``lambdas``: arrays ``lambd``, ``val_loss``,
    ``train_loss``, ``l2_norm`` (each (len(lambdas),), float64), from
    :func:`wd_core.reference.ridge` on the training set."""
    lambdas = np.asarray(lambdas, dtype=np.float64)
    out = {"lambd": lambdas, "val_loss": [], "train_loss": [], "l2_norm": []}
    for lambd in lambdas:
        w, b = reference.ridge(data.X_train, data.y_train, float(lambd))
        out["val_loss"].append(reference.loss(w, b, data.X_val, data.y_val))
        out["train_loss"].append(reference.loss(w, b, data.X_train, data.y_train))
        out["l2_norm"].append(float(np.linalg.norm(w)))
    return {k: np.asarray(v, dtype=np.float64) for k, v in out.items()}


def ridge_lambdas(lambdas, points: int = RIDGE_POINTS) -> np.ndarray:
    """Where the ridge curve is drawn: the sweep's lambdas and ``points`` log-spaced values
    between its smallest positive lambda and its largest, sorted, without repeats."""
    lambdas = np.asarray(lambdas, dtype=np.float64)
    positive = lambdas[lambdas > 0]
    dense = (np.geomspace(positive.min(), positive.max(), points) if positive.size > 1
             else positive)
    return np.unique(np.concatenate([lambdas, dense]))


def _set_lambda_axis(ax, lambdas) -> str:
    """Log x when lambda 0 is absent; symlog (linear below the smallest positive lambda, so
    lambda 0 sits at 0) when it is present; linear if every lambda is 0. Returns a note on
    the scale for the caption."""
    positive = lambdas[lambdas > 0]
    ax.set_xlabel("lambda")
    if positive.size == 0:
        return "lambda on a linear axis"
    if positive.size == lambdas.size:
        ax.set_xscale("log")
        return "lambda on a log axis"
    linthresh = float(positive.min())
    ax.set_xscale("symlog", linthresh=linthresh)
    return (f"lambda on a symlog axis: log above {linthresh:g}, linear below, so that "
            f"lambda = 0 can be shown (at the left end)")


def regularization_path(sweeps, *, title=None):
    """Validation loss (left) and ``||w||`` (right) against lambda for each sweep.

    ``sweeps``: a list of sweeps, each a list of Histories (one per lambda) on the same
    data. Trained values after ``max_epochs`` are drawn with markers, one line per sweep
    (backends overlaid); the ridge closed form is a black dashed line labelled as the limit
    of infinitely long training. A diverged run's point is not drawn.
    """
    Figure = _figure_class()
    sweeps = [list(s) for s in sweeps]
    if not sweeps or not all(sweeps):
        raise InputError("regularization_path needs at least one non-empty sweep")
    configs = {tuple(h.config.get(k) for k in ARGUMENTS) for s in sweeps for h in s}
    if len(configs) != 1:
        raise InputError("the sweeps were trained on different data (seed or sizes differ); "
                         "plot them separately")
    data = data_from_config(sweeps[0][0].config)
    all_lambdas = np.array([h.config["lambd"] for s in sweeps for h in s], dtype=np.float64)
    ridge = ridge_path(data, ridge_lambdas(all_lambdas))

    fig = Figure(figsize=(10.0, 4.2), layout="constrained")
    ax_val, ax_norm = fig.subplots(1, 2)
    for i, histories in enumerate(sweeps):
        first = histories[0].config
        label = (f"{first.get('backend', '?')} {first.get('method', '?')} "
                 f"{first.get('dtype', '?')}, {first.get('max_epochs', '?')} epochs")
        lambd = np.array([h.config["lambd"] for h in histories], dtype=np.float64)
        order = np.argsort(lambd, kind="stable")
        val = np.array([np.nan if h.diverged else h.val_loss[-1] for h in histories])
        norm = np.array([np.nan if h.diverged else h.l2_norm for h in histories])
        style = {**_overlay_style(i), "linestyle": "-", "label": f"trained: {label}",
                 "gid": f"trained:{label}"}
        ax_val.plot(lambd[order], val[order], **style)
        ax_norm.plot(lambd[order], norm[order], **style)
    ridge_style = {"color": "black", "linestyle": "--", "gid": "ridge",
                   "label": "ridge closed form (epochs -> infinity)"}
    ax_val.plot(ridge["lambd"], ridge["val_loss"], **ridge_style)
    ax_norm.plot(ridge["lambd"], ridge["l2_norm"], **ridge_style)
    for ax, ylabel in ((ax_val, "validation loss  mean((Xw + b - y)^2) / 2"),
                       (ax_norm, "||w||")):
        scale_note = _set_lambda_axis(ax, ridge["lambd"])
        ax.set_yscale("log")
        ax.set_ylabel(ylabel)
        ax.grid(True, which="both", alpha=0.3)
    ax_norm.legend(fontsize="small", loc="lower left")
    fig.suptitle(title or f"regularization path: {data.num_train} training examples in "
                 f"{data.num_inputs} dimensions, seed {data.seed}, lr={first.get('lr', '?')}")
    fig.supxlabel(f"{scale_note}.\nRidge closed form: the minimizer of the penalized loss, "
                  f"where training ends only as epochs -> infinity (lambda > 0);\nat lambda = 0 "
                  f"it is the minimum-norm fit, while SGD keeps the part of w0 that X cannot "
                  f"see.", fontsize="small")
    return fig


def lines_by_gid(fig) -> dict:
    """``{gid: [(x, y), ...]}`` of every line of ``fig`` (the plotted data, float64)."""
    out = {}
    for ax in fig.axes:
        for line in ax.get_lines():
            xy = (np.asarray(line.get_xdata(), dtype=np.float64),
                  np.asarray(line.get_ydata(), dtype=np.float64))
            out.setdefault(line.get_gid(), []).append(xy)
    return out


def save_figure(fig, path, *, dpi: int = 100):
    """Write ``fig`` to ``path`` (format from the suffix, e.g. ``.png``) atomically
    (:func:`wd_core.atomic.atomic_writer`): a reader sees the previous file or the new one.
    Returns the path.
    """
    path = Path(path)
    with atomic_writer(path, binary=True) as handle:
        fig.savefig(handle, format=path.suffix.lstrip(".").lower() or "png", dpi=dpi)
    return path
