"""Port a live ``torch.optim`` optimizer, its parameter groups and its state to optax and back.

Parameters travel as a flat dict keyed by ``module.named_parameters()`` names, in torch's
layout and dtype (an ``nn.Linear.weight`` stays ``(out, in)``: the JAX forward computes
``x @ W.T + b``). Each torch parameter group becomes its own optax transformation, built with
the :mod:`wd_jax.optim` builders and routed with ``optax.partition`` (``multi_transform``);
a parameter that is in no group (or does not require a gradient) is frozen
(``optax.set_to_zero``). Optimizer state is carried both ways with the structure of
``tx.init(params)``, so that training resumed in the other framework continues the same
trajectory (float64 within rtol 1e-12: ``parity_tests/test_port_*.py``)::

    with jax.enable_x64(True):                       # for float64 models
        params = port.params_from_torch(model)       # {name: jax.Array}
        tx = port.optimizer_from_torch(optimizer, model, scheduler=scheduler)
        opt_state = port.state_from_torch(optimizer, model, tx, params, scheduler=scheduler)
        ...                                          # optax steps
        port.params_to_torch(params, model)
        port.state_to_torch(opt_state, tx, optimizer, model, scheduler=scheduler)

=====================================  ===================================================
torch (per parameter group)            optax (per label ``group_<i>``)
=====================================  ===================================================
``SGD(lr, momentum, dampening,         ``wd_jax.optim.torch_sgd(...)``
weight_decay, nesterov, maximize)``
``wd_torch.optim.SGDW(...)``           ``wd_jax.optim.sgdw(...)``
``Adam(lr, betas, eps, weight_decay)`` ``wd_jax.optim.torch_adam(...)`` (coupled L2)
``AdamW(...)``, ``Adam(...,            ``wd_jax.optim.torch_adamw(...)`` with the group's
decoupled_weight_decay=True)``         decay (torch's default 1e-2, never optax's 1e-4)
``maximize=True`` (Adam family)        ``chain(scale(-1), ...)``
``StepLR``, ``CosineAnnealingLR``      ``torch_step_lr``, ``torch_cosine_annealing_lr``
(stepped once per optimizer step)      as the group's ``lr`` (base: ``scheduler.base_lrs``)
``foreach``, ``fused``                 implementation choices: accepted
``amsgrad``, ``capturable``,           refused (:class:`wd_core.errors.InputError`)
``differentiable`` (True)
=====================================  ===================================================

State (torch key per parameter -> optax field of the group's state):
``momentum_buffer`` -> ``TraceState.trace`` (dampening 0) or
``TorchMomentumState.momentum_buffer``; ``exp_avg`` / ``exp_avg_sq`` / ``step`` ->
``ScaleByAdamState.mu`` / ``.nu`` / ``.count``; ``scheduler.last_epoch`` ->
``ScaleByScheduleState.count``. torch keeps a step per parameter and optax one count per
group: a group whose parameters disagree is refused.

The port assumes that every parameter of a group gets a gradient at every step (a dense
model): torch skips a parameter whose ``.grad`` is ``None``, optax updates every leaf of
its group. PyTorch is imported inside the functions, so ``import wd_jax.port`` works
without it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import jax
import jax.numpy as jnp
import numpy as np
import optax

from wd_core.errors import InputError, InputTypeError, missing_framework
from wd_core.validation import NONNEGATIVE, check_number
from wd_jax import optim as jopt

FROZEN = "frozen"
ACCEPTED_OPTIMIZERS = ("torch.optim.SGD", "torch.optim.Adam", "torch.optim.AdamW",
                       "wd_torch.optim.SGDW")
ACCEPTED_SCHEDULERS = ("torch.optim.lr_scheduler.StepLR",
                       "torch.optim.lr_scheduler.CosineAnnealingLR")
#: Group options read into the optax chain, per family kind.
SGD_OPTIONS = ("lr", "momentum", "dampening", "weight_decay", "nesterov", "maximize")
ADAM_OPTIONS = ("lr", "betas", "eps", "weight_decay", "maximize", "decoupled_weight_decay")
#: Implementation choices with the same mathematics: accepted whatever their value.
IMPLEMENTATION_OPTIONS = ("foreach", "fused")
#: Options with no exact optax twin: accepted only when False.
REFUSED_OPTIONS = ("amsgrad", "capturable", "differentiable")
_STATE_TYPES = (optax.TraceState, jopt.TorchMomentumState, optax.ScaleByAdamState,
                optax.ScaleByScheduleState)


def _torch():
    """``torch``, imported on first use; ``MissingFrameworkError`` with the install line."""
    try:
        import torch
    except ImportError:
        raise missing_framework("wd_jax.port", "PyTorch", "torch") from None
    return torch


def group_label(index: int) -> str:
    """The optax label of torch's parameter group ``index``: ``"group_<index>"``."""
    return f"group_{index}"


