"""The framework-free side of data parallel: the shard arithmetic (:mod:`wd_core.shards`) and
the local launcher (:mod:`wd_core.workers`).

The launcher tests start this module as the worker (``python -m tests.test_workers JOB``):
its ``__main__`` (at the top, before the test-only imports) serves fake runs (return a value,
report progress, raise, exit, sleep), so no framework is imported and a launch costs a
fraction of a second.
"""

# ruff: noqa: E402  (the worker side comes first, so that a fake worker imports little)
from __future__ import annotations

import os
import signal
import time

from wd_core.workers import serve


def _fake_run(job, progress):
    """What a fake worker does (``job["do"]``), by rank."""
    rank = int(os.environ["FAKE_RANK"])
    action = job["do"].get(rank, job["do"].get("all", "return"))
    if progress is not None:
        for epoch in range(job.get("epochs", 0)):
            progress(epoch)
    if action == "return":
        return {"rank": rank, "world": os.environ["FAKE_WORLD"], "port": os.environ["FAKE_PORT"],
                "threads": os.environ.get("OMP_NUM_THREADS")}
    if action == "raise":
        raise ValueError(f"boom on {rank}")
    if action == "raise later":
        time.sleep(0.5)
        raise ValueError(f"boom on {rank}")
    if action == "lose a peer":  # what gloo raises in a worker whose peer went away
        raise RuntimeError("[gloo/transport/tcp/pair.cc:537] Connection reset by peer")
    if action == "stop":
        os.kill(os.getpid(), signal.SIGSTOP)
    if action == "exit":
        os._exit(3)
    if action == "sleep":
        while True:
            time.sleep(0.1)
    raise AssertionError(action)


if __name__ == "__main__":
    if os.environ.get("FAKE_STOP_FIRST"):  # stopped before it says a word
        os.kill(os.getpid(), signal.SIGSTOP)
    serve(_fake_run)
    raise SystemExit(0)

import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from wd_core import SyntheticData
from wd_core import workers as workers_module
from wd_core.errors import DeviceUnavailableError, InputError
from wd_core.shards import (
    MAX_CHUNK_STEPS,
    check_worker_devices,
    data_parallel_chunk,
    evaluation_ranges,
    micro_batch_positions,
    padded_layout,
    prepare_data_parallel,
    sharded_schedule,
    split_rows,
    worker_device,
    worker_micro_batches,
)
from wd_core.workers import (
    FOLDER_PREFIX,
    Cluster,
    WorkerError,
    cluster_from_env,
    data_from_portable,
    free_port,
    launch,
    launched_pids,
    one_line,
    portable_data,
    remove_stale_folders,
    running_workers,
    visible_gpu_count,
)

ROOT = Path(__file__).resolve().parents[1]
MODULE = "tests.test_workers"


# ---- shards -------------------------------------------------------------------------------


@given(st.integers(0, 40), st.integers(1, 7), st.integers(1, 4))
def test_micro_batches_cover_the_batch_in_order(size, workers, steps):
    rows = np.arange(100, 100 + size)
    pieces = [part for rank in range(workers)
              for part in worker_micro_batches(rows, workers, rank, steps)]
    assert len(pieces) == workers * steps
    np.testing.assert_array_equal(np.concatenate(pieces), rows)
    shards = split_rows(rows, workers)
    assert [len(s) for s in shards] == [len(s) for s in np.array_split(rows, workers)]


@given(st.integers(1, 40), st.integers(1, 7), st.integers(1, 4))
def test_positions_and_masks_pick_each_row_once(size, workers, steps):
    rows = np.arange(50, 50 + size)
    index, mask = padded_layout(rows, workers, steps)
    assert index.shape == mask.shape and index.shape[:2] == (workers, steps)
    np.testing.assert_array_equal(np.sort(index[mask]), rows)
    for rank in range(workers):
        for k, part in enumerate(worker_micro_batches(rows, workers, rank, steps)):
            np.testing.assert_array_equal(index[rank, k][mask[rank, k]], part)


def test_the_ragged_batch_leaves_a_worker_empty():
    _, mask = micro_batch_positions(2, 3)
    assert mask.sum(axis=(1, 2)).tolist() == [1, 1, 0]


