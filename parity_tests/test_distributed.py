"""Data parallel equals one process: ``wd_torch.distributed`` and ``wd_jax.distributed``
against the float64 reference, the single-process ``train()`` and each other.

Processes are expensive here (a torch worker imports torch and ``torch._dynamo``: about 4 s
of CPU), so a few launches run many runs each, inside the workers, and return every History:

* torch: one launch of 3 workers (:mod:`wd_core.workers`, as ``train()`` launches), each
  worker creating the process group itself, first of 3, then of ranks 0 and 1 (plus the
  pitfalls of ``test_distributed_pitfalls.py``), then of rank 0 alone; every run calls
  ``wd_torch.distributed.train_worker`` in the already initialized group;
* JAX: one launch of 3 processes (``jax.distributed`` with gloo), one launch of 1 process with
  2 CPU devices (``--xla_force_host_platform_device_count``: the single-process multi-device
  path, the same code), and this process (1 device).

Data with a ragged last batch: 22 rows in batches of 5, so the last batch has 2 rows and, with
3 workers, one worker an empty shard. Oracles: ``wd_core.reference.train`` (float64, 1e-12),
the backend's own single-process ``train()`` (float32: the table's whole-run entry; Adam family:
``float32_adam``; float64 with an optimizer: 1e-12), and the other framework.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass, replace

import pytest

from parity_tests.conftest import require_backends
from parity_tests.processes import alive
from wd_core import SyntheticData, reference
from wd_core.optimizers import ADAM_FAMILIES, OptimizerSpec
from wd_core.tolerances import assert_close, run_kind
from wd_core.workers import free_port, launch, launched_pids, serve

DATA = {"num_train": 22, "num_val": 4, "num_inputs": 7, "batch_size": 5, "seed": 0}
LAMBD, LR, EPOCHS = 3.0, 0.05, 3
MOMENTUM = OptimizerSpec("sgd", momentum=0.9)
ADAMW = OptimizerSpec("adamw")
METHODS, DTYPES = ("scratch", "concise"), ("float32", "float64")
#: Every launch of this module must finish well within this (a hang fails, not blocks).
LAUNCH_TIMEOUT_S = 150


@dataclass(frozen=True)
class Case:
    """One data-parallel run: ``shards`` data shards over ``processes`` processes."""

    framework: str
    shards: int
    method: str
    dtype: str
    strategy: str = "ddp"
    accumulation_steps: int = 1
    optimizer: OptimizerSpec | None = None
    processes: int | None = None
    lr: float = LR

    def __str__(self) -> str:
        opt = "" if self.optimizer is None else "-" + self.optimizer.label()
        lr = "" if self.lr == LR else f"-lr{self.lr:g}"
        return (f"{self.framework}-W{self.shards}-{self.strategy}-{self.method}-{self.dtype}"
                f"-K{self.accumulation_steps}{opt}{lr}")

    def kwargs(self) -> dict:
        """Keyword arguments of ``train``/``train_worker`` (the data apart)."""
        return {"method": self.method, "lambd": LAMBD, "lr": self.lr, "max_epochs": EPOCHS,
                "workers": self.processes or self.shards, "strategy": self.strategy,
                "accumulation_steps": self.accumulation_steps, "dtype": self.dtype,
                "optimizer": self.optimizer, "epoch_params": True}

    def single(self) -> dict:
        """Keyword arguments of the single-process ``train()`` this run must equal."""
        return {"method": self.method, "lambd": LAMBD, "lr": self.lr, "max_epochs": EPOCHS,
                "dtype": self.dtype, "optimizer": self.optimizer, "epoch_params": True}


def torch_cases() -> list[Case]:
    """Every strategy x W in {3, 2, 1} x method x dtype; momentum SGD and AdamW under zero and
    fsdp; K in {2, 3} for every strategy and method. Most of the rest at W = 2: 3 processes on
    2 cores make every collective wait for a core, so W = 3 runs cost 5 times W = 2 runs."""
    cases = [Case("torch", w, m, d, s) for w in (3, 2, 1) for s in ("ddp", "zero", "fsdp")
             for m in METHODS for d in DTYPES]
    cases += [Case("torch", 3, "concise", d, s, optimizer=o) for s in ("zero", "fsdp")
              for o, d in ((MOMENTUM, "float64"), (ADAMW, "float32"))]
    cases += [Case("torch", 2, "concise", d, s, optimizer=o) for s in ("zero", "fsdp")
              for o in (MOMENTUM, ADAMW) for d in DTYPES]
    cases += [Case("torch", 2, "scratch", "float64", "ddp", optimizer=MOMENTUM)]
    cases += [Case("torch", 2, m, "float64", s, k) for s in ("ddp", "zero", "fsdp")
              for m in METHODS for k in (2, 3)]
    cases += [Case("torch", 3, "scratch", "float64", "ddp", 2),
              Case("torch", 3, "concise", "float64", "zero", 3),
              Case("torch", 3, "concise", "float32", "fsdp", 3, ADAMW)]
    return cases + DIVERGING["torch"]


def jax_cases(shards: int, processes: int) -> list[Case]:
    """W = 3: 3 processes (a multi-process compile costs about 2 s here, so few runs); W = 2:
    one process with 2 CPU devices, the same code (the axes' products); W = 1: this process."""
    if shards == 1:
        return [Case("jax", 1, "scratch", "float64", processes=1),
                Case("jax", 1, "concise", "float32", processes=1)]
    if shards == 3:
        return [Case("jax", 3, "scratch", "float64", processes=processes),
                Case("jax", 3, "concise", "float32", processes=processes),
                Case("jax", 3, "scratch", "float64", accumulation_steps=2, processes=processes),
                Case("jax", 3, "concise", "float32", optimizer=ADAMW, processes=processes)]
    return [Case("jax", shards, m, d, processes=processes) for m in METHODS for d in DTYPES] + [
        Case("jax", shards, "concise", "float64", accumulation_steps=3, processes=processes),
        Case("jax", shards, "concise", "float64", optimizer=MOMENTUM, processes=processes),
        Case("jax", shards, "concise", "float32", optimizer=ADAMW, processes=processes),
        *DIVERGING["jax"]]


#: Runs that overflow float32 (the decay factor 1 - lr*lambd is -2999): they must stop at the
#: same epoch as one process, on every worker alike (the driver's rule).
DIVERGING = {"torch": [Case("torch", 2, "scratch", "float32", "fsdp", lr=1000.0)],
             "jax": [Case("jax", 2, "concise", "float32", processes=1, lr=1000.0)]}


# ---- inside the workers ------------------------------------------------------------------


def run_torch_cases(job, progress) -> dict:
    """Every torch case, in process groups of 3, 2 and 1 (ranks that are not in a group have
    finished); rank 0 returns ``{case: History, ("pitfall", name): (w, b)}``."""
    import torch.distributed as dist

    from parity_tests.test_distributed_pitfalls import torch_pitfalls
    from wd_torch.distributed import train_worker

    rank = int(os.environ["RANK"])
    data = SyntheticData(**DATA)
    results = {}
    for world, port in zip((3, 2, 1), job["ports"], strict=True):
        if rank >= world:
            break
        dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                                world_size=world, timeout=datetime.timedelta(seconds=60))
        for case in job["cases"]:
            if case.shards == world:
                results[case] = train_worker(data, **case.kwargs())
        if world == 2:
            results.update(torch_pitfalls(data, rank, world))
        dist.barrier()
        dist.destroy_process_group()
    return results if rank == 0 else None


