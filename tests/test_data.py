"""SyntheticData and init_params: determinism, shapes, batch order, validation."""

from __future__ import annotations

import hashlib
import subprocess
import sys

import numpy as np
import pytest

from wd_core import SyntheticData, init_params
from wd_core.errors import InputTypeError

FINGERPRINT = """
import hashlib
from wd_core import SyntheticData, init_params
d = SyntheticData(seed=7)
h = hashlib.sha256()
for a in (d.X_train, d.y_train, d.X_val, d.y_val, *init_params(200, seed=7),
          *d.epoch_batches(0), *d.epoch_batches(5)):
    h.update(a.tobytes())
print(h.hexdigest())
"""


def test_same_seed_same_arrays_in_two_processes():
    digests = {
        subprocess.run([sys.executable, "-c", FINGERPRINT], capture_output=True, text=True,
                       check=True).stdout.strip()
        for _ in range(2)
    }
    assert len(digests) == 1
    d = SyntheticData(seed=7)
    h = hashlib.sha256()
    for a in (d.X_train, d.y_train, d.X_val, d.y_val, *init_params(200, seed=7),
              *d.epoch_batches(0), *d.epoch_batches(5)):
        h.update(a.tobytes())
    assert digests == {h.hexdigest()}


def test_shapes_and_dtypes_follow_the_contract():
    d = SyntheticData(num_train=20, num_val=100, num_inputs=200, batch_size=5, seed=0)
    assert d.X_train.shape == (20, 200) and d.y_train.shape == (20, 1)
    assert d.X_val.shape == (100, 200) and d.y_val.shape == (100, 1)
    assert {a.dtype for a in (d.X_train, d.y_train, d.X_val, d.y_val)} == {np.dtype("float64")}
    w, b = init_params(200, seed=0)
    assert w.shape == (200, 1) and b.shape == (1,) and w.dtype == b.dtype == np.float64
    assert np.all(b == 0)


def test_data_follow_the_chapter_generator():
    d = SyntheticData(num_train=2000, num_val=2000, num_inputs=5, batch_size=5, seed=3)
    X = np.vstack([d.X_train, d.X_val])
    y = np.vstack([d.y_train, d.y_val])
    noise = y - (0.05 + X @ np.full((5, 1), 0.01))
    assert abs(X.mean()) < 0.03 and abs(X.std() - 1) < 0.03
    assert abs(noise.std() - 0.01) < 0.0005
    # Pitfall 4 of DESIGN.md: a reused PRNG key would make the noise a copy of X's draws
    # (in row-major order), so the unit noise must not be any run of X's values.
    assert abs(np.corrcoef(noise[:, 0], X[:, 0])[0, 1]) < 0.05
    unit_noise = (noise / 0.01).ravel()
    assert not np.allclose(unit_noise, X.ravel()[: len(unit_noise)], atol=1e-6)
    assert not np.allclose(unit_noise, X[:, 0], atol=1e-6)


def test_init_std_is_the_chapters():
    w, _ = init_params(100_000, seed=1)
    assert abs(w.std() - 0.01) < 2e-4


def test_epoch_batches_are_a_permutation_and_epochs_differ():
    d = SyntheticData(num_train=23, num_val=4, num_inputs=3, batch_size=5, seed=2)
    batches = d.epoch_batches(0)
    assert [len(b) for b in batches] == [5, 5, 5, 5, 3]
    assert sorted(np.concatenate(batches).tolist()) == list(range(23))
    assert not np.array_equal(d.epoch_permutation(0), d.epoch_permutation(1))
    assert np.array_equal(np.concatenate(batches), d.epoch_permutation(0))
    again = SyntheticData(num_train=23, num_val=4, num_inputs=3, batch_size=5, seed=2)
    assert np.array_equal(again.epoch_permutation(3), d.epoch_permutation(3))


def test_batch_schedule_is_epoch_batches():
    d = SyntheticData(num_train=23, num_val=4, num_inputs=3, batch_size=5, seed=2)
    full, last = d.batch_schedule(4)
    assert full.shape == (4, 4, 5) and last.shape == (4, 3)
    for epoch in range(4):
        expected = d.epoch_batches(epoch)
        assert [b.tolist() for b in (*full[epoch], last[epoch])] == [b.tolist() for b in expected]
    full, last = SyntheticData(num_train=20, batch_size=5, num_inputs=2).batch_schedule(2)
    assert full.shape == (2, 4, 5) and last.shape == (2, 0)


