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
        tx = port.optimizer_from_torch(optimizer, model, scheduler=scheduler,
                                       horizon=steps, clip_grad_norm=1.0)
        opt_state = port.state_from_torch(optimizer, model, tx, params, scheduler=scheduler)
        ...                                          # optax steps
        port.params_to_torch(params, model)
        port.state_to_torch(opt_state, tx, optimizer, model, scheduler=scheduler)

=====================================  ===================================================
torch (per parameter group)            optax (per label ``group_<i>``)
=====================================  ===================================================
any ``torch.optim`` optimizer but      its twin in :mod:`wd_jax.optim` (``torch_sgd``,
``LBFGS`` and ``SparseAdam``;          ``torch_adam``, ``torch_rmsprop``...: one module
``wd_torch.optim.SGDW``                per torch file, listed in ``wd_jax.optim.PORTS``),
                                       built from the group's own options
``AdamW(...)``, ``Adam(...,            decoupled decay with the group's value (torch's
decoupled_weight_decay=True)``         default 1e-2, never optax's 1e-4)
``maximize=True``                      ``chain(scale(-1), ...)``
any ``torch.optim.lr_scheduler``       the group's lr (and cycled momentum or beta1) as a
scheduler but ``ReduceLROnPlateau``,   :class:`wd_jax.optim.lr_scheduler.TorchSchedule`:
or a list of them                      torch's own recursion from the group's current lr
``clip_grad_norm_`` before each step   ``chain(torch_clip_grad_norm(max_norm), partition)``
``foreach``, ``fused``                 implementation choices: accepted
``capturable``, ``differentiable``     refused (:class:`wd_core.errors.InputError`)
(True), an option without a twin
=====================================  ===================================================

State (torch key per parameter -> optax field of the group's state): each optimizer module
states its own mapping (``momentum_buffer`` -> ``TraceState.trace``; ``exp_avg`` /
``exp_avg_sq`` / ``step`` -> ``ScaleByAdamState.mu`` / ``.nu`` / ``.count``; ...); the group's
``lr`` (and cycled momentum) and the scheduler's position (``last_epoch``, ``_last_lr``,
``T_cur``/``T_i``, the children of ``SequentialLR`` and ``ChainedScheduler``) ->
:class:`wd_jax.optim.lr_scheduler.ScheduleState`.
torch keeps a step per parameter and optax one count per group: a group whose parameters
disagree is refused.

Several optimizers over one module (``[muon, adamw]``) port as one partition, their groups
numbered in order. Refused, with the reason: a parameter the optimizer holds twice (a tied
weight listed twice, or one parameter in two groups: torch steps it once per appearance),
complex parameters,
hyper-parameters held as tensors or numpy float32 (torch computes with them in their dtype),
a scheduler built before ``add_param_group``. A parameter with ``requires_grad=False`` keeps
its torch state through a round trip.

The port assumes that every parameter of a group gets a gradient at every step (a dense
model): torch skips a parameter whose ``.grad`` is ``None``, optax updates every leaf of
its group. PyTorch is imported inside the functions, so ``import wd_jax.port`` works
without it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace

import jax
import jax.numpy as jnp
import numpy as np
import optax

from wd_core.errors import InputError, InputTypeError, framework_error
from wd_core.validation import NONNEGATIVE, check_number
from wd_jax import optim as jopt
from wd_jax.optim.lr_scheduler import ScheduleState, TorchSchedule, TorchScheduler
from wd_jax.optim.registry import TorchOptimizer, replace_states, states_of

FROZEN = "frozen"
ACCEPTED_OPTIMIZERS = tuple(jopt.PORTS)


def _torch():
    """``torch``, imported on first use; ``MissingFrameworkError`` with the install line when it
    is absent, ``BrokenFrameworkError`` with the cause when its import fails."""
    try:
        import torch
    except Exception as err:
        raise framework_error("wd_jax.port", "PyTorch", "torch", err) from err
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
    return _jax_arrays(dict(module.named_parameters()), "parameter")


