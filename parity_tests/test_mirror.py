"""The mirror rule: wd_torch and wd_jax export the same names with the same signatures."""

from __future__ import annotations

import importlib
import inspect

from parity_tests.conftest import requested_backends, require_backends


def public_api(module) -> dict:
    """name -> [(parameter, kind, default)], type annotations aside (they name the framework)."""
    api = {}
    for name in module.__all__:
        obj = getattr(module, name)
        target = obj.__init__ if inspect.isclass(obj) else obj
        api[name] = [(p.name, p.kind, p.default)
                     for p in inspect.signature(target).parameters.values()]
    return api


def test_backends_export_the_same_names_and_signatures():
    torch_api, jax_api = (public_api(module) for module in require_backends("torch", "jax"))
    assert torch_api == jax_api


def test_contract_names_present():
    for name in requested_backends():
        module = importlib.import_module(f"wd_{name}")
        for required in ("l2_penalty", "train", "WeightDecayScratch", "WeightDecay"):
            assert required in module.__all__
        params = inspect.signature(module.train).parameters
        assert list(params)[:9] == ["data", "method", "lambd", "lr", "max_epochs", "init",
                                    "dtype", "device", "progress"]
        assert params["dtype"].default == "float32" and params["device"].default is None


def test_distributed_modules_mirror_each_other():
    """``wd_torch.distributed`` and ``wd_jax.distributed``: the same names and signatures, and
    ``train``'s keywords are the single-process ``train()``'s plus the data-parallel ones."""
    torch_dist, jax_dist = (importlib.import_module(f"{m.__name__}.distributed")
                            for m in require_backends("torch", "jax"))
    assert public_api(torch_dist) == public_api(jax_dist)
    single = inspect.signature(importlib.import_module("wd_torch").train).parameters
    parallel = inspect.signature(torch_dist.train).parameters
    assert {"workers", "strategy", "accumulation_steps"} <= set(parallel)
    assert set(parallel) - {"workers", "strategy", "accumulation_steps"} <= set(single)
    worker = inspect.signature(torch_dist.train_worker).parameters
    assert list(worker) == [*parallel, "cluster"]