# ---- parameters ----------------------------------------------------------------------------

def _check_module(module):
    torch = _torch()
    if not isinstance(module, torch.nn.Module):
        raise InputTypeError(f"module must be a torch.nn.Module, got {type(module).__name__}")
    return torch


def _to_numpy(tensor) -> np.ndarray:
    """A copy of ``tensor`` as numpy, same shape and dtype (bfloat16 via JAX's ml_dtypes)."""
    torch = _torch()
    tensor = tensor.detach().cpu()
    if tensor.dtype == torch.bfloat16:
        return tensor.view(torch.int16).numpy().view(jnp.bfloat16).copy()
    return tensor.numpy().copy()


def params_from_torch(module) -> dict[str, jax.Array]:
    """``{name: jax.Array}``, one entry per ``module.named_parameters()`` name, in that order.

    Each array has the parameter's shape (torch's layout: ``nn.Linear.weight`` is
    ``(out_features, in_features)``) and dtype. float64 parameters need JAX's x64 mode
    (``with jax.enable_x64(True):``); ``InputError`` otherwise, rather than a silent cast.
    """
    _check_module(module)
    params = {}
    for name, param in module.named_parameters():
        array = _to_numpy(param)
        params[name] = jnp.asarray(array)
        if params[name].dtype != array.dtype:
            raise InputError(
                f"parameter {name!r} is {array.dtype} but JAX made it {params[name].dtype} "
                f"(x64 mode is off); call inside `with jax.enable_x64(True):`"
            )
    return params


def params_to_torch(params, module) -> None:
    """Copy ``params`` (``{name: array}`` as :func:`params_from_torch` returns) into
    ``module``'s parameters in place.

    The names must be exactly ``module.named_parameters()``'s, and each array must have its
    parameter's shape and dtype; ``InputError`` naming the mismatch otherwise (nothing is
    copied then).
    """
    torch = _check_module(module)
    if not isinstance(params, dict):
        raise InputTypeError(f"params must be a dict {{name: array}}, got {type(params).__name__}")
    targets = dict(module.named_parameters())
    missing = [n for n in targets if n not in params]
    extra = [n for n in params if n not in targets]
    if missing or extra:
        raise InputError(
            f"params do not match the module's named_parameters(): missing {missing}, "
            f"not in the module {extra}"
        )
    arrays = {}
    for name, param in targets.items():
        array = np.asarray(params[name])
        expected = _numpy_dtype(param.dtype)
        if array.shape != tuple(param.shape):
            raise InputError(f"params[{name!r}] has shape {array.shape}; the module's "
                             f"parameter has {tuple(param.shape)}")
        if array.dtype != expected:
            raise InputError(f"params[{name!r}] has dtype {array.dtype}; the module's "
                             f"parameter has {expected}")
        arrays[name] = array
    with torch.no_grad():
        for name, param in targets.items():
            param.copy_(_from_numpy(arrays[name], param))


