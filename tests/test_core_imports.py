"""Imports: wd_core is the numpy-only hub (importing it, and the command's entry, loads no
framework); a framework that is missing or broken is named with its cause; every module of the
project imports on its own, and no two modules import each other (directly or round a circle).
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

from wd_core.errors import (
    BrokenFrameworkError,
    InputError,
    MissingFrameworkError,
    framework_error,
    missing_framework,
)

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("wd_core", "wd_torch", "wd_jax", "benchmarks", "weight_decay")

CHECK = """
import sys
import wd_core
from wd_core import reference, SyntheticData
import weight_decay.cli
reference.train(SyntheticData(num_train=4, num_inputs=2, batch_size=2), lambd=1, lr=0.1,
                max_epochs=1)
loaded = sorted(m for m in ("torch", "jax", "jaxlib", "optax") if m in sys.modules)
print(",".join(loaded))
"""


def test_wd_core_imports_no_framework():
    out = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == ""


HIDDEN = """
import sys
from wd_core.errors import MissingFrameworkError
sys.modules[{module!r}] = None  # makes `import {module}` raise ModuleNotFoundError
try:
    import {package}
except MissingFrameworkError as err:
    print(err)
    print(type(err.__cause__).__name__)
"""


def test_missing_framework_names_the_extra_and_chains_the_cause():
    for module, package, extra in (("torch", "wd_torch", "torch"), ("jax", "wd_jax", "jax"),
                                   ("optax", "wd_jax", "jax")):
        code = HIDDEN.format(module=module, package=package)
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             check=True).stdout.splitlines()
        assert out[0].endswith(f"pip install 'weight-decay[{extra}]'"), out
        assert out[1] == "ModuleNotFoundError", out


def test_framework_error_tells_missing_from_broken():
    absent = ModuleNotFoundError("No module named 'torch'", name="torch")
    assert type(framework_error("wd_torch", "PyTorch", "torch", absent)) is MissingFrameworkError
    inner = ModuleNotFoundError("No module named 'torch._C'", name="torch._C")
    broken_library = ImportError("libtorch_cpu.so: cannot open shared object file")
    mismatch = RuntimeError("jaxlib version 0.4 is older than the jax requires")
    for err in (inner, broken_library, mismatch, OSError("libgomp.so.1: bad ELF header")):
        made = framework_error("wd_jax", "JAX and optax", "jax", err, ("jax", "optax"))
        assert type(made) is BrokenFrameworkError
        assert str(made).endswith(f"{type(err).__name__}: {err}"), made
        assert "not installed" not in str(made)
    assert str(missing_framework("p", "PyTorch", "torch")).endswith(
        "pip install 'weight-decay[torch]'")


@pytest.mark.parametrize("cls", [MissingFrameworkError, BrokenFrameworkError])
def test_input_errors_are_value_errors_only(cls):
    """The project's refusals are caught by name: none of them is an ImportError, TypeError,
    OSError or RuntimeError that a handler written for those would swallow."""
    import wd_core.errors as errors

    classes = [c for c in vars(errors).values()
               if isinstance(c, type) and issubclass(c, InputError)]
    assert len(classes) >= 7 and cls in classes
    for c in classes:
        assert [k for k in c.__mro__ if k.__module__ == "builtins"] == [
            ValueError, Exception, BaseException, object], c


BROKEN = {"torch": "raise ImportError('libtorch_cpu.so: cannot open shared object file: No such "
                   "file or directory')\n",
          "jax": "raise RuntimeError('jaxlib version 0.1 is older than this jax requires')\n"}


def broken_framework(tmp_path, name) -> dict:
    """The environment of a process in which ``import <name>`` fails (an installed framework
    whose shared library is gone, or whose versions do not match)."""
    (tmp_path / name).mkdir()
    (tmp_path / name / "__init__.py").write_text(BROKEN[name])
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)])}


@pytest.mark.parametrize(("backend", "package"), [("torch", "PyTorch"),
                                                  ("jax", "JAX and optax")])
def test_a_broken_framework_shows_its_cause_on_the_one_line(tmp_path, backend, package):
    result = subprocess.run(
        [sys.executable, "-m", "weight_decay", "run", "--backend", backend, "--epochs", "1"],
        env=broken_framework(tmp_path, backend), cwd=tmp_path, capture_output=True,
        text=True, timeout=120)
    cause = BROKEN[backend].split("(", 1)[1].rsplit(")", 1)[0].strip("'")
    kind = BROKEN[backend].split()[1].split("(")[0]
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [
        f"weight-decay: error: wd_{backend} needs {package}, whose import fails: "
        f"{kind}: {cause}"]


def test_demo_fails_when_torch_is_broken_instead_of_leaving_rows_out(tmp_path):
    """Without torch the demo's optimizer rows are left out with a line saying so; a torch
    that is installed but fails to import stops the demo with the cause (exit 2)."""
    result = subprocess.run(
        [sys.executable, "-m", "weight_decay", "demo", "--backends", "jax", "--epochs", "1",
         "--num-train", "4", "--num-val", "2", "--num-inputs", "3", "--batch-size", "2",
         "--no-figures", "--quiet"],
        env=broken_framework(tmp_path, "torch"), cwd=tmp_path, capture_output=True, text=True,
        timeout=120)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "libtorch_cpu.so" in result.stderr and "not installed" not in result.stderr
    assert result.stdout == ""


# ---- no import circles ------------------------------------------------------------------


def project_modules() -> dict[str, Path]:
    """Dotted name -> file of every module of the project's packages (``benchmarks`` under
    its folder's name)."""
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def import_graph() -> dict[str, set[str]]:
    """Module -> the project modules it imports anywhere in its source (at the top or inside
    a function; importing ``a.b.c`` runs ``a``, ``a.b`` and ``a.b.c``). A module's own
    enclosing packages are left out: Python has imported them before the module runs."""
    modules = project_modules()
    graph = {}
    for name, path in modules.items():
        package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                dotted = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(package[:len(package) - node.level + 1]
                                    + ([node.module] if node.module else []))
                dotted = [base] + [f"{base}.{alias.name}" for alias in node.names]
            else:
                continue
            for full in dotted:
                parts = full.split(".")
                targets.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
        graph[name] = {t for t in targets
                       if t in modules and t != name and not name.startswith(t + ".")}
    return graph


def circles(graph) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan), each sorted."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in sorted(graph[node]):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            group = []
            while not group or group[-1] != node:
                group.append(stack.pop())
                on_stack.discard(group[-1])
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_circles():
    assert circles(import_graph()) == []


def test_the_circle_finder_sees_a_circle():
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


@pytest.mark.parametrize("module", ["weight_decay.data_parallel", "weight_decay.commands.options",
                                    "weight_decay.commands.run", "benchmarks.data_parallel",
                                    "benchmarks.report"])
def test_a_module_imports_on_its_own(module):
    subprocess.run([sys.executable, "-c", f"import {module}"], cwd=ROOT, check=True,
                   timeout=120)
