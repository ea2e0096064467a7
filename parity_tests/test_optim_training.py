"""``train(..., optimizer=OptimizerSpec(...))``: the chapter's model with any optimizer family.

Each backend's run is compared with an independent loop over ``torch.optim`` itself (not
with ``wd_torch.optim.build_optimizer``): the chapter's model as ``w`` (1, d) and ``b`` (1,)
tensors, two parameter groups (weight decayed by ``lambd``, bias not), the batch order of
``wd_core``.
"""

from __future__ import annotations

import numpy as np
import pytest

from wd_core import SyntheticData
from wd_core.errors import InputTypeError
from wd_core.optimizers import ADAM_FAMILIES, OptimizerSpec
from wd_core.params import init_params
from wd_core.tolerances import assert_close, run_kind
from weight_decay.optimizer_demo import optimizer_rows

torch = pytest.importorskip("torch")

from wd_torch.optim import SGDW  # noqa: E402

DATA = SyntheticData(num_train=12, num_val=5, num_inputs=7, batch_size=5, seed=3)
EPOCHS = 4
SPECS = {
    "sgd-momentum": OptimizerSpec("sgd", momentum=0.9),
    "sgd-nesterov": OptimizerSpec("sgd", momentum=0.8, nesterov=True),
    "sgd-dampening": OptimizerSpec("sgd", momentum=0.7, dampening=0.3),
    "sgdw": OptimizerSpec("sgdw", momentum=0.9),
    "adam": OptimizerSpec("adam", betas=(0.8, 0.99)),
    "adamw": OptimizerSpec("adamw", eps=1e-6),
}
ORACLES = {
    "sgd": lambda s, g, lr: torch.optim.SGD(g, lr=lr, momentum=s.momentum,
                                            dampening=s.dampening, nesterov=s.nesterov),
    "sgdw": lambda s, g, lr: SGDW(g, lr=lr, momentum=s.momentum, dampening=s.dampening,
                                  nesterov=s.nesterov),
    "adam": lambda s, g, lr: torch.optim.Adam(g, lr=lr, betas=s.betas, eps=s.eps),
    "adamw": lambda s, g, lr: torch.optim.AdamW(g, lr=lr, betas=s.betas, eps=s.eps),
}


def torch_optim_run(spec, *, lambd, lr, penalty_in_loss=False, make_optimizer=None):
    """The concise model (or, with ``penalty_in_loss``, the scratch one) in float64 with
    ``torch.optim``: returns the final ``w`` (d, 1) and ``b`` (1,). ``make_optimizer(groups,
    lr)`` builds the optimizer (default: ``ORACLES`` with the spec's hyper-parameters)."""
    w0, b0 = init_params(DATA.num_inputs, seed=DATA.seed)
    w = torch.tensor(w0.T.copy(), requires_grad=True)
    b = torch.tensor(b0.copy(), requires_grad=True)
    decay = 0.0 if penalty_in_loss else lambd
    groups = [{"params": [w], "weight_decay": decay}, {"params": [b], "weight_decay": 0.0}]
    if make_optimizer is None:
        optimizer = ORACLES[spec.family](spec, groups, lr)
    else:
        optimizer = make_optimizer(groups, lr)
    X, y = torch.tensor(DATA.X_train), torch.tensor(DATA.y_train)
    for epoch in range(EPOCHS):
        for rows in DATA.epoch_batches(epoch):
            rows = torch.as_tensor(rows)
            loss = ((X[rows] @ w.T + b - y[rows]) ** 2).mean() / 2
            if penalty_in_loss:
                loss = loss + lambd * (w**2).sum() / 2
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return w.detach().numpy().T, b.detach().numpy()


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", sorted(SPECS))
def test_concise_training_matches_torch_optim(backend, name, dtype):
    spec = SPECS[name]
    lr = 0.01 if spec.family in ("adam", "adamw") else 0.05
    w, b = torch_optim_run(spec, lambd=0.7, lr=lr)
    history = backend.train(DATA, method="concise", lambd=0.7, lr=lr, max_epochs=EPOCHS,
                            dtype=dtype, optimizer=spec, epoch_params=True)
    kind = run_kind(dtype, adam=spec.family in ADAM_FAMILIES)
    assert_close(history.w, w, kind, err_msg=f"w of {name}")
    assert_close(history.b, b, kind, err_msg=f"b of {name}")
    assert history.config["optimizer"] == spec.to_config()


@pytest.mark.parametrize(("family", "torch_class"), [("sgd", "SGD"), ("adam", "Adam"),
                                                     ("adamw", "AdamW")])
def test_a_spec_with_defaults_is_torch_optim_with_its_defaults(backend, family, torch_class):
    """OptimizerSpec's defaults (momentum 0, betas (0.9, 0.999), eps 1e-8) are torch's own:
    the oracle is built with nothing but ``lr`` and the groups."""
    w, b = torch_optim_run(None, lambd=0.7, lr=0.01,
                           make_optimizer=getattr(torch.optim, torch_class))
    history = backend.train(DATA, method="concise", lambd=0.7, lr=0.01, max_epochs=EPOCHS,
                            dtype="float64", optimizer=OptimizerSpec(family), epoch_params=True)
    assert_close(history.w, w, "float64")
    assert_close(history.b, b, "float64")