def _numpy_dtype(torch_dtype) -> np.dtype:
    """The numpy dtype that :func:`_to_numpy` gives a tensor of ``torch_dtype``."""
    return _to_numpy(_torch().empty(0, dtype=torch_dtype)).dtype


def _from_numpy(array: np.ndarray, like):
    """A torch tensor holding a copy of ``array``, with ``like``'s dtype and device."""
    torch = _torch()
    if like.dtype == torch.bfloat16:
        tensor = torch.from_numpy(np.array(array).view(np.int16)).view(torch.bfloat16)
    else:
        tensor = torch.tensor(np.array(array))
    return tensor.to(dtype=like.dtype, device=like.device)


# ---- the optimizer ---------------------------------------------------------------------------

@dataclass(frozen=True)
class _Group:
    """One torch parameter group, read: its family, builder options and parameter names
    (``names``: those it updates; ``all_names`` also those that require no gradient)."""

    index: int
    family: str  # "sgd", "sgdw", "adam" or "adamw"
    all_names: tuple[str, ...]
    names: tuple[str, ...]
    lr: object  # a float, or an optax schedule when a scheduler is attached
    options: dict = field(default_factory=dict)

    @property
    def label(self) -> str:
        return group_label(self.index)


def _optimizer_family(optimizer) -> str:
    """``"sgd"``, ``"sgdw"`` or ``"adam"`` (Adam and AdamW: decided per group)."""
    torch = _torch()
    cls = type(optimizer)
    if cls is torch.optim.SGD:
        return "sgd"
    if cls is torch.optim.Adam or cls is torch.optim.AdamW:
        return "adam"
    if cls.__module__ == "wd_torch.optim" and cls.__qualname__ == "SGDW":
        return "sgdw"
    raise InputError(f"optimizer {cls.__module__}.{cls.__qualname__} has no port; accepted: "
                     f"{', '.join(ACCEPTED_OPTIMIZERS)} (the class itself, not a subclass)")


def _check_options(optimizer, index: int, group: dict, read: tuple[str, ...]) -> None:
    """Refuse an option of torch's (a key of ``optimizer.defaults``) that the port would drop."""
    for key in optimizer.defaults:
        value = group.get(key)
        if key in read or key in IMPLEMENTATION_OPTIONS:
            continue
        if key in REFUSED_OPTIONS:
            if value:
                raise InputError(
                    f"parameter group {index}: {key}={value!r} has no exact optax twin; "
                    f"accepted: {key}=False"
                )
            continue
        raise InputError(
            f"parameter group {index}: option {key}={value!r} of "
            f"{type(optimizer).__name__} has no port; ported options: "
            f"{', '.join(read + IMPLEMENTATION_OPTIONS)}"
        )


def _schedules(optimizer, scheduler) -> list | None:
    """One optax schedule per group (its base lr from ``scheduler.base_lrs``), or ``None``."""
    if scheduler is None:
        return None
    from torch.optim import lr_scheduler

    cls = type(scheduler)
    if cls is lr_scheduler.StepLR:
        def make(lr):
            return jopt.torch_step_lr(lr, scheduler.step_size, scheduler.gamma)
    elif cls is lr_scheduler.CosineAnnealingLR:
        def make(lr):
            return jopt.torch_cosine_annealing_lr(lr, scheduler.T_max, scheduler.eta_min)
    else:
        raise InputError(f"scheduler {cls.__module__}.{cls.__qualname__} has no port; "
                         f"accepted: {', '.join(ACCEPTED_SCHEDULERS)}")
    if getattr(scheduler, "optimizer", None) is not optimizer:
        raise InputError("the scheduler is attached to another optimizer; pass the scheduler "
                         "built on this optimizer")
    return [make(float(lr)) for lr in scheduler.base_lrs]


