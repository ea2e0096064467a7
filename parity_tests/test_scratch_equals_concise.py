"""For plain SGD the penalty in the loss and the optimizer's decay are the same mathematics.

``grad(L + lambd*||w||**2/2) = grad L + lambd*w`` is exactly what torch's
``SGD(weight_decay=lambd)`` and optax's ``add_decayed_weights(lambd)`` add to the gradient, so
a scratch run and a concise run take the same steps: within one framework and across the two
(torch scratch vs jax concise, jax scratch vs torch concise), every epoch, every case.
"""

from __future__ import annotations

import pytest

from parity_tests.cases import DTYPES, LAMBDAS, RUN_CASES
from parity_tests.conftest import require_backends
from parity_tests.runs import backend_run
from wd_core.tolerances import assert_close

FIELDS = ("epoch_w", "epoch_b", "train_loss", "val_loss")
PAIRS = [("torch", "torch"), ("jax", "jax"), ("torch", "jax"), ("jax", "torch")]
DECAYING = [lam for lam in LAMBDAS if lam > 0]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("lambd", DECAYING)
@pytest.mark.parametrize("case", RUN_CASES)
@pytest.mark.parametrize(("scratch_in", "concise_in"), PAIRS,
                         ids=[f"{a}_scratch-vs-{b}_concise" for a, b in PAIRS])
def test_scratch_run_equals_concise_run(scratch_in, concise_in, case, lambd, dtype):
    require_backends(*sorted({scratch_in, concise_in}))
    scratch = backend_run(scratch_in, case, "scratch", lambd, dtype)
    concise = backend_run(concise_in, case, "concise", lambd, dtype)
    for field in FIELDS:
        assert_close(getattr(scratch, field), getattr(concise, field), dtype,
                     err_msg=f"{field}: {scratch_in} scratch vs {concise_in} concise, {case}")
