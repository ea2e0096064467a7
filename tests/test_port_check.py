"""``weight-decay port-check MODULE:FACTORY``: exit 0 when the optax port follows the torch
optimizer, 1 when it does not, 2 with one line for bad input; a bug keeps its traceback.

The factories live in a module written to ``tmp_path`` and put on ``sys.path``, as a user's
training script would be.
"""

from __future__ import annotations

import sys
import textwrap

import pytest

from weight_decay.cli import main

pytest.importorskip("torch")
pytest.importorskip("jax")

FACTORIES = textwrap.dedent('''
    import torch
    from torch import nn
    from torch.optim import lr_scheduler


    def _model(dtype):
        torch.manual_seed(0)
        return nn.Sequential(nn.Linear(4, 8, dtype=dtype), nn.LayerNorm(8, dtype=dtype),
                             nn.GELU(), nn.Linear(8, 2, dtype=dtype))


    def _groups(model, decay, head_lr):
        """timm-style: decay on weights, none on biases and norms, a head of its own."""
        body = [p for n, p in model.named_parameters() if not n.startswith("3.")]
        return [{"params": [p for p in body if p.ndim > 1], "weight_decay": decay},
                {"params": [p for p in body if p.ndim <= 1], "weight_decay": 0.0},
                {"params": list(model[3].parameters()), "lr": head_lr, "weight_decay": 0.3}]


    def adamw32():
        model = _model(torch.float32)
        return model, torch.optim.AdamW(_groups(model, 0.05, 1e-3), lr=1e-2)


    def sgd64_scheduled():
        model = _model(torch.float64)
        model[0].bias.requires_grad_(False)  # frozen
        optimizer = torch.optim.SGD(_groups(model, 0.1, 0.05), lr=0.1, momentum=0.9,
                                    nesterov=True)
        return model, optimizer, lr_scheduler.StepLR(optimizer, step_size=2, gamma=0.5)


    def adam64_with_shape():
        model = _model(torch.float64)
        return model, torch.optim.Adam(_groups(model, 0.1, 0.02), lr=0.01), (5, 4)


    def differentiable():
        model = _model(torch.float64)
        return model, torch.optim.AdamW(_groups(model, 0.1, 0.02), lr=0.01,
                                        differentiable=True)


    def hooked():
        """A step hook the port cannot see: torch's steps differ from optax's."""
        model = _model(torch.float64)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)

        def shrink(opt, args, kwargs):
            with torch.no_grad():
                model[0].weight.mul_(0.999)

        optimizer.register_step_post_hook(shrink)
        return model, optimizer


    def adamw64_warmup_lambda():
        """Hugging Face's linear warm-up and decay: a LambdaLR, recorded over --steps."""
        model = _model(torch.float64)
        optimizer = torch.optim.AdamW(_groups(model, 0.05, 1e-3), lr=1e-2)
        return model, optimizer, lr_scheduler.LambdaLR(
            optimizer, lambda t: min(1.0, (t + 1) / 3) * max(0.0, 1 - t / 40))


    def sgd64_sequential_mid():
        """torchvision's warm-up then cosine, three steps in: ported from last_epoch 3."""
        model = _model(torch.float64)
        optimizer = torch.optim.SGD(_groups(model, 0.1, 0.05), lr=0.1, momentum=0.9)
        scheduler = lr_scheduler.SequentialLR(optimizer, [
            lr_scheduler.LinearLR(optimizer, start_factor=0.1, total_iters=4),
            lr_scheduler.CosineAnnealingLR(optimizer, T_max=6)], milestones=[4])
        for _ in range(3):
            for p in model.parameters():
                p.grad = torch.ones_like(p)
            optimizer.step()
            scheduler.step()
        return model, optimizer, scheduler


    def sgd64_one_cycle_and_list():
        model = _model(torch.float64)
        optimizer = torch.optim.SGD(_groups(model, 0.1, 0.05), lr=0.1, momentum=0.9)
        return model, optimizer, [lr_scheduler.OneCycleLR(optimizer, 0.2, total_steps=30),
                                  lr_scheduler.ExponentialLR(optimizer, gamma=0.99)]


    def adamw64_channels_last_fused():
        torch.manual_seed(0)
        model = nn.Sequential(nn.Conv2d(3, 4, 3, dtype=torch.float64), nn.Flatten(),
                              nn.LazyLinear(2, dtype=torch.float64))
        model[0].to(memory_format=torch.channels_last)
        model(torch.zeros(1, 3, 5, 5, dtype=torch.float64))
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, fused=True)
        for _ in range(2):
            for p in model.parameters():
                p.grad = torch.ones_like(p)
            optimizer.step()
        return model, optimizer


    def plateau():
        model = _model(torch.float64)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        return model, optimizer, lr_scheduler.ReduceLROnPlateau(optimizer)


    def other_optimizers_scheduler():
        model = _model(torch.float64)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        other = torch.optim.SGD(model.parameters(), lr=0.1)
        return model, optimizer, lr_scheduler.StepLR(other, step_size=2)


    def not_a_pair():
        return 3


    def broken():
        raise RuntimeError("a bug in the factory")
''')