def _jax_arrays(tensors: dict, entry: str) -> dict[str, jax.Array]:
    """``{name: jax.Array}`` of ``tensors`` (``{name: tensor}``), shape and dtype kept;
    ``InputError`` naming the ``entry`` (``"parameter"``) that JAX would cast (a float64 or
    int64 tensor with x64 mode off), rather than a silent cast."""
    arrays = {}
    for name, tensor in tensors.items():
        array = _to_numpy(tensor)
        arrays[name] = jnp.asarray(array)
        if arrays[name].dtype != array.dtype:
            raise InputError(
                f"{entry} {name!r} is {array.dtype} but JAX made it {arrays[name].dtype} "
                f"(x64 mode is off); call inside `with jax.enable_x64(True):`"
            )
    return arrays


def params_to_torch(params, module) -> None:
    """Copy ``params`` (``{name: array}`` as :func:`params_from_torch` returns) into
    ``module``'s parameters in place.

    The names must be exactly ``module.named_parameters()``'s, and each array must have its
    parameter's shape and dtype; ``InputError`` naming the mismatch otherwise (nothing is
    copied then).
    """
    torch = _check_module(module)
    targets = dict(module.named_parameters())
    arrays = _checked_arrays(params, targets, argument="params", listing="named_parameters()",
                            entry="parameter")
    with torch.no_grad():
        for name, param in targets.items():
            param.copy_(_from_numpy(arrays[name], param))


def _checked_arrays(given, targets: dict, *, argument: str, listing: str,
                   entry: str) -> dict[str, np.ndarray]:
    """``{name: numpy array}`` of ``given`` for each of ``targets`` (``{name: tensor}``),
    checked before anything is copied: a dict with exactly the targets' names, each array of
    its tensor's shape and dtype. ``InputTypeError`` / ``InputError`` naming the mismatch
    otherwise; ``argument`` (``"params"``), ``listing`` (``"named_parameters()"``) and
    ``entry`` (``"parameter"``) say what the message names."""
    if not isinstance(given, dict):
        raise InputTypeError(f"{argument} must be a dict {{name: array}}, got "
                             f"{type(given).__name__}")
    missing = [n for n in targets if n not in given]
    extra = [n for n in given if n not in targets]
    if missing or extra:
        raise InputError(f"{argument} do not match the module's {listing}: missing {missing}, "
                         f"not in the module {extra}")
    arrays = {}
    for name, tensor in targets.items():
        array = np.asarray(given[name])
        expected = _numpy_dtype(tensor.dtype)
        if array.shape != tuple(tensor.shape):
            raise InputError(f"{argument}[{name!r}] has shape {array.shape}; the module's "
                             f"{entry} has {tuple(tensor.shape)}")
        if array.dtype != expected:
            raise InputError(f"{argument}[{name!r}] has dtype {array.dtype}; the module's "
                             f"{entry} has {expected}")
        arrays[name] = array
    return arrays


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
    """One torch parameter group, read: how its optimizer ports, its builder options and its
    parameter names (``names``: those it updates; ``all_names`` also those that require no
    gradient)."""

    index: int  # over all the optimizers' groups, in order
    optimizer: TorchOptimizer
    all_names: tuple[str, ...]
    names: tuple[str, ...]
    lr: object  # a float, or a TorchSchedule when a scheduler is attached
    options: dict = field(default_factory=dict)
    owner: int = 0  # which of the optimizers holds the group
    local_index: int = 0  # the group's index in its optimizer's param_groups
    defaults: dict = field(default_factory=dict, compare=False)  # the optimizer's defaults

    @property
    def label(self) -> str:
        return group_label(self.index)


def _is_class(cls, torch_class: str) -> bool:
    """``cls`` is the class ``torch_class`` names (``torch.optim.SGD`` is defined in
    ``torch.optim.sgd``), not a subclass or a namesake."""
    module, _, name = torch_class.rpartition(".")
    return cls.__qualname__ == name and (cls.__module__ == module
                                         or cls.__module__.startswith(module + "."))


