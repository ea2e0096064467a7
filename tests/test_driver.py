"""wd_core.driver: chunks, progress, divergence, against a scripted chunk function."""

from __future__ import annotations

import numpy as np
import pytest

from wd_core.data import SyntheticData
from wd_core.driver import CHUNK_WORK, chunk_epochs, drive


def scripted(losses, calls):
    """A ``run_epochs`` whose epoch ``e`` outputs ``(e, losses[e], losses[e])``; it records
    each chunk it is asked for in ``calls``."""

    def run_epochs(state, first, count):
        calls.append((first, count))
        epochs = np.arange(first, first + count)
        chosen = np.asarray(losses, dtype=float)[epochs]
        return state + count, (epochs, chosen, chosen)

    return run_epochs


def test_chunks_cover_every_epoch_in_order_and_progress_sees_each_once():
    calls, seen = [], []
    epochs, train, val = drive(scripted(np.ones(10), calls), 0, max_epochs=10, chunk=4,
                               progress=seen.append)
    assert calls == [(0, 4), (4, 4), (8, 2)]
    assert seen == list(range(10)) and list(epochs) == list(range(10))


def test_a_raising_progress_stops_after_the_current_chunk():
    calls = []

    def stop(epoch):
        if epoch == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        drive(scripted(np.ones(100), calls), 0, max_epochs=100, chunk=4, progress=stop)
    assert calls == [(0, 4), (4, 4)]


def test_divergence_ends_the_run_with_the_diverged_epoch():
    calls, seen = [], []
    losses = [1.0, 1.0, 1.0, 1.0, 1.0, np.inf, np.nan, 1.0, 1.0, 1.0]
    epochs, train, _ = drive(scripted(losses, calls), 0, max_epochs=10, chunk=3,
                             progress=seen.append)
    assert list(epochs) == [0, 1, 2, 3, 4, 5] and seen == list(range(6))
    assert calls == [(0, 3), (3, 3)] and np.isinf(train[-1])


def test_a_sweep_stops_only_when_every_lane_has_diverged():
    # lane 0 diverges at epoch 1 and recovers (it stays diverged); lane 1 at epoch 4.
    losses = np.ones((8, 2))
    losses[1, 0] = np.nan
    losses[4, 1] = np.inf

    def run_epochs(state, first, count):
        rows = losses[first:first + count]
        return state, (np.arange(first, first + count), rows, rows)

    epochs, train, _ = drive(run_epochs, None, max_epochs=8, chunk=3)
    assert list(epochs) == [0, 1, 2, 3, 4] and train.shape == (5, 2)


def test_chunk_size_follows_the_work_per_epoch():
    chapter = SyntheticData()  # 20 x 200, 100 validation rows
    per_epoch = (3 * 20 + 100) * 200
    assert chunk_epochs(chapter, 10) == 10  # a short run is one chunk
    assert chunk_epochs(chapter, 10**6) == CHUNK_WORK // per_epoch
    assert chunk_epochs(chapter, 10**6, lanes=64) == CHUNK_WORK // (64 * per_epoch)
    # n = B = 1024, d = 65536 (the bandwidth-bound benchmark): one epoch is over CHUNK_WORK,
    # but 20 batches' work (20 * 1024 * d) needs 7 epochs of (3 * 1024 + 16) * d.
    wide = SyntheticData(num_train=1024, num_val=16, num_inputs=65536, batch_size=1024)
    assert chunk_epochs(wide, 100) == 7 and chunk_epochs(wide, 4) == 4


def test_without_epoch_params_only_each_lanes_final_parameters_are_kept():
    # Parameters of lane l after epoch e are 10 * e + l; lane 0 diverges at epoch 2, lane 1
    # never; the losses are kept for every epoch either way.
    losses = np.ones((7, 2))
    losses[2, 0] = np.nan

    def run_epochs(state, first, count):
        epochs = np.arange(first, first + count)
        params = (10 * epochs[:, None] + np.arange(2))[:, :, None]  # (count, 2, 1)
        rows = losses[first:first + count]
        return state, (params, rows, rows)

    kept, train, _ = drive(run_epochs, None, max_epochs=7, chunk=3)
    assert kept.shape == (7, 2, 1) and train.shape == (7, 2)
    final, train, _ = drive(run_epochs, None, max_epochs=7, chunk=3, epoch_params=False)
    assert final.shape == (1, 2, 1) and train.shape == (7, 2)
    assert final[0, :, 0].tolist() == [20, 61]  # lane 0 at its diverged epoch 2, lane 1 at 6


def test_a_single_run_without_epoch_params_keeps_its_last_parameters():
    calls = []
    epochs, train, _ = drive(scripted(np.ones(10), calls), 0, max_epochs=10, chunk=4,
                             epoch_params=False)
    assert epochs.shape == (1,) and epochs[0] == 9 and train.shape == (10,)
