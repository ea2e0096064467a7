"""``WD_BACKENDS`` decides what the suite tests, and a named backend that is missing fails it.

The failing cases run pytest in a subprocess (only collection, on one small module): with an
unknown name, and with ``torch`` made unimportable by a stand-in package earlier on the path.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from parity_tests.conftest import requested_backends

ROOT = Path(__file__).resolve().parents[1]


def collect(tmp_path, backends: str, extra_path: Path | None = None):
    env = {**os.environ, "WD_BACKENDS": backends}
    if extra_path is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(extra_path), str(ROOT)])
    return subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
         "parity_tests/test_mirror.py"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )


def test_default_is_both_backends(monkeypatch):
    monkeypatch.delenv("WD_BACKENDS", raising=False)
    assert requested_backends() == ["torch", "jax"]
    monkeypatch.setenv("WD_BACKENDS", " jax, ")
    assert requested_backends() == ["jax"]


def test_unknown_backend_is_an_error(tmp_path):
    result = collect(tmp_path, "torch,tensorflow")
    assert result.returncode == pytest.ExitCode.USAGE_ERROR, result.stdout + result.stderr
    assert "WD_BACKENDS names unknown backend(s) ['tensorflow']" in result.stderr


def test_missing_framework_fails_instead_of_skipping(tmp_path):
    fake = tmp_path / "torch"
    fake.mkdir()
    (fake / "__init__.py").write_text("raise ImportError('torch is not installed here')\n")
    result = collect(tmp_path, "torch,jax", extra_path=tmp_path)
    assert result.returncode == pytest.ExitCode.USAGE_ERROR, result.stdout + result.stderr
    assert "WD_BACKENDS names 'torch' but wd_torch cannot be imported" in result.stderr
    # wd_torch's error carries the cause (a torch that is there but fails to import)
    assert "whose import fails: ImportError: torch is not installed here" in result.stderr
