"""A torch module's whole ``state_dict`` (parameters and persistent buffers) to JAX and back.

:mod:`wd_jax.port` carries the parameters (``named_parameters()``) and the optimizer's state;
a checkpoint also holds a module's persistent buffers: BatchNorm's ``running_mean`` and
``running_var`` (the parameters' dtype) and its ``num_batches_tracked`` (an int64 scalar,
shape ``()``). Here every entry of ``module.state_dict()`` travels, keyed by its state_dict
name, in that order, with its shape and dtype kept (bfloat16 bit for bit)::

    with jax.enable_x64(True):                     # int64 counters, float64 models
        arrays = checkpoint.state_dict_from_torch(model)   # {name: jax.Array}
        arrays["bn.running_mean"] = 2 * arrays["bn.running_mean"]
        checkpoint.state_dict_to_torch(arrays, model)      # in place, same tensors

A state_dict entry that is ``None`` is left out, and a module whose state_dict holds
anything other than tensors (``get_extra_state``) is refused. PyTorch is imported inside the
functions, so ``import wd_jax.checkpoint`` works without it. Tests:
``parity_tests/test_port_buffers.py``.
"""

from __future__ import annotations

import jax

from wd_core.errors import InputError
from wd_jax.port import _check_module, _checked_arrays, _from_numpy, _jax_arrays


def _entries(module, torch, *, keep_vars: bool) -> dict:
    """``module.state_dict(keep_vars=keep_vars)`` without its ``None`` entries; ``InputError``
    for an entry that is not a tensor (extra state has no array to become)."""
    entries = {}
    for name, value in module.state_dict(keep_vars=keep_vars).items():
        if value is None:
            continue
        if not isinstance(value, torch.Tensor):
            raise InputError(f"state_dict entry {name!r} is a {type(value).__name__}, not a "
                             f"tensor; only tensor entries (parameters and buffers) can cross")
        entries[name] = value
    return entries


def state_dict_from_torch(module) -> dict[str, jax.Array]:
    """``{name: jax.Array}``, one per tensor entry of ``module.state_dict()``, in that order.

    The entries are the parameters and the persistent buffers (BatchNorm's ``running_mean``
    and ``running_var``, shape ``(num_features,)`` in the module's dtype, and its
    ``num_batches_tracked``, an int64 scalar of shape ``()``); non-persistent buffers are
    not in a state_dict and do not travel. Each array has its tensor's shape (torch's
    layout: ``nn.Linear.weight`` is ``(out_features, in_features)``, a conv kernel
    ``(out, in, *kernel)`` whatever its memory format) and dtype (bfloat16 bit for bit).
    A state_dict entry that is ``None`` (a buffer registered as ``None``) is left out.

    int64 and float64 entries need JAX's x64 mode: call inside
    ``with jax.enable_x64(True):``; otherwise ``InputError`` naming the entry, rather than a
    silent cast to int32 / float32. ``InputTypeError`` when ``module`` is not a
    ``torch.nn.Module``; ``InputError`` for a non-tensor entry (extra state).
    """
    torch = _check_module(module)
    return _jax_arrays(_entries(module, torch, keep_vars=False), "state_dict entry")


def state_dict_to_torch(arrays, module) -> None:
    """Copy ``arrays`` (``{name: array}`` as :func:`state_dict_from_torch` returns) into
    ``module``'s parameters and persistent buffers, in place.

    The names must be exactly the tensor entries of ``module.state_dict()`` (its ``None``
    entries left out), and each array must have its tensor's shape and dtype (numpy or JAX
    arrays; bfloat16 as ``jnp.bfloat16``). Each value is written with ``tensor.copy_`` under
    ``torch.no_grad()``: the tensors stay the same objects (an optimizer keeps pointing at
    the parameters) with their devices and strides (a ``channels_last`` kernel stays
    ``channels_last``). Two names for one tensor (tied weights) must carry equal values.

    Everything is checked before anything is copied: ``InputError`` naming the missing or
    extra names, or the entry with the wrong shape or dtype, leaves the module untouched.
    ``InputTypeError`` when ``module`` is not a ``torch.nn.Module`` or ``arrays`` not a dict.
    """
    torch = _check_module(module)
    targets = _entries(module, torch, keep_vars=True)
    values = _checked_arrays(arrays, targets, argument="arrays", listing="state_dict()",
                            entry="state_dict entry")
    first_name = {}
    for name, tensor in targets.items():
        array = values[name]
        tied = first_name.setdefault(id(tensor), name)
        if tied != name and values[tied].tobytes() != array.tobytes():
            raise InputError(f"arrays[{name!r}] and arrays[{tied!r}] differ but name one "
                             f"tensor of the module (tied weights); give them equal values")
    with torch.no_grad():
        for name, tensor in targets.items():
            tensor.copy_(_from_numpy(values[name], tensor))
