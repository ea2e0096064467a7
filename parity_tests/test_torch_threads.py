"""torch's single-read step dealt out to Python threads (``wd_torch.threads``).

Runs, sweeps, one step and full-batch runs with 1-3 threads (3 on fewer cores too) against the
float64 reference, with a spy that sees which threads ran the blocks; the caller's thread
setting, the default of threads started later, and grad mode; an exception in a pool thread;
a forked child.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from parity_tests.conftest import require_backends
from parity_tests.test_fused import LAMBD, LR
from parity_tests.test_fused import _batch as one_batch
from wd_core import SyntheticData, reference
from wd_core.tolerances import assert_close

torch = pytest.importorskip("torch")
DATA = {"num_train": 23, "num_val": 7, "num_inputs": 11, "seed": 3}


@pytest.fixture
def threads(monkeypatch):
    """Every batch blocked in blocks of 2 rows, a pool made afresh, torch's thread count set
    by the test (restored after it), and the names of the threads that ran tasks."""
    require_backends("torch")
    import wd_core.blocking
    import wd_torch.fused
    import wd_torch.threads

    monkeypatch.setattr(wd_core.blocking, "UNBLOCKED_BYTES", 0)
    monkeypatch.setattr(wd_torch.fused, "BLOCK_BYTES", 2 * 11 * 8)
    old = wd_torch.threads._Pool.executor
    wd_torch.threads._reset()
    if old is not None:
        old.shutdown()
    ran_in = set()
    run = wd_torch.threads._run

    def spy(task, *modes):
        ran_in.add(threading.current_thread().name)
        return run(task, *modes)

    monkeypatch.setattr(wd_torch.threads, "_run", spy)
    before = torch.get_num_threads()

    def use(count):
        torch.set_num_threads(count)
        return ran_in

    yield use
    torch.set_num_threads(before)


def _assert_ran_in(names, count):
    """One thread: every block in the caller's; more: every block in the pool's (which of
    them takes which task is up to the pool)."""
    if count == 1:
        assert names == set()
    else:
        assert names and all(n.startswith("wd_torch.threads") for n in names), names


def _assert_default_is(count):
    """The caller's setting, and that of a thread started now, are both ``count``."""
    assert torch.get_num_threads() == count
    later = []
    thread = threading.Thread(target=lambda: later.append(torch.get_num_threads()))
    thread.start()
    thread.join()
    assert later == [count]


@pytest.mark.parametrize("count", [1, 2, 3])
@pytest.mark.parametrize("entry", ["train", "sweep", "full-batch"])
def test_runs_in_threads_match_the_reference(threads, entry, count):
    import wd_torch

    ran_in = threads(count)
    data = SyntheticData(batch_size=23 if entry == "full-batch" else 5, **DATA)
    kwargs = {"method": "concise", "lr": 0.01, "max_epochs": 4, "dtype": "float64",
              "epoch_params": True, "implementation": "fused"}
    histories = (wd_torch.sweep(data, lambdas=[3.0, 0.0], **kwargs) if entry == "sweep"
                 else [wd_torch.train(data, lambd=3.0, **kwargs)])
    for history, lambd in zip(histories, (3.0, 0.0), strict=False):
        oracle = reference.train(data, lambd=lambd, lr=0.01, max_epochs=4, epoch_params=True)
        for name in ("w", "b", "train_loss", "val_loss", "epoch_w", "epoch_b"):
            assert_close(getattr(history, name), getattr(oracle, name), "float64",
                         err_msg=name)
    _assert_ran_in(ran_in, count)
    _assert_default_is(count)


def _batch():
    return one_batch(9, 6, seed=5)


def _assert_one_reference_step(got, w, b, X, y):
    for actual, want in zip(got, reference.sgd_step(w, b, X, y, lambd=LAMBD, lr=LR),
                            strict=True):
        assert_close(actual, want, "float64")


