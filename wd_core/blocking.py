"""Row-block sizes of the single-read step (``wd_torch.fused`` and ``wd_jax.fused``).

A block of ``block_rows`` rows of ``X`` (n, d) is read from memory once and used twice while
it stays in cache: for its residual ``r_blk = X_blk w + b - y_blk`` and for its share
``X_blk^T r_blk`` of the gradient. Each framework sets its own ``block_bytes`` (measured with
``python -m benchmarks.blocks``).
"""

from __future__ import annotations

from wd_core.validation import POSITIVE_INT, check_number

#: Batches up to this many bytes are not blocked (they stay in cache anyway).
UNBLOCKED_BYTES = 4 * 2**20


def block_rows_for(batch_size: int, num_inputs: int, itemsize: int, block_bytes: int) -> int:
    """Rows per block: as many rows of ``num_inputs * itemsize`` bytes as fit in
    ``block_bytes``, at least 1 and at most ``batch_size``."""
    return max(1, min(batch_size, block_bytes // (num_inputs * itemsize)))


def auto_block_rows(batch_size: int, num_inputs: int, itemsize: int, platform: str,
                    block_bytes: int):
    """:func:`block_rows_for` on CPUs for batches larger than ``UNBLOCKED_BYTES``; otherwise
    None (two whole-batch products), and always None on GPUs."""
    if platform != "cpu" or batch_size * num_inputs * itemsize <= UNBLOCKED_BYTES:
        return None
    return block_rows_for(batch_size, num_inputs, itemsize, block_bytes)


def check_block_rows(block_rows):
    """``None`` or a positive int; ``InputError`` naming the value otherwise."""
    return None if block_rows is None else check_number("block_rows", block_rows, POSITIVE_INT)