def _optimizer_port(optimizer) -> TorchOptimizer:
    """The registry entry of ``optimizer``'s class; ``InputError`` for a class without one."""
    cls = type(optimizer)
    for port in jopt.PORTS.values():
        if _is_class(cls, port.torch_class):
            return port
    if cls.__module__.startswith("torch.optim") and cls.__qualname__ in jopt.REFUSED:
        raise InputError(f"optimizer {cls.__qualname__} has no port: "
                         f"{jopt.REFUSED[cls.__qualname__]}")
    raise InputError(f"optimizer {cls.__module__}.{cls.__qualname__} has no port; accepted: "
                     f"{', '.join(ACCEPTED_OPTIMIZERS)} (the class itself, not a subclass)")


def _check_options(optimizer, port: TorchOptimizer, index: int, group: dict) -> None:
    """Refuse an option of torch's (a key of ``optimizer.defaults``) that the port would drop."""
    for key in optimizer.defaults:
        value = group.get(key)
        if key in port.options or key in port.implementation:
            continue
        if key in port.accepted:
            if value != port.accepted[key]:
                raise InputError(
                    f"parameter group {index}: {key}={value!r} has no exact optax twin; "
                    f"accepted: {key}={port.accepted[key]!r}"
                )
            continue
        raise InputError(
            f"parameter group {index}: option {key}={value!r} of "
            f"{type(optimizer).__name__} has no port; ported options: "
            f"{', '.join(port.options + port.implementation)}"
        )


def _real(index: int, key: str, value) -> float:
    """A group's hyper-parameter as a Python float; ``InputError`` for a tensor or a numpy
    float narrower than float64: torch does its scalar arithmetic in that dtype (``lr /
    bias_correction`` in float32), the port in float64, so the two would part."""
    torch = _torch()
    if isinstance(value, torch.Tensor) or (isinstance(value, np.floating)
                                           and value.dtype != np.float64):
        kind = (f"a {value.dtype} tensor" if isinstance(value, torch.Tensor)
                else f"a numpy {value.dtype}")
        raise InputError(
            f"parameter group {index}: {key}={value!r} is {kind}; torch computes with it in "
            f"that dtype and the port in float64, so the steps would differ; accepted: a "
            f"Python float (e.g. {key}={float(value)!r})")
    return float(value)


def _group_names(optimizers: list, module) -> list[tuple[str, ...]]:
    """The parameter names of each group of each optimizer, in order; ``InputError`` for a
    parameter that is not one of ``module.named_parameters()`` or that the optimizers hold
    twice."""
    names = {id(p): n for n, p in module.named_parameters()}
    seen: dict[int, int] = {}
    groups = []
    torch_groups = [g for optimizer in optimizers for g in optimizer.param_groups]
    for index, group in enumerate(torch_groups):
        unknown = [tuple(p.shape) for p in group["params"] if id(p) not in names]
        if unknown:
            raise InputError(f"parameter group {index} holds parameters of shapes {unknown} "
                             f"that are not in module.named_parameters()")
        for p in group["params"]:
            if id(p) in seen:
                raise InputError(
                    f"parameter {names[id(p)]!r} is in the optimizer twice (groups "
                    f"{seen[id(p)]} and {index}): torch steps it once per appearance (a tied "
                    f"weight listed twice), optax updates a leaf once; list each parameter "
                    f"once")
            seen[id(p)] = index
        groups.append(tuple(names[id(p)] for p in group["params"]))
    return groups


def _check_real_parameters(module, index: int, names: tuple[str, ...]) -> None:
    params = dict(module.named_parameters())
    complex_names = [n for n in names if params[n].is_complex()]
    if complex_names:
        raise InputError(
            f"parameter group {index}: parameters {complex_names} are complex; torch's "
            f"optimizers step them as view_as_real (the Adam family keeps a real second "
            f"moment per real and imaginary part), which the port does not; accepted: real "
            f"floating-point parameters")