def run_jax_cases(job, progress) -> dict:
    """Every JAX case of the job in this process's runtime (multi-process when the launcher
    set ``JAX_COORDINATOR_ADDRESS``...); process 0 returns ``{case: History}``."""
    import jax

    from wd_jax.distributed import train_worker

    data = SyntheticData(**DATA)
    results = {case: train_worker(data, **case.kwargs()) for case in job["cases"]}
    if jax.distributed.is_initialized():
        jax.distributed.shutdown()
    return results if jax.process_index() == 0 else None


def _run_job(job, progress):
    return {"torch": run_torch_cases, "jax": run_jax_cases}[job["framework"]](job, progress)


# ---- in the test process -----------------------------------------------------------------


class _Once:
    """A launch run once per test session; its result, or its exception, every time."""

    def __init__(self, start):
        self.start, self.outcome = start, None

    def __call__(self):
        if self.outcome is None:
            try:
                self.outcome = (True, self.start())
            except Exception as err:  # every test that needs it fails with this error
                self.outcome = (False, err)
        ok, value = self.outcome
        if not ok:
            raise value
        return value


def _launch(job, workers, env_for_rank):
    started = len(launched_pids())
    try:
        return launch("parity_tests.test_distributed", job, workers, env_for_rank=env_for_rank,
                      timeout_s=LAUNCH_TIMEOUT_S)
    finally:
        assert_gone(launched_pids()[started:])


def assert_gone(pids) -> None:
    """Every pid has exited and been reaped (``os.kill(pid, 0)`` finds no process)."""
    left = alive(pids)
    assert not left, f"worker processes left behind: {left}"


def _torch_launch():
    from wd_torch.distributed import cluster_env

    job = {"framework": "torch", "cases": torch_cases(), "ports": [free_port() for _ in "123"]}
    return _launch(job, 3, cluster_env)


def _jax_launch():
    from wd_jax.distributed import cluster_env, train_worker

    results = dict(_launch({"framework": "jax", "cases": jax_cases(3, 3)}, 3, cluster_env))
    devices = {"XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    results.update(_launch({"framework": "jax", "cases": jax_cases(2, 1)}, 1,
                           lambda cluster: devices))
    data = SyntheticData(**DATA)
    results.update({case: train_worker(data, **case.kwargs()) for case in jax_cases(1, 1)})
    return results


_torch_once, _jax_once = _Once(_torch_launch), _Once(_jax_launch)


def torch_results() -> dict:
    """The torch launch's results (skips the test unless ``WD_BACKENDS`` names torch)."""
    require_backends("torch")
    return _torch_once()


