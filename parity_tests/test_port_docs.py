"""docs/porting.md and the README's "Porting an optimizer": their examples run as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from parity_tests.test_port_models import (
    make_model,
    one_torch_thread,  # noqa: F401  (autouse fixture)
)

torch = pytest.importorskip("torch")
jax = pytest.importorskip("jax")

ROOT = Path(__file__).resolve().parents[1]
DOC = (ROOT / "docs" / "porting.md").read_text(encoding="utf-8")
README = (ROOT / "README.md").read_text(encoding="utf-8")
README_HEADING = "## Porting an optimizer"


def python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)


def test_how_to_port_example_runs_and_torch_resumes():
    (example,) = python_blocks(DOC)
    namespace = {}
    exec(compile(example, "docs/porting.md", "exec"), namespace)
    optimizer, model = namespace["optimizer"], namespace["model"]
    assert {float(s["step"]) for s in optimizer.state.values()} == {1.0}
    model(torch.ones(5, 4)).sum().backward()
    optimizer.step()  # torch continues from the carried state
    assert {float(s["step"]) for s in optimizer.state.values()} == {2.0}


def test_readme_section_example_runs_and_is_short():
    section = README.split(README_HEADING)[1].split("\n## ")[0]
    assert len(section.strip()) < 2500, len(section.strip())
    (example,) = python_blocks(section)
    namespace = {"torch": torch, "model": make_model("mlp")}
    exec(compile(example, "README.md (Porting an optimizer)", "exec"), namespace)
    assert set(namespace["params"]) == {n for n, _ in namespace["model"].named_parameters()}