@pytest.mark.parametrize("family", ["sgd", "adam", "adamw"])
def test_scratch_uses_the_family_without_decay(backend, family):
    """Scratch keeps the penalty in the loss: coupled families equal concise, AdamW does not."""
    spec = OptimizerSpec(family)
    w, _ = torch_optim_run(spec, lambd=0.7, lr=0.01, penalty_in_loss=True)
    scratch = backend.train(DATA, method="scratch", lambd=0.7, lr=0.01, max_epochs=EPOCHS,
                            dtype="float64", optimizer=spec, epoch_params=True)
    concise = backend.train(DATA, method="concise", lambd=0.7, lr=0.01, max_epochs=EPOCHS,
                            dtype="float64", optimizer=spec, epoch_params=True)
    assert_close(scratch.w, w, "float64")
    if family == "adamw":
        assert not np.allclose(scratch.w, concise.w, rtol=1e-6)
    else:
        assert_close(concise.w, scratch.w, "float64")


@pytest.mark.parametrize("method", ["scratch", "concise"])
def test_plain_sgd_spec_is_the_default(backend, method):
    kwargs = {"method": method, "lambd": 3.0, "lr": 0.01, "max_epochs": 3, "dtype": "float64"}
    default = backend.train(DATA, **kwargs, epoch_params=True)
    with_spec = backend.train(DATA, optimizer=OptimizerSpec("sgd"), **kwargs, epoch_params=True)
    np.testing.assert_array_equal(with_spec.epoch_w, default.epoch_w)
    assert "optimizer" not in default.config


def test_jax_same_spec_does_not_recompile():
    import wd_jax
    from wd_jax.training import TRACE_COUNTS

    spec = OptimizerSpec("adamw", betas=(0.85, 0.995))
    first = TRACE_COUNTS["concise"]
    wd_jax.train(DATA, method="concise", lambd=1.0, lr=0.01, max_epochs=2, optimizer=spec)
    before = TRACE_COUNTS["concise"]
    assert before == first + 1  # a spec not seen before compiles once
    wd_jax.train(DATA, method="concise", lambd=2.0, lr=0.02, max_epochs=2,
                 optimizer=OptimizerSpec("adamw", betas=(0.85, 0.995)))
    assert TRACE_COUNTS["concise"] == before


def test_bad_optimizer_is_a_clear_error(backend):
    with pytest.raises(InputTypeError, match="optimizer must be None or a wd_core.optimizers"):
        backend.train(DATA, method="concise", lambd=1.0, lr=0.01, max_epochs=1,
                      optimizer="adamw")


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"family": "rmsprop"}, ValueError, "unknown optimizer family 'rmsprop'"),
        ({"family": "adam", "momentum": 0.9}, ValueError, "momentum=0.9 does not apply"),
        ({"family": "sgd", "eps": 1e-6}, ValueError, "eps=1e-06 does not apply"),
        ({"momentum": -0.1}, ValueError, "momentum must be a finite number >= 0"),
        ({"nesterov": True}, ValueError, "nesterov=True requires momentum > 0"),
        ({"family": "adamw", "betas": (0.9, 1.0)}, ValueError, r"betas\[1\] must be"),
        ({"family": "adam", "eps": float("nan")}, ValueError, "eps must be a finite number"),
        ({"nesterov": 1}, InputTypeError, "nesterov must be True or False"),
    ],
)
def test_optimizer_spec_validation(kwargs, error, message):
    with pytest.raises(error, match=message):
        OptimizerSpec(**kwargs)


def test_optimizer_spec_label_and_config():
    spec = OptimizerSpec("sgd", momentum=0.9, nesterov=True)
    assert spec.label() == "sgd(momentum=0.9, nesterov=True)"
    assert OptimizerSpec("adamw").label() == "adamw"
    assert OptimizerSpec("adam", betas=[0.8, 0.9]).to_config()["betas"] == [0.8, 0.9]
    assert hash(spec) == hash(OptimizerSpec("sgd", momentum=0.9, nesterov=True))


def test_demo_rows_agree_with_the_torch_optim_oracle():
    data = SyntheticData(num_train=10, num_val=6, num_inputs=20, batch_size=5, seed=0)
    rows = optimizer_rows(data, max_epochs=3)
    framework = [r for r in rows if r["agrees"] is not None]
    assert len(rows) == 2 * 2 * 3 and len(framework) == 8
    assert all(r["agrees"] for r in framework), [r["implementation"] for r in framework
                                                 if not r["agrees"]]
    assert {r["implementation"] for r in rows} >= {"jax concise adamw",
                                                   "torch concise sgd(momentum=0.5)"}
