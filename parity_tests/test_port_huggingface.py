"""A real client of the port: Hugging Face ``Trainer``'s optimizer and scheduler, exactly.

For every ``lr_scheduler_type`` that ``transformers.Trainer`` offers (each row of
``huggingface_setups.CASES``; a test checks that none is missing), a ``Trainer`` over a tiny
float64 GPT-2 makes its own AdamW (decay / no-decay groups, ``weight_decay=0.01``, fused) and
its own scheduler (a ``LambdaLR`` over one of transformers' Python functions) with
``create_optimizer_and_scheduler``. Steps follow ``weight-decay port-check``: the same drawn
N(0, 1) gradients on both sides; torch clips them to ``max_grad_norm`` (as Trainer's loop
does), steps the optimizer, then the scheduler; optax gets them unclipped and clips first
(``clip_grad_norm=``). The LambdaLR's function is recorded over ``horizon``: the steps the
ported run takes after the scheduler's position.

1. ``STEPS`` optax steps from the Trainer's fresh set-up equal ``STEPS`` Trainer steps: every
   parameter, the optimizer state key by key (``torch_named_state``), and, written back into
   a fresh Trainer with ``state_to_torch``, each group's lr, the scheduler's ``last_epoch``
   and ``get_last_lr()`` (what Trainer logs);
2. mid-schedule: ``MID`` Trainer steps, the port, the rest in optax equal all in torch;
3. the way back: ``BACK`` optax steps, ``state_to_torch`` into a fresh Trainer, the rest in
   torch equal all in torch.

The metric-driven types (``reduce_lr_on_plateau``: torch's ``ReduceLROnPlateau``; ``greedy``:
transformers' ``GreedyLR``) are refused with an ``InputError`` naming the class. float64,
rtol 1e-12 (``wd_core.tolerances``); ``step`` and ``last_epoch`` exactly.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch
import transformers  # a real client is a test dependency: no skip without it

from parity_tests import huggingface_setups as hf
from parity_tests.test_port_models import (
    assert_same_params,
    assert_same_states,
    one_torch_thread,  # noqa: F401  (an autouse fixture)
    torch_state_by_name,
)
from wd_core.errors import InputError
from wd_core.tolerances import assert_close
from wd_jax import port

IDS = [c.id for c in hf.DETERMINISTIC]


class Reference:
    """``STEPS`` Trainer steps on the drawn gradients: the oracle of every trip."""

    def __init__(self, case: hf.HFCase, output_dir):
        self.trainer = hf.make_trainer(case, output_dir)
        self.lrs = hf.torch_steps(self.trainer, hf.drawn_grads())
        self.model = self.trainer.model
        self.state = torch_state_by_name(self.trainer.optimizer, self.model)
        self.last_epoch = self.trainer.lr_scheduler.last_epoch
        self.last_lr = list(self.trainer.lr_scheduler.get_last_lr())


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """``reference(case)``: the case's :class:`Reference`, run once per module."""
    cache = {}

    def get(case: hf.HFCase) -> Reference:
        if case.id not in cache:
            cache[case.id] = Reference(case, tmp_path_factory.mktemp(f"ref-{case.id}"))
        return cache[case.id]

    return get


def optax_steps(tx, params, state, grads):
    """``tx`` on each drawn (unclipped) gradient, as a user's optax loop applies it."""
    for step in grads:
        updates, state = tx.update({n: jnp.asarray(g) for n, g in step.items()}, state, params)
        params = optax.apply_updates(params, updates)
    return params, state


def port_trainer(trainer, horizon: int, *, clip: bool = True):
    """The Trainer's model, optimizer and scheduler in optax: ``(params, tx, state)``."""
    model, optimizer, scheduler = trainer.model, trainer.optimizer, trainer.lr_scheduler
    params = port.params_from_torch(model)
    clipping = {"clip_grad_norm": trainer.args.max_grad_norm} if clip else {}
    tx = port.optimizer_from_torch(optimizer, model, scheduler=scheduler, horizon=horizon,
                                   **clipping)
    state = port.state_from_torch(optimizer, model, tx, params, scheduler=scheduler)
    return params, tx, state


