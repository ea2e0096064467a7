"""The four floors: each package imports only the floors below it.

floor 1 ``wd_core`` (numpy and the standard library; no argparse, matplotlib, tqdm), floor 2
``wd_torch`` and ``wd_jax`` (never each other), floor 3 ``benchmarks`` (installed as
``wd_benchmarks``), floor 4 the app ``weight_decay``. Imports are read from the source (AST):
``import``/``from ... import`` statements, and ``importlib.import_module`` / ``__import__``
calls whose name is a literal or an f-string with a literal prefix (``f"wd_{name}"`` may name
any project package that starts with ``wd_``).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PROJECT = ("wd_core", "wd_torch", "wd_jax", "wd_benchmarks", "benchmarks", "weight_decay")

#: Folder -> the project packages it may import (itself included) and the third-party
#: modules it must not import.
FLOORS = {
    "wd_core": ({"wd_core"}, {"argparse", "matplotlib", "tqdm", "torch", "jax", "jaxlib",
                              "optax"}),
    "wd_torch": ({"wd_core", "wd_torch"}, {"argparse", "matplotlib", "tqdm", "jax", "optax"}),
    "wd_jax": ({"wd_core", "wd_jax"}, {"argparse", "matplotlib", "tqdm"}),
    "benchmarks": ({"wd_core", "wd_torch", "wd_jax", "wd_benchmarks", "benchmarks"}, set()),
    "weight_decay": (set(PROJECT), set()),
}


def imported_names(source: str, package: str) -> set[str]:
    """Top-level module names that ``source`` (a module of ``package``) imports; a literal
    prefix of a dynamic import stands for every project package it could name."""
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            names.add(package if node.level else node.module.split(".")[0])
        elif isinstance(node, ast.Call) and _is_dynamic_import(node.func) and node.args:
            names.update(_dynamic_targets(node.args[0], package))
    return names


def _is_dynamic_import(func) -> bool:
    if isinstance(func, ast.Name):
        return func.id in ("__import__", "import_module")
    return isinstance(func, ast.Attribute) and func.attr == "import_module"


def _dynamic_targets(arg, package: str) -> set[str]:
    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
        prefix, complete = arg.value, True
    elif isinstance(arg, ast.JoinedStr) and arg.values and isinstance(arg.values[0], ast.Constant):
        prefix, complete = arg.values[0].value, False
    else:
        return set()
    if prefix.startswith("."):
        return {package}
    if complete:
        return {prefix.split(".")[0]}
    return {name for name in PROJECT if name.startswith(prefix)} or {prefix}


def modules_of(folder: str):
    return sorted((ROOT / folder).rglob("*.py"))


@pytest.mark.parametrize("folder", sorted(FLOORS))
def test_each_floor_imports_only_the_floors_below(folder):
    allowed, banned = FLOORS[folder]
    package = "wd_benchmarks" if folder == "benchmarks" else folder
    modules = modules_of(folder)
    assert modules, folder
    wrong = []
    for path in modules:
        names = imported_names(path.read_text(encoding="utf-8"), package)
        above = {n for n in names if n in PROJECT and n not in allowed}
        foreign = names & banned
        if above or foreign:
            wrong.append(f"{path.relative_to(ROOT)}: {sorted(above | foreign)}")
    assert not wrong, "imports from a higher floor or a forbidden module:\n" + "\n".join(wrong)


@pytest.mark.parametrize(("source", "package", "expected"), [
    ("import wd_torch.models", "wd_jax", {"wd_torch"}),
    ("from weight_decay.cli import main", "wd_core", {"weight_decay"}),
    ("from . import timing", "wd_benchmarks", {"wd_benchmarks"}),
    ("import importlib\nimportlib.import_module(f'wd_{name}')", "wd_core",
     {"importlib", "wd_core", "wd_torch", "wd_jax", "wd_benchmarks"}),
    ("from importlib import import_module\nimport_module('benchmarks.cli')", "wd_core",
     {"importlib", "benchmarks"}),
    ("__import__('argparse')", "wd_core", {"argparse"}),
    ("def f():\n    import matplotlib.figure", "wd_core", {"matplotlib"}),
])
def test_the_reader_sees_every_kind_of_import(source, package, expected):
    assert imported_names(source, package) == expected
