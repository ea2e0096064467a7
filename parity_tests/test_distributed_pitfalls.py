"""The data-parallel pitfalls, each built wrong with ``torch.distributed`` and shown to differ.

Each variant is a hand-written data-parallel SGD loop (float64, 2 workers, gloo all-reduce;
run inside the torch launch of ``test_distributed.py``) that differs from the right rule in
one place. The right loop (``correct_*``, same code with every switch right) equals the
float64 reference within 1e-12, so each difference below is the pitfall's alone; each wrong
variant misses the reference by more than the float32 whole-run tolerance (1e-5), the
loosest one that judges SGD. The errors measured are quoted in ``docs/data_parallel.md``.
"""

from __future__ import annotations

import numpy as np
import pytest

from wd_core import SyntheticData, reference
from wd_core.params import init_params
from wd_core.shards import split_rows
from wd_core.tolerances import assert_close, is_close, required_rtol

#: name -> the switches of :func:`manual_run` (everything else right).
VARIANTS = {
    "correct_scratch": {"method": "scratch", "K": 2},
    "correct_concise": {"method": "concise", "K": 2},
    # each worker averages its own shard, then SUM all-reduce: W times the gradient
    "sum_without_dividing_by_W": {"method": "concise", "weight": "shard", "reduce": "sum"},
    # each worker averages its own shard, then the mean of the W means: wrong when shards
    # differ in size (5 rows on 2 workers: 3 and 2)
    "mean_of_per_worker_means": {"method": "concise", "weight": "shard", "reduce": "mean"},
    # scratch: every worker adds the penalty, SUM all-reduce: W times the decay
    "penalty_on_every_worker": {"method": "scratch", "penalty": "every_worker"},
    # scratch: the penalty in every micro-batch's loss, without 1/K: K times the decay
    "penalty_on_every_micro_batch": {"method": "scratch", "K": 2,
                                     "penalty": "every_micro_batch"},
    # concise: the decay applied at every micro-batch instead of once per optimizer step
    "decay_per_micro_batch": {"method": "concise", "K": 2, "decay": "per_micro_batch"},
    # each worker decays (and steps) its own parameters, which were never synchronized (each
    # drew its own start; no broadcast), although the gradients are all-reduced
    "unsynchronized_parameters": {"method": "concise", "init": "own"},
}
WRONG = [name for name in VARIANTS if not name.startswith("correct")]
PITFALL_WORKERS = 2


def manual_run(data, rank, world, *, method, K=1, weight="global", reduce="sum",
               penalty="once", decay="per_step", init="shared", lambd=3.0, lr=0.05,
               max_epochs=3):
    """Data-parallel SGD written out: each batch split over ``world`` workers and ``K``
    micro-batches; returns this worker's final ``(w (d, 1), b (1,))`` as float64 numpy.

    The right rule: each micro-batch's loss is ``sum(residual**2) / 2 / len(batch)``
    (``weight="global"``), gradients SUM-all-reduced (``reduce="sum"``), the scratch penalty
    in worker 0's last micro-batch only (``penalty="once"``), the concise decay once per step
    (``decay="per_step"``), every worker from the same start (``init="shared"``).
    """
    import torch
    import torch.distributed as dist

    X, y = (torch.tensor(a) for a in (data.X_train, data.y_train))
    w0, b0 = init_params(data.num_inputs, data.seed + (rank if init == "own" else 0))
    w = torch.tensor(w0, requires_grad=True)
    b = torch.tensor(b0, requires_grad=True)
    for epoch in range(max_epochs):
        for batch in data.epoch_batches(epoch):
            shard = split_rows(batch, world)[rank]
            gw, gb = torch.zeros_like(w), torch.zeros_like(b)
            for k, rows in enumerate(split_rows(shard, K)):
                rows = torch.as_tensor(rows)
                residual = X[rows] @ w + b - y[rows]
                divisor = len(batch) if weight == "global" else len(shard)
                loss = (residual**2).sum() / 2 / divisor
                last = k == K - 1
                if method == "scratch" and {"once": rank == 0 and last,
                                            "every_worker": last,
                                            "every_micro_batch": rank == 0}[penalty]:
                    loss = loss + lambd * (w**2).sum() / 2
                grad_w, grad_b = torch.autograd.grad(loss, (w, b))
                gw += grad_w
                gb += grad_b
                if method == "concise" and decay == "per_micro_batch":
                    with torch.no_grad():
                        w.mul_(1 - lr * lambd)
            for g in (gw, gb):
                dist.all_reduce(g)
                if reduce == "mean":
                    g /= world
            with torch.no_grad():
                if method == "concise" and decay == "per_step":
                    gw += lambd * w
                w -= lr * gw
                b -= lr * gb
    return w.detach().numpy().copy(), b.detach().numpy().copy()


def torch_pitfalls(data, rank, world) -> dict:
    """Every variant on this worker (inside a torch launch): ``{("pitfall", name): (w, b)}``."""
    return {("pitfall", name): manual_run(data, rank, world, **switches)
            for name, switches in VARIANTS.items()}


def _oracle():
    from parity_tests.test_distributed import DATA, EPOCHS, LAMBD, LR

    return reference.train(SyntheticData(**DATA), lambd=LAMBD, lr=LR, max_epochs=EPOCHS)


def _pitfall(name):
    from parity_tests.test_distributed import torch_results

    return torch_results()[("pitfall", name)]


def measured_errors() -> dict:
    """name -> the relative error of the final ``w`` against the reference
    (:func:`wd_core.tolerances.required_rtol`, the table's units)."""
    oracle = _oracle()
    return {name: required_rtol(_pitfall(name)[0], oracle.w) for name in VARIANTS}


@pytest.mark.parametrize("name", [n for n in VARIANTS if n.startswith("correct")])
def test_the_hand_written_loop_is_right_when_every_switch_is(name):
    w, b = _pitfall(name)
    oracle = _oracle()
    assert_close(w, oracle.w, "float64", name)
    assert_close(b, oracle.b, "float64", name)


@pytest.mark.parametrize("name", WRONG)
def test_each_pitfall_misses_the_single_process_step(name):
    w, _ = _pitfall(name)
    oracle = _oracle()
    error = required_rtol(w, oracle.w)
    assert not is_close(w, oracle.w, "float32"), f"{name}: error {error:.3g} within tolerance"
    assert np.isfinite(w).all()
