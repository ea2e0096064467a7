"""Backends under test come from ``WD_BACKENDS`` (default ``torch,jax``).

A named backend that cannot be imported stops the run with an error: a parity suite that
skips a missing framework is a check that cannot fail. A test that needs a framework the
variable leaves out (a pitfall built in optax, a torch-vs-jax comparison) asks
:func:`require_backends`, which skips it with the reason.
"""

from __future__ import annotations

import importlib
import os

import pytest

from wd_core.errors import InputError
from weight_decay.backends import BACKENDS


def requested_backends() -> list[str]:
    """The backend names of ``WD_BACKENDS``, in order; ``pytest.UsageError`` for unknown ones."""
    names = [n.strip() for n in os.environ.get("WD_BACKENDS", "torch,jax").split(",")]
    names = [n for n in names if n]
    if not names:
        raise pytest.UsageError(f"WD_BACKENDS={os.environ['WD_BACKENDS']!r} names no backend; "
                                f"accepted: a comma-separated list of {', '.join(BACKENDS)}")
    unknown = [n for n in names if n not in BACKENDS]
    if unknown:
        raise pytest.UsageError(f"WD_BACKENDS names unknown backend(s) {unknown}; "
                                f"accepted: {', '.join(BACKENDS)}")
    return names


def require_backends(*names: str) -> list:
    """The modules ``wd_<name>``; skips the calling test unless ``WD_BACKENDS`` names them all."""
    missing = [n for n in names if n not in requested_backends()]
    if missing:
        pytest.skip(f"WD_BACKENDS={os.environ.get('WD_BACKENDS', 'torch,jax')!r} leaves out "
                    f"{', '.join(missing)}")
    return [importlib.import_module(f"wd_{n}") for n in names]


def pytest_configure(config):
    for name in requested_backends():
        try:
            importlib.import_module(f"wd_{name}")
        except InputError as err:  # MissingFrameworkError, BrokenFrameworkError
            raise pytest.UsageError(
                f"WD_BACKENDS names {name!r} but wd_{name} cannot be imported: {err}"
            ) from None


def pytest_generate_tests(metafunc):
    if "backend" in metafunc.fixturenames:
        names = requested_backends()
        metafunc.parametrize("backend", [importlib.import_module(f"wd_{n}") for n in names],
                             ids=names)


@pytest.fixture(scope="session")
def chapter_data():
    from wd_core import SyntheticData

    return SyntheticData(num_train=20, num_val=100, num_inputs=200, batch_size=5, seed=0)
