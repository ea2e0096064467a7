"""What the ``test_optim_<optimizer>.py`` parity tests share.

Each of those files checks one ``torch.optim`` class against its optax twin (a builder of
``wd_jax.optim``) and the port, on the float64 models of ``test_port_models`` with the policy's
two groups (decayed weights; biases and norms undecayed) and drawn N(0, 1) gradients
(``parity_tests.port_runs``). The pieces that are the same in all of them:

- :func:`two_group_optimizer`: torch's optimizer over the policy's two groups;
- :func:`builder_run`: torch's steps and the builder's on the same drawn gradients from the
  same start; :func:`assert_same_params_and_states` and :func:`assert_params_and_state_fields`
  judge them (parameters within float64's 1e-12, the state key by key, ``step`` exactly);
- :func:`check_two_group_round_trips` (``check_round_trips`` on a fresh model, optimizer and
  scheduler) and :func:`one_cycle`, the scheduler that cycles the momentum too;
- :func:`port_check_output`: ``weight-decay port-check`` on a factory of a module written
  to ``tmp_path`` (:func:`factory_module`; its factories step with
  :func:`stepped_three_times`), asserted to exit 0;
- :func:`assert_refused_without_a_twin`: an option the port refuses, named in the error;
- optax's namesake measured: :func:`relative_error` of the parameters after the same drawn
  steps (:func:`relative_error_after`), a transform per group in :func:`port_error` (built
  by :func:`group_tx`).

Each file keeps its own: the hyper-parameters drawn, how its state is read, its scheduler,
its factory and what port-check must print, its namesake's configuration and bounds.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable

import jax
import numpy as np
import optax
import pytest
import torch
from torch.optim import lr_scheduler

from parity_tests.port_runs import (
    MID,
    STEPS,
    check_round_trips,
    drawn_gradients,
    optax_steps,
    torch_steps,
)
from parity_tests.test_port_models import (
    OptaxRun,
    assert_same_states,
    make_model,
    torch_state_by_name,
)
from wd_core.tolerances import assert_close
from wd_jax import port

# ---- torch's side --------------------------------------------------------------------------


def mlp():
    """A fresh MLP of ``test_port_models`` (float64, its seeded draw)."""
    return make_model("mlp")


def two_group_optimizer(torch_class, model, *, weight_decay, implementation=(), **options):
    """``torch_class`` over the policy's two groups (``weight_decay`` on the first, 0 on the
    second), with ``implementation`` (``{"foreach": ...}``, ``{"fused": True}`` or nothing)
    and ``options`` passed to its constructor."""
    return torch_class(port.no_weight_decay_groups(model, weight_decay),
                       **dict(implementation), **options)


def one_cycle(optimizer, steps: int = STEPS):
    """``OneCycleLR`` to ``max_lr=0.02`` over ``steps + 1`` steps: it drives the lr and cycles
    the momentum (or beta1) too."""
    return lr_scheduler.OneCycleLR(optimizer, max_lr=0.02, total_steps=steps + 1)


# ---- the builder against torch -------------------------------------------------------------


def builder_run(make_torch_optimizer, make_tx, *, op_by_op: bool = True, kind: str = "mlp",
                steps: int = STEPS):
    """``steps`` drawn-gradient steps of ``make_torch_optimizer(model)`` on ``kind``'s model
    and of ``make_tx(mask=...)`` (the policy's decay mask of the same start) in float64:
    ``(model, optimizer, optax params, optax state)``. ``op_by_op``: the optax update runs
    op by op (``OptaxRun``), otherwise compiled (``optax_steps``)."""
    model = make_model(kind)
    grads = drawn_gradients(model, steps)
    optimizer = make_torch_optimizer(model)
    torch_steps(model, optimizer, None, grads)
    with jax.enable_x64(True):
        start = port.params_from_torch(make_model(kind))
        tx = make_tx(mask=port.decay_mask(start))
        if op_by_op:
            # compiling the chain would cost a compile per drawn example; JAX caches each op
            params, state = OptaxRun(kind, tx).run(start, tx.init(start), grads=grads)
        else:
            params, state = optax_steps(tx, start, tx.init(start), grads)
    return model, optimizer, params, state


def assert_same_params_and_states(params, optax_state_by_name: dict, model, optimizer,
                                  what: str) -> None:
    """Every parameter within float64's 1e-12 of torch's, and the optax state read under
    torch's keys (``optax_state_by_name``) equal to ``optimizer``'s, key by key
    (``assert_same_states``: ``step`` exactly, the arrays within 1e-12)."""
    for name, p in model.named_parameters():
        assert_close(params[name], p.detach().numpy(), "float64", err_msg=f"param {name}")
    assert_same_states(optax_state_by_name, torch_state_by_name(optimizer, model), what)


def assert_params_and_state_fields(params, optax_state, model, optimizer, fields: dict,
                                   steps: int = STEPS) -> None:
    """Every parameter within float64's 1e-12 of torch's; torch's state of each holds exactly
    the keys of ``fields`` and ``step`` (equal to ``steps``), and each key is within 1e-12 of
    the field ``fields[key]`` of ``optax_state`` (one instance of the builder's state
    class)."""
    for name, p in model.named_parameters():
        assert_close(params[name], p.detach().numpy(), "float64", err_msg=f"param {name}")
        torch_state = optimizer.state[p]
        assert sorted(torch_state) == sorted((*fields, "step"))
        assert float(torch_state["step"]) == steps
        for key, field in fields.items():
            assert_close(getattr(optax_state, field)[name], torch_state[key].numpy(),
                         "float64", err_msg=f"state {key} of {name}")


# ---- the port ------------------------------------------------------------------------------


def check_two_group_round_trips(make_torch_optimizer, make_scheduler=None, *,
                                kind: str = "mlp", steps: int = STEPS, mid: int = MID) -> None:
    """``check_round_trips`` (from the start, mid-run, back; parameters and state key by key
    within 1e-12) of ``make_torch_optimizer(model)`` on a fresh ``kind`` model, driven by
    ``make_scheduler(optimizer)`` when given."""
    def make():
        model = make_model(kind)
        optimizer = make_torch_optimizer(model)
        return model, optimizer, None if make_scheduler is None else make_scheduler(optimizer)

    check_round_trips(make, steps=steps, mid=mid)


def stepped_three_times(model, optimizer):
    """``optimizer`` stepped three times with constant gradients (0.5, -0.5, -1.5 in every
    entry): the trained optimizer a port-check factory returns, ``(model, optimizer)``."""
    for step in range(3):
        for p in model.parameters():
            p.grad = torch.full_like(p, 0.5 - step)
        optimizer.step()
    return model, optimizer


@contextlib.contextmanager
def factory_module(tmp_path, monkeypatch, module: str, text: str):
    """``text`` written to ``tmp_path/<module>.py`` and importable as ``module`` for the
    block (``tmp_path`` on ``sys.path``); the imported module is forgotten after."""
    (tmp_path / f"{module}.py").write_text(text, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        yield
    finally:
        sys.modules.pop(module, None)


def port_check_output(tmp_path, monkeypatch, capsys, text: str, factory: str,
                      steps: int = 10) -> str:
    """``weight-decay port-check module:function --steps steps`` on the factory ``factory``
    (``"module:function"``) of the module ``text``: asserts it exits 0 and returns what it
    printed."""
    from weight_decay.cli import main

    with factory_module(tmp_path, monkeypatch, factory.split(":")[0], text):
        assert main(["port-check", factory, "--steps", str(steps)]) == 0
    return capsys.readouterr().out


def assert_refused_without_a_twin(make_torch_optimizer, option: str, kind: str = "mlp") -> None:
    """``optimizer_from_torch`` refuses ``make_torch_optimizer(model, option=True)`` on a
    ``kind`` model, naming the option (in the first group) and the accepted value."""
    model = make_model(kind)
    optimizer = make_torch_optimizer(model, **{option: True})
    with pytest.raises(ValueError, match=rf"parameter group 0: {option}=True has no exact "
                                         rf"optax twin; accepted: {option}=False"):
        port.optimizer_from_torch(optimizer, model)


# ---- optax's namesake ----------------------------------------------------------------------


def relative_error(params, model) -> float:
    """``||params - torch's|| / ||torch's||`` over all the parameters together."""
    expected = {n: p.detach().numpy() for n, p in model.named_parameters()}
    difference = sum(float(np.sum((np.asarray(params[n]) - v) ** 2))
                     for n, v in expected.items())
    return float(np.sqrt(difference / sum(float(np.sum(v ** 2)) for v in expected.values())))


def relative_error_after(make_torch_optimizer, make_tx, steps: int = STEPS,
                         new_model: Callable = mlp) -> float:
    """:func:`relative_error` of the optax parameters after ``steps`` drawn-gradient steps of
    ``make_tx(start params)`` from ``new_model()``'s parameters, against torch's after the
    same steps of ``make_torch_optimizer(model)``, float64."""
    model = new_model()
    grads = drawn_gradients(model, steps)
    torch_steps(model, make_torch_optimizer(model), None, grads)
    with jax.enable_x64(True):
        start = port.params_from_torch(new_model())
        tx = make_tx(start)
        params, _ = optax_steps(tx, start, tx.init(start), grads)
    return relative_error(params, model)


def port_error(make_torch_optimizer, make_group_tx, weight_decay: float, steps: int = STEPS,
               new_model: Callable = mlp,
               decay_mask: Callable = port.decay_mask) -> float:
    """:func:`relative_error_after` for ``make_group_tx(weight_decay) -> tx`` on the decayed
    group and ``make_group_tx(0.0)`` on the other (``optax.partition`` by ``decay_mask`` of
    the start: the policy's by default), against ``make_torch_optimizer(model)``."""
    def partitioned(start):
        labels = {n: "decayed" if decays else "undecayed"
                  for n, decays in decay_mask(start).items()}
        return optax.partition({"decayed": make_group_tx(weight_decay),
                                "undecayed": make_group_tx(0.0)}, labels)

    return relative_error_after(make_torch_optimizer, partitioned, steps, new_model)


def group_tx(build, hyper: dict, **extra):
    """``make_group_tx`` for :func:`port_error`: ``weight_decay -> build(**hyper, **extra)``
    with ``hyper``'s own ``weight_decay`` replaced by the group's."""
    rest = {k: v for k, v in hyper.items() if k != "weight_decay"}
    return lambda weight_decay: build(**rest, **extra, weight_decay=weight_decay)
