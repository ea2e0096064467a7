"""The chapter's synthetic data (D2L section 3.7.2) and the seeded minibatch order.

Every random number of the project is drawn here or in :mod:`wd_core.params`, from
independent numpy streams named by ``(seed, stream)``, so neither backend draws its own.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np

from wd_core import streams
from wd_core.errors import InputError
from wd_core.validation import NONNEGATIVE_INT, POSITIVE_INT, check_number, check_seed

# Independent random streams derived from one user seed: SeedSequence((seed, stream)).
STREAM_DATA = 0
STREAM_INIT = 1
STREAM_BATCHES = 2

#: The batch schedules a SyntheticData keeps for later runs, in bytes (least recently used
#: dropped first): a repeated run with the same epochs costs nothing to schedule, and a long
#: run, asked for in chunks, keeps no more than this.
SCHEDULE_CACHE_BYTES = 32 * 2**20

TRUE_BIAS = 0.05
TRUE_WEIGHT = 0.01
NOISE_STD = 0.01
#: The arguments of :class:`SyntheticData`, in its signature's order.
ARGUMENTS = ("num_train", "num_val", "num_inputs", "batch_size", "seed")


def rng_for(seed: int, stream: int, *more: int) -> np.random.Generator:
    """A numpy Generator for one named stream of ``seed`` (a different key per use)."""
    return np.random.default_rng(np.random.SeedSequence((seed, stream, *more)))


class SyntheticData:
    """High-dimensional linear regression data, float64.

    ``X ~ N(0, 1)`` of shape (n, d) with ``n = num_train + num_val``;
    ``y = 0.05 + X @ (0.01 * ones(d, 1)) + eps``, ``eps ~ N(0, 0.01**2)`` of shape (n, 1).
    The first ``num_train`` rows train, the rest validate. ``X`` and ``eps`` are two
    consecutive draws of one stream (never one key reused).

    Attributes:
        X_train, y_train: (num_train, d), (num_train, 1) float64.
        X_val, y_val: (num_val, d), (num_val, 1) float64.
        true_w, true_b: (d, 1) and (1,) float64, the generating parameters.

    Its sizes and seed cannot be set again (make a new SyntheticData instead), so the batch
    schedules it caches, which depend on nothing else, cannot go stale.
    """

    def __init__(self, num_train=20, num_val=100, num_inputs=200, batch_size=5, seed=0):
        self.num_train = check_number("num_train", num_train, POSITIVE_INT)
        self.num_val = check_number("num_val", num_val, POSITIVE_INT)
        self.num_inputs = check_number("num_inputs", num_inputs, POSITIVE_INT)
        self.batch_size = check_number("batch_size", batch_size, POSITIVE_INT)
        self.seed = check_seed(seed)
        if self.batch_size > self.num_train:
            raise InputError(
                f"batch_size={self.batch_size} is larger than num_train={self.num_train}; "
                f"accepted: 1 <= batch_size <= num_train"
            )
        n, d = self.num_train + self.num_val, self.num_inputs
        rng = rng_for(self.seed, STREAM_DATA)
        X = rng.standard_normal((n, d))
        noise = NOISE_STD * rng.standard_normal((n, 1))
        self.true_w = np.full((d, 1), TRUE_WEIGHT)
        self.true_b = np.array([TRUE_BIAS])
        y = X @ self.true_w + self.true_b + noise
        self.X_train, self.X_val = X[: self.num_train], X[self.num_train :]
        self.y_train, self.y_val = y[: self.num_train], y[self.num_train :]
        self._schedules = OrderedDict()
        self._derived = {}
        self._frozen = True

    def __setattr__(self, name, value):
        if getattr(self, "_frozen", False):
            raise AttributeError(f"SyntheticData is immutable; make a new one instead of "
                                 f"setting {name!r}")
        object.__setattr__(self, name, value)

    @property
    def arguments(self) -> dict:
        """The constructor's arguments (:data:`ARGUMENTS`), which determine everything else."""
        return {name: getattr(self, name) for name in ARGUMENTS}

    def __repr__(self) -> str:
        return "SyntheticData(" + ", ".join(f"{k}={v}" for k, v in self.arguments.items()) + ")"

    def derived(self, key, make):
        """``make()``, computed once per ``key`` and kept as long as this SyntheticData: for
        what the backends derive from the data alone (its arrays on a device, in a dtype),
        so that a repeated run does not move them again. The data are never modified, so
        what is kept cannot go stale; it costs the memory of what ``make`` returns."""
        if key not in self._derived:
            self._derived[key] = make()
        return self._derived[key]

    @property
    def steps_per_epoch(self) -> int:
        """Number of minibatches per epoch, ``ceil(num_train / batch_size)``."""
        return -(-self.num_train // self.batch_size)

    def epoch_permutation(self, epoch: int) -> np.ndarray:
        """The shuffled training-row order of ``epoch``: (num_train,) int64.

        A pure function of ``(seed, epoch)``; each epoch has its own stream.
        """
        return self._permutation(check_number("epoch", epoch, NONNEGATIVE_INT))

    def _permutation(self, epoch: int) -> np.ndarray:
        return rng_for(self.seed, STREAM_BATCHES, epoch).permutation(self.num_train)

    def epoch_batches(self, epoch: int) -> list[np.ndarray]:
        """The minibatches of ``epoch`` in step order, as arrays of training-row indices.

        All have ``batch_size`` rows except perhaps the last (``num_train % batch_size``).
        Concatenated they are :meth:`epoch_permutation`.
        """
        order = self.epoch_permutation(epoch)
        return [order[i : i + self.batch_size] for i in range(0, self.num_train, self.batch_size)]

    def epoch_orders(self, num_epochs: int, first_epoch: int = 0) -> np.ndarray:
        """The row orders of epochs ``first_epoch .. first_epoch + num_epochs - 1``: (num_epochs,
        num_train) int64, row ``i`` :meth:`epoch_permutation` of epoch ``first_epoch + i``
        (made from the cached :meth:`batch_schedule`)."""
        full, last = self.batch_schedule(num_epochs, first_epoch)
        return np.concatenate([full.reshape(len(full), -1), last], axis=1)

    def batch_schedule(self, max_epochs: int, first_epoch: int = 0
                       ) -> tuple[np.ndarray, np.ndarray]:
        """The batch indices of epochs ``first_epoch .. first_epoch + max_epochs - 1`` as two
        rectangular, read-only int64 arrays (for compiled loops).

        Returns ``(full, last)``: ``full`` of shape (max_epochs, num_train // batch_size,
        batch_size) holds the full batches of every epoch in step order; ``last`` of shape
        (max_epochs, num_train % batch_size) the ragged last batch of every epoch (zero
        columns when ``batch_size`` divides ``num_train``). Epoch ``first_epoch + i`` is
        ``full[i]`` then ``last[i]``, exactly :meth:`epoch_batches`.

        A schedule once made is kept (up to :data:`SCHEDULE_CACHE_BYTES` in all, least
        recently used dropped) and returned again: the data are immutable, so it cannot go
        stale. A training run asks for its schedule one chunk of epochs at a time, so its
        memory does not grow with the number of epochs.
        """
        key = (check_number("first_epoch", first_epoch, NONNEGATIVE_INT),
               check_number("max_epochs", max_epochs, POSITIVE_INT))
        cache = self._schedules
        if key in cache:
            cache.move_to_end(key)
            return cache[key]
        first, count = key
        if streams.fits(self.seed, STREAM_BATCHES, first + count - 1):
            orders = streams.permutations(self.seed, STREAM_BATCHES, first, count,
                                          self.num_train)
        else:
            orders = np.stack([self._permutation(e) for e in range(first, first + count)])
        n_full = (self.num_train // self.batch_size) * self.batch_size
        schedule = (orders[:, :n_full].reshape(count, -1, self.batch_size), orders[:, n_full:])
        for array in schedule:
            array.flags.writeable = False
        if orders.nbytes <= SCHEDULE_CACHE_BYTES:
            cache[key] = schedule
            while sum(s[0].nbytes + s[1].nbytes for s in cache.values()) > SCHEDULE_CACHE_BYTES:
                cache.popitem(last=False)
        return schedule