def write_back(params, state, tx, case, output_dir):
    """A fresh Trainer holding optax's parameters, optimizer state and schedule position."""
    trainer = hf.make_trainer(case, output_dir)
    port.params_to_torch(params, trainer.model)
    port.state_to_torch(state, tx, trainer.optimizer, trainer.model,
                        scheduler=trainer.lr_scheduler)
    return trainer


def assert_same_schedule(trainer, ref: Reference, steps: int, what: str) -> None:
    """The scheduler of ``trainer`` stands where torch's stood after ``steps`` steps: its
    ``last_epoch``, each group's lr and ``get_last_lr()``."""
    scheduler = trainer.lr_scheduler
    assert scheduler.last_epoch == steps, (what, scheduler.last_epoch, steps)
    expected = ref.lrs[steps - 1]
    lrs = [g["lr"] for g in trainer.optimizer.param_groups]
    assert_close(np.array(lrs), np.array(expected), "float64", err_msg=f"{what}: group lrs")
    assert_close(np.array(scheduler.get_last_lr()), np.array(expected), "float64",
                 err_msg=f"{what}: get_last_lr()")


# ---- the set-ups themselves (no port) --------------------------------------------------------

def test_every_scheduler_type_has_a_case():
    assert {c.name for c in hf.CASES} == hf.scheduler_types(), (
        f"transformers {transformers.__version__} offers lr_scheduler_types "
        f"{sorted(hf.scheduler_types())}; huggingface_setups.CASES covers "
        f"{sorted({c.name for c in hf.CASES})}")


@pytest.mark.parametrize("case", hf.DETERMINISTIC, ids=IDS)
def test_trainer_builds_adamw_groups_and_a_lambda_schedule(case, reference, tmp_path):
    """What the port is given: Trainer's AdamW over its decay / no-decay groups (the tied
    ``lm_head.weight`` once, as ``wte``), a LambdaLR, and a loop that clips at every step."""
    ref = reference(case)
    trainer = hf.make_trainer(case, tmp_path)
    model, optimizer = trainer.model, trainer.optimizer
    assert type(optimizer) is torch.optim.AdamW
    assert type(trainer.lr_scheduler) is torch.optim.lr_scheduler.LambdaLR
    assert model.lm_head.weight is model.transformer.wte.weight
    names = {p: n for n, p in model.named_parameters()}
    grouped = [[names[p] for p in g["params"]] for g in optimizer.param_groups]
    assert sorted(sum(grouped, [])) == sorted(names.values())  # each parameter once
    assert [g["weight_decay"] for g in optimizer.param_groups] == [hf.WEIGHT_DECAY, 0.0]
    assert set(grouped[0]) == set(trainer.get_decay_parameter_names(model)) & set(names.values())
    assert all(".ln_" not in n and not n.endswith("bias") for n in grouped[0])
    assert all(".ln_" in n or n.endswith("bias") for n in grouped[1])
    assert trainer.lr_scheduler.base_lrs == [hf.LR, hf.LR]
    # the torch loop: the scheduler stepped once per optimizer step, the lrs its functions give
    assert ref.last_epoch == hf.STEPS
    assert ref.lrs == hf.lambda_lrs(trainer)
    # the drawn gradients are clipped at every step (so the port's clipping is under test)
    for step in hf.drawn_grads():
        norm = np.sqrt(sum(float(np.sum(g**2)) for g in step.values()))
        assert norm > 10 * hf.MAX_GRAD_NORM
    assert ref.state["transformer.wte.weight"]["step"] == hf.STEPS


# ---- the port -------------------------------------------------------------------------------

@pytest.mark.parametrize("case", hf.DETERMINISTIC, ids=IDS)
def test_optax_run_equals_trainer_run(case, reference, tmp_path):
    ref = reference(case)
    with jax.enable_x64(True):
        trainer = hf.make_trainer(case, tmp_path)
        params, tx, state = port_trainer(trainer, horizon=hf.STEPS)
        params, state = optax_steps(tx, params, state, hf.drawn_grads())
        assert_same_params(params, ref.model, f"{case.id}: optax {hf.STEPS}")
        assert_same_states(port.torch_named_state(state, trainer.optimizer, trainer.model),
                           ref.state, f"{case.id}: optax {hf.STEPS}")
        back = write_back(params, state, tx, case, tmp_path)
    assert_same_schedule(back, ref, hf.STEPS, f"{case.id}: written back")
    assert_same_states(torch_state_by_name(back.optimizer, back.model), ref.state,
                       f"{case.id}: written back")


