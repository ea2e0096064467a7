"""PyTorch implementations: the idiomatic loop, the project's ``train()`` and ``sweep()``.

* ``idiomatic``: what a user plotting the curves writes; ``wd_torch.WeightDecay`` (an
  ``nn.Linear``) and ``torch.optim.SGD`` with ``weight_decay=lambd`` on the weight's parameter
  group; per step ``loss(model(X[rows]), y[rows])``, ``zero_grad``, ``backward``, ``step``;
  after every epoch, under ``torch.no_grad()``, the loss on the whole training and validation
  sets. Data on the device.
* ``train`` / ``train-fused``: one whole ``wd_torch.train(method="concise")`` call, with the
  default ``implementation="idiomatic"`` (the loop above inside the library) or the public
  fast path ``implementation="fused"`` (analytic in-place steps; the single-read row-blocked
  step for large batches on the CPU).
* ``sweep`` / ``sweep-fused`` (sweep workloads): one whole ``wd_torch.sweep`` call over the
  workload's lambdas, each a column of one weight matrix.
"""

from __future__ import annotations

from .implementation import (
    Implementation,
    Prepared,
    host_arrays,
    sweep_implementation,
    train_implementation,
)

FRAMEWORK = "torch"


def cuda_status() -> tuple[bool, str]:
    import torch

    if torch.cuda.is_available():
        return True, f"torch sees {torch.cuda.get_device_name(0)}"
    return False, "torch.cuda.is_available() is False"


def _prepare_idiomatic(workload, data, dtype, device):
    import torch

    import wd_torch
    from wd_core.params import init_params
    from wd_torch.device import synchronize, torch_device

    dev = torch_device(device)
    X, y, X_val, y_val = (torch.from_numpy(a).to(dev) for a in host_arrays(data, dtype))
    batches = [[torch.as_tensor(rows, device=dev) for rows in data.epoch_batches(e)]
               for e in range(workload.epochs)]
    model = wd_torch.WeightDecay(data.num_inputs, lambd=workload.lambd, lr=workload.lr,
                                 dtype=dtype).to(dev)
    optimizer = model.configure_optimizers()
    w0, b0 = init_params(data.num_inputs, data.seed)

    def run():
        model.set_w_b(w0, b0)
        train_losses, val_losses = [], []
        for epoch in batches:
            for rows in epoch:
                loss = model.loss(model(X[rows]), y[rows])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            with torch.no_grad():
                train_losses.append(model.loss(model(X), y))
                val_losses.append(model.loss(model(X_val), y_val))
        return model, torch.stack(train_losses), torch.stack(val_losses)

    def outcome(result):
        model, train_losses, val_losses = result
        return (model.get_w_b()[0].detach().double().cpu().numpy(),
                train_losses.double().cpu().numpy(), val_losses.double().cpu().numpy())

    return Prepared(run=run, sync=lambda _: synchronize(dev), outcome=outcome)


def implementations(workload, device, dtype) -> list[Implementation]:
    if workload.lambdas > 1:
        return [sweep_implementation(FRAMEWORK), sweep_implementation(FRAMEWORK, "fused")]
    return [
        Implementation(FRAMEWORK, "idiomatic",
                       "autograd + torch.optim.SGD per step, no_grad losses per epoch",
                       _prepare_idiomatic),
        train_implementation(FRAMEWORK),
        train_implementation(FRAMEWORK, "fused"),
    ]
