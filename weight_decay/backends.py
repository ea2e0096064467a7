"""Load a backend by name, lazily: the command imports a framework only when it needs it."""

from __future__ import annotations

import importlib

from wd_core.validation import BACKENDS, check_choice

__all__ = ["BACKENDS", "load_backend"]


def load_backend(name: str):
    """The ``wd_torch`` or ``wd_jax`` module.

    Raises :class:`wd_core.errors.InputError` for an unknown name and
    :class:`wd_core.errors.MissingFrameworkError` (with the ``pip install`` command) when the
    framework is missing.
    """
    check_choice("backend", name, BACKENDS)
    return importlib.import_module(f"wd_{name}")