def jax_results() -> dict:
    """The JAX launches' results (skips the test unless ``WD_BACKENDS`` names jax)."""
    require_backends("jax")
    return _jax_once()


RESULTS = {"torch": torch_results, "jax": jax_results}


def _single_process(framework: str, case: Case):
    import importlib

    backend = importlib.import_module(f"wd_{framework}")
    return backend.train(SyntheticData(**DATA), **case.single())


def assert_same_run(actual, expected, kind: str, what: str) -> None:
    for name in ("w", "b", "train_loss", "val_loss", "epoch_w"):
        assert_close(getattr(actual, name), getattr(expected, name), kind, f"{what}: {name}")


def check_case(case: Case, history) -> None:
    """The case's History against its oracle, and its config."""
    config = history.config
    assert config["backend"] == case.framework
    assert (config["workers"], config["strategy"], config["accumulation_steps"],
            config["shards"]) == (case.processes or case.shards, case.strategy,
                                  case.accumulation_steps, case.shards)
    if case.lr != LR:  # a diverging run: the same epochs, and the same stop, as train()
        oracle = _single_process(case.framework, case)
        assert oracle.diverged and history.diverged
        assert history.diverged_epoch == oracle.diverged_epoch < EPOCHS - 1
        assert len(history.train_loss) == len(oracle.train_loss)
        return
    assert not history.diverged and len(history.train_loss) == EPOCHS
    if case.optimizer is None and case.dtype == "float64":
        oracle = reference.train(SyntheticData(**DATA), lambd=LAMBD, lr=LR, max_epochs=EPOCHS,
                                 epoch_params=True)
        assert_same_run(history, oracle, "float64", f"{case} vs reference")
        return
    adam = case.optimizer is not None and case.optimizer.family in ADAM_FAMILIES
    oracle = _single_process(case.framework, case)
    assert_same_run(history, oracle, run_kind(case.dtype, adam=adam), f"{case} vs train()")


@pytest.mark.parametrize("case", torch_cases(), ids=str)
def test_torch_data_parallel_equals_one_process(case):
    check_case(case, torch_results()[case])


@pytest.mark.parametrize("case", [c for s in (3, 2, 1) for c in jax_cases(s, 3 if s == 3 else 1)],
                         ids=str)
def test_jax_data_parallel_equals_one_process(case):
    check_case(case, jax_results()[case])


def _twins():
    """(torch case, JAX case) pairs: the same run on both frameworks."""
    pairs = []
    for jax_case in [c for s in (3, 2) for c in jax_cases(s, 3 if s == 3 else 1)
                     if c.lr == LR]:
        twin = replace(jax_case, framework="torch", processes=None,
                       strategy="fsdp" if jax_case.optimizer is not None else "ddp")
        pairs.append((twin, jax_case))
    return pairs


@pytest.mark.parametrize(("torch_case", "jax_case"), _twins(), ids=lambda c: str(c))
def test_torch_equals_jax_under_data_parallel(torch_case, jax_case):
    adam = jax_case.optimizer is not None and jax_case.optimizer.family in ADAM_FAMILIES
    assert_same_run(torch_results()[torch_case], jax_results()[jax_case],
                    run_kind(jax_case.dtype, adam=adam), f"{torch_case} vs {jax_case}")


@pytest.mark.parametrize("case", [c for c in torch_cases() if c.accumulation_steps > 1]
                         + [c for c in jax_cases(3, 3) + jax_cases(2, 1)
                            if c.accumulation_steps > 1], ids=str)
def test_accumulation_equals_one_step_per_batch(case):
    results = RESULTS[case.framework]()
    adam = case.optimizer is not None and case.optimizer.family in ADAM_FAMILIES
    assert_same_run(results[case], results[replace(case, accumulation_steps=1)],
                    run_kind(case.dtype, adam=adam), f"{case} vs K=1")


def test_every_axis_is_covered():
    """The issue's axes: strategy x W in {1, 2, 3} x method x dtype (torch: all of it), the
    optimizers under zero/fsdp, K in {2, 3}, JAX's W in {1, 2, 3}, and the JAX single-process
    multi-device path (shards 2 in 1 process)."""
    cases = torch_cases()
    full = {(c.shards, c.strategy, c.method, c.dtype) for c in cases}
    assert len(full) == 3 * 3 * 2 * 2
    assert {(c.strategy, c.optimizer) for c in cases if c.optimizer} >= {
        (s, o) for s in ("zero", "fsdp") for o in (MOMENTUM, ADAMW)}
    assert {c.accumulation_steps for c in cases} == {1, 2, 3}
    jax_all = jax_cases(3, 3) + jax_cases(2, 1) + jax_cases(1, 1)
    assert {c.shards for c in jax_all} == {1, 2, 3}
    assert {c.accumulation_steps for c in jax_all} == {1, 2, 3}
    assert any(c.shards == 2 and c.processes == 1 for c in jax_all)


if __name__ == "__main__":
    serve(_run_job)
