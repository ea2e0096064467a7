"""``weight-decay port-check MODULE:FACTORY``: your torch optimizer against its optax port.

``FACTORY`` (a function of ``MODULE``, importable from the current folder or ``sys.path``)
returns ``(module, optimizer)``, optionally with a third element: a
``torch.optim.lr_scheduler`` scheduler attached to the optimizer, or a list of them (stepped
in that order after every step), or an input shape (not needed: the gradients are drawn, not
computed). The command converts them with :mod:`wd_jax.port` (parameters, parameter groups,
the optimizer's current state, the scheduler's position and the groups' current lrs) and
takes ``--steps`` steps on both sides with the same random gradients (numpy, ``--seed``):
torch sets ``p.grad``, clips with ``clip_grad_norm_(module.parameters(), MAX)`` when
``--clip-grad-norm MAX`` is given, calls ``optimizer.step()`` and then the scheduler's
``step()``; optax applies the converted chain (the clipping twin first). ``--steps`` is also
the horizon over which a scheduler's Python function (``LambdaLR``, ``MultiplicativeLR``) is
recorded. It prints the scheduler it ported and its position, the worst relative difference
of every parameter, every state entry and every group's lr, and exits 0 when all are within
the tolerance of their dtype (float64: 1e-12; float32: the float32 entry of
``wd_core.tolerances``, the Adam one for the Adam family), 1 otherwise. A parameter of an
optimizer whose twin cannot be exact (a registry entry with ``parameter_tolerance``: Muon,
whose Newton-Schulz iteration runs in bfloat16) is judged by that derived absolute bound over
``--steps`` steps (with its group's lr when converted) relative to torch's largest element,
``max(the dtype's rtol, bound / max|p|)``; its state keeps the dtype's. Bad input (a factory
that does not import or returns something else, an option the port refuses, a negative
``--clip-grad-norm``) exits 2 with one line.
"""

from __future__ import annotations

import importlib
import os
import sys

import numpy as np

from wd_core.errors import InputError
from wd_core.tolerances import TOLERANCES, required_rtol, run_kind
from weight_decay.backends import load_backend
from weight_decay.commands.options import nonnegative_float, nonnegative_int, positive_int

JUDGED_DTYPES = ("float32", "float64")


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "port-check", help="check that a torch optimizer (groups, state) ports to optax exactly")
    parser.add_argument("factory", metavar="MODULE:FACTORY",
                        help="a function returning (module, optimizer[, scheduler or input "
                             "shape]), e.g. train:make_optimizer")
    parser.add_argument("--steps", type=positive_int, default=20,
                        help="steps on random gradients (default 20); also the horizon over "
                             "which a scheduler's Python function (LambdaLR) is recorded")
    parser.add_argument("--clip-grad-norm", type=nonnegative_float, default=None, metavar="MAX",
                        help="clip the gradients' global norm to MAX before each step "
                             "(torch.nn.utils.clip_grad_norm_ over module.parameters())")
    parser.add_argument("--seed", type=nonnegative_int, default=0,
                        help="seed of the gradients (default 0)")
    parser.set_defaults(execute=execute)


def load_factory(spec: str):
    """The callable ``FACTORY`` of ``MODULE:FACTORY``; ``InputError`` when it is not one."""
    module_name, sep, name = spec.partition(":")
    if not sep or not module_name or not name or ":" in name:
        raise InputError(f"{spec!r} is not MODULE:FACTORY (e.g. train:make_optimizer)")
    here = os.getcwd()
    added = here not in sys.path
    if added:
        sys.path.insert(0, here)
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise InputError(f"cannot import {module_name!r} (from {spec!r}): {err}") from err
    finally:
        if added:
            sys.path.remove(here)
    factory = getattr(module, name, None)
    if not callable(factory):
        raise InputError(f"{module_name!r} has no function {name!r} (from {spec!r})")
    return factory


def call_factory(factory, spec: str):
    """``(module, optimizer, scheduler or None)`` from the factory's result, checked."""
    import torch

    result = factory()
    accepted = ("accepted: (module, optimizer) or (module, optimizer, scheduler or input "
                "shape), with a torch.nn.Module and a torch.optim.Optimizer")
    if not isinstance(result, tuple | list) or len(result) not in (2, 3):
        raise InputError(f"{spec} returned {type(result).__name__}; {accepted}")
    module, optimizer, *extra = result
    if not isinstance(module, torch.nn.Module) or not isinstance(optimizer,
                                                                 torch.optim.Optimizer):
        raise InputError(f"{spec} returned ({type(module).__name__}, "
                         f"{type(optimizer).__name__}, ...); {accepted}")
    scheduler = None
    if extra:
        schedulers = extra[0] if isinstance(extra[0], list) else [extra[0]]
        if schedulers and all(isinstance(s, torch.optim.lr_scheduler.LRScheduler)
                              for s in schedulers):
            scheduler = extra[0]
    return module, optimizer, scheduler