@pytest.mark.parametrize("case", hf.DETERMINISTIC, ids=IDS)
def test_port_mid_schedule(case, reference, tmp_path):
    """``MID`` Trainer steps, then the port, then the rest in optax == all in torch."""
    ref = reference(case)
    grads = hf.drawn_grads()
    trainer = hf.make_trainer(case, tmp_path)
    hf.torch_steps(trainer, grads[:hf.MID])
    with jax.enable_x64(True):
        params, tx, state = port_trainer(trainer, horizon=hf.STEPS - hf.MID)
        params, state = optax_steps(tx, params, state, grads[hf.MID:])
        what = f"{case.id}: torch {hf.MID} + optax {hf.STEPS - hf.MID}"
        assert_same_params(params, ref.model, what)
        assert_same_states(port.torch_named_state(state, trainer.optimizer, trainer.model),
                           ref.state, what)
        back = write_back(params, state, tx, case, tmp_path)
    assert_same_schedule(back, ref, hf.STEPS, what)


@pytest.mark.parametrize("case", hf.DETERMINISTIC, ids=IDS)
def test_port_back_to_trainer(case, reference, tmp_path):
    """``BACK`` optax steps, ``state_to_torch`` into a fresh Trainer, the rest in torch ==
    all in torch."""
    ref = reference(case)
    grads = hf.drawn_grads()
    with jax.enable_x64(True):
        params, tx, state = port_trainer(hf.make_trainer(case, tmp_path), horizon=hf.BACK)
        params, state = optax_steps(tx, params, state, grads[:hf.BACK])
        trainer = write_back(params, state, tx, case, tmp_path)
    what = f"{case.id}: optax {hf.BACK} + torch {hf.STEPS - hf.BACK}"
    assert_same_schedule(trainer, ref, hf.BACK, f"{what} (at the switch)")
    hf.torch_steps(trainer, grads[hf.BACK:])
    assert_same_params(hf.torch_params(trainer.model), ref.model, what)
    assert_same_states(torch_state_by_name(trainer.optimizer, trainer.model), ref.state, what)
    assert_same_schedule(trainer, ref, hf.STEPS, what)


@pytest.mark.parametrize("case", hf.METRIC_DRIVEN, ids=[c.id for c in hf.METRIC_DRIVEN])
def test_metric_driven_schedule_is_refused(case, tmp_path):
    trainer = hf.make_trainer(case, tmp_path)
    assert type(trainer.lr_scheduler).__name__ == case.refused
    with jax.enable_x64(True), pytest.raises(InputError, match=case.refused):
        port_trainer(trainer, horizon=hf.STEPS)


def test_lambda_schedule_needs_a_horizon(tmp_path):
    """A LambdaLR's function is Python: without ``horizon`` the port cannot record it."""
    trainer = hf.make_trainer(hf.DETERMINISTIC[0], tmp_path)
    with pytest.raises(InputError, match="horizon"):
        port.optimizer_from_torch(trainer.optimizer, trainer.model,
                                  scheduler=trainer.lr_scheduler,
                                  clip_grad_norm=trainer.args.max_grad_norm)


def test_clipping_left_out_leaves_the_trainer_trajectory(reference, tmp_path):
    """The check can fail: the same port without Trainer's ``max_grad_norm`` clipping ends
    far from the Trainer's run (the drawn gradients' norms are far above 1)."""
    case = hf.DETERMINISTIC[0]
    ref = reference(case)
    with jax.enable_x64(True):
        params, tx, state = port_trainer(hf.make_trainer(case, tmp_path), horizon=hf.STEPS,
                                         clip=False)
        params, _ = optax_steps(tx, params, state, hf.drawn_grads())
    worst = max(float(np.max(np.abs(np.asarray(params[n]) - p.detach().numpy())))
                for n, p in ref.model.named_parameters())
    assert worst > 1e-6