def test_seeds_give_different_data():
    assert not np.array_equal(SyntheticData(seed=0).X_train, SyntheticData(seed=1).X_train)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_train": 0}, "num_train must be a positive integer"),
        ({"num_val": -1}, "num_val must be a positive integer"),
        ({"num_inputs": 0}, "num_inputs must be a positive integer"),
        ({"batch_size": 0}, "batch_size must be a positive integer"),
        ({"batch_size": 21}, "batch_size=21 is larger than num_train=20"),
        ({"seed": -3}, "seed must be an integer >= 0, got -3"),
    ],
)
def test_bad_sizes_are_rejected_with_the_value(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SyntheticData(**kwargs)


def test_non_integer_size_is_a_type_error():
    with pytest.raises(InputTypeError, match="num_train must be a positive integer, got 2.5"):
        SyntheticData(num_train=2.5)


@pytest.mark.parametrize("seed", [0, 7])
def test_the_seed_sets_every_stream_as_documented(seed):
    """SeedSequence((seed, stream[, epoch])) with streams data 0, init 1, batches 2."""

    def rng(*key):
        return np.random.default_rng(np.random.SeedSequence(key))

    d = SyntheticData(num_train=9, num_val=4, num_inputs=3, batch_size=4, seed=seed)
    draws = rng(seed, 0)
    X = draws.standard_normal((13, 3))
    y = X @ np.full((3, 1), 0.01) + 0.05 + 0.01 * draws.standard_normal((13, 1))
    np.testing.assert_array_equal(np.vstack([d.X_train, d.X_val]), X)
    np.testing.assert_array_equal(np.vstack([d.y_train, d.y_val]), y)
    np.testing.assert_array_equal(init_params(3, seed=seed)[0],
                                  0.01 * rng(seed, 1).standard_normal((3, 1)))
    for epoch in (0, 4):
        np.testing.assert_array_equal(d.epoch_permutation(epoch),
                                      rng(seed, 2, epoch).permutation(9))
    other = SyntheticData(num_train=9, num_val=4, num_inputs=3, batch_size=4, seed=seed + 1)
    assert not np.array_equal(other.X_train, d.X_train)
    assert not np.array_equal(other.epoch_permutation(0), d.epoch_permutation(0))
    assert not np.array_equal(init_params(3, seed=seed + 1)[0], init_params(3, seed=seed)[0])


@pytest.mark.parametrize("seed", [-1, None, True, 1.5])
def test_init_params_checks_its_seed_like_the_data(seed):
    with pytest.raises(ValueError, match="seed must be an integer >= 0"):
        init_params(3, seed=seed)
    with pytest.raises(ValueError, match="seed must be an integer >= 0"):
        SyntheticData(num_train=4, num_val=2, num_inputs=3, batch_size=2, seed=seed)


def test_a_schedule_window_is_the_same_epochs_of_the_whole_schedule():
    d = SyntheticData(num_train=22, batch_size=5, num_inputs=3, seed=4)
    full, last = SyntheticData(num_train=22, batch_size=5, num_inputs=3, seed=4).batch_schedule(9)
    part_full, part_last = d.batch_schedule(4, first_epoch=3)
    np.testing.assert_array_equal(part_full, full[3:7])
    np.testing.assert_array_equal(part_last, last[3:7])
    for i in range(4):
        np.testing.assert_array_equal(np.concatenate([*part_full[i], part_last[i]]),
                                      d.epoch_permutation(3 + i))


def test_epoch_orders_are_the_epoch_permutations():
    d = SyntheticData(num_train=22, batch_size=5, num_inputs=3, seed=4)
    orders = d.epoch_orders(4, first_epoch=3)
    assert orders.shape == (4, 22)
    for i in range(4):
        np.testing.assert_array_equal(orders[i], d.epoch_permutation(3 + i))


def test_schedules_are_cached_read_only_and_bounded(monkeypatch):
    import wd_core.data

    d = SyntheticData(num_train=20, batch_size=5, num_inputs=2)
    first = d.batch_schedule(6)
    assert d.batch_schedule(6) is first  # computed once
    assert not first[0].flags.writeable and not first[1].flags.writeable
    with pytest.raises(ValueError):
        first[0][0, 0, 0] = 1
    monkeypatch.setattr(wd_core.data, "SCHEDULE_CACHE_BYTES", 20 * 8 * 10)
    d.batch_schedule(10, first_epoch=100)  # fills the budget: older entries are dropped
    assert d.batch_schedule(6) is not first
    np.testing.assert_array_equal(d.batch_schedule(6)[0], first[0])


def test_the_sizes_and_seed_cannot_be_set_again():
    d = SyntheticData(num_train=4, batch_size=2, num_inputs=2)
    for name in ("seed", "num_train", "batch_size", "num_inputs", "num_val"):
        with pytest.raises(AttributeError, match="immutable"):
            setattr(d, name, 5)


def test_derived_values_are_made_once_per_key():
    d = SyntheticData(num_train=4, batch_size=2, num_inputs=2)
    calls = []
    first = d.derived(("x", 1), lambda: calls.append(1) or object())
    assert d.derived(("x", 1), lambda: calls.append(1) or object()) is first
    assert d.derived(("x", 2), lambda: calls.append(1) or object()) is not first
    assert len(calls) == 2
