"""The naive port measured: optax's same-named optimizer with torch's hyper-parameters.

For every ``torch.optim`` class the port covers (``wd_jax.optim.PORTS``) and that has an optax
namesake (its ``naive``), one representative configuration with weight decay (``CONFIGS``):
the float64 MLP of ``test_port_models`` (Muon: two bias-free linear layers) in one parameter
group, 50 steps of drawn N(0, 1)
gradients, and the relative error of the parameters against torch's after the run, for the
exact twin (``wd_jax.port.optimizer_from_torch``) and for the namesake. ``python -m
parity_tests.measure_naive_ports`` prints the table that docs/optimizers.md quotes;
``test_naive_ports.py`` recomputes it and checks the document.
"""

from __future__ import annotations

import numpy as np

STEPS = 50

#: torch class -> its constructor's keyword arguments (weight decay on, non-default options).
CONFIGS = {
    "torch.optim.RMSprop": {"lr": 0.01, "alpha": 0.9, "weight_decay": 0.1, "momentum": 0.5,
                            "centered": True},
    "torch.optim.Adagrad": {"lr": 0.05, "lr_decay": 0.01, "weight_decay": 0.1},
    "torch.optim.Adadelta": {"lr": 1.0, "rho": 0.9, "weight_decay": 0.1},
    "torch.optim.Adamax": {"lr": 0.01, "weight_decay": 0.1},
    "torch.optim.NAdam": {"lr": 0.01, "weight_decay": 0.1},
    "torch.optim.RAdam": {"lr": 0.01, "weight_decay": 0.1},
    "torch.optim.Adafactor": {"lr": 0.01, "weight_decay": 0.1},
    "torch.optim.ASGD": {"lr": 0.01, "weight_decay": 0.1, "t0": 10.0},
    "torch.optim.Rprop": {"lr": 0.01},
    "torch.optim.Adam": {"lr": 0.01, "weight_decay": 0.1, "amsgrad": True},
    "torch.optim.AdamW": {"lr": 0.01, "weight_decay": 0.1, "amsgrad": True},
    "torch.optim.Muon": {"lr": 0.02, "weight_decay": 0.1},
}
#: Muon takes only 2-D parameters: its rows use two bias-free linear layers.
MATRICES_ONLY = {"torch.optim.Muon"}


def _model(torch_class: str):
    """The MLP of ``test_port_models``; for :data:`MATRICES_ONLY`, ``Linear(5, 8) ->
    Linear(8, 3)`` without biases, float64, drawn from a seeded numpy generator."""
    import torch

    from parity_tests.test_port_models import make_model

    if torch_class not in MATRICES_ONLY:
        return make_model("mlp")
    model = torch.nn.Sequential(torch.nn.Linear(5, 8, bias=False, dtype=torch.float64),
                                torch.nn.Linear(8, 3, bias=False, dtype=torch.float64))
    rng = np.random.default_rng(7)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.tensor(0.5 * rng.standard_normal(tuple(p.shape))))
    return model


def _torch_class(torch_class: str):
    import torch

    return getattr(torch.optim, torch_class.rsplit(".", 1)[-1])


def _relative_error(params: dict, model) -> float:
    """The largest ``max|a - b| / max|b|`` over the parameters."""
    return max(float(np.max(np.abs(np.asarray(params[n]) - p.detach().numpy()))
                     / np.max(np.abs(p.detach().numpy())))
               for n, p in model.named_parameters())


def measure(torch_class: str, steps: int = STEPS) -> tuple[float, float | None]:
    """``(twin's error, namesake's error or None)`` after ``steps`` steps against torch."""
    import jax

    from parity_tests.port_runs import drawn_gradients, optax_steps, torch_steps
    from wd_jax import optim as jopt
    from wd_jax import port

    config = CONFIGS[torch_class]
    ported = jopt.PORTS[torch_class]
    model = _model(torch_class)
    grads = drawn_gradients(model, steps)
    with jax.enable_x64(True):
        params = port.params_from_torch(model)
        optimizer = _torch_class(torch_class)(model.parameters(), **config)
        tx = port.optimizer_from_torch(optimizer, model)
        state = port.state_from_torch(optimizer, model, tx, params)
        twin, _ = optax_steps(tx, params, state, grads)
        naive = None
        if ported.naive is not None:
            options = {k: v for k, v in optimizer.param_groups[0].items()
                       if k in ported.options}
            naive_tx = ported.naive(**options)
            naive, _ = optax_steps(naive_tx, params, naive_tx.init(params), grads)
    torch_steps(model, optimizer, None, grads)
    return (_relative_error(twin, model),
            None if naive is None else _relative_error(naive, model))


def rows() -> list[tuple[str, float, float | None]]:
    """``(torch class, twin's error, namesake's error or None)`` for every class in
    :data:`CONFIGS`."""
    return [(name, *measure(name)) for name in CONFIGS]


def table(measured) -> str:
    lines = ["| torch (50 steps, weight decay on) | exact twin | optax's namesake |",
             "|---|---:|---:|"]
    for name, twin, naive in measured:
        options = ", ".join(f"{k}={v}" for k, v in CONFIGS[name].items())
        shown = "no namesake" if naive is None else f"{naive:.1e}"
        lines.append(f"| `{name.rsplit('.', 1)[-1]}({options})` | {twin:.1e} | {shown} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(table(rows()))