@pytest.mark.parametrize("num_train", [22, 20])  # a ragged last batch, and none
@pytest.mark.parametrize(("workers", "steps"), [(1, 1), (3, 2), (2, 3)])
def test_sharded_schedule_is_the_epoch_batches(num_train, workers, steps):
    data = SyntheticData(num_train=num_train, num_val=4, num_inputs=3, batch_size=5, seed=1)
    schedule = sharded_schedule(data, 2, 3, workers, steps)
    assert schedule.index.shape[:4] == (3, data.steps_per_epoch, workers, steps)
    for e in range(3):
        batches = data.epoch_batches(2 + e)
        np.testing.assert_array_equal(schedule.sizes, [len(b) for b in batches])
        for t, batch in enumerate(batches):
            got = [schedule.index[e, t, r, k][schedule.mask[t, r, k]]
                   for r in range(workers) for k in range(steps)]
            np.testing.assert_array_equal(np.concatenate(got), batch)
            for r in range(workers):
                for k, part in enumerate(worker_micro_batches(batch, workers, r, steps)):
                    np.testing.assert_array_equal(
                        schedule.index[e, t, r, k][schedule.mask[t, r, k]], part)


def test_evaluation_ranges_split_every_row_once():
    ranges = evaluation_ranges(10, 3)
    assert ranges.tolist() == [[0, 4], [4, 7], [7, 10]]
    assert evaluation_ranges(2, 3).tolist() == [[0, 1], [1, 2], [2, 2]]


def test_data_parallel_options():
    data = SyntheticData(num_train=22, num_val=4, num_inputs=7, batch_size=5)
    spec = prepare_data_parallel(data, backend="torch", workers=3, strategy="fsdp",
                                 accumulation_steps=5)
    assert spec.config() == {"workers": 3, "strategy": "fsdp", "accumulation_steps": 5}
    for kwargs, message in [
        ({"workers": 0}, "workers must be a positive integer"),
        ({"workers": True}, "workers must be a positive integer"),
        ({"strategy": "dp"}, "unknown strategy 'dp'; accepted: ddp, zero, fsdp"),
        ({"strategy": "zero", "backend": "jax"}, "does not apply to backend 'jax'"),
        ({"accumulation_steps": 6}, "larger than a batch"),
        ({"accumulation_steps": 0}, "accumulation_steps must be a positive integer"),
    ]:
        options = {"backend": "torch", "workers": 2, "strategy": "ddp",
                   "accumulation_steps": 1, **kwargs}
        with pytest.raises(InputError, match=message):
            prepare_data_parallel(data, **options)


def test_worker_devices():
    check_worker_devices("cpu", 8, 0)
    check_worker_devices("cuda", 2, 2)
    check_worker_devices("cuda:1", 1, 2)
    with pytest.raises(DeviceUnavailableError, match="needs a GPU for every worker"):
        check_worker_devices("cuda", 3, 2)
    with pytest.raises(InputError, match="names one GPU"):
        check_worker_devices("cuda:0", 2, 2)
    assert [worker_device(d, 1) for d in ("cpu", "cuda", "cuda:3")] == ["cpu", "cuda:1",
                                                                        "cuda:3"]


def test_a_chunk_holds_at_most_max_chunk_steps():
    tiny = SyntheticData(num_train=22, num_val=4, num_inputs=7, batch_size=5)
    assert data_parallel_chunk(tiny, 10**6) == MAX_CHUNK_STEPS // tiny.steps_per_epoch
    assert data_parallel_chunk(tiny, 3) == 3


# ---- small pieces of the launcher --------------------------------------------------------


def test_cluster_from_env():
    names = {"rank": "R", "world_size": "W", "host": "H", "port": "P"}
    assert cluster_from_env(names, {}) is None
    cluster = cluster_from_env(names, {"R": "1", "W": "3", "H": "10.0.0.1", "P": "29500"})
    assert cluster == Cluster(1, 3, "10.0.0.1", 29500) and cluster.address == "10.0.0.1:29500"
    joined = {"rank": "R", "world_size": "W", "address": "A"}
    assert cluster_from_env(joined, {"R": "0", "W": "2", "A": "h:1"}) == Cluster(0, 2, "h", 1)
    with pytest.raises(InputError, match="environment variable W is not set"):
        cluster_from_env(names, {"R": "1"})
    with pytest.raises(InputError, match="rank 3 is not in 0..2"):
        cluster_from_env(names, {"R": "3", "W": "3", "H": "h", "P": "1"})
    with pytest.raises(InputError, match="port from the environment is not an integer"):
        cluster_from_env(names, {"R": "0", "W": "3", "H": "h", "P": "x"})


