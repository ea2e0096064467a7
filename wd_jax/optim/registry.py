"""How a ``torch.optim`` class ports: its options, its optax builder and its state, key by key.

:mod:`wd_jax.port` holds only the generic machinery (reading the groups, the partition,
walking the state); each optimizer module of this package describes its torch class with a
:class:`TorchOptimizer`, registered in :data:`wd_jax.optim.PORTS` by its class name.

State: torch keeps a dict per parameter (``optimizer.state[p]``); optax keeps one state per
group whose fields are trees like the params. A :class:`StateKey` says that torch's key
``torch_key`` is field ``field`` of the (first) ``state`` NamedTuple in the group's optax
state; ``step`` is torch's per-parameter step count, one ``count`` per group in optax (a
group whose parameters disagree is refused). torch creates its state on the first step: an
optax state whose step is 0 goes back as torch's empty state.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import jax
import jax.numpy as jnp
import numpy as np
import optax

from wd_core.errors import InputError


@dataclass(frozen=True)
class StateKey:
    """torch's state key ``torch_key`` <-> field ``field`` of the optax state class ``state``
    (a tree like the params, or a scalar count for ``step``)."""

    torch_key: str
    state: type
    field: str


@dataclass(frozen=True)
class TorchOptimizer:
    """One ``torch.optim`` class, ported.

    ``options``: the group keys passed to ``build`` as keywords (``lr`` first); every other
    key of torch's ``defaults`` is refused unless it is in ``implementation`` (same
    mathematics whatever its value) or ``accepted`` (option -> the one value the port takes,
    e.g. ``capturable: False``). ``build(**options)`` returns the group's optax chain.
    ``cycled``: the option a momentum-cycling scheduler sets (``"momentum"`` or
    ``"betas"``), ``None`` when it cannot. ``adaptive``: the rule divides by a root of
    small running moments, which amplifies float32 rounding (port-check then judges float32
    by the Adam entry of the tolerance table); False for SGD-like rules.
    ``naive(**options)``: optax's same-named optimizer built from torch's hyper-parameters,
    as a user porting by name would (measured against torch in docs/optimizers.md), ``None``
    where optax has no namesake. ``read_state`` / ``write_state`` replace the declarative
    ``state`` / ``step`` mapping where it is not enough (their signatures:
    ``read_state(group_state, group, torch_states)`` -> group_state,
    ``write_state(group_state, group)`` -> ``{name: {key: array}}``).
    ``parameter_tolerance(steps, options, shape)``: an absolute bound on a parameter's
    difference from torch's after ``steps`` optimizer steps, given its group's options (the
    builder's keyword options, ``lr`` included) and the parameter's shape, for an optimizer
    whose twin cannot be exact (Muon: bfloat16); ``None``: the dtype's tolerance.
    """

    torch_class: str
    options: tuple[str, ...]
    build: Callable[..., optax.GradientTransformation]
    state: tuple[StateKey, ...] = ()
    step: StateKey | None = None
    implementation: tuple[str, ...] = ("foreach", "fused")
    accepted: dict = field(default_factory=lambda: {"capturable": False,
                                                    "differentiable": False})
    cycled: str | None = None
    adaptive: bool = True
    naive: Callable[..., optax.GradientTransformation] | None = None
    read_state: Callable | None = None
    write_state: Callable | None = None
    parameter_tolerance: Callable[[int, dict, tuple], float] | None = None

    @property
    def name(self) -> str:
        return self.torch_class.rsplit(".", 1)[-1]

    def state_from_torch(self, group_state, group, torch_states: dict[str, dict]):
        """``group_state`` (one group's optax state) holding torch's ``torch_states``
        (``{name: {key: numpy array}}``, ``{}`` where torch has no state yet)."""
        if self.read_state is not None:
            return self.read_state(group_state, group, torch_states)
        step = common_step(group, {n: s.get("step") for n, s in torch_states.items()},
                           f"{self.name} step counts")
        values = {key: {n: s.get(key.torch_key) for n, s in torch_states.items()}
                  for key in self.state}

        def replace(s):
            updates = {}
            for key, by_name in values.items():
                if isinstance(s, key.state):
                    updates[key.field] = filled(getattr(s, key.field), group, by_name,
                                                key.torch_key)
            if self.step is not None and isinstance(s, self.step.state):
                updates[self.step.field] = jnp.asarray(
                    step, dtype=getattr(s, self.step.field).dtype)
            return s._replace(**updates) if updates else s

        return replace_states(group_state, self.state_types, replace)

    def state_to_torch(self, group_state, group) -> dict[str, dict[str, np.ndarray]]:
        """``{name: {torch key: numpy array}}`` of the group's parameters (``{}`` before
        the first step)."""
        if self.write_state is not None:
            return self.write_state(group_state, group)
        named = {n: {} for n in group.names}
        if self.step is not None:
            (counter,) = states_of(group_state, self.step.state)
            step = int(getattr(counter, self.step.field))
            if step == 0:
                return named
            for n in group.names:
                named[n]["step"] = np.asarray(float(step))
        for key in self.state:
            for s in states_of(group_state, key.state)[:1]:  # absent: an option is off
                tree = getattr(s, key.field)
                for n in group.names:
                    named[n][key.torch_key] = np.asarray(tree[n])
        return named

    @property
    def state_types(self) -> tuple[type, ...]:
        kinds = {key.state for key in self.state}
        if self.step is not None:
            kinds.add(self.step.state)
        return tuple(kinds)


# ---- walking an optax state ------------------------------------------------------------------

def states_of(tree, kind) -> list:
    """The states of class ``kind`` inside ``tree`` (one group's optax state)."""
    return [s for s in jax.tree.leaves(tree, is_leaf=lambda n: isinstance(n, kind))
            if isinstance(s, kind)]


def replace_states(tree, kinds: tuple[type, ...], replace: Callable):
    """``tree`` with each state of a class in ``kinds`` swapped for ``replace(state)``."""
    def is_state(node):
        return isinstance(node, kinds)

    return jax.tree.map(lambda s: replace(s) if is_state(s) else s, tree, is_leaf=is_state)


def common_step(group, steps: dict[str, object], what: str) -> int:
    """The one count of ``group`` from torch's per-parameter ``steps`` (None: no state yet,
    0), or ``InputError`` when they differ or one is not an integer."""
    counts = {}
    for name, step in steps.items():
        value = 0.0 if step is None else float(np.asarray(step))
        if value != int(value):
            raise InputError(f"parameter {name!r}: torch's step {value!r} is not an integer")
        counts[name] = int(value)
    values = set(counts.values())
    if len(values) > 1:
        listed = ", ".join(f"{n}: {s}" for n, s in counts.items())
        raise InputError(
            f"parameter group {group.index}: torch's {what} differ between its parameters "
            f"({listed}); optax keeps one count per group, so this state cannot be ported "
            f"(a parameter that missed a step had no gradient then)")
    return values.pop() if values else 0


def filled(tree: dict, group, values: dict[str, np.ndarray | None], key: str) -> dict:
    """``tree`` (a dict like the params, ``MaskedNode`` outside the group) with the group's
    leaves replaced by ``values`` (cast to the leaf's dtype); where a value is None (torch
    has not made that state yet) the leaf keeps optax's initial value."""
    out = {}
    for name, leaf in tree.items():
        if name not in group.names:
            out[name] = leaf
            continue
        value = values.get(name)
        if value is None:
            out[name] = leaf
            continue
        value = np.asarray(value)
        if value.shape != leaf.shape:
            raise InputError(f"torch's {key} of {name!r} has shape {value.shape}; optax keeps "
                             f"{leaf.shape}")
        out[name] = jnp.asarray(value, dtype=leaf.dtype)
    return out
