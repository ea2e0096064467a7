"""``torch.optim.lr_scheduler`` as optax stateful schedules: torch's own ``step()``, in JAX.

A torch scheduler is a small program over the optimizer's ``param_groups``: each
``scheduler.step()`` (after ``optimizer.step()``) advances its position (``last_epoch``; warm
restarts' ``T_cur`` and ``T_i``; ``SequentialLR``'s and ``ChainedScheduler``'s children) and
sets every group's ``lr`` (and, for ``OneCycleLR`` and ``CyclicLR`` with ``cycle_momentum``,
its ``momentum`` or ``betas[0]``). Most of torch's schedulers are *chainable*: the next lr is
computed from the group's current lr (``ExponentialLR``: ``lr * gamma``), not from
``base_lrs``, so an lr changed by hand, a second scheduler or a resumed optimizer changes
every later value. The port therefore runs torch's own recursion, ``get_lr()`` line by line
in float64 (``jnp`` in place of ``math``), inside the optax state:

=================================  ===========================================================
torch                              one ``scheduler.step()`` (``t``: the new ``last_epoch``)
=================================  ===========================================================
``StepLR(step_size, gamma)``       ``lr * gamma`` when ``t % step_size == 0``
``MultiStepLR(milestones, gamma)`` ``lr * gamma**k`` when ``t`` is a milestone ``k`` times
``ConstantLR(factor, total)``      ``lr * (1/factor)`` at ``t == total``
``LinearLR(start, end, total)``    ``lr * (1 + (end-start) / (total*start + (t-1)*(end-start)))``
                                   up to ``t == total``
``ExponentialLR(gamma)``           ``lr * gamma``
``PolynomialLR(total, power)``     ``lr * ((1 - t/total) / (1 - (t-1)/total))**power`` up to
                                   ``total``
``CosineAnnealingLR(T_max,         ``eta + (lr - eta) * (1 + cos(pi t/T_max)) / (1 + cos(pi
eta_min)``                         (t-1)/T_max))``; at ``t = T_max + 1 (mod 2 T_max)``
                                   ``lr + (base - eta)(1 - cos(pi/T_max))/2``: past ``T_max``
                                   the lr rises again, as torch's does
``CosineAnnealingWarmRestarts``    ``eta + (base - eta)(1 + cos(pi T_cur/T_i))/2``; ``T_cur``
                                   and ``T_i`` (times ``T_mult`` at each restart) are state
``OneCycleLR``, ``CyclicLR``       torch's phase / cycle formulas of ``t``, the momentum (or
                                   beta1) too
``LambdaLR(f)``                    ``base * f(t)``; ``f`` recorded over a horizon
``MultiplicativeLR(f)``            ``lr * f(t)``; ``f`` recorded over a horizon
``SequentialLR``                   the child of ``t``; at a milestone ``child._update_lr(0)``
``ChainedScheduler``               every child, in order, on the same lr
=================================  ===========================================================

A Python function (``LambdaLR``, ``MultiplicativeLR``, ``CyclicLR``'s ``scale_fn``) cannot
run inside a compiled optax update: it is called here, at conversion, for every ``t`` from 0
to the scheduler's ``last_epoch + horizon`` (``horizon``: the optimizer steps the user will
take in optax), and read from that table. Past the table the value is NaN: an optax run
that outlives its horizon turns its parameters to NaN instead of silently using another lr.
``OneCycleLR`` past ``total_steps`` is NaN too (torch raises there).

``ReduceLROnPlateau`` is refused: its lr follows a metric passed to ``step(metrics)``, not the
step count, and ``optax.contrib.reduce_on_plateau`` is not its twin (it scales the updates,
averages the metric over ``accumulation_size`` updates, tests ``rtol`` and ``atol`` together
and has neither ``mode="max"``, per-group ``min_lr`` nor torch's ``eps`` rule).

Every value is an optax :class:`optax.StatefulSchedule` whose state (:class:`ScheduleState`)
is ``(lr, momentum, position)`` of one parameter group; ``optax.inject_hyperparams`` feeds it
to the group's chain (see :mod:`wd_jax.optim`). :mod:`wd_jax.port` reads the state from torch
and writes it back (:func:`read_state`, :func:`write_state`).
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from wd_core.errors import InputError
from wd_core.validation import POSITIVE_INT, check_number

REFUSED_SCHEDULERS = {
    "ReduceLROnPlateau": (
        "its lr follows a metric passed to step(metrics), not the step count, and "
        "optax.contrib.reduce_on_plateau is not its twin (it scales the updates, averages the "
        "metric over accumulation_size updates, tests rtol and atol together, and has neither "
        "mode='max', per-group min_lr nor torch's eps rule)"),
}


class ScheduleState(NamedTuple):
    """One parameter group under a torch scheduler: its ``lr`` and ``momentum`` (or beta1;
    NaN when no scheduler cycles it) now, and the scheduler's ``position`` (a dict:
    ``last_epoch`` (int32), ``last_lr`` (this group's ``_last_lr``), the scheduler's own
    fields, ``children`` for the composites)."""

    lr: jax.Array
    momentum: jax.Array
    position: dict


class Values(NamedTuple):
    lr: jax.Array
    momentum: jax.Array


def _float(value) -> jax.Array:
    return jnp.asarray(value, dtype=float)


def _int(value) -> jax.Array:
    return jnp.asarray(value, dtype=jnp.int32)


def _over(numerator, denominator: float) -> jax.Array:
    """``numerator / denominator`` as Python divides: XLA would turn a division by a constant
    into a product with its rounded reciprocal (``1 - 30 * (1/30)`` is 1.4e-17, not 0)."""
    return numerator / jax.lax.optimization_barrier(_float(denominator))


def _where(condition, a, b):
    return jax.tree.map(lambda x, y: jnp.where(condition, x, y), a, b)


def _integer(name: str, value) -> int:
    if isinstance(value, bool) or float(value) != int(value):
        raise InputError(f"the scheduler's {name} is {value!r}; the port takes an integer "
                         f"(a scheduler stepped with a fractional epoch has no port)")
    return int(value)


# ---- one node per torch scheduler class ---------------------------------------------------------

class _Node:
    """A torch scheduler read: its constants (per group where torch keeps a list) and the
    step that torch's ``step()`` takes, as a pure function of ``(position, values)``."""

    name = ""
    cycles_momentum = False
    #: Whether torch can restart it inside SequentialLR (``_update_lr(0)``).
    restartable = True

    def __init__(self, scheduler, groups: int, horizon):
        self.groups = groups
        self.base_lrs = [float(b) for b in getattr(scheduler, "base_lrs", [])]
        self.read(scheduler, horizon)

    def read(self, scheduler, horizon) -> None:
        """Read the constants of ``scheduler``."""

    def position(self, scheduler, group: int) -> dict:
        return {"last_epoch": _int(_integer("last_epoch", scheduler.last_epoch)),
                "last_lr": _float(float(scheduler._last_lr[group]))}

    def load(self, scheduler, positions: list[dict]) -> None:
        scheduler.last_epoch = _one(positions, "last_epoch")
        scheduler._last_lr = [float(p["last_lr"]) for p in positions]

    def step(self, position: dict, values: Values, group: int) -> tuple[dict, Values]:
        t = position["last_epoch"] + 1
        values = self.get_lr(t, values, group)
        return {**position, "last_epoch": t, "last_lr": values.lr}, values

    def restart(self, position: dict, values: Values, group: int) -> tuple[dict, Values]:
        """``_update_lr(0)``: ``last_epoch = 0``, the closed form at 0 if torch has one, else
        ``get_lr()``."""
        values = self.at_zero(position, values, group)
        return {**position, "last_epoch": _int(0), "last_lr": values.lr}, values

    def get_lr(self, t, values: Values, group: int) -> Values:
        raise NotImplementedError

    def at_zero(self, position: dict, values: Values, group: int) -> Values:
        return self.get_lr(_int(0), values, group)

    def horizon_end(self, scheduler, horizon) -> int:
        """The last ``t`` a recorded function is called at; ``InputError`` without a horizon."""
        if horizon is None:
            raise InputError(
                f"{self.name} calls a Python function of the epoch, which cannot run inside "
                f"an optax update: pass horizon=N, the optimizer steps to record it over "
                f"(port-check: --steps)")
        horizon = check_number("horizon", horizon, POSITIVE_INT)
        return _integer("last_epoch", scheduler.last_epoch) + horizon