def _schedulers(scheduler) -> list:
    return [] if scheduler is None else scheduler if isinstance(scheduler, list) else [scheduler]


def _like(array: np.ndarray, param):
    """``array`` as a gradient laid out as ``param`` (its strides, as autograd makes it: torch's
    fused kernels pair the parameter's and the gradient's memory element by element)."""
    import torch

    grad = torch.empty_like(param, memory_format=torch.preserve_format)
    grad.copy_(torch.from_numpy(array))
    return grad


def describe_scheduler(scheduler) -> str:
    """``StepLR at last_epoch 3``; composites with their children, e.g.
    ``SequentialLR(LinearLR, CosineAnnealingLR) at last_epoch 0``."""
    def name(s):
        children = getattr(s, "_schedulers", None)
        inner = f"({', '.join(name(c) for c in children)})" if children else ""
        return type(s).__name__ + inner

    parts = []
    for s in _schedulers(scheduler):
        last_epoch = getattr(s, "last_epoch", None)
        if last_epoch is None:  # ChainedScheduler: its children's
            last_epoch = s._schedulers[0].last_epoch
        parts.append(f"{name(s)} at last_epoch {last_epoch}")
    return " + ".join(parts)


def dtype_names(module) -> dict[str, str]:
    """``{name: "float32" | "float64"}`` of the parameters; ``InputError`` for another dtype."""
    names = {n: str(p.dtype).removeprefix("torch.") for n, p in module.named_parameters()}
    other = {n: d for n, d in names.items() if d not in JUDGED_DTYPES}
    if other:
        raise InputError(f"parameters {other} are not judged here; accepted dtypes: "
                         f"{', '.join(JUDGED_DTYPES)}")
    if not names:
        raise InputError("the module has no parameters")
    return names


def draw_gradients(rng, module) -> dict:
    """One N(0, 1) gradient per parameter that requires one, in its shape and dtype."""
    return {n: rng.standard_normal(tuple(p.shape)).astype(str(p.dtype).removeprefix("torch."))
            for n, p in module.named_parameters() if p.requires_grad}


def run_both(module, optimizer, scheduler, steps: int, seed: int, clip_grad_norm=None):
    """``steps`` steps of the torch optimizer (and scheduler) and of its optax port on the same
    gradients; returns ``(optax params, optax state under torch's names, optax group lrs)``."""
    import jax
    import optax
    import torch

    from wd_jax import port

    params = port.params_from_torch(module)
    tx = port.optimizer_from_torch(optimizer, module, scheduler=scheduler,
                                   horizon=steps if scheduler is not None else None,
                                   clip_grad_norm=clip_grad_norm)
    state = port.state_from_torch(optimizer, module, tx, params, scheduler=scheduler)

    @jax.jit
    def step(params, state, grads):
        updates, state = tx.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    rng = np.random.default_rng(seed)
    for _ in range(steps):
        grads = draw_gradients(rng, module)
        for name, p in module.named_parameters():
            p.grad = _like(grads[name], p) if name in grads else None
        if clip_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_(module.parameters(), clip_grad_norm)
        optimizer.step()
        for s in _schedulers(scheduler):
            s.step()
        full = {n: grads.get(n, np.zeros(v.shape, v.dtype)) for n, v in params.items()}
        params, state = step(params, state, full)
    return (params, port.torch_named_state(state, optimizer, module),
            port.group_lrs(state, optimizer, module))


def parameter_bounds(optimizer, module, steps: int) -> dict[str, float]:
    """``{name: absolute bound}`` for the parameters whose optimizer's twin cannot be exact
    (the registry's ``parameter_tolerance``), from their group's options and lr as they are
    now (call it before stepping); the others are absent."""
    from wd_jax import port

    shapes = {n: tuple(p.shape) for n, p in module.named_parameters()}
    bounds = {}
    for group in port._read_groups(optimizer, module):
        tolerance = group.optimizer.parameter_tolerance
        if tolerance is None:
            continue
        options = {"lr": group.lr, **group.options}
        for name in group.names:
            bounds[name] = float(tolerance(steps, options, shapes[name]))
    return bounds


def parameter_rtol(kind: str, bound: float | None, expected: np.ndarray) -> float:
    """The tolerance of a parameter: the dtype's rtol, or with an absolute ``bound`` the
    larger of it and ``bound / max|expected|`` (float64; ``bound / (s*max|expected|)`` with
    the dtype's absolute floor ``s`` < 1: the difference is measured relative to
    ``|expected| + s*max|expected|``, so a difference within ``bound`` passes); a parameter
    torch left all zero keeps the dtype's rtol."""
    rtol, atol_scale = TOLERANCES[kind]
    largest = float(np.max(np.abs(expected))) if expected.size else 0.0
    if bound is None or largest == 0.0:
        return rtol
    return max(rtol, bound / (min(atol_scale, 1.0) * largest))


