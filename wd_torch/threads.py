"""Tasks of torch's CPU kernels run side by side in Python threads, each on one intra-op thread.

torch releases the GIL inside an op, so T Python threads that each run torch's kernels on one
intra-op thread keep T cores busy on data of their own; on small operands this beats T-thread
kernels, which spend much of their time starting and joining (:mod:`wd_torch.fused`'s
single-read step, docs/benchmarks.md).

torch's thread setting is per thread for OpenMP and MKL (``omp_set_num_threads``,
``mkl_set_num_threads_local``), but ``torch.set_num_threads`` also stores the process-wide
default that a thread takes at its first parallel op. The pool's threads set 1 for
themselves as they start; the thread that makes the pool waits for them (a barrier) and puts
the default back to its own setting at once, under a lock, so the default is 1 only for that
moment, once per process (again only if a larger pool is asked for). Only where torch's
parallel backend is OpenMP: elsewhere the setting is process-wide, and :func:`thread_count`
is 1.

The threads live as long as the process (as torch's own thread pools do); a forked child
starts without them and makes its own pool when it needs one.
"""

from __future__ import annotations

import functools
import os
import threading
from concurrent.futures import ThreadPoolExecutor, wait

import torch

THREAD_NAME = "wd_torch.threads"
START_TIMEOUT_S = 60


@functools.cache
def _per_thread_setting() -> bool:
    return "parallel backend: OpenMP" in torch.__config__.parallel_info()


def thread_count(device: torch.device, tasks: int) -> int:
    """Threads to run ``tasks`` side by side on ``device``: on a CPU with torch's OpenMP
    backend, torch's intra-op thread count (``torch.get_num_threads()``), at most one per
    task; else 1."""
    if device.type != "cpu" or not _per_thread_setting():
        return 1
    return max(1, min(torch.get_num_threads(), tasks))


class _Pool:
    lock = threading.Lock()
    executor: ThreadPoolExecutor | None = None
    size = 0


def _reset() -> None:
    """Forget the pool (a forked child, which has none of its parent's threads)."""
    _Pool.lock = threading.Lock()
    _Pool.executor, _Pool.size = None, 0


os.register_at_fork(after_in_child=_reset)


def _enter(barrier: threading.Barrier) -> None:
    torch.get_num_threads()  # torch's lazy first-use setup of this thread, or it undoes the next
    torch.set_num_threads(1)
    barrier.wait(START_TIMEOUT_S)


def _executor(size: int) -> ThreadPoolExecutor:
    """The pool, with at least ``size`` threads, each on one intra-op thread."""
    with _Pool.lock:
        if _Pool.size < size:
            own = torch.get_num_threads()
            barrier = threading.Barrier(size + 1)
            executor = ThreadPoolExecutor(size, thread_name_prefix=THREAD_NAME,
                                          initializer=_enter, initargs=(barrier,))
            try:
                for _ in range(size):  # no thread is idle before the barrier: each starts one
                    executor.submit(int)
                barrier.wait(START_TIMEOUT_S)
            except threading.BrokenBarrierError as err:
                barrier.abort()
                executor.shutdown(wait=True)  # no thread of it can lower the default later
                raise RuntimeError(f"wd_torch.threads: {size} pool threads did not start "
                                   f"within {START_TIMEOUT_S} s") from err
            finally:
                torch.set_num_threads(own)  # the default the pool's threads lowered
            # A smaller pool is dropped, not shut down: a caller may still be submitting to
            # it; its threads end when it is collected.
            _Pool.executor, _Pool.size = executor, size
        return _Pool.executor


def _run(task, grad_enabled: bool, inference: bool):
    # Grad mode and inference mode are per thread too: the caller's, in the pool's thread.
    with torch.inference_mode(inference), torch.set_grad_enabled(grad_enabled):
        return task()


def run_side_by_side(tasks) -> list:
    """The results of the callables ``tasks``, run side by side in the pool's threads under
    the caller's grad and inference modes (a single task runs here, as it is); once all have
    ended, the first exception raised is re-raised."""
    if len(tasks) == 1:
        return [tasks[0]()]
    modes = (torch.is_grad_enabled(), torch.is_inference_mode_enabled())
    executor = _executor(len(tasks))
    futures = [executor.submit(_run, task, *modes) for task in tasks]
    wait(futures)
    return [future.result() for future in futures]
