"""The training driver: the epoch loop of every ``train`` and ``sweep``, framework-free.

A backend supplies only the work of a *chunk* of epochs::

    run_epochs(state, first_epoch, num_epochs) -> (state, outputs)

where ``state`` is whatever the backend carries from one chunk to the next (parameters and
optimizer state on the device, or nothing when its model holds them) and ``outputs`` is a
tuple of per-epoch arrays with ``num_epochs`` as their leading axis, the last two being the
training and validation losses after each epoch: ``(num_epochs,)`` for one run,
``(num_epochs, L)`` for a sweep over L lambdas. JAX compiles a chunk as one ``lax.scan``;
torch runs its loop.

:func:`drive` owns everything else: the order of the chunks, the progress report (called in
the caller's thread, after each chunk, once per finished epoch), stopping at divergence, and
the per-epoch arrays the History is built from. A ``progress`` that raises stops the run
after the current chunk; its exception reaches the caller.
"""

from __future__ import annotations

import numpy as np

#: Work of one chunk, in multiply-adds over ``X`` (see :func:`chunk_epochs`): about 10 ms of
#: compiled work on one CPU core at the chapter's size (2,000 epochs), and well under a second
#: at any size, so that a long run reports progress several times a second.
CHUNK_WORK = 2**26

#: A chunk does at least this many batches' worth of work (``batch_size * num_inputs``
#: multiply-adds each). Starting a chunk touches fresh memory for its temporaries, about one
#: gathered batch (a batch over 32 MiB comes from ``mmap`` and returns to the system after each
#: call), which costs about as much as two multiply-adds per value: 20 batches of work keep
#: that under 10% of the chunk (measured: 4 one-epoch chunks of n = B = 1024, d = 65536 took
#: 0.86 s, one chunk of 4 epochs 0.57 s).
MIN_CHUNK_BATCHES = 20


def chunk_epochs(data, max_epochs: int, lanes: int = 1) -> int:
    """Epochs per chunk for a run of ``max_epochs`` on ``data`` (a
    :class:`wd_core.SyntheticData`), ``lanes`` runs at once (a sweep's lambdas).

    One epoch reads ``X_train`` (n, d) twice for its steps (the residual and the gradient)
    and ``X_train`` and ``X_val`` once more for its losses: ``(3 n + n_val) d`` multiply-adds
    per lane. A chunk is as many epochs as fit in :data:`CHUNK_WORK`, but no fewer than
    :data:`MIN_CHUNK_BATCHES` batches' work needs; at least 1 and at most ``max_epochs``.
    """
    per_epoch = (3 * data.num_train + data.num_val) * data.num_inputs * lanes
    at_least = -(-MIN_CHUNK_BATCHES * data.batch_size * data.num_inputs // per_epoch)
    return max(1, min(max_epochs, max(CHUNK_WORK // per_epoch, at_least)))


def drive(run_epochs, state, *, max_epochs: int, chunk: int, progress=None,
          epoch_params: bool = True) -> list:
    """Run ``max_epochs`` epochs in chunks of ``chunk`` through ``run_epochs`` (see the
    module docstring); return its outputs as numpy arrays, epochs first.

    After each chunk ``progress(epoch)`` (if given) is called for each of its epochs in order.
    The run stops after the first epoch in which every lane has diverged (a loss that is NaN
    or infinite, in that epoch or earlier); the outputs then end with that epoch, which is
    reported to ``progress`` too, and no later epoch is.

    The losses are kept for every epoch. The other outputs (the parameters) are kept for
    every epoch with ``epoch_params``; without it only each lane's final ones are, with a
    leading axis of 1: those after the lane's first diverged epoch, or after the last epoch
    run. Then memory does not grow with the number of epochs times the parameters' size.
    """
    kept = _EveryEpoch() if epoch_params else _FinalOnly()
    losses = []  # per chunk: [train_loss, val_loss]
    diverged = None  # per lane: has a loss been NaN or infinite yet?
    first = 0
    while first < max_epochs:
        count = min(chunk, max_epochs - first)
        state, outputs = run_epochs(state, first, count)
        *params, train_loss, val_loss = [np.asarray(a) for a in outputs]
        before = np.zeros(train_loss[0].size, bool) if diverged is None else diverged
        bad = ~(np.isfinite(train_loss) & np.isfinite(val_loss)).reshape(count, -1)
        bad = np.logical_or.accumulate(bad | before, axis=0)  # (count, lanes): diverged by then
        diverged = bad[-1]
        stopped = np.flatnonzero(bad.all(axis=1))
        finished = int(stopped[0]) + 1 if stopped.size else count
        losses.append([train_loss[:finished], val_loss[:finished]])
        kept.add(params, bad[:finished], before)
        if progress is not None:
            for epoch in range(first, first + finished):
                progress(epoch)
        if stopped.size:
            break
        first += count
    return kept.result() + _joined(losses)


class _EveryEpoch:
    """Keeps the parameter outputs of every epoch run."""

    def __init__(self):
        self.pieces = []

    def add(self, params, bad, before):
        self.pieces.append([a[:len(bad)] for a in params])

    def result(self) -> list:
        return _joined(self.pieces)


class _FinalOnly:
    """Keeps each lane's parameters after its first diverged epoch, else after the last one
    run: (1, ...) per output."""

    def __init__(self):
        self.final = None

    def add(self, params, bad, before):
        finished, lanes = bad.shape
        ends = np.where(bad.any(axis=0), bad.argmax(axis=0), finished - 1)
        picked = [a.reshape(len(a), lanes, -1)[ends, np.arange(lanes)] for a in params]
        if self.final is not None:  # a lane that had diverged keeps what it had
            picked = [np.where(before[:, None], old, new)
                      for old, new in zip(self.final, picked, strict=True)]
        self.final = picked
        self.shapes = [(1, *a.shape[1:]) for a in params]

    def result(self) -> list:
        return [f.reshape(shape) for f, shape in zip(self.final, self.shapes, strict=True)]


def _joined(pieces) -> list:
    """Per-chunk lists of arrays joined along the epochs, one array per position."""
    if len(pieces) == 1:
        return pieces[0]
    return [np.concatenate(arrays) for arrays in zip(*pieces, strict=True)]