def _group_names(optimizer, module) -> list[tuple[str, ...]]:
    """The parameter names of each group, in the group's order; ``InputError`` for a
    parameter that is not one of ``module.named_parameters()``."""
    names = {id(p): n for n, p in module.named_parameters()}
    groups = []
    for index, group in enumerate(optimizer.param_groups):
        unknown = [tuple(p.shape) for p in group["params"] if id(p) not in names]
        if unknown:
            raise InputError(f"parameter group {index} holds parameters of shapes {unknown} "
                             f"that are not in module.named_parameters()")
        groups.append(tuple(names[id(p)] for p in group["params"]))
    return groups


def _read_groups(optimizer, module, scheduler=None) -> list[_Group]:
    """Every torch group as a :class:`_Group`, checked: refused options raise."""
    _check_module(module)
    family = _optimizer_family(optimizer)
    schedules = _schedules(optimizer, scheduler)
    trainable = {n for n, p in module.named_parameters() if p.requires_grad}
    groups = []
    for index, (group, all_names) in enumerate(zip(optimizer.param_groups,
                                                   _group_names(optimizer, module), strict=True)):
        names = (all_names, tuple(n for n in all_names if n in trainable))
        read = SGD_OPTIONS if family in ("sgd", "sgdw") else ADAM_OPTIONS
        _check_options(optimizer, index, group, read)
        lr = float(group["lr"]) if schedules is None else schedules[index]
        if family in ("sgd", "sgdw"):
            options = {"momentum": float(group["momentum"]),
                       "dampening": float(group["dampening"]),
                       "weight_decay": float(group["weight_decay"]),
                       "nesterov": bool(group["nesterov"]), "maximize": bool(group["maximize"])}
            groups.append(_Group(index, family, *names, lr, options))
            continue
        decoupled = bool(group.get("decoupled_weight_decay", False))
        options = {"betas": tuple(float(b) for b in group["betas"]), "eps": float(group["eps"]),
                   "weight_decay": float(group["weight_decay"]),
                   "maximize": bool(group["maximize"])}
        groups.append(_Group(index, "adamw" if decoupled else "adam", *names, lr, options))
    return groups


def _group_transformation(group: _Group) -> optax.GradientTransformation:
    """The :mod:`wd_jax.optim` builder of ``group``: its own lr, decay and momentum or betas."""
    options = dict(group.options)
    if group.family in ("sgd", "sgdw"):
        return jopt.BUILDERS[group.family](group.lr, **options)
    maximize = options.pop("maximize")
    tx = jopt.BUILDERS[group.family](group.lr, **options)
    return optax.chain(optax.scale(-1.0), tx) if maximize else tx


def _labels(module, groups: list[_Group]) -> dict[str, str]:
    """``{name: label}``; ``"frozen"`` for the parameters no group updates."""
    labels = {n: g.label for g in groups for n in g.names}
    return {n: labels.get(n, FROZEN) for n, _ in module.named_parameters()}


def param_labels(optimizer, module) -> dict[str, str]:
    """``{name: label}`` over ``module.named_parameters()``: ``"group_<i>"`` for torch's group
    ``i``, ``"frozen"`` for a parameter torch never updates (in no group, or
    ``requires_grad=False``: autograd never gives it a ``.grad``)."""
    return _labels(module, _read_groups(optimizer, module))


def optimizer_from_torch(optimizer, module, *, scheduler=None) -> optax.GradientTransformation:
    """The optax transformation that does ``optimizer.step()`` on the flat params dict.

    ``optax.partition({"group_<i>": tx_i, ["frozen": set_to_zero()]}, labels)`` where
    ``tx_i`` is built from group ``i``'s own ``lr``, ``weight_decay``, ``momentum``,
    ``dampening``, ``nesterov``, ``maximize``, ``betas`` and ``eps`` (see the module table).
    ``scheduler``: a ``StepLR`` or ``CosineAnnealingLR`` attached to ``optimizer`` and stepped
    once per ``optimizer.step()``; each group's lr becomes its schedule of optax's count.

    Raises ``InputError`` (a ``ValueError``) naming the class, option and group index for
    anything without an exact optax twin: another optimizer class, ``amsgrad``,
    ``capturable`` or ``differentiable`` set, another scheduler.
    """
    groups = _read_groups(optimizer, module, scheduler)
    labels = _labels(module, groups)
    transforms = {g.label: _group_transformation(g) for g in groups}
    if FROZEN in labels.values():
        transforms[FROZEN] = optax.set_to_zero()
    return optax.partition(transforms, labels)


