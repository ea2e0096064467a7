"""Load a backend by name, lazily: importing wd_core never imports a framework."""

from __future__ import annotations

import importlib

from wd_core.validation import check_choice

BACKENDS = ("torch", "jax")


def load_backend(name: str):
    """The ``wd_torch`` or ``wd_jax`` module.

    Raises ``ValueError`` for an unknown name and ``ImportError`` (with the ``pip install``
    command) when the framework is missing.
    """
    check_choice("backend", name, BACKENDS)
    return importlib.import_module(f"wd_{name}")