def _option(index: int, key: str, value):
    """A group option as the builder takes it: bools, strings and None as they are, numbers
    as Python floats (:func:`_real`), tuples element by element."""
    if isinstance(value, bool | str) or value is None:
        return value
    if isinstance(value, tuple | list):
        return tuple(_option(index, f"{key}[{i}]", v) for i, v in enumerate(value))
    return _real(index, key, value)


def _optimizer_list(optimizer) -> list:
    """The optimizers of ``optimizer=``: one, or a list over one module (Muon with AdamW)."""
    torch = _torch()
    optimizers = list(optimizer) if isinstance(optimizer, list | tuple) else [optimizer]
    if not optimizers or not all(isinstance(o, torch.optim.Optimizer) for o in optimizers):
        raise InputTypeError(f"optimizer must be a torch.optim.Optimizer or a non-empty list "
                             f"of them, got {optimizer!r}")
    return optimizers


def _read_groups(optimizer, module) -> list[_Group]:
    """Every torch group (of every optimizer, numbered in order) as a :class:`_Group` with its
    constant lr, checked: refused options raise."""
    _check_module(module)
    optimizers = _optimizer_list(optimizer)
    trainable = {n for n, p in module.named_parameters() if p.requires_grad}
    names = iter(_group_names(optimizers, module))
    groups = []
    for owner, torch_optimizer in enumerate(optimizers):
        port = _optimizer_port(torch_optimizer)
        for local_index, group in enumerate(torch_optimizer.param_groups):
            index, all_names = len(groups), next(names)
            _check_real_parameters(module, index, all_names)
            _check_options(torch_optimizer, port, index, group)
            options = {key: _option(index, key, group[key]) for key in port.options
                       if key in group}
            lr = options.pop("lr")
            trained = tuple(n for n in all_names if n in trainable)
            groups.append(_Group(index, port, all_names, trained, lr, options, owner,
                                 local_index, dict(torch_optimizer.defaults)))
    return groups


def _scheduler_list(scheduler) -> list | None:
    """``None``, or the schedulers of one optimizer (one, or a list stepped in order)."""
    if scheduler is None:
        return None
    schedulers = list(scheduler) if isinstance(scheduler, list | tuple) else [scheduler]
    if not schedulers:
        raise InputError("scheduler= is an empty list; pass None or the schedulers attached "
                         "to the optimizer")
    return schedulers


def _scheduler_lists(scheduler, optimizer) -> list[list | None]:
    """The schedulers of each optimizer: ``scheduler=`` as for one optimizer, or with a list
    of optimizers a list with one entry per optimizer (a scheduler, a list of them, or
    ``None``)."""
    optimizers = _optimizer_list(optimizer)
    if len(optimizers) == 1:
        return [_scheduler_list(scheduler)]
    if scheduler is None:
        return [None] * len(optimizers)
    if not isinstance(scheduler, list | tuple) or len(scheduler) != len(optimizers):
        raise InputError(f"with {len(optimizers)} optimizers, scheduler= is a list with one "
                         f"entry per optimizer (a scheduler, a list of them, or None), got "
                         f"{scheduler!r}")
    return [_scheduler_list(s) for s in scheduler]


def _scheduled(groups: list[_Group], programs: list, optimizers: list) -> list[_Group]:
    """``groups`` with each lr (and a cycled momentum or beta1) a :class:`TorchSchedule` of
    its optimizer's scheduler program (groups of an optimizer without one stay as they are)."""
    out = []
    for group in groups:
        program = programs[group.owner]
        if program is None:
            out.append(group)
            continue
        initial = program.state(optimizers[group.owner], group.local_index)
        options = dict(group.options)
        if program.cycles_momentum:
            cycled = group.optimizer.cycled
            if cycled is None or cycled not in options:
                raise InputError(f"{program.names} cycles the momentum, which "
                                 f"{group.optimizer.name} does not have")
            momentum = TorchSchedule(program, group.local_index, initial, value="momentum")
            options[cycled] = ((momentum, *options[cycled][1:]) if cycled == "betas"
                               else momentum)
        out.append(replace(group, lr=TorchSchedule(program, group.local_index, initial),
                           options=options))
    return out


