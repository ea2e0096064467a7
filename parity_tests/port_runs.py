"""The port's round trips on drawn gradients, for any optimizer and scheduler set-up.

``check_round_trips(make)``: ``make()`` builds ``(model, optimizer, scheduler or None)``
afresh (a list of schedulers too; or a list of optimizers over the model with one scheduler
entry per optimizer). With the same drawn N(0, 1) gradients on both sides
(port-check's semantics: the optimizer and scheduler alone under test), float64:

1. optax from the start: ``steps`` steps of ``optimizer_from_torch``'s chain equal ``steps``
   torch steps, parameters and state (key by key);
2. mid-run: ``mid`` torch steps, converted there, the rest in optax equal all in torch;
3. back: ``mid`` optax steps, ``state_to_torch`` into a fresh set-up, the rest in torch
   equal all in torch; the groups' hyper-parameters a scheduler sets and the scheduler's own
   state equal torch's after the write-back and at the end.

Tolerance: rtol 1e-12 (``wd_core.tolerances``, float64), or ``kind``'s.
"""

from __future__ import annotations

import math

import numpy as np

from parity_tests.test_port_models import (
    assert_same_params as _same_params,
)
from parity_tests.test_port_models import (
    assert_same_states,
    torch_state_by_name,
)
from wd_core.tolerances import assert_close

STEPS = 50
MID = 7

#: Scheduler state entries that are not the schedule's position (functions, warnings' flags).
NOT_POSITION = {"_step_count", "_get_lr_called_within_step", "_is_initial", "lr_lambdas",
                "_scale_fn_ref", "_scale_fn_custom"}


def optimizers_of(optimizer) -> list:
    """One optimizer, or the list of them over one module."""
    return list(optimizer) if isinstance(optimizer, list | tuple) else [optimizer]


def schedulers_of(scheduler, optimizer=None) -> list:
    """Every scheduler of ``scheduler=`` in stepping order (with a list of optimizers: one
    entry per optimizer, each a scheduler, a list of them or None)."""
    if scheduler is None:
        return []
    if optimizer is not None and len(optimizers_of(optimizer)) > 1:
        return [s for entry in scheduler for s in schedulers_of(entry)]
    return list(scheduler) if isinstance(scheduler, list | tuple) else [scheduler]


def torch_states(optimizer, model) -> dict:
    """``torch_state_by_name`` over every optimizer."""
    out = {}
    for o in optimizers_of(optimizer):
        out.update(torch_state_by_name(o, model))
    return out


def drawn_gradients(model, steps=STEPS, seed=0) -> list[dict]:
    rng = np.random.default_rng(seed)
    return [{n: rng.standard_normal(tuple(p.shape)) for n, p in model.named_parameters()
             if p.requires_grad} for _ in range(steps)]


def torch_steps(model, optimizer, scheduler, grads) -> None:
    """``optimizer.step()`` then each scheduler's ``step()``, per gradient (set with the
    parameter's strides, as autograd does)."""
    import torch

    for grad in grads:
        for name, p in model.named_parameters():
            if name in grad:
                p.grad = torch.empty_like(p).copy_(torch.from_numpy(grad[name]))
        for o in optimizers_of(optimizer):
            o.step()
        for s in schedulers_of(scheduler, optimizer):
            s.step()


def optax_steps(tx, params, state, grads):
    import jax
    import jax.numpy as jnp
    import optax

    @jax.jit
    def step(params, state, grad):
        updates, state = tx.update(grad, state, params)
        return optax.apply_updates(params, updates), state

    for grad in grads:
        full = {n: jnp.asarray(grad[n]) if n in grad else jnp.zeros_like(v)
                for n, v in params.items()}
        params, state = step(params, state, full)
    return params, state


def hyperparameters(optimizer) -> list[dict]:
    return [{k: v for k, v in g.items() if k in ("lr", "momentum", "betas")}
            for o in optimizers_of(optimizer) for g in o.param_groups]


