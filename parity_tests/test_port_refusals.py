"""Everything the port refuses, and how: an ``InputError`` (a ``ValueError``) naming the bad
value, the parameter group and what is accepted; never an option silently dropped."""

from __future__ import annotations

import ast
import inspect
import sys

import numpy as np
import pytest

from parity_tests.test_port_models import (
    make_model,
    one_torch_thread,  # noqa: F401  (autouse fixture)
    torch_run,
)
from wd_core.errors import InputError, MissingFrameworkError

torch = pytest.importorskip("torch")
jax = pytest.importorskip("jax")
import jax.numpy as jnp  # noqa: E402
from torch.optim import lr_scheduler  # noqa: E402

from wd_jax import port  # noqa: E402
from wd_torch.optim import SGDW  # noqa: E402


def two_groups(model, **second):
    """Group 0: the policy's decayed weights; group 1: the rest, with ``second`` options."""
    decayed, others = port.no_weight_decay_groups(model, 0.1)
    return [decayed, {**others, **second}]


def refused(match, convert):
    with pytest.raises(InputError, match=match) as caught:
        convert()
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize("cls", [torch.optim.Adam, torch.optim.AdamW])
@pytest.mark.parametrize("option", ["capturable", "differentiable"])
def test_adam_options_without_an_optax_twin_are_refused_by_group(cls, option):
    model = make_model("mlp")
    optimizer = cls(two_groups(model, **{option: True}), lr=0.01)
    refused(rf"parameter group 1: {option}=True has no exact optax twin; accepted: "
            rf"{option}=False", lambda: port.optimizer_from_torch(optimizer, model))


@pytest.mark.parametrize("cls", [torch.optim.Adam, torch.optim.AdamW])
def test_amsgrad_is_no_longer_refused(cls):
    """``amsgrad=True`` ports (torch's maximum of the raw second moment; its proof is
    test_optim_amsgrad.py), on one group as on all of them."""
    model = make_model("mlp")
    optimizer = cls(two_groups(model, amsgrad=True), lr=0.01)
    with jax.enable_x64(True):
        params = port.params_from_torch(model)
        tx = port.optimizer_from_torch(optimizer, model)
        updates, _ = tx.update(jax.tree.map(jnp.ones_like, params), tx.init(params), params)
    assert all(np.isfinite(u).all() for u in jax.tree.leaves(updates))


def test_sgd_differentiable_is_refused():
    model = make_model("mlp")
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, differentiable=True)
    refused(r"parameter group 0: differentiable=True",
            lambda: port.optimizer_from_torch(optimizer, model))


def test_a_subclass_of_a_ported_optimizer_is_refused():
    model = make_model("mlp")
    optimizer = type("MySGD", (torch.optim.SGD,), {})(model.parameters(), lr=0.01)
    refused(r"optimizer .*MySGD has no port; accepted: .*torch.optim.SGD.* "
            r"\(the class itself, not a subclass\)",
            lambda: port.optimizer_from_torch(optimizer, model))


@pytest.mark.parametrize(("make", "reason"), [
    (lambda params: torch.optim.LBFGS(params, lr=0.01),
     r"LBFGS has no port: it is driven by a closure"),
    (lambda params: torch.optim.SparseAdam(params, lr=0.01),
     r"SparseAdam has no port: it takes sparse gradients"),
], ids=["LBFGS", "SparseAdam"])
def test_lbfgs_and_sparse_adam_are_refused_with_the_reason(make, reason):
    model = make_model("mlp")
    optimizer = make(list(model.parameters()))
    refused(reason, lambda: port.optimizer_from_torch(optimizer, model))


def test_reduce_lr_on_plateau_is_refused_with_the_reason():
    model = make_model("mlp")
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    scheduler = lr_scheduler.ReduceLROnPlateau(optimizer)
    refused(r"scheduler ReduceLROnPlateau has no port: its lr follows a metric passed to "
            r"step\(metrics\), not the step count",
            lambda: port.optimizer_from_torch(optimizer, model, scheduler=scheduler))


