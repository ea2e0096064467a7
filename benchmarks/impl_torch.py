"""PyTorch implementations: the idiomatic loop, the project's ``train()``, the fused path.

* ``idiomatic``: what a user writes; ``wd_torch.WeightDecay`` (an ``nn.Linear``) and
  ``torch.optim.SGD`` with ``weight_decay=lambd`` on the weight's parameter group; per step
  ``loss(model(X[rows]), y[rows])``, ``zero_grad``, ``backward``, ``step``. Data on the device.
* ``train``: one whole ``wd_torch.train(method="concise")`` call (it is the idiomatic loop
  plus moving the data, per-epoch losses on the training and validation sets, the History).
* ``train-fused``: one whole ``wd_torch.train(implementation="fused")`` call, the public
  fast path: analytic in-place steps (block size chosen by ``auto_block_rows``: the
  single-read step for large batches on the CPU), per-epoch losses and the History.
"""

from __future__ import annotations

from .implementation import (
    Implementation,
    Prepared,
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
    from wd_torch.device import synchronize, torch_device, torch_dtype

    dev, tdtype = torch_device(device), torch_dtype(dtype)
    X = torch.as_tensor(data.X_train, dtype=tdtype, device=dev)
    y = torch.as_tensor(data.y_train, dtype=tdtype, device=dev)
    batches = [[torch.as_tensor(rows, device=dev) for rows in data.epoch_batches(e)]
               for e in range(workload.epochs)]
    model = wd_torch.WeightDecay(data.num_inputs, lambd=workload.lambd, lr=workload.lr,
                                 dtype=dtype).to(dev)
    optimizer = model.configure_optimizers()
    w0, b0 = init_params(data.num_inputs, data.seed)

    def run():
        model.set_w_b(w0, b0)
        for epoch in batches:
            for rows in epoch:
                loss = model.loss(model(X[rows]), y[rows])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
        return model

    def final_w(model):
        return model.get_w_b()[0].detach().double().cpu().numpy()

    return Prepared(run=run, sync=lambda _: synchronize(dev), final_w=final_w)


def implementations(workload, device, dtype) -> list[Implementation]:
    found = [
        Implementation(FRAMEWORK, "idiomatic", "autograd + torch.optim.SGD per step",
                       _prepare_idiomatic),
        train_implementation(FRAMEWORK),
    ]
    return found + [train_implementation(FRAMEWORK, "fused")]