def assert_same_numbers(actual, expected, what: str) -> None:
    """Nested dicts, lists and numbers equal: ints exactly, floats within float64's 1e-12."""
    if isinstance(expected, dict):
        keys = set(expected) - NOT_POSITION
        assert keys == set(actual) - NOT_POSITION, what
        for key in keys:
            assert_same_numbers(actual[key], expected[key], f"{what}.{key}")
    elif isinstance(expected, list | tuple):
        assert len(actual) == len(expected), what
        for i, (a, e) in enumerate(zip(actual, expected, strict=True)):
            assert_same_numbers(a, e, f"{what}[{i}]")
    elif isinstance(expected, bool | int | str) or expected is None:
        assert actual == expected, (what, actual, expected)
    elif isinstance(expected, float):
        if math.isnan(expected):
            assert math.isnan(actual), what
        else:
            assert_close(np.float64(actual), np.float64(expected), "float64", err_msg=what)
    elif callable(expected):
        return
    else:
        assert actual == expected, (what, actual, expected)


def assert_same_schedule(optimizer, scheduler, expected_optimizer, expected_scheduler, what):
    assert_same_numbers(hyperparameters(optimizer), hyperparameters(expected_optimizer),
                        f"{what}: param_groups")
    for i, (s, e) in enumerate(zip(schedulers_of(scheduler, optimizer),
                                   schedulers_of(expected_scheduler, expected_optimizer),
                                   strict=True)):
        assert_same_numbers(s.state_dict(), e.state_dict(), f"{what}: scheduler {i}")


def convert(model, optimizer, scheduler, horizon):
    from wd_jax import port

    params = port.params_from_torch(model)
    tx = port.optimizer_from_torch(optimizer, model, scheduler=scheduler,
                                   horizon=horizon if schedulers_of(scheduler, optimizer)
                                   else None)
    return params, tx, port.state_from_torch(optimizer, model, tx, params, scheduler=scheduler)


def torch_params(model) -> dict:
    return {n: p.detach().numpy() for n, p in model.named_parameters()}


def check_round_trips(make, steps: int = STEPS, mid: int = MID, judge_params=None) -> None:
    """The three trips of the module docstring for the set-up ``make()`` builds.

    ``judge_params(params, model, what)``: how the parameters are judged against torch's
    (``model``'s); default float64's 1e-12 (Muon passes its derived bfloat16 tolerance). The
    state and the scheduler's position are always judged to 1e-12."""
    import jax

    from wd_jax import port

    model, optimizer, scheduler = make()
    grads = drawn_gradients(model, steps)
    torch_steps(model, optimizer, scheduler, grads)
    expected_state = torch_states(optimizer, model)
    assert_same_params = judge_params or _same_params

    with jax.enable_x64(True):
        # 1. optax from the start
        m0, o0, s0 = make()
        params, tx, state = convert(m0, o0, s0, steps)
        params_mid, state_mid = optax_steps(tx, params, state, grads[:mid])
        params_end, state_end = optax_steps(tx, params_mid, state_mid, grads[mid:])
        assert_same_params(params_end, model, f"optax {steps}")
        assert_same_states(port.torch_named_state(state_end, o0, m0), expected_state,
                           f"optax {steps}")

        # 2. torch `mid` steps, converted there, the rest in optax
        m1, o1, s1 = make()
        torch_steps(m1, o1, s1, grads[:mid])
        params, tx_mid, state = convert(m1, o1, s1, steps - mid)
        params, state = optax_steps(tx_mid, params, state, grads[mid:])
        what = f"torch {mid} + optax {steps - mid}"
        assert_same_params(params, model, what)
        assert_same_states(port.torch_named_state(state, o1, m1), expected_state, what)
        port.state_to_torch(state, tx_mid, o1, m1, scheduler=s1)
        assert_same_schedule(o1, s1, optimizer, scheduler, f"{what}, written back")

    # 3. optax `mid` steps, back to a fresh torch set-up, the rest in torch
    m2, o2, s2 = make()
    t_model, t_optimizer, t_scheduler = make()
    torch_steps(t_model, t_optimizer, t_scheduler, grads[:mid])
    port.params_to_torch(params_mid, m2)
    port.state_to_torch(state_mid, tx, o2, m2, scheduler=s2)
    assert_same_schedule(o2, s2, t_optimizer, t_scheduler, f"optax {mid}, written back")
    assert_same_states(torch_states(o2, m2), torch_states(t_optimizer, t_model),
                       f"optax {mid}, written back")
    torch_steps(m2, o2, s2, grads[mid:])
    what = f"optax {mid} + torch {steps - mid}"
    assert_same_params(torch_params(m2), model, what)
    assert_same_states(torch_states(o2, m2), expected_state, what)
    assert_same_schedule(o2, s2, optimizer, scheduler, what)