def test_free_port_can_be_bound():
    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


def test_small_helpers():
    assert visible_gpu_count() >= 0
    data = SyntheticData(num_train=6, num_val=2, num_inputs=3, batch_size=2, seed=4)
    again = data_from_portable(portable_data(data))
    np.testing.assert_array_equal(again.X_train, data.X_train)
    assert repr(again) == repr(data)
    assert data_from_portable(portable_data([1, 2])) == [1, 2]
    assert one_line(ValueError("a\n  b")) == "ValueError: a b"
    assert len(one_line(ValueError("x" * 1000))) == 500


# ---- the launcher, with this module as the worker ----------------------------------------


def _env(cluster):
    return {"FAKE_RANK": str(cluster.rank), "FAKE_WORLD": str(cluster.world_size),
            "FAKE_PORT": str(cluster.port)}


def _launch(job, workers=3, **kwargs):
    return launch(MODULE, job, workers, env_for_rank=_env, **kwargs)


def _gone(pid) -> bool:
    """No process, or a zombie nobody reaps (a container's pid 1 may not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] == "Z"
    except OSError:
        return True


@pytest.fixture
def new_pids():
    """The worker pids a test starts; afterwards every one must be gone."""
    started = len(launched_pids())
    found = []
    yield lambda: found.extend(launched_pids()[started + len(found):]) or found
    pids = launched_pids()[started:]
    assert pids, "the test started no worker"
    assert all(_gone(pid) for pid in pids), pids
    assert running_workers() == {}


def test_rank_0_returns_its_result_and_progress_is_relayed(new_pids):
    seen = []
    result = _launch({"do": {}, "epochs": 4}, progress=seen.append)
    assert result["rank"] == 0 and result["world"] == "3" and int(result["port"]) > 0
    assert seen == [0, 1, 2, 3]
    assert result["threads"] == os.environ.get(
        "OMP_NUM_THREADS", str(workers_module.default_threads(3)))


def test_an_exception_names_the_worker_and_stops_the_others(new_pids):
    begin = time.monotonic()
    with pytest.raises(WorkerError) as info:
        _launch({"do": {1: "raise", "all": "sleep"}})
    assert time.monotonic() - begin < 30
    assert (info.value.rank, info.value.workers) == (1, 3)
    assert str(info.value) == "worker 1 of 3 failed: ValueError: boom on 1"
    assert "Traceback" in info.value.log
    trace = info.value.traceback.strip().splitlines()
    assert trace[0] == "Traceback (most recent call last):" and trace[-1] == (
        "ValueError: boom on 1")
    assert "in _fake_run" in info.value.traceback and not info.value.input_error


def test_a_worker_s_own_error_is_the_cause_not_its_peer_s_lost_connection(new_pids):
    """Worker 0 reports a lost peer first; worker 1's own exception, half a second later, is
    the cause."""
    with pytest.raises(WorkerError) as info:
        _launch({"do": {0: "lose a peer", 1: "raise later"}}, workers=2)
    assert str(info.value) == "worker 1 of 2 failed: ValueError: boom on 1"


def test_a_lost_peer_alone_is_reported(new_pids):
    with pytest.raises(WorkerError, match="worker 1 of 2 failed: RuntimeError: .* Connection "
                                          "reset by peer"):
        _launch({"do": {1: "lose a peer", "all": "sleep"}}, workers=2)


def test_a_worker_that_stops_answering_is_named(new_pids, monkeypatch):
    monkeypatch.setattr(workers_module, "HEARTBEAT_TIMEOUT_S", 1.5)
    begin = time.monotonic()
    with pytest.raises(WorkerError, match="worker 2 of 3 failed: stopped answering: no "
                                          "heartbeat for 2 s"):
        _launch({"do": {2: "stop", "all": "sleep"}})
    assert time.monotonic() - begin < 15


def test_a_worker_that_never_answers_is_named_after_the_startup_timeout(new_pids, monkeypatch):
    monkeypatch.setattr(workers_module, "STARTUP_TIMEOUT_S", 1.0)

    def env(cluster):
        return {**_env(cluster), **({"FAKE_STOP_FIRST": "1"} if cluster.rank == 1 else {})}

    with pytest.raises(WorkerError, match="worker 1 of 2 failed: stopped answering"):
        launch(MODULE, {"do": {"all": "sleep"}}, 2, env_for_rank=env, timeout_s=30)


def test_a_worker_killed_by_a_signal_is_named(new_pids):
    def kill_worker_2(epoch):
        os.kill(running_workers()[2], signal.SIGKILL)

    with pytest.raises(WorkerError, match=r"worker 2 of 3 failed: killed by SIGKILL"):
        _launch({"do": {"all": "sleep"}, "epochs": 1}, progress=kill_worker_2)


def test_an_exit_status_without_a_message_is_named(new_pids):
    with pytest.raises(WorkerError, match="worker 1 of 2 failed: exited with status 3"):
        _launch({"do": {1: "exit", "all": "sleep"}}, workers=2)


@pytest.mark.parametrize("error", [RuntimeError("progress broke"), KeyboardInterrupt()])
def test_what_progress_raises_propagates_and_stops_every_worker(error, new_pids):
    def progress(epoch):
        raise error

    with pytest.raises(type(error)):
        _launch({"do": {"all": "sleep"}, "epochs": 1}, progress=progress)


def test_a_run_past_its_timeout_is_stopped(new_pids):
    with pytest.raises(TimeoutError, match="did not finish within 0.5 s"):
        _launch({"do": {"all": "sleep"}}, workers=2, timeout_s=0.5)


def test_a_worker_still_running_after_worker_0_finished_is_stopped(new_pids, monkeypatch):
    monkeypatch.setattr(workers_module, "EXIT_GRACE_S", 0.3)
    with pytest.raises(WorkerError, match="worker 1 of 2 failed: still running"):
        _launch({"do": {1: "sleep"}}, workers=2)


SUPERVISOR = """
import sys
from wd_core.workers import launch, running_workers
def report(epoch):
    print(' '.join(map(str, running_workers().values())), flush=True)