# ---- the state -------------------------------------------------------------------------------

def _is_state(node) -> bool:
    return isinstance(node, _STATE_TYPES)


def _states(tree, kind) -> list:
    """The states of type ``kind`` inside ``tree`` (one group's optax state)."""
    return [s for s in jax.tree.leaves(tree, is_leaf=_is_state) if isinstance(s, kind)]


def _replace_states(tree, replace: Callable):
    """``tree`` with each state of :data:`_STATE_TYPES` swapped for ``replace(state)``."""
    return jax.tree.map(lambda s: replace(s) if _is_state(s) else s, tree, is_leaf=_is_state)


def _torch_states(optimizer, module, group: _Group) -> dict[str, dict]:
    """``{name: torch state dict}`` of the group's parameters (``{}`` before the first step)."""
    params = dict(module.named_parameters())
    return {n: optimizer.state.get(params[n], {}) for n in group.names}


def _common_step(group: _Group, steps: dict[str, int], what: str) -> int:
    """The one count of ``group`` (optax keeps one), or ``InputError`` listing the
    parameters' disagreeing ``steps``."""
    values = set(steps.values())
    if len(values) > 1:
        listed = ", ".join(f"{n}: {s}" for n, s in steps.items())
        raise InputError(
            f"parameter group {group.index}: torch's {what} differ between its parameters "
            f"({listed}); optax keeps one count per group, so this state cannot be ported "
            f"(a parameter that missed a step had no gradient then)"
        )
    return values.pop() if values else 0


def _adam_step(group: _Group, states: dict[str, dict]) -> int:
    steps = {}
    for name, state in states.items():
        step = float(state["step"]) if "step" in state else 0.0
        if step != int(step):
            raise InputError(f"parameter {name!r}: torch's step {step!r} is not an integer")
        steps[name] = int(step)
    return _common_step(group, steps, "Adam step counts")


def _filled(tree: dict, group: _Group, values: dict[str, np.ndarray | None], key: str) -> dict:
    """``tree`` (a dict like the params, ``MaskedNode`` outside the group) with the group's
    leaves replaced by ``values`` (cast to the leaf's dtype; zeros where a value is None)."""
    out = {}
    for name, leaf in tree.items():
        if name not in group.names:
            out[name] = leaf
            continue
        value = values.get(name)
        if value is None:
            out[name] = jnp.zeros_like(leaf)
            continue
        if value.shape != leaf.shape:
            raise InputError(f"torch's {key} of {name!r} has shape {value.shape}; the "
                             f"parameter has {leaf.shape}")
        out[name] = jnp.asarray(value, dtype=leaf.dtype)
    return out


def _check_tx(opt_state, groups: list[_Group]) -> None:
    labels = {g.label for g in groups}
    inner = getattr(opt_state, "inner_states", None)
    if not isinstance(inner, dict) or not labels <= set(inner) or set(inner) - labels - {FROZEN}:
        raise InputError(
            f"tx is not optimizer_from_torch(optimizer, module): its state has labels "
            f"{sorted(inner) if isinstance(inner, dict) else None}, the optimizer's groups "
            f"are {sorted(labels)}"
        )