def test_a_scheduler_subclass_is_refused():
    model = make_model("mlp")
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scheduler = type("MyStepLR", (lr_scheduler.StepLR,), {})(optimizer, step_size=2)
    refused(r"scheduler .*MyStepLR has no port; accepted: .*StepLR, .*LambdaLR.* \(the class "
            r"itself, not a subclass\)",
            lambda: port.optimizer_from_torch(optimizer, model, scheduler=scheduler))


@pytest.mark.parametrize("make", [
    lambda opt: lr_scheduler.LambdaLR(opt, lambda epoch: 0.9 ** epoch),
    lambda opt: lr_scheduler.MultiplicativeLR(opt, lambda epoch: 0.9),
    lambda opt: lr_scheduler.CyclicLR(opt, 0.01, 0.1, scale_fn=lambda x: 1.0),
    lambda opt: lr_scheduler.SequentialLR(opt, [lr_scheduler.StepLR(opt, 2),
                                                lr_scheduler.LambdaLR(opt, lambda e: 1.0)],
                                          milestones=[3]),
], ids=["LambdaLR", "MultiplicativeLR", "CyclicLR-scale_fn", "SequentialLR-LambdaLR"])
def test_a_python_function_without_horizon_is_refused(make):
    model = make_model("mlp")
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    scheduler = make(optimizer)
    refused(r"calls a Python function of the epoch, which cannot run inside an optax update: "
            r"pass horizon=N",
            lambda: port.optimizer_from_torch(optimizer, model, scheduler=scheduler))
    for horizon in (0, -3, 2.5, "10"):
        with pytest.raises(ValueError, match="horizon"):
            port.optimizer_from_torch(optimizer, model, scheduler=scheduler, horizon=horizon)


def test_a_recorded_schedule_past_its_horizon_is_refused_and_gives_nan():
    """The lr is recorded for last_epoch 0 to 0 + horizon: the horizon's steps and one more
    run; past that the recorded lr is NaN (never another lr), and a state whose next lr is
    past it is refused by state_from_torch."""
    model = make_model("mlp")
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scheduler = lr_scheduler.LambdaLR(optimizer, lambda epoch: 0.9 ** epoch)
    with jax.enable_x64(True):
        params = port.params_from_torch(model)
        tx = port.optimizer_from_torch(optimizer, model, scheduler=scheduler, horizon=3)
        state = port.state_from_torch(optimizer, model, tx, params, scheduler=scheduler)
        grads = jax.tree.map(jnp.ones_like, params)
        for _ in range(4):
            updates, state = tx.update(grads, state, params)
            assert all(np.isfinite(u).all() for u in jax.tree.leaves(updates))
        updates, state = tx.update(grads, state, params)
        assert all(np.isnan(u).all() for u in jax.tree.leaves(updates))
        for _ in range(3):
            optimizer.step()
            scheduler.step()
        refused(r"gives no lr for the step after this one .* horizon",
                lambda: port.state_from_torch(optimizer, model, tx, params,
                                              scheduler=scheduler))


def test_one_cycle_past_total_steps_is_refused():
    model = make_model("mlp")
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    scheduler = lr_scheduler.OneCycleLR(optimizer, max_lr=0.1, total_steps=3)
    for _ in range(3):
        optimizer.step()
        scheduler.step()
    with jax.enable_x64(True):
        params = port.params_from_torch(model)
        tx = port.optimizer_from_torch(optimizer, model, scheduler=scheduler)
        refused(r"OneCycleLR's total_steps is reached",
                lambda: port.state_from_torch(optimizer, model, tx, params,
                                              scheduler=scheduler))


def test_a_scheduler_of_another_optimizer_is_refused():
    model = make_model("mlp")
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    other = lr_scheduler.StepLR(torch.optim.SGD(model.parameters(), lr=0.1), step_size=2)
    refused(r"attached to another optimizer",
            lambda: port.optimizer_from_torch(optimizer, model, scheduler=other))