def _group_transformation(group: _Group) -> optax.GradientTransformation:
    """The group's own optax chain: its optimizer's builder with its lr and options."""
    return group.optimizer.build(lr=group.lr, **group.options)


def _labels(module, groups: list[_Group]) -> dict[str, str]:
    """``{name: label}``; ``"frozen"`` for the parameters no group updates."""
    labels = {n: g.label for g in groups for n in g.names}
    return {n: labels.get(n, FROZEN) for n, _ in module.named_parameters()}


def param_labels(optimizer, module) -> dict[str, str]:
    """``{name: label}`` over ``module.named_parameters()``: ``"group_<i>"`` for torch's group
    ``i``, ``"frozen"`` for a parameter torch never updates (in no group, or
    ``requires_grad=False``: autograd never gives it a ``.grad``)."""
    return _labels(module, _read_groups(optimizer, module))


class PortedTransformation(optax.GradientTransformationExtraArgs):
    """What :func:`optimizer_from_torch` returns: an optax transformation (``init``,
    ``update``) that also keeps ``schedulers``, the torch scheduler program each optimizer
    follows (or ``None``), for :func:`state_from_torch` and :func:`state_to_torch`."""

    schedulers: tuple = ()


def optimizer_from_torch(optimizer, module, *, scheduler=None, horizon=None,
                         clip_grad_norm=None) -> PortedTransformation:
    """The optax transformation that does ``optimizer.step()`` on the flat params dict.

    ``optax.partition({"group_<i>": tx_i, ["frozen": set_to_zero()]}, labels)`` where
    ``tx_i`` is built from group ``i``'s current ``lr``, ``weight_decay``, ``momentum``,
    ``dampening``, ``nesterov``, ``maximize``, ``betas`` and ``eps`` (see the module table).
    ``optimizer`` may be a list of optimizers over one module (``Muon`` for the matrices,
    ``AdamW`` for the rest, as torch's documentation pairs them): their groups are numbered
    in order in one partition, and ``scheduler`` is then a list with one entry per
    optimizer (a scheduler, a list of them, or ``None``). The state functions take the same
    list.

    ``scheduler``: a ``torch.optim.lr_scheduler`` scheduler attached to ``optimizer`` (or a
    list of them, stepped in that order), stepped once after every ``optimizer.step()``; each
    group's lr (and the momentum or beta1 that ``OneCycleLR`` and ``CyclicLR`` cycle) follows
    torch's own recursion from the group's current values (:mod:`wd_jax.optim.lr_scheduler`).
    ``horizon``: the optimizer steps over which a Python function (``LambdaLR``,
    ``MultiplicativeLR``, ``CyclicLR``'s ``scale_fn``) is recorded; required for those.
    ``clip_grad_norm``: ``torch.nn.utils.clip_grad_norm_(module.parameters(), max_norm)``
    before every step, i.e. ``chain(torch_clip_grad_norm(max_norm), partition)``: the global
    norm of the raw gradients of every parameter that requires one, before any decay.

    Raises ``InputError`` (a ``ValueError``) naming the class, option and group index for
    anything without an exact optax twin: another optimizer class (``LBFGS``,
    ``SparseAdam``, a subclass), ``capturable`` or ``differentiable`` set,
    ``ReduceLROnPlateau``, a parameter held twice, complex parameters, float32 or tensor
    hyper-parameters.
    """
    groups = _read_groups(optimizer, module)
    optimizers = _optimizer_list(optimizer)
    programs = [None if schedulers is None else TorchScheduler(schedulers, o, horizon)
                for o, schedulers in zip(optimizers, _scheduler_lists(scheduler, optimizer),
                                         strict=True)]
    if any(programs):
        groups = _scheduled(groups, programs, optimizers)
    elif horizon is not None:
        raise InputError("horizon= is given without scheduler=; it is the span over which a "
                         "scheduler's Python function is recorded")
    labels = _labels(module, groups)
    transforms = {g.label: _group_transformation(g) for g in groups}
    if FROZEN in labels.values():
        transforms[FROZEN] = optax.set_to_zero()
    tx = optax.partition(transforms, labels)
    if clip_grad_norm is not None:
        requires_grad = {n: p.requires_grad for n, p in module.named_parameters()}
        tx = optax.chain(jopt.torch_clip_grad_norm(clip_grad_norm, mask=requires_grad), tx)
    ported = PortedTransformation(tx.init, tx.update)
    ported.schedulers = tuple(programs)
    return ported