def _check_scheduler(opt_state, scheduler) -> bool:
    """Whether the chain follows a schedule; ``InputError`` unless ``scheduler`` is given
    exactly when it does."""
    scheduled = bool(_states(opt_state, optax.ScaleByScheduleState))
    if scheduled and scheduler is None:
        raise InputError("tx follows a learning-rate schedule: pass scheduler= (the torch "
                         "scheduler it was converted from) so that its position is carried")
    if scheduler is not None and not scheduled:
        raise InputError("scheduler= is given but tx follows no schedule: convert with "
                         "optimizer_from_torch(optimizer, module, scheduler=scheduler)")
    return scheduled


def state_from_torch(optimizer, module, tx, params, *, scheduler=None):
    """The optax state of ``tx`` (:func:`optimizer_from_torch`'s) holding torch's state.

    Returns ``tx.init(params)`` with, per group: torch's ``momentum_buffer`` as the trace
    (zeros for a buffer torch has not created yet: its first step sets ``buf = g``, which is
    optax's ``mu*0 + g``); ``exp_avg``, ``exp_avg_sq`` and ``step`` as ``mu``, ``nu`` and
    ``count``; ``scheduler.last_epoch`` as the schedule's count. With dampening (the one
    hand-written transform) the count says only whether the buffers exist (1) or not (0).
    Arrays are cast to the params' dtypes. ``InputError`` for a group whose parameters
    disagree on their step (or on having a buffer, with dampening), or a scheduler stepped
    other than once per Adam step.
    """
    groups = _read_groups(optimizer, module, scheduler)
    state = tx.init(params)
    _check_tx(state, groups)
    schedule_count = int(scheduler.last_epoch) if _check_scheduler(state, scheduler) else None
    inner = dict(state.inner_states)
    for group in groups:
        inner[group.label] = _group_state_from_torch(
            inner[group.label], group, _torch_states(optimizer, module, group), schedule_count)
    return state._replace(inner_states=inner)


def _group_state_from_torch(group_state, group: _Group, states: dict[str, dict],
                            schedule_count: int | None):
    """One group's optax state (its ``MaskedState``) with torch's values put in."""
    buffers = {n: _to_numpy(s["momentum_buffer"]) if s.get("momentum_buffer") is not None
               else None for n, s in states.items()}
    step = None
    if group.family in ("adam", "adamw"):
        step = _adam_step(group, states)
        if schedule_count is not None and group.names and step != schedule_count:
            raise InputError(
                f"parameter group {group.index}: the scheduler has been stepped "
                f"{schedule_count} times and the optimizer {step} times; the port takes a "
                f"scheduler stepped once after every optimizer.step()"
            )

    def replace(s):
        if isinstance(s, optax.TraceState):
            return s._replace(trace=_filled(s.trace, group, buffers, "momentum_buffer"))
        if isinstance(s, jopt.TorchMomentumState):
            has = _common_step(group, {n: int(b is not None) for n, b in buffers.items()},
                               "momentum buffers (present: 1, not yet created: 0)")
            return s._replace(count=jnp.asarray(has, dtype=s.count.dtype),
                              momentum_buffer=_filled(s.momentum_buffer, group, buffers,
                                                      "momentum_buffer"))
        if isinstance(s, optax.ScaleByAdamState):
            read = {key: {n: _to_numpy(st[key]) if key in st else None
                          for n, st in states.items()} for key in ("exp_avg", "exp_avg_sq")}
            return s._replace(count=jnp.asarray(step, dtype=s.count.dtype),
                              mu=_filled(s.mu, group, read["exp_avg"], "exp_avg"),
                              nu=_filled(s.nu, group, read["exp_avg_sq"], "exp_avg_sq"))
        if isinstance(s, optax.ScaleByScheduleState):
            return s._replace(count=jnp.asarray(schedule_count, dtype=s.count.dtype))
        return s

    return _replace_states(group_state, replace)


