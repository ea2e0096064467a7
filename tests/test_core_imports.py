"""wd_core is the numpy-only hub: importing it (and using the reference) loads no framework."""

from __future__ import annotations

import subprocess
import sys

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
sys.modules[{module!r}] = None  # makes `import {module}` raise ImportError
try:
    import {package}
except ImportError as err:
    print(err)
"""


def test_missing_framework_names_the_extra():
    for module, package, extra in (("torch", "wd_torch", "torch"), ("jax", "wd_jax", "jax")):
        code = HIDDEN.format(module=module, package=package)
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             check=True).stdout
        assert f"pip install 'weight-decay[{extra}]'" in out, out