launch("tests.test_workers", {"do": {"all": "sleep"}, "epochs": 1}, 2,
       env_for_rank=lambda c: {"FAKE_RANK": str(c.rank), "FAKE_WORLD": "2", "FAKE_PORT": "1"},
       progress=report)
"""


def test_workers_die_with_their_supervisor():
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get(
        "PYTHONPATH", "")])}
    with subprocess.Popen([sys.executable, "-c", SUPERVISOR], stdout=subprocess.PIPE,
                          text=True, env=env, cwd=ROOT) as proc:
        try:
            pids = [int(p) for p in proc.stdout.readline().split()]
        finally:
            proc.kill()
    assert len(pids) == 2
    deadline = time.monotonic() + 10
    while not all(_gone(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert all(_gone(pid) for pid in pids), pids
    # The supervisor was killed outright and left its folder; the next launch removes it.
    stale = list(Path(tempfile.gettempdir()).glob(f"{FOLDER_PREFIX}{proc.pid}-*"))
    assert stale
    assert {str(p) for p in stale} <= set(remove_stale_folders())
    assert not any(p.exists() for p in stale)


def test_only_the_folders_of_dead_supervisors_are_removed(tmp_path):
    with subprocess.Popen([sys.executable, "-c", "pass"]) as proc:
        pass  # its pid is now free
    dead = tmp_path / f"{FOLDER_PREFIX}{proc.pid}-abc"
    alive = tmp_path / f"{FOLDER_PREFIX}{os.getpid()}-def"
    other = tmp_path / "wd-workers-x"
    for folder in (dead, alive, other):
        folder.mkdir()
        (folder / "job.pickle").write_bytes(b"")
    assert remove_stale_folders(tmp_path) == [str(dead)]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([alive.name, other.name])