@pytest.mark.parametrize("count", [1, 2, 3])
def test_one_step_in_threads_matches_the_reference(threads, count):
    import wd_torch

    ran_in = threads(count)
    w, b, X, y = _batch()
    got = wd_torch.fused.fused_sgd_step(w, b, X, y, lambd=LAMBD, lr=LR, dtype="float64",
                                        block_rows=2)
    _assert_one_reference_step(got, w, b, X, y)
    _assert_ran_in(ran_in, count)
    _assert_default_is(count)


def test_parameters_that_require_grad_step_in_threads(threads):
    """``fused_step`` on ``nn.Parameter`` tensors: the pool threads run under the caller's
    ``no_grad`` as the caller's own thread does."""
    import wd_torch

    ran_in = threads(2)
    w, b, X, y = _batch()
    w_t, b_t = (torch.nn.Parameter(torch.tensor(a)) for a in (w, b))
    wd_torch.fused.fused_step(w_t, b_t, torch.tensor(X), torch.tensor(y), LAMBD, LR,
                              block_rows=2)
    _assert_one_reference_step((w_t.detach().numpy(), b_t.detach().numpy()), w, b, X, y)
    assert w_t.grad is None and torch.is_grad_enabled()
    _assert_ran_in(ran_in, 2)


def test_a_step_under_inference_mode_in_threads(threads):
    import wd_torch

    ran_in = threads(2)
    w, b, X, y = _batch()
    with torch.inference_mode():
        got = wd_torch.fused.fused_sgd_step(w, b, X, y, lambd=LAMBD, lr=LR, dtype="float64",
                                            block_rows=2)
    _assert_one_reference_step(got, w, b, X, y)
    _assert_ran_in(ran_in, 2)


def test_pool_threads_keep_one_intra_op_thread(threads):
    """Also after a parallel op (torch sets up a thread's count lazily, at its first one),
    and after the pool has grown; the caller keeps its own."""
    from wd_torch.threads import run_side_by_side

    threads(3)

    def count_after_a_parallel_op():
        torch.ones(2**20).sum()
        return torch.get_num_threads()

    assert run_side_by_side([count_after_a_parallel_op] * 2) == [1, 1]
    assert run_side_by_side([count_after_a_parallel_op] * 3) == [1, 1, 1]
    _assert_default_is(3)


def test_an_exception_in_a_pool_thread_is_raised_once_all_have_ended(threads):
    from wd_torch.threads import run_side_by_side

    threads(2)
    ended = []

    def fails():
        raise RuntimeError("in a pool thread")

    def slow():
        time.sleep(0.2)
        ended.append(True)

    with pytest.raises(RuntimeError, match="in a pool thread"):
        run_side_by_side([fails, slow])
    assert ended == [True]
    _assert_default_is(2)


FORKED_CHILD = """
import os, sys
import numpy as np
import torch
import wd_torch
from wd_core import reference

torch.set_num_threads(2)
rng = np.random.default_rng(5)
w, b, X, y = (rng.standard_normal(s) for s in ((6, 1), (1,), (9, 6), (9, 1)))
step = lambda: wd_torch.fused.fused_sgd_step(w, b, X, y, lambd=2.5, lr=0.05, dtype="float64",
                                             block_rows=2)
step()  # the parent's pool threads exist now
pid = os.fork()
if pid == 0:
    want = reference.sgd_step(w, b, X, y, lambd=2.5, lr=0.05)
    ok = all(np.allclose(a, e, rtol=1e-12, atol=0) for a, e in zip(step(), want))
    os._exit(0 if ok else 1)
_, status = os.waitpid(pid, 0)
sys.exit(os.waitstatus_to_exitcode(status))
"""


def test_a_forked_child_makes_its_own_pool():
    """A child forked after the pool was used (the parent's threads are not there): its
    threaded step finishes and matches the reference. In a process of its own, without JAX,
    whose threads make forking unsafe."""
    require_backends("torch")
    proc = subprocess.Popen([sys.executable, "-c", FORKED_CHILD],
                            cwd=Path(__file__).resolve().parents[1], text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        _, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the forked child too
        proc.communicate()
        pytest.fail("the forked child's threaded step did not finish in 60 s")
    assert proc.returncode == 0, err