def test_a_scheduled_tx_needs_its_scheduler():
    model = make_model("mlp")
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.01)
    scheduler = lr_scheduler.StepLR(optimizer, step_size=2)
    from parity_tests.test_port_models import BATCHES

    torch_run(model, optimizer, BATCHES["mlp"][:4])
    with jax.enable_x64(True):
        params = port.params_from_torch(model)
        tx = port.optimizer_from_torch(optimizer, model, scheduler=scheduler)
        refused(r"pass scheduler=", lambda: port.state_from_torch(optimizer, model, tx, params))
        other = lr_scheduler.ExponentialLR(optimizer, gamma=0.5)
        refused(r"scheduler= is \[\('ExponentialLR', \(\)\)\], but tx was converted from "
                r"\[\('StepLR', \(\)\)\]",
                lambda: port.state_from_torch(optimizer, model, tx, params, scheduler=other))
        state = tx.init(params)
    steps = [float(s["step"]) for s in optimizer.state.values()]
    refused(r"pass scheduler=", lambda: port.state_to_torch(state, tx, optimizer, model))
    assert [float(s["step"]) for s in optimizer.state.values()] == steps == [4.0] * 8


def test_a_scheduler_for_a_tx_without_schedule_is_refused():
    model = make_model("mlp")
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    scheduler = lr_scheduler.StepLR(optimizer, step_size=2)
    with jax.enable_x64(True):
        params = port.params_from_torch(model)
        tx = port.optimizer_from_torch(optimizer, model)  # converted without the scheduler
        match = r"scheduler= is given but tx follows no scheduler"
        refused(match, lambda: port.state_from_torch(optimizer, model, tx, params,
                                                     scheduler=scheduler))
        refused(match, lambda: port.state_to_torch(tx.init(params), tx, optimizer, model,
                                                   scheduler=scheduler))


def _adam_with_a_missed_step():
    """AdamW whose ``head.bias`` had no gradient on the first step: steps 2 and 1."""
    model = make_model("mlp")
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.01)
    for step in range(2):
        optimizer.zero_grad()
        for name, p in model.named_parameters():
            if step or name != "head.bias":
                p.grad = torch.ones_like(p)
        optimizer.step()
    return model, optimizer


def test_parameters_of_a_group_with_different_steps_are_refused():
    model, optimizer = _adam_with_a_missed_step()
    with jax.enable_x64(True):
        params = port.params_from_torch(model)
        tx = port.optimizer_from_torch(optimizer, model)
        refused(r"parameter group 0: torch's AdamW step counts differ between its parameters "
                r"\(body.0.weight: 2, .*head.bias: 1\); optax keeps one count per group",
                lambda: port.state_from_torch(optimizer, model, tx, params))


def test_dampened_momentum_with_missing_buffers_is_refused():
    model = make_model("mlp")
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, dampening=0.5)
    model.head.bias.grad = torch.ones(3, dtype=torch.float64)
    optimizer.step()  # only head.bias gets a buffer
    with jax.enable_x64(True):
        params = port.params_from_torch(model)
        tx = port.optimizer_from_torch(optimizer, model)
        refused(r"parameter group 0: torch's momentum buffers .*differ",
                lambda: port.state_from_torch(optimizer, model, tx, params))


def test_missing_buffers_without_dampening_are_zeros():
    """Without dampening a buffer torch has not created yet is exactly a zero trace."""
    model = make_model("mlp")
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model.head.bias.grad = torch.ones(3, dtype=torch.float64)
    optimizer.step()
    with jax.enable_x64(True):
        params = port.params_from_torch(model)
        tx = port.optimizer_from_torch(optimizer, model)
        named = port.torch_named_state(port.state_from_torch(optimizer, model, tx, params),
                                       optimizer, model)
    np.testing.assert_array_equal(named["head.bias"]["momentum_buffer"], np.ones(3))
    np.testing.assert_array_equal(named["head.weight"]["momentum_buffer"], np.zeros((3, 8)))


def _named_params(model):
    with jax.enable_x64(True):
        return port.params_from_torch(model)