# ---- the state -------------------------------------------------------------------------------

def _states(tree, kind) -> list:
    """The states of type ``kind`` inside ``tree`` (one group's optax state)."""
    return states_of(tree, kind)


def _partition_state(opt_state):
    """The ``PartitionState`` of a port's state (the second of two with clipping)."""
    if hasattr(opt_state, "inner_states"):
        return opt_state
    if isinstance(opt_state, tuple) and len(opt_state) == 2 and hasattr(opt_state[1],
                                                                         "inner_states"):
        return opt_state[1]
    return None


def _with_partition(opt_state, partition):
    """``opt_state`` with its ``PartitionState`` replaced by ``partition``."""
    return partition if hasattr(opt_state, "inner_states") else (opt_state[0], partition)


def _torch_states(optimizer, module, group: _Group) -> dict[str, dict]:
    """``{name: torch state dict}`` of the group's parameters (``{}`` before the first step)."""
    params = dict(module.named_parameters())
    torch_optimizer = _optimizer_list(optimizer)[group.owner]
    return {n: torch_optimizer.state.get(params[n], {}) for n in group.names}


def _check_tx(opt_state, groups: list[_Group]):
    """The ``PartitionState`` of ``opt_state``, checked to hold the optimizer's groups."""
    labels = {g.label for g in groups}
    partition = _partition_state(opt_state)
    inner = getattr(partition, "inner_states", None)
    if not isinstance(inner, dict) or not labels <= set(inner) or set(inner) - labels - {FROZEN}:
        raise InputError(
            f"tx is not optimizer_from_torch(optimizer, module): its state has labels "
            f"{sorted(inner) if isinstance(inner, dict) else None}, the optimizer's groups "
            f"are {sorted(labels)}"
        )
    return partition


def _programs(tx, opt_state, scheduler, optimizer) -> list:
    """The scheduler program of each optimizer of ``tx`` (or ``None``), checked against
    ``scheduler`` (given exactly when the state follows a schedule, of the same classes)."""
    scheduled = bool(_states(opt_state, ScheduleState))
    lists = _scheduler_lists(scheduler, optimizer)
    given = any(s is not None for s in lists)
    if scheduled and not given:
        raise InputError("tx follows a learning-rate scheduler: pass scheduler= (the torch "
                         "scheduler it was converted from) so that its position is carried")
    if given and not scheduled:
        raise InputError("scheduler= is given but tx follows no scheduler: convert with "
                         "optimizer_from_torch(optimizer, module, scheduler=scheduler)")
    programs = list(getattr(tx, "schedulers", ()))
    if given and len(programs) != len(lists):
        raise InputError("tx is not optimizer_from_torch(..., scheduler=...)'s transformation")
    for program, schedulers, torch_optimizer in zip(programs, lists,
                                                    _optimizer_list(optimizer), strict=False):
        if (program is None) != (schedulers is None):
            raise InputError("scheduler= does not match the schedulers tx was converted with")
        if program is not None:
            program.check_same(schedulers, torch_optimizer)
    return programs if given else [None] * len(lists)