def _one(positions: list[dict], key: str) -> int:
    values = {int(p[key]) for p in positions}
    if len(values) != 1:
        raise InputError(f"the groups' schedule positions differ ({key}: {sorted(values)}); "
                         f"torch's scheduler has one")
    return values.pop()


def _table(values: list[float]) -> np.ndarray:
    """``values`` then NaN: a recorded function read past its horizon gives NaN."""
    return np.array([*values, math.nan], dtype=np.float64)


def _lookup(table: np.ndarray, index) -> jax.Array:
    return _float(table)[jnp.clip(index, 0, len(table) - 1)]


class _StepLR(_Node):
    name = "StepLR"

    def read(self, s, horizon):
        self.step_size, self.gamma = s.step_size, float(s.gamma)

    def get_lr(self, t, v, g):
        keep = (t == 0) | (t % self.step_size != 0)
        return v._replace(lr=jnp.where(keep, v.lr, v.lr * self.gamma))

    def at_zero(self, p, v, g):
        return v._replace(lr=_float(self.base_lrs[g] * self.gamma ** (0 // self.step_size)))


class _MultiStepLR(_Node):
    name = "MultiStepLR"

    def read(self, s, horizon):
        self.milestones = dict(s.milestones)
        self.gamma = float(s.gamma)

    def get_lr(self, t, v, g):
        lr = v.lr
        for milestone, count in self.milestones.items():
            lr = jnp.where(t == milestone, v.lr * self.gamma ** count, lr)
        return v._replace(lr=lr)

    def at_zero(self, p, v, g):
        milestones = sorted(k for k, c in self.milestones.items() for _ in range(c))
        return v._replace(lr=_float(self.base_lrs[g]
                                    * self.gamma ** bisect_right(milestones, 0)))


class _ConstantLR(_Node):
    name = "ConstantLR"

    def read(self, s, horizon):
        self.factor, self.total = float(s.factor), s.total_iters

    def get_lr(self, t, v, g):
        lr = jnp.where(t == 0, v.lr * self.factor,
                       jnp.where(t != self.total, v.lr, v.lr * (1.0 / self.factor)))
        return v._replace(lr=lr)

    def at_zero(self, p, v, g):
        return v._replace(lr=_float(self.base_lrs[g] * (
            self.factor + (0 >= self.total) * (1 - self.factor))))


class _LinearLR(_Node):
    name = "LinearLR"

    def read(self, s, horizon):
        self.start, self.end, self.total = float(s.start_factor), float(s.end_factor), \
            s.total_iters

    def get_lr(self, t, v, g):
        change = self.end - self.start
        ramp = v.lr * (1.0 + change / (self.total * self.start + _float(t - 1) * change))
        lr = jnp.where(t == 0, v.lr * self.start, jnp.where(t > self.total, v.lr, ramp))
        return v._replace(lr=lr)

    def at_zero(self, p, v, g):
        return v._replace(lr=_float(self.base_lrs[g] * (
            self.start + (self.end - self.start) * min(self.total, 0) / self.total)))


class _ExponentialLR(_Node):
    name = "ExponentialLR"

    def read(self, s, horizon):
        self.gamma = float(s.gamma)

    def get_lr(self, t, v, g):
        return v._replace(lr=v.lr * self.gamma)

    def at_zero(self, p, v, g):
        return v._replace(lr=_float(self.base_lrs[g] * self.gamma ** 0))


class _PolynomialLR(_Node):
    name = "PolynomialLR"

    def read(self, s, horizon):
        self.total, self.power = s.total_iters, float(s.power)

    def get_lr(self, t, v, g):
        factor = ((1.0 - _over(_float(t), self.total))
                  / (1.0 - _over(_float(t - 1), self.total))) ** self.power
        return v._replace(lr=jnp.where(t > self.total, v.lr, v.lr * factor))

    def at_zero(self, p, v, g):
        return v._replace(lr=_float(
            self.base_lrs[g] * (1.0 - min(self.total, 0) / self.total) ** self.power))


class _CosineAnnealingLR(_Node):
    name = "CosineAnnealingLR"

    def read(self, s, horizon):
        self.T_max, self.eta_min = s.T_max, float(s.eta_min)

    def get_lr(self, t, v, g):
        eta, T = self.eta_min, self.T_max
        rise = (self.base_lrs[g] - eta) * (1 - math.cos(math.pi / T)) / 2
        restart = (t - 1 - T) % (2 * T) == 0
        ratio = ((1 + jnp.cos(_over(math.pi * _float(t), T)))
                 / (1 + jnp.cos(_over(math.pi * _float(t - 1), T))))
        return v._replace(lr=jnp.where(restart, v.lr + rise, ratio * (v.lr - eta) + eta))

    def at_zero(self, p, v, g):
        eta = self.eta_min
        return v._replace(lr=_float(
            eta + (self.base_lrs[g] - eta) * (1 + math.cos(math.pi * 0 / self.T_max)) / 2))


class _CosineAnnealingWarmRestarts(_Node):
    name = "CosineAnnealingWarmRestarts"

    def read(self, s, horizon):
        self.T_0, self.T_mult, self.eta_min = s.T_0, s.T_mult, float(s.eta_min)

    def position(self, s, group):
        return {**super().position(s, group), "T_cur": _int(_integer("T_cur", s.T_cur)),
                "T_i": _int(_integer("T_i", s.T_i))}

    def load(self, s, positions):
        super().load(s, positions)
        s.T_cur, s.T_i = _one(positions, "T_cur"), _one(positions, "T_i")

    def _lr(self, T_cur, T_i, g):
        eta = self.eta_min
        angle = math.pi * _float(T_cur) / _float(T_i)
        return eta + (self.base_lrs[g] - eta) * (1 + jnp.cos(angle)) / 2

    def step(self, p, v, g):
        first = p["last_epoch"] < 0
        T_cur = p["T_cur"] + 1
        wraps = T_cur >= p["T_i"]
        T_cur = jnp.where(first, 0, jnp.where(wraps, T_cur % p["T_i"], T_cur))
        T_i = jnp.where(first, self.T_0, jnp.where(wraps, p["T_i"] * self.T_mult, p["T_i"]))
        last_epoch = jnp.where(first, 0, p["last_epoch"] + 1)
        v = v._replace(lr=self._lr(T_cur, T_i, g))
        return {**p, "last_epoch": last_epoch, "T_cur": T_cur, "T_i": T_i,
                "last_lr": v.lr}, v

    def at_zero(self, p, v, g):
        return v._replace(lr=self._lr(p["T_cur"], p["T_i"], g))


class _CyclicLR(_Node):
    name = "CyclicLR"

    def read(self, s, horizon):
        self.max_lrs = [float(m) for m in s.max_lrs]
        self.total_size, self.step_ratio = float(s.total_size), float(s.step_ratio)
        self.scale_mode, self.gamma = s.scale_mode, float(s.gamma)
        self.mode = None if s._scale_fn_custom is not None else s.mode
        self.cycles_momentum = bool(s.cycle_momentum)
        if self.cycles_momentum:
            self.base_momentums = [float(m) for m in s.base_momentums]
            self.max_momentums = [float(m) for m in s.max_momentums]
        if self.mode is None:
            end = self.horizon_end(s, horizon)
            if self.scale_mode == "cycle":  # cycles count from 1
                last = math.floor(1 + end / self.total_size)
                values = [math.nan] + [float(s.scale_fn(c)) for c in range(1, last + 1)]
            else:
                values = [float(s.scale_fn(t)) for t in range(end + 1)]
            self.scale_table = _table(values)

    def _scale(self, x):
        if self.mode == "triangular":
            return 1.0
        if self.mode == "triangular2":
            return 1 / (2.0 ** _float(x - 1))
        if self.mode == "exp_range":
            return self.gamma ** _float(x)
        return _lookup(self.scale_table, x)

    def get_lr(self, t, v, g):
        cycle = jnp.floor(1 + _over(_float(t), self.total_size)).astype(jnp.int32)
        x = 1.0 + _over(_float(t), self.total_size) - _float(cycle)
        factor = jnp.where(x <= self.step_ratio, _over(x, self.step_ratio),
                           _over(x - 1, self.step_ratio - 1))
        scale = self._scale(cycle if self.scale_mode == "cycle" else t)
        base = self.base_lrs[g]
        v = v._replace(lr=base + (self.max_lrs[g] - base) * factor * scale)
        if self.cycles_momentum:
            top = self.max_momentums[g]
            v = v._replace(momentum=top - (top - self.base_momentums[g]) * factor * scale)
        return v


class _OneCycleLR(_Node):
    name = "OneCycleLR"

    def read(self, s, horizon):
        self.total_steps = s.total_steps
        self.phases = [dict(p) for p in s._schedule_phases]
        self.anneal = s._anneal_func_type
        self.cycles_momentum = bool(s.cycle_momentum)
        keys = ["initial_lr", "max_lr", "min_lr"]
        if self.cycles_momentum:
            keys += ["max_momentum", "base_momentum"]
        self.group_values = [{k: float(group[k]) for k in keys}
                             for group in s.optimizer.param_groups]

    def _anneal(self, start, end, pct):
        if self.anneal == "cos":
            return end + (start - end) / 2.0 * (jnp.cos(math.pi * pct) + 1)
        return (end - start) * pct + start

    def get_lr(self, t, v, g):
        """torch's phase loop: the first phase with ``t <= end_step`` (or the last one)."""
        values = self.group_values[g]
        lr = momentum = None
        for phase in reversed(self._phase_spans()):
            start_step, end_step, phase = phase
            pct = _over(_float(t) - start_step, end_step - start_step)
            new_lr = self._anneal(values[phase["start_lr"]], values[phase["end_lr"]], pct)
            new_m = self._anneal(values[phase["start_momentum"]],
                                 values[phase["end_momentum"]], pct) \
                if self.cycles_momentum else v.momentum
            if lr is None:  # the last phase: taken when no earlier one is
                lr, momentum = new_lr, new_m
            else:
                lr, momentum = _where(t <= end_step, (new_lr, new_m), (lr, momentum))
        return Values(jnp.where(t > self.total_steps, jnp.nan, lr), momentum)

    def _phase_spans(self) -> list[tuple[float, float, dict]]:
        """``(start_step, end_step, phase)`` of each phase, in torch's order."""
        spans, start_step = [], 0.0
        for phase in self.phases:
            spans.append((start_step, phase["end_step"], phase))
            start_step = phase["end_step"]
        return spans


class _LambdaLR(_Node):
    name = "LambdaLR"

    def read(self, s, horizon):
        end = self.horizon_end(s, horizon)
        self.tables = [_table([float(f(t)) for t in range(end + 1)]) for f in s.lr_lambdas]

    def get_lr(self, t, v, g):
        return v._replace(lr=self.base_lrs[g] * _lookup(self.tables[g], t))


class _MultiplicativeLR(_LambdaLR):
    name = "MultiplicativeLR"

    def get_lr(self, t, v, g):
        return v._replace(lr=v.lr * _lookup(self.tables[g], t))


class _Composite(_Node):
    restartable = False

    def read(self, s, horizon):
        self.children = [node_of(child, s.optimizer, horizon) for child in s._schedulers]
        self.cycles_momentum = any(c.cycles_momentum for c in self.children)

    def position(self, s, group):
        children = tuple(c.position(child, group)
                         for c, child in zip(self.children, s._schedulers, strict=True))
        return {"last_lr": _float(float(s._last_lr[group])), "children": children}

    def load(self, s, positions):
        s._last_lr = [float(p["last_lr"]) for p in positions]
        for i, (c, child) in enumerate(zip(self.children, s._schedulers, strict=True)):
            c.load(child, [p["children"][i] for p in positions])


class _ChainedScheduler(_Composite):
    name = "ChainedScheduler"

    def step(self, p, v, g):
        children = []
        for c, child in zip(self.children, p["children"], strict=True):
            child, v = c.step(child, v, g)
            children.append(child)
        return {**p, "children": tuple(children), "last_lr": v.lr}, v


class _SequentialLR(_Composite):
    name = "SequentialLR"

    def read(self, s, horizon):
        super().read(s, horizon)
        self.milestones = list(s._milestones)
        for i, c in enumerate(self.children[1:], start=1):
            if not c.restartable:
                raise InputError(f"SequentialLR's scheduler {i} is a {c.name}: torch restarts "
                                 f"it with _update_lr(0), which a {c.name} does not have")

    def position(self, s, group):
        return {**super().position(s, group),
                "last_epoch": _int(_integer("last_epoch", s.last_epoch))}

    def load(self, s, positions):
        super().load(s, positions)
        s.last_epoch = _one(positions, "last_epoch")

    def step(self, p, v, g):
        t = p["last_epoch"] + 1
        index = sum((t >= m).astype(jnp.int32) for m in self.milestones) if self.milestones \
            else _int(0)
        children, new_v = list(p["children"]), v
        for i, c in enumerate(self.children):
            child = p["children"][i]
            stepped, stepped_v = c.step(child, v, g)
            if i > 0:
                restarted, restarted_v = c.restart(child, v, g)
                at_milestone = t == self.milestones[i - 1]
                stepped = _where(at_milestone, restarted, stepped)
                stepped_v = _where(at_milestone, restarted_v, stepped_v)
            active = index == i
            children[i] = _where(active, stepped, child)
            new_v = _where(active, stepped_v, new_v)
        return {**p, "last_epoch": t, "children": tuple(children), "last_lr": new_v.lr}, new_v


NODES = {n.name: n for n in (_StepLR, _MultiStepLR, _ConstantLR, _LinearLR, _ExponentialLR,
                             _PolynomialLR, _CosineAnnealingLR, _CosineAnnealingWarmRestarts,
                             _CyclicLR, _OneCycleLR, _LambdaLR, _MultiplicativeLR,
                             _ChainedScheduler, _SequentialLR)}
ACCEPTED_SCHEDULERS = tuple(f"torch.optim.lr_scheduler.{name}" for name in NODES)


def node_of(scheduler, optimizer, horizon=None) -> _Node:
    """The node of ``scheduler`` (a ``torch.optim.lr_scheduler`` class itself, not a
    subclass), checked to be attached to ``optimizer``."""
    cls = type(scheduler)
    name = cls.__qualname__
    if cls.__module__ != "torch.optim.lr_scheduler" or name not in NODES:
        if name in REFUSED_SCHEDULERS and cls.__module__ == "torch.optim.lr_scheduler":
            raise InputError(f"scheduler {name} has no port: {REFUSED_SCHEDULERS[name]}")
        raise InputError(f"scheduler {cls.__module__}.{name} has no port; accepted: "
                         f"{', '.join(ACCEPTED_SCHEDULERS)} (the class itself, not a subclass)")
    if getattr(scheduler, "optimizer", None) is not optimizer:
        raise InputError(f"the {name} is attached to another optimizer; pass the scheduler "
                         f"built on this optimizer")
    groups = len(optimizer.param_groups)
    base_lrs = getattr(scheduler, "base_lrs", None)
    if base_lrs is not None and len(base_lrs) != groups:
        raise InputError(
            f"the {name} has {len(base_lrs)} base_lrs for {groups} parameter groups: a group "
            f"was added (add_param_group) after the scheduler was built, and torch's "
            f"scheduler does not follow it; build the scheduler after the last group")
    return NODES[name](scheduler, groups, horizon)


# ---- the program over all groups -----------------------------------------------------------

class TorchScheduler:
    """The scheduler(s) attached to one optimizer, read: ``schedulers`` stepped in order after
    every optimizer step (one scheduler, or several on the same optimizer, as
    ``ChainedScheduler`` steps them)."""

    def __init__(self, schedulers: Sequence, optimizer, horizon=None):
        self.schedulers = list(schedulers)
        self.nodes = [node_of(s, optimizer, horizon) for s in self.schedulers]
        self.cycles_momentum = any(n.cycles_momentum for n in self.nodes)
        self.uses_betas = "betas" in optimizer.defaults

    @property
    def names(self) -> str:
        return " + ".join(n.name for n in self.nodes)

    def check_same(self, schedulers: Sequence, optimizer) -> None:
        """``InputError`` unless ``schedulers`` are of this program's classes (children
        included) and attached to ``optimizer``."""
        def shape(s):
            return (type(s).__qualname__, tuple(shape(c) for c in getattr(s, "_schedulers", ())))

        if [shape(s) for s in schedulers] != [shape(s) for s in self.schedulers]:
            raise InputError(
                f"scheduler= is {[shape(s) for s in schedulers]}, but tx was converted from "
                f"{[shape(s) for s in self.schedulers]}")
        for s in schedulers:
            if getattr(s, "optimizer", None) is not optimizer:
                raise InputError(f"the {type(s).__name__} is attached to another optimizer; "
                                 f"pass the scheduler built on this optimizer")

    def state(self, optimizer, group: int, schedulers: Sequence | None = None) -> ScheduleState:
        """Group ``group``'s state read from torch now (``schedulers``: of this program's
        classes; by default those it was converted from)."""
        schedulers = self.schedulers if schedulers is None else schedulers
        torch_group = optimizer.param_groups[group]
        momentum = math.nan
        if self.cycles_momentum:
            momentum = torch_group["betas"][0] if self.uses_betas else torch_group["momentum"]
        position = tuple(n.position(s, group) for n, s in zip(self.nodes, schedulers,
                                                               strict=True))
        return ScheduleState(_float(float(torch_group["lr"])), _float(float(momentum)),
                             {"schedulers": position})

    def check_next(self, state: ScheduleState, group: int) -> None:
        """``InputError`` when the next step has no lr (NaN): a recorded function's horizon,
        or ``OneCycleLR``'s ``total_steps``, is reached."""
        if not math.isfinite(float(self.step(state, group).lr)):
            raise InputError(
                f"the {self.names} gives no lr for the step after this one (parameter group "
                f"{group}): a recorded function's horizon ends here, or OneCycleLR's "
                f"total_steps is reached; convert again with a horizon that covers the steps "
                f"to come")

    def step(self, state: ScheduleState, group: int) -> ScheduleState:
        values = Values(state.lr, state.momentum)
        positions = []
        for node, position in zip(self.nodes, state.position["schedulers"], strict=True):
            position, values = node.step(position, values, group)
            positions.append(position)
        return ScheduleState(values.lr, values.momentum, {"schedulers": tuple(positions)})

    def load(self, optimizer, states: list[ScheduleState],
             schedulers: Sequence | None = None) -> None:
        """Write ``states`` (one per group) into the torch optimizer's groups and
        ``schedulers`` (by default those it was converted from)."""
        schedulers = self.schedulers if schedulers is None else schedulers
        for torch_group, state in zip(optimizer.param_groups, states, strict=True):
            torch_group["lr"] = float(state.lr)
            if self.cycles_momentum:
                momentum = float(state.momentum)
                if self.uses_betas:
                    torch_group["betas"] = (momentum, *torch_group["betas"][1:])
                else:
                    torch_group["momentum"] = momentum
        for i, (node, scheduler) in enumerate(zip(self.nodes, schedulers, strict=True)):
            node.load(scheduler, [s.position["schedulers"][i] for s in states])


class TorchSchedule:
    """An optax ``StatefulSchedule``: group ``group``'s ``lr`` (``value="lr"``) or momentum
    (``value="momentum"``) under ``program``; ``init`` is the state read at conversion."""

    def __init__(self, program: TorchScheduler, group: int, initial: ScheduleState,
                 value: str = "lr"):
        self.program, self.group, self.initial, self.value = program, group, initial, value

    def init(self) -> ScheduleState:
        return jax.tree.map(jnp.asarray, self.initial)

    def update(self, state: ScheduleState, **extra_args) -> ScheduleState:
        del extra_args
        return self.program.step(state, self.group)

    def __call__(self, state: ScheduleState, **extra_args) -> jax.Array:
        del extra_args
        return state.lr if self.value == "lr" else state.momentum
