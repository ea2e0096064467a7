"""wd_core.streams: the batch order of many epochs at once equals numpy's, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wd_core import SyntheticData, streams
from wd_core.data import STREAM_BATCHES


def defined(seed, first, count, n):
    """The definition: one SeedSequence and Generator per epoch."""
    return np.stack([np.random.default_rng(np.random.SeedSequence((seed, STREAM_BATCHES, e)))
                     .permutation(n) for e in range(first, first + count)])


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), first=st.integers(0, 2**32 - 8),
       count=st.integers(1, 6), n=st.integers(1, 300))
def test_many_epochs_at_once_equal_the_definition(seed, first, count, n):
    np.testing.assert_array_equal(streams.permutations(seed, STREAM_BATCHES, first, count, n),
                                  defined(seed, first, count, n))


@pytest.mark.parametrize("seed", [0, 2**32 - 1, 2**32, 2**40 + 3])
def test_schedules_equal_epoch_permutation_for_any_seed(seed):
    """Seeds past one uint32 word take the per-epoch path; both give the documented order."""
    d = SyntheticData(num_train=13, num_val=2, num_inputs=2, batch_size=4, seed=seed)
    full, last = d.batch_schedule(5, first_epoch=3)
    orders = np.concatenate([full.reshape(5, -1), last], axis=1)
    np.testing.assert_array_equal(orders, np.stack([d.epoch_permutation(e) for e in range(3, 8)]))
    assert streams.fits(seed, STREAM_BATCHES, 7) == (seed < 2**32)