def state_from_torch(optimizer, module, tx, params, *, scheduler=None):
    """The optax state of ``tx`` (:func:`optimizer_from_torch`'s) holding torch's state.

    Returns ``tx.init(params)`` with, per group: torch's ``momentum_buffer`` as the trace
    (zeros for a buffer torch has not created yet: its first step sets ``buf = g``, which is
    optax's ``mu*0 + g``); ``exp_avg``, ``exp_avg_sq`` and ``step`` as ``mu``, ``nu`` and
    ``count``; the scheduler's position and the group's current lr (and cycled momentum) as
    the schedule's state. With dampening (the one hand-written transform) the count says only
    whether the buffers exist (1) or not (0). Arrays are cast to the params' dtypes.
    ``InputError`` for a group whose parameters disagree on their step (or on having a
    buffer, with dampening), or a schedule that gives no lr for the next step (a recorded
    function's horizon, or ``OneCycleLR``'s ``total_steps``, reached).
    """
    groups = _read_groups(optimizer, module)
    state = tx.init(params)
    partition = _check_tx(state, groups)
    programs = _programs(tx, state, scheduler, optimizer)
    lists = _scheduler_lists(scheduler, optimizer)
    optimizers = _optimizer_list(optimizer)
    inner = dict(partition.inner_states)
    for group in groups:
        schedule, program = None, programs[group.owner]
        if program is not None:
            schedule = program.state(optimizers[group.owner], group.local_index,
                                     lists[group.owner])
            program.check_next(schedule, group.local_index)
        inner[group.label] = _group_state_from_torch(
            inner[group.label], group, _torch_states(optimizer, module, group), schedule)
    return _with_partition(state, partition._replace(inner_states=inner))


def _group_state_from_torch(group_state, group: _Group, states: dict[str, dict],
                            schedule: ScheduleState | None):
    """One group's optax state (its ``MaskedState``) with torch's values put in: the
    optimizer's state by its registry entry, the schedule's from ``schedule``."""
    arrays = {n: {k: _to_numpy(v) for k, v in s.items() if v is not None}
              for n, s in states.items()}
    group_state = group.optimizer.state_from_torch(group_state, group, arrays)
    if schedule is None:
        return group_state
    return replace_states(group_state, (ScheduleState,), lambda s: jax.tree.map(
        lambda new, old: jnp.asarray(new, dtype=old.dtype), schedule, s))


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
    partition = _check_tx(opt_state, groups)
    named = {}
    for group in groups:
        named.update(_group_state_to_torch(partition.inner_states[group.label], group))
    return named


def _group_state_to_torch(group_state, group: _Group) -> dict[str, dict[str, np.ndarray]]:
    return group.optimizer.state_to_torch(group_state, group)


def group_lrs(opt_state, optimizer, module) -> list[float] | None:
    """The lr of each group as ``opt_state`` holds it (the one its next step will use, as
    torch's ``group["lr"]``), or ``None`` when the state follows no scheduler (the lrs are
    then the constants of ``tx``)."""
    groups = _read_groups(optimizer, module)
    partition = _check_tx(opt_state, groups)
    states = [_states(partition.inner_states[g.label], ScheduleState) for g in groups]
    if not any(states):
        return None
    return [float(s[0].lr) if s else float(g.lr) for g, s in zip(groups, states, strict=True)]


def _check_structure(opt_state, tx, module) -> None:
    """``InputError`` unless ``opt_state`` has the pytree structure of ``tx.init(params)``."""
    with jax.enable_x64(True):
        shapes = {n: jax.ShapeDtypeStruct(tuple(p.shape), _numpy_dtype(p.dtype))
                  for n, p in module.named_parameters()}
        expected = jax.tree.structure(jax.eval_shape(tx.init, shapes))
    if jax.tree.structure(opt_state) != expected:
        raise InputError("opt_state does not have the structure of tx.init(params) for this "
                         "module; pass the state of this tx")


def _state_tensor(value: np.ndarray, param):
    """``value`` as a tensor laid out as ``param`` (its dtype, device and strides: torch
    makes its state with ``zeros_like(param)``, and its fused kernels rely on that); a state
    of another shape (Adafactor's factors ``row_var`` (..., m, 1) and ``col_var`` (..., 1,
    n)) keeps its own, contiguous, as torch makes it (``grad.new_zeros(shape)``)."""
    torch = _torch()
    if tuple(np.shape(value)) != tuple(param.shape):
        return _from_numpy(np.asarray(value), param)
    tensor = torch.empty_like(param, memory_format=torch.preserve_format)
    with torch.no_grad():
        tensor.copy_(_from_numpy(value, param))
    return tensor


