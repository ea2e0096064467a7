"""The batch order's random streams, many epochs at once, bit for bit as numpy makes them.

Epoch ``e``'s order is ``numpy.random.default_rng(SeedSequence((seed, STREAM_BATCHES, e)))
.permutation(num_train)`` (:meth:`wd_core.SyntheticData.epoch_permutation`, the definition).
Building a ``SeedSequence`` and a ``Generator`` per epoch costs about 10 us; here the
SeedSequence hashing of every epoch is done at once with numpy ``uint32`` arithmetic, the
PCG64 seeding with Python integers, and one ``Generator`` is re-seeded per epoch. The
arithmetic is numpy's own (``numpy/random/bit_generator.pyx``: ``mix_entropy``,
``generate_state``; ``pcg64.c``: ``pcg64_set_seed``); ``tests/test_streams.py`` checks it
against the definition.
"""

from __future__ import annotations

import numpy as np

# SeedSequence's hash constants (numpy/random/bit_generator.pyx).
_INIT_A, _MULT_A = 0x43B0D7E5, 0x931E8875
_INIT_B, _MULT_B = 0x8B51F9DD, 0x58F38DED
_MIX_MULT_L, _MIX_MULT_R = 0xCA01F9DD, 0x4973F715
_XSHIFT = 16
_POOL_SIZE = 4
_MASK32 = 0xFFFFFFFF
_MASK128 = (1 << 128) - 1
# PCG64's multiplier (pcg64.h: PCG_DEFAULT_MULTIPLIER_HIGH, _LOW).
_PCG_MULT = (2549297995355413924 << 64) + 4865540595714422341


def fits(*words: int) -> bool:
    """True when every entropy value is a single uint32 word (the vectorized path's case)."""
    return all(0 <= w <= _MASK32 for w in words)


def permutations(seed: int, stream: int, first: int, count: int, n: int) -> np.ndarray:
    """``(count, n)`` int64: row ``i`` is ``default_rng(SeedSequence((seed, stream,
    first + i))).permutation(n)``. Needs ``fits(seed, stream, first + count - 1)``."""
    epochs = np.arange(first, first + count, dtype=np.uint64).astype(np.uint32)
    words = _generate_state(_pool(seed, stream, epochs))  # (count, 8) uint32
    bit_generator = np.random.PCG64()
    generator = np.random.Generator(bit_generator)
    out = np.empty((count, n), dtype=np.int64)
    out[:] = np.arange(n)
    for i, w in enumerate(words.tolist()):
        state, inc = _pcg64_seeded(w[0] | w[1] << 32, w[2] | w[3] << 32, w[4] | w[5] << 32,
                                   w[6] | w[7] << 32)
        bit_generator.state = {"bit_generator": "PCG64", "state": {"state": state, "inc": inc},
                               "has_uint32": 0, "uinteger": 0}
        generator.shuffle(out[i])  # what Generator.permutation(n) does to arange(n)
    return out


def _pool(seed: int, stream: int, epochs: np.ndarray) -> list[np.ndarray]:
    """SeedSequence ``mix_entropy`` of the entropy ``[seed, stream, e]`` for every ``e``: the
    4 pool words, each (count,) uint32."""
    hash_const = [_INIT_A]

    def hashmix(value):
        value = value ^ np.uint32(hash_const[0])
        hash_const[0] = (hash_const[0] * _MULT_A) & _MASK32
        value = value * np.uint32(hash_const[0])
        return value ^ (value >> np.uint32(_XSHIFT))

    def mix(x, y):
        result = np.uint32(_MIX_MULT_L) * x - np.uint32(_MIX_MULT_R) * y
        return result ^ (result >> np.uint32(_XSHIFT))

    entropy = [np.full_like(epochs, seed), np.full_like(epochs, stream), epochs]
    with np.errstate(over="ignore"):
        mixer = [hashmix(entropy[i] if i < len(entropy) else np.zeros_like(epochs))
                 for i in range(_POOL_SIZE)]
        for i_src in range(_POOL_SIZE):
            for i_dst in range(_POOL_SIZE):
                if i_src != i_dst:
                    mixer[i_dst] = mix(mixer[i_dst], hashmix(mixer[i_src]))
    return mixer


def _generate_state(pool: list[np.ndarray]) -> np.ndarray:
    """SeedSequence ``generate_state(4, uint64)`` as 8 little-endian uint32 words per row."""
    hash_const = _INIT_B
    words = []
    with np.errstate(over="ignore"):
        for i in range(8):
            value = pool[i % _POOL_SIZE] ^ np.uint32(hash_const)
            hash_const = (hash_const * _MULT_B) & _MASK32
            value = value * np.uint32(hash_const)
            words.append(value ^ (value >> np.uint32(_XSHIFT)))
    return np.stack(words, axis=1)


def _pcg64_seeded(seed_high: int, seed_low: int, inc_high: int, inc_low: int):
    """PCG64's ``(state, inc)`` after ``pcg64_set_seed(seed, inc)`` (128-bit integers)."""
    initstate = (seed_high << 64) | seed_low
    initseq = (inc_high << 64) | inc_low
    inc = ((initseq << 1) | 1) & _MASK128
    state = inc  # 0 * mult + inc
    state = (state + initstate) & _MASK128
    state = (state * _PCG_MULT + inc) & _MASK128
    return state, inc