@pytest.fixture
def factories(tmp_path, monkeypatch):
    """The module name of :data:`FACTORIES`, importable for the test's duration."""
    name = "port_check_factories"
    (tmp_path / f"{name}.py").write_text(FACTORIES, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    sys.modules.pop(name, None)


def one_error_line(capsys) -> str:
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("weight-decay: error: ") and "Traceback" not in captured.err
    return lines[0]


@pytest.mark.parametrize("factory", ["adamw32", "sgd64_scheduled", "adam64_with_shape"])
def test_a_ported_optimizer_exits_0(factories, capsys, factory):
    assert main(["port-check", f"{factories}:{factory}", "--steps", "6", "--seed", "3"]) == 0
    out = capsys.readouterr().out
    assert "entries within tolerance" in out and "BEYOND" not in out
    assert "param 3.weight" in out and "state " in out
    if factory == "adamw32":
        assert "1e-04" in out  # float32, Adam family
    else:
        assert "1e-12" in out


def test_a_hook_the_port_cannot_see_exits_1(factories, capsys):
    assert main(["port-check", f"{factories}:hooked", "--steps", "3"]) == 1
    out = capsys.readouterr().out
    assert "BEYOND" in out and "param 0.weight" in out


def test_a_refused_option_exits_2_with_one_line(factories, capsys):
    assert main(["port-check", f"{factories}:differentiable"]) == 2
    line = one_error_line(capsys)
    assert "differentiable=True has no exact optax twin" in line and "parameter group 0" in line


@pytest.mark.parametrize(("spec", "message"), [
    ("no_such_module_here:make", "cannot import 'no_such_module_here'"),
    ("{m}:missing", "has no function 'missing'"),
    ("{m}", "is not MODULE:FACTORY"),
    ("{m}:not_a_pair", "returned int; accepted: (module, optimizer)"),
])
def test_bad_input_exits_2_with_one_line(factories, capsys, spec, message):
    assert main(["port-check", spec.format(m=factories)]) == 2
    assert message in one_error_line(capsys)


def test_a_bug_in_the_factory_keeps_its_traceback(factories):
    with pytest.raises(RuntimeError, match="a bug in the factory"):
        main(["port-check", f"{factories}:broken"])


@pytest.mark.parametrize(("factory", "options", "said"), [
    ("adamw64_warmup_lambda", [], "scheduler LambdaLR at last_epoch 0"),
    ("sgd64_sequential_mid", [], "scheduler SequentialLR(LinearLR, CosineAnnealingLR) at "
                                 "last_epoch 3 (ported from there)"),
    ("sgd64_one_cycle_and_list", [], "OneCycleLR at last_epoch 0 + ExponentialLR at "
                                     "last_epoch 0"),
    ("adamw64_warmup_lambda", ["--clip-grad-norm", "0.5"], "clipped to norm 0.5"),
    ("adamw64_channels_last_fused", ["--clip-grad-norm", "2"], "clipped to norm 2"),
])
def test_schedulers_and_clipping_port(factories, capsys, factory, options, said):
    assert main(["port-check", f"{factories}:{factory}", "--steps", "12", *options]) == 0
    out = capsys.readouterr().out
    assert said in out and "entries within tolerance" in out and "BEYOND" not in out
    if "scheduler" in said:
        assert "lr group 0" in out and "lr group 2" in out


@pytest.mark.parametrize(("spec", "options", "message"), [
    ("{m}:adamw64_warmup_lambda", ["--clip-grad-norm", "-1"],
     "argument --clip-grad-norm: '-1' is not a finite number >= 0"),
    ("{m}:adamw64_warmup_lambda", ["--steps", "0"], "argument --steps: '0' is not an integer >= 1"),
    ("{m}:adamw64_warmup_lambda", ["--steps", "2.5"], "argument --steps: '2.5' is not an integer"),
    ("{m}:other_optimizers_scheduler", [], "the StepLR is attached to another optimizer"),
    ("{m}:plateau", [], "scheduler ReduceLROnPlateau has no port: its lr follows a metric"),
])
def test_bad_scheduler_and_clipping_input_exits_2(factories, capsys, spec, options, message):
    assert main(["port-check", spec.format(m=factories), *options]) == 2
    assert message in one_error_line(capsys)
