"""Hugging Face ``Trainer`` set-ups for ``test_port_huggingface.py``: what a user gets.

A tiny GPT-2 built from a config (no download; float64, parameters drawn from a seeded numpy
generator, ``lm_head.weight`` tied to ``transformer.wte.weight`` and listed once), a
``Trainer`` over it with ``TrainingArguments`` as a user writes them, and the Trainer's own
``create_optimizer_and_scheduler``: AdamW over Trainer's decay / no-decay groups and the
scheduler of ``lr_scheduler_type`` (a ``LambdaLR`` for every deterministic type).

The runs follow ``weight-decay port-check``: gradients are drawn, not computed (N(0, 1)
float64 for every parameter, from a seeded numpy generator, the same arrays for torch and
optax), torch clips them (``clip_grad_norm_(model.parameters(), args.max_grad_norm)``, as
Trainer's loop does), steps the optimizer, then the scheduler; optax is given the unclipped
gradients, its chain clipping first.

Every ``transformers.SchedulerType`` has a row in :data:`CASES` (a test checks it): a new type
in a newer transformers fails the suite until it gets one.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np
import torch
import transformers
from transformers import GPT2Config, GPT2LMHeadModel, Trainer, TrainingArguments

STEPS = 30  # max_steps, and the num_training_steps the schedule is made for
WARMUP = 5  # warmup_steps
MID = 7  # torch steps before the mid-schedule port
BACK = 12  # optax steps before the way back to torch
LR = 1e-2
WEIGHT_DECAY = 0.01
MAX_GRAD_NORM = 1.0
SEED = 0


@dataclass(frozen=True)
class HFCase:
    """One ``lr_scheduler_type`` with its ``lr_scheduler_kwargs``; ``refused``: the torch
    scheduler class the port must refuse (a metric-driven schedule), or None."""

    name: str
    kwargs: dict = field(default_factory=dict)
    refused: str | None = None
    variant: str = ""

    @property
    def id(self) -> str:
        return f"{self.name}-{self.variant}" if self.variant else self.name


CASES = (
    HFCase("linear"),
    HFCase("cosine"),
    HFCase("cosine_with_restarts", {"num_cycles": 3}),
    HFCase("polynomial", {"power": 2.0, "lr_end": 1e-4}),
    HFCase("constant"),
    HFCase("constant_with_warmup"),
    HFCase("inverse_sqrt"),
    HFCase("inverse_sqrt", {"timescale": 10}, variant="timescale"),
    # cosine_with_min_lr and cosine_warmup_with_min_lr need min_lr or min_lr_rate
    HFCase("cosine_with_min_lr", {"min_lr": 1e-3}),
    HFCase("cosine_with_min_lr", {"min_lr_rate": 0.05}, variant="rate"),
    HFCase("cosine_warmup_with_min_lr", {"min_lr_rate": 0.1}),
    HFCase("cosine_warmup_with_min_lr", {"min_lr": 1e-3, "warmup_lr_rate": 0.5},
           variant="warmup_lr_rate"),
    # warmup_stable_decay needs num_decay_steps (stable: max_steps - warmup - decay)
    HFCase("warmup_stable_decay", {"num_decay_steps": 10, "min_lr_ratio": 0.1}),
    HFCase("warmup_stable_decay", {"num_decay_steps": 10, "warmup_type": "1-sqrt",
                                   "decay_type": "linear"}, variant="sqrt_linear"),
    # metric-driven: stepped with an evaluation metric, not a function of the step count
    HFCase("reduce_lr_on_plateau", refused="ReduceLROnPlateau"),
    HFCase("greedy", refused="GreedyLR"),
)
DETERMINISTIC = tuple(c for c in CASES if c.refused is None)
METRIC_DRIVEN = tuple(c for c in CASES if c.refused is not None)


def scheduler_types() -> set[str]:
    """Every ``lr_scheduler_type`` the installed transformers offers."""
    return {s.value for s in transformers.SchedulerType}


def make_model(seed: int = SEED) -> GPT2LMHeadModel:
    """A one-layer GPT-2 in float64 whose parameters are drawn from numpy (seeded)."""
    config = GPT2Config(n_layer=1, n_head=2, n_embd=8, vocab_size=32, n_positions=16,
                        bos_token_id=0, eos_token_id=0)
    model = GPT2LMHeadModel(config).double()
    rng = np.random.default_rng(np.random.SeedSequence((11, seed)))
    with torch.no_grad():
        for name, p in model.named_parameters():
            draw = 0.3 * rng.standard_normal(tuple(p.shape))
            p.copy_(torch.from_numpy(1.0 + draw if ".ln_" in name and name.endswith("weight")
                                     else draw))
    return model


def make_trainer(case: HFCase, output_dir, model=None) -> Trainer:
    """A ``Trainer`` for ``case`` over ``model`` (default: a fresh :func:`make_model`), its
    optimizer and scheduler made by its own ``create_optimizer_and_scheduler``."""
    model = make_model() if model is None else model
    extra = {}
    if case.refused is not None:  # transformers wants an evaluation for a metric
        extra = {"eval_strategy": "steps", "eval_steps": 10}
    args = TrainingArguments(
        output_dir=str(output_dir), max_steps=STEPS, warmup_steps=WARMUP, learning_rate=LR,
        weight_decay=WEIGHT_DECAY, max_grad_norm=MAX_GRAD_NORM, lr_scheduler_type=case.name,
        lr_scheduler_kwargs=dict(case.kwargs), report_to=[], use_cpu=True, seed=SEED,
        **extra)
    eval_dataset = [{"input_ids": [1, 2, 3]}] if case.refused is not None else None
    trainer = Trainer(model=model, args=args, eval_dataset=eval_dataset)
    trainer.create_optimizer_and_scheduler(num_training_steps=STEPS)
    return trainer


@functools.cache
def drawn_grads(steps: int = STEPS, seed: int = SEED) -> tuple[dict[str, np.ndarray], ...]:
    """One ``{name: N(0, 1) float64 array}`` per step, for every parameter of
    :func:`make_model` that requires a gradient (read-only: shared by every run)."""
    rng = np.random.default_rng(np.random.SeedSequence((13, seed)))
    shapes = [(n, tuple(p.shape)) for n, p in make_model().named_parameters() if p.requires_grad]
    out = []
    for _ in range(steps):
        grads = {n: rng.standard_normal(shape) for n, shape in shapes}
        for g in grads.values():
            g.flags.writeable = False
        out.append(grads)
    return tuple(out)


def torch_steps(trainer: Trainer, grads) -> list[list[float]]:
    """Trainer's step on each drawn gradient: set ``p.grad``, clip all parameters to
    ``args.max_grad_norm``, ``optimizer.step()``, ``lr_scheduler.step()``. Returns the groups'
    lrs after each step."""
    model, optimizer, scheduler = trainer.model, trainer.optimizer, trainer.lr_scheduler
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    lrs = []
    for step in grads:
        for name, p in named:
            p.grad = torch.tensor(step[name], dtype=p.dtype)
        torch.nn.utils.clip_grad_norm_(model.parameters(), trainer.args.max_grad_norm)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        lrs.append([g["lr"] for g in optimizer.param_groups])
    return lrs


def torch_params(model) -> dict[str, np.ndarray]:
    return {n: p.detach().numpy().copy() for n, p in model.named_parameters()}


def lambda_lrs(trainer: Trainer, steps: int = STEPS) -> list[list[float]]:
    """The groups' lrs after each of ``steps`` scheduler steps as the schedule's own Python
    functions give them (``base_lr * lr_lambda(step)``): what :func:`torch_steps` must see."""
    scheduler = trainer.lr_scheduler
    pairs = list(zip(scheduler.base_lrs, scheduler.lr_lambdas, strict=True))
    return [[base * f(t) for base, f in pairs] for t in range(1, steps + 1)]