def torch_named_state(opt_state, optimizer, module) -> dict[str, dict[str, np.ndarray]]:
    """``opt_state`` under torch's names: ``{param name: {torch key: numpy array}}``.

    Keys: ``momentum_buffer`` (SGD, SGDW with momentum), ``step`` (a float64 scalar),
    ``exp_avg`` and ``exp_avg_sq`` (Adam, AdamW), the parameter's shape and the state's
    dtype. A group that optax has not stepped yet gives ``{}`` (torch creates its state on
    the first step), except the trace of dampening-free momentum, whose zeros are written (a
    zero buffer continues exactly as torch's lazy one: ``mu*0 + g = g``). Frozen parameters
    have no entry.
    """
    groups = _read_groups(optimizer, module)
    _check_tx(opt_state, groups)
    named = {}
    for group in groups:
        named.update(_group_state_to_torch(opt_state.inner_states[group.label], group))
    return named


def _group_state_to_torch(group_state, group: _Group) -> dict[str, dict[str, np.ndarray]]:
    named = {n: {} for n in group.names}
    for s in _states(group_state, optax.TraceState):
        for n in group.names:
            named[n]["momentum_buffer"] = np.asarray(s.trace[n])
    for s in _states(group_state, jopt.TorchMomentumState):
        if int(s.count) > 0:
            for n in group.names:
                named[n]["momentum_buffer"] = np.asarray(s.momentum_buffer[n])
    for s in _states(group_state, optax.ScaleByAdamState):
        if int(s.count) > 0:
            for n in group.names:
                named[n].update(step=np.asarray(float(s.count)), exp_avg=np.asarray(s.mu[n]),
                                exp_avg_sq=np.asarray(s.nu[n]))
    return named


def _check_structure(opt_state, tx, module) -> None:
    """``InputError`` unless ``opt_state`` has the pytree structure of ``tx.init(params)``."""
    with jax.enable_x64(True):
        shapes = {n: jax.ShapeDtypeStruct(tuple(p.shape), _numpy_dtype(p.dtype))
                  for n, p in module.named_parameters()}
        expected = jax.tree.structure(jax.eval_shape(tx.init, shapes))
    if jax.tree.structure(opt_state) != expected:
        raise InputError("opt_state does not have the structure of tx.init(params) for this "
                         "module; pass the state of this tx")


def state_to_torch(opt_state, tx, optimizer, module, *, scheduler=None) -> None:
    """Write ``opt_state`` (of :func:`optimizer_from_torch`'s ``tx``) into ``optimizer`` with
    ``load_state_dict``, so that ``optimizer.step()`` continues from there.

    Per parameter of each group: the keys of :func:`torch_named_state`, as tensors of the
    parameter's dtype and device (``step`` as torch makes it: a float32 scalar, float64 when
    that is torch's default dtype). The group hyper-parameters stay the optimizer's. With a
    schedule, ``scheduler`` is set to optax's count (``last_epoch``) and each group's ``lr``
    to its schedule there. ``InputError`` (before anything is written) when ``opt_state`` is
    not a state of ``tx``, or a schedule's state comes without its scheduler.
    """
    torch = _torch()
    groups = _read_groups(optimizer, module, scheduler)
    _check_structure(opt_state, tx, module)
    schedule = _schedule_from_optax(opt_state, scheduler, groups)
    named = torch_named_state(opt_state, optimizer, module)
    params = dict(module.named_parameters())
    step_dtype = torch.float64 if torch.get_default_dtype() == torch.float64 else torch.float32
    state_dict = optimizer.state_dict()
    state, index = {}, 0
    for group in groups:
        for name in group.all_names:  # load_state_dict numbers every parameter of the groups
            entries = {}
            for key, value in named.get(name, {}).items():
                entries[key] = (torch.tensor(float(value), dtype=step_dtype) if key == "step"
                                else _from_numpy(value, params[name]))
            if entries:
                state[index] = entries
            index += 1
    state_dict["state"] = state
    optimizer.load_state_dict(state_dict)
    if schedule is not None:
        count, lrs = schedule
        for torch_group, lr in zip(optimizer.param_groups, lrs, strict=True):
            torch_group["lr"] = lr
        scheduler.load_state_dict({**scheduler.state_dict(), "last_epoch": count,
                                   "_last_lr": lrs})