def _scalar_tensor(value, dtype):
    """A per-parameter scalar of torch's state (``step``, NAdam's ``mu_product``) as torch
    makes it: a 0-d tensor of its scalar dtype."""
    return _torch().tensor(float(value), dtype=dtype)


def _keep_scalar_dtypes(optimizer, dtype) -> None:
    """``load_state_dict`` casts every state entry but ``step`` to its parameter's dtype; a
    per-parameter scalar that torch keeps in its scalar dtype (NAdam's ``mu_product``) is put
    back in it, so that torch continues as the uninterrupted run would."""
    for group in optimizer.param_groups:
        for p in group["params"]:
            state = optimizer.state.get(p, {})
            for key, value in state.items():
                if (key != "step" and hasattr(value, "ndim") and value.ndim == 0 < p.ndim
                        and value.dtype != dtype):
                    state[key] = value.to(dtype)


def state_to_torch(opt_state, tx, optimizer, module, *, scheduler=None) -> None:
    """Write ``opt_state`` (of :func:`optimizer_from_torch`'s ``tx``) into ``optimizer`` with
    ``load_state_dict``, so that ``optimizer.step()`` continues from there.

    Per parameter of each group: the keys of :func:`torch_named_state`, as tensors of the
    parameter's dtype, device and strides (``step`` as torch makes it: a float32 scalar,
    float64 when that is torch's default dtype). A parameter that requires no gradient keeps
    the torch state it has (the port carries it frozen). The group hyper-parameters stay the
    optimizer's, except what a scheduler sets: with ``scheduler``, its position (and its
    children's) and each group's ``lr`` (and cycled momentum or beta1) come from the state.
    ``InputError`` (before anything is written) when ``opt_state`` is not a state of ``tx``,
    or a schedule's state comes without its scheduler.
    """
    torch = _torch()
    groups = _read_groups(optimizer, module)
    _check_structure(opt_state, tx, module)
    partition = _check_tx(opt_state, groups)
    programs = _programs(tx, opt_state, scheduler, optimizer)
    named = torch_named_state(opt_state, optimizer, module)
    params = dict(module.named_parameters())
    step_dtype = torch.float64 if torch.get_default_dtype() == torch.float64 else torch.float32
    state_dicts = []
    for owner, torch_optimizer in enumerate(_optimizer_list(optimizer)):
        state_dict = torch_optimizer.state_dict()
        state, index = {}, 0
        for group in (g for g in groups if g.owner == owner):
            for name in group.all_names:  # load_state_dict numbers every parameter in order
                if name in group.names:
                    entries = {key: (_scalar_tensor(value, step_dtype)
                                     if key == "step" or np.ndim(value) < params[name].ndim
                                     else _state_tensor(value, params[name]))
                               for key, value in named.get(name, {}).items()}
                else:
                    entries = dict(torch_optimizer.state.get(params[name], {}))
                if entries:
                    state[index] = entries
                index += 1
        state_dict["state"] = state
        state_dicts.append(state_dict)
    for torch_optimizer, state_dict in zip(_optimizer_list(optimizer), state_dicts,
                                           strict=True):
        torch_optimizer.load_state_dict(state_dict)
        _keep_scalar_dtypes(torch_optimizer, step_dtype)
    lists = _scheduler_lists(scheduler, optimizer)
    for owner, (torch_optimizer, program) in enumerate(zip(_optimizer_list(optimizer), programs,
                                                           strict=True)):
        if program is not None:
            schedules = [_states(partition.inner_states[g.label], ScheduleState)[0]
                         for g in groups if g.owner == owner]
            program.load(torch_optimizer, schedules, lists[owner])


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