@pytest.mark.parametrize(("edit", "match"), [
    (lambda p: {k: v for k, v in p.items() if k != "head.bias"},
     r"missing \['head.bias'\], not in the module \[\]"),
    (lambda p: {**p, "head.scale": p["head.bias"]}, r"not in the module \['head.scale'\]"),
    (lambda p: {**p, "head.weight": p["head.weight"].T},
     r"params\['head.weight'\] has shape \(8, 3\); the module's parameter has \(3, 8\)"),
    (lambda p: {**p, "head.bias": np.asarray(p["head.bias"], dtype=np.float32)},
     r"params\['head.bias'\] has dtype float32; the module's parameter has float64"),
], ids=["missing", "extra", "shape", "dtype"])
def test_params_to_torch_names_the_mismatch_and_copies_nothing(edit, match):
    model = make_model("mlp")
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    params = {n: np.asarray(v) + 1.0 for n, v in _named_params(model).items()}
    refused(match, lambda: port.params_to_torch(edit(params), model))
    assert all(torch.equal(p, before[n]) for n, p in model.named_parameters())


def test_params_to_torch_needs_a_dict_and_a_module():
    model = make_model("mlp")
    refused(r"params must be a dict", lambda: port.params_to_torch([1.0], model))
    refused(r"module must be a torch.nn.Module, got dict", lambda: port.params_from_torch({}))


def test_a_parameter_outside_the_module_is_refused():
    model = make_model("mlp")
    stray = torch.nn.Parameter(torch.zeros(2, 2, dtype=torch.float64))
    optimizer = torch.optim.SGD([*model.parameters(), stray], lr=0.1)
    refused(r"parameter group 0 holds parameters of shapes \[\(2, 2\)\] that are not in "
            r"module.named_parameters\(\)", lambda: port.optimizer_from_torch(optimizer, model))


def test_a_state_of_another_transformation_is_refused():
    model = make_model("mlp")
    optimizer = torch.optim.SGD(two_groups(model), lr=0.1, momentum=0.9)
    other = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)  # one group
    with jax.enable_x64(True):
        params = port.params_from_torch(model)
        tx_other = port.optimizer_from_torch(other, model)
        refused(r"tx is not optimizer_from_torch\(optimizer, module\)",
                lambda: port.state_from_torch(optimizer, model, tx_other, params))
        tx = port.optimizer_from_torch(optimizer, model)
        adam_tx = port.optimizer_from_torch(torch.optim.Adam(two_groups(model)), model)
        refused(r"opt_state does not have the structure of tx.init\(params\)",
                lambda: port.state_to_torch(adam_tx.init(params), tx, optimizer, model))


def test_skip_names_that_match_nothing_are_refused():
    model = make_model("mlp")
    refused(r"skip names \['body.9'\] match no parameter",
            lambda: port.no_weight_decay_groups(model, 0.1, skip=["body.9"]))
    refused(r"skip names \['pos_embed'\] match no parameter",
            lambda: port.decay_mask(_named_params(model), skip=("pos_embed",)))
    refused(r"skip must be a collection of names",
            lambda: port.decay_mask(_named_params(model), skip="head"))
    refused(r"weight_decay must be a finite number >= 0, got -0.1",
            lambda: port.no_weight_decay_groups(model, -0.1))


def test_sgdw_is_accepted_by_its_class_not_by_import():
    """wd_jax never imports wd_torch: SGDW is recognised by module and class name."""
    model = make_model("mlp")
    port.optimizer_from_torch(SGDW(model.parameters(), lr=0.1), model)
    source = inspect.getsource(port)
    imported = {alias.name for node in ast.walk(ast.parse(source))
                if isinstance(node, ast.Import | ast.ImportFrom)
                for alias in node.names} | {node.module for node in ast.walk(ast.parse(source))
                                            if isinstance(node, ast.ImportFrom)}
    assert not any(name and name.startswith("wd_torch") for name in imported)


def test_port_imports_torch_only_when_used(monkeypatch):
    """No module-level torch import; without torch a call says how to install it."""
    tree = ast.parse(inspect.getsource(port))
    top = {alias.name.split(".")[0] for node in tree.body
           if isinstance(node, ast.Import | ast.ImportFrom)
           for alias in node.names} | {node.module.split(".")[0] for node in tree.body
                                        if isinstance(node, ast.ImportFrom) and node.module}
    assert "torch" not in top
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(MissingFrameworkError, match=r"pip install 'weight-decay\[torch\]'"):
        port.params_from_torch(object())
    assert jnp.zeros(1).shape == (1,)