def _schedule_from_optax(opt_state, scheduler, groups: list[_Group]):
    """``(count, [lr of each group at count])`` of a scheduled state (the schedules evaluated
    in float64), or ``None`` without a schedule."""
    if not _check_scheduler(opt_state, scheduler):
        return None
    counts = {int(s.count) for s in _states(opt_state, optax.ScaleByScheduleState)}
    if len(counts) > 1:
        raise InputError(f"the groups' schedule counts differ ({sorted(counts)}); torch's "
                         f"scheduler has one last_epoch")
    (count,) = counts
    with jax.enable_x64(True):
        return count, [float(g.lr(count)) for g in groups]


# ---- the usual weight-decay policy -------------------------------------------------------------

def _check_skip(skip, names: Iterable[str]) -> tuple[str, ...]:
    if isinstance(skip, str):
        raise InputTypeError(f"skip must be a collection of names, got the string {skip!r}")
    skip = tuple(skip)
    names = list(names)
    unknown = [s for s in skip if not any(_matches(n, s) for n in names)]
    if unknown:
        raise InputError(f"skip names {unknown} match no parameter; accepted: parameter or "
                         f"module names such as {names[:4]}")
    return skip


def _matches(name: str, skip: str) -> bool:
    """``skip`` names the parameter ``name`` or a module that holds it."""
    return name == skip or name.startswith(skip + ".")


def _decays(name: str, ndim: int, skip: tuple[str, ...]) -> bool:
    """The policy: decay a parameter unless it is 1-d or a scalar (biases, the weights of
    norm layers, scales), a ``bias``, or named (or held by a module named) in ``skip``."""
    if ndim <= 1 or name.rsplit(".", 1)[-1] == "bias":
        return False
    return not any(_matches(name, s) for s in skip)


def no_weight_decay_groups(module, weight_decay, *, skip=()) -> list[dict]:
    """torch parameter groups of the usual policy (timm's ``param_groups_weight_decay``).

    ``[{"params": decayed, "weight_decay": weight_decay}, {"params": others,
    "weight_decay": 0.0}]`` over ``module.named_parameters()``: no decay for biases, 1-d
    parameters (norm layers' weights and biases, scales) and parameters named in ``skip``
    (a parameter name, or a module name that covers its parameters, e.g. a norm layer with a
    multi-dimensional weight). An empty group is left out. :func:`decay_mask` is the same
    policy as an optax mask.
    """
    _check_module(module)
    weight_decay = check_number("weight_decay", weight_decay, NONNEGATIVE)
    named = list(module.named_parameters())
    skip = _check_skip(skip, (n for n, _ in named))
    decayed = [p for n, p in named if _decays(n, p.ndim, skip)]
    others = [p for n, p in named if not _decays(n, p.ndim, skip)]
    groups = [{"params": decayed, "weight_decay": weight_decay},
              {"params": others, "weight_decay": 0.0}]
    return [g for g in groups if g["params"]]


def decay_mask(params, *, skip=()) -> dict[str, bool]:
    """The optax weight-decay mask of :func:`no_weight_decay_groups`'s policy over the flat
    params dict: ``{name: True}`` where the parameter is decayed (``ndim >= 2``, not a
    ``bias``, not in ``skip``). Use as ``mask=`` of ``optax.add_decayed_weights``,
    ``optax.adamw`` or the :mod:`wd_jax.optim` builders."""
    if not isinstance(params, dict):
        raise InputTypeError(f"params must be a dict {{name: array}}, got {type(params).__name__}")
    skip = _check_skip(skip, params)
    return {n: _decays(n, np.ndim(v), skip) for n, v in params.items()}