def compare(module, optimizer, params, named_state, kinds: dict[str, str],
            lrs=None, bounds: dict[str, float] | None = None) -> list[tuple]:
    """Rows ``(what, name, worst relative difference, tolerance)``: every parameter, then
    every state entry torch or optax has (a missing one counts as infinitely different), then
    every group's lr (``lrs``: optax's, one per group). ``bounds``: absolute bounds of the
    parameters that have one (:func:`parameter_bounds`, :func:`parameter_rtol`); the state
    and lr rows keep their dtype's rtol."""
    rows = []
    bounds = bounds or {}
    for name, p in module.named_parameters():
        expected = _numpy(p)
        rows.append(("param", name, _difference(np.asarray(params[name]), expected,
                                                kinds[name]),
                     parameter_rtol(kinds[name], bounds.get(name), expected)))
    for name, p in module.named_parameters():
        torch_state = {k: _numpy(v) for k, v in optimizer.state.get(p, {}).items()
                       if v is not None}
        optax_state = {k: v for k, v in named_state.get(name, {}).items()}
        for key in sorted(set(torch_state) | set(optax_state)):
            if key not in torch_state or key not in optax_state:
                difference = float("inf")
            elif key == "step":
                difference = 0.0 if float(torch_state[key]) == float(optax_state[key]) else \
                    float("inf")
            else:
                difference = _difference(optax_state[key], torch_state[key], kinds[name])
            rows.append((f"state {key}", name, difference, TOLERANCES[kinds[name]][0]))
    names = dict(module.named_parameters())
    by_id = {id(p): n for n, p in names.items()}
    for index, (group, lr) in enumerate(zip(optimizer.param_groups, lrs or (), strict=False)):
        kind = kinds[by_id[id(group["params"][0])]] if group["params"] else "float64"
        rows.append(("lr group", str(index), _difference(np.asarray(lr),
                                                        np.asarray(float(group["lr"])), kind),
                     TOLERANCES[kind][0]))
    return rows


def _difference(actual, expected, kind: str) -> float:
    """The smallest rtol of ``kind``'s form (its absolute floor included) that passes."""
    return required_rtol(actual, expected, atol_scale=TOLERANCES[kind][1])


def format_tolerance(rtol: float) -> str:
    """``1e-12``, ``3.37e-04``: three significant digits, trailing zeros dropped."""
    mantissa, _, exponent = f"{rtol:.2e}".partition("e")
    return f"{mantissa.rstrip('0').rstrip('.')}e{exponent}"


def _numpy(tensor) -> np.ndarray:
    return tensor.detach().cpu().numpy()


def execute(args) -> int:
    load_backend("torch")
    load_backend("jax")
    from wd_jax import port
    from wd_jax.device import numerics

    module, optimizer, scheduler = call_factory(load_factory(args.factory), args.factory)
    dtypes = dtype_names(module)
    adam = port._optimizer_port(optimizer).adaptive  # float32: the Adam entry of the table
    kinds = {n: run_kind(d, adam=adam) for n, d in dtypes.items()}
    ported = describe_scheduler(scheduler)
    bounds = parameter_bounds(optimizer, module, args.steps)
    with numerics("float64" if "float64" in dtypes.values() else "float32"):
        params, named_state, lrs = run_both(module, optimizer, scheduler, args.steps,
                                            args.seed, args.clip_grad_norm)
    rows = compare(module, optimizer, params, named_state, kinds, lrs, bounds)
    print(f"{args.factory}: {type(optimizer).__name__}, {len(optimizer.param_groups)} "
          f"parameter group(s), {args.steps} steps on random gradients (seed {args.seed})"
          + (f", clipped to norm {args.clip_grad_norm:g}" if args.clip_grad_norm is not None
             else "")
          + (f", scheduler {ported} (ported from there)" if scheduler is not None else ""))
    width = max(len(f"{what} {name}") for what, name, _, _ in rows)
    print(f"{'':{width}}  worst rel. diff  tolerance")
    failed = 0
    for what, name, difference, rtol in rows:
        ok = difference <= rtol
        failed += not ok
        print(f"{what + ' ' + name:{width}}  {difference:15.2e}  {format_tolerance(rtol):>9}"
              f"{'' if ok else '  BEYOND'}")
    if failed:
        print(f"{failed} of {len(rows)} entries beyond tolerance: the optax port does not "
              f"follow this torch optimizer")
        return 1
    print(f"all {len(rows)} entries within tolerance: the optax port takes torch's steps")
    return 0
