"""``wd_jax.checkpoint``: a module's whole state_dict (parameters and buffers) to JAX and back.

The model (``Net``, float64): ``Conv2d`` kept in ``channels_last`` -> ``BatchNorm2d`` -> ReLU
-> ``Linear`` -> ``BatchNorm1d`` -> ReLU -> ``Linear``, with a persistent bfloat16 buffer
(``peak``, a running max of the first ``Linear``'s outputs), a non-persistent buffer and a
buffer registered as ``None``. It is trained a few SGD steps in train mode, so that the
running statistics, ``num_batches_tracked`` and ``peak`` are not their initial values, and
then crosses into a fresh ``Net`` (other parameters, untrained buffers) through JAX.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from parity_tests.test_port_models import one_torch_thread  # noqa: F401  (autouse fixture)

torch = pytest.importorskip("torch")
jax = pytest.importorskip("jax")
import jax.numpy as jnp  # noqa: E402
from torch import nn  # noqa: E402

from wd_core.errors import InputError, InputTypeError  # noqa: E402
from wd_jax import checkpoint  # noqa: E402

F64 = torch.float64
STEPS = 3
NAMES = ["peak", "conv.weight", "conv.bias", "bn2.weight", "bn2.bias", "bn2.running_mean",
         "bn2.running_var", "bn2.num_batches_tracked", "fc.weight", "fc.bias", "bn1.weight",
         "bn1.bias", "bn1.running_mean", "bn1.running_var", "bn1.num_batches_tracked",
         "head.weight", "head.bias"]


class Net(nn.Module):
    """Images ``(n, 2, 4, 4)`` -> ``head(relu(bn1(fc(flatten(relu(bn2(conv(x))))))))``
    ``(n, 3)``; in train mode ``peak`` (bfloat16, ``(6,)``) keeps the max of ``|fc(...)|``."""

    def __init__(self, dtype=F64):
        super().__init__()
        self.register_buffer("peak", torch.zeros(6, dtype=torch.bfloat16))
        self.register_buffer("scratch", torch.zeros(3, dtype=dtype), persistent=False)
        self.register_buffer("absent", None)
        self.conv = nn.Conv2d(2, 4, 3, padding=1, dtype=dtype)
        self.bn2 = nn.BatchNorm2d(4, dtype=dtype)
        self.fc = nn.Linear(4 * 4 * 4, 6, dtype=dtype)
        self.bn1 = nn.BatchNorm1d(6, dtype=dtype)
        self.head = nn.Linear(6, 3, dtype=dtype)

    def forward(self, x):
        h = self.fc(torch.relu(self.bn2(self.conv(x))).flatten(1))
        if self.training:
            with torch.no_grad():
                self.peak.copy_(torch.maximum(self.peak, h.abs().amax(0).to(torch.bfloat16)))
        return self.head(torch.relu(self.bn1(h)))


def make_net(seed: int, dtype=F64) -> Net:
    """A ``Net`` with parameters drawn from numpy (seeded), its conv in ``channels_last``."""
    net = Net(dtype)
    rng = np.random.default_rng(seed)
    with torch.no_grad():
        for param in net.parameters():
            param.copy_(torch.from_numpy(rng.normal(0.0, 0.3, tuple(param.shape))))
    return net.to(memory_format=torch.channels_last)


def batch(seed: int, dtype=F64):
    rng = np.random.default_rng(seed)
    x = torch.from_numpy(rng.normal(size=(5, 2, 4, 4))).to(dtype)
    return x.contiguous(memory_format=torch.channels_last), torch.from_numpy(
        rng.normal(size=(5, 3))).to(dtype)


def trained_net(dtype=F64) -> Net:
    """``make_net(0)`` after ``STEPS`` SGD steps (momentum 0.9) in train mode."""
    net = make_net(0, dtype)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
    net.train()
    for step in range(STEPS):
        x, y = batch(100 + step, dtype)
        optimizer.zero_grad()
        (((net(x) - y) ** 2).mean() / 2).backward()
        optimizer.step()
    return net


def bits(value) -> np.ndarray:
    """The exact contents of a torch tensor or JAX array as numpy (bfloat16 as its int16
    bits), computed here rather than with the code under test."""
    if isinstance(value, torch.Tensor):
        value = value.detach()
        return (value.view(torch.int16) if value.dtype == torch.bfloat16 else value).numpy()
    array = np.asarray(value)
    return array.view(np.int16) if array.dtype == jnp.bfloat16 else array


def snapshot(net) -> dict:
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


def strides(net) -> dict:
    return {k: v.stride() for k, v in net.state_dict().items()}


@pytest.fixture
def x64():
    with jax.enable_x64(True):
        yield


@pytest.fixture
def trained():
    return trained_net()


def test_the_trained_state_is_not_trivial(trained):
    assert list(trained.state_dict()) == NAMES
    assert trained.conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert not trained.conv.weight.is_contiguous()
    for bn in (trained.bn1, trained.bn2):
        assert int(bn.num_batches_tracked) == STEPS
        assert not torch.equal(bn.running_mean, torch.zeros_like(bn.running_mean))
        assert not torch.equal(bn.running_var, torch.ones_like(bn.running_var))
    assert bool((trained.peak > 0).all())


def test_arrays_are_the_state_dict_exactly(trained, x64):
    arrays = checkpoint.state_dict_from_torch(trained)
    assert list(arrays) == NAMES  # names and order; non-persistent and None buffers left out
    for name, tensor in trained.state_dict().items():
        assert isinstance(arrays[name], jax.Array)
        assert arrays[name].shape == tuple(tensor.shape), name
        assert str(arrays[name].dtype) == str(tensor.dtype).removeprefix("torch."), name
        np.testing.assert_array_equal(bits(arrays[name]), bits(tensor), err_msg=name)
    assert arrays["bn2.num_batches_tracked"].dtype == jnp.int64
    assert arrays["peak"].dtype == jnp.bfloat16


def test_round_trip_into_a_fresh_model_is_bit_exact(trained, x64):
    fresh = make_net(1)
    params_before = dict(fresh.named_parameters())
    strides_before = strides(fresh)
    optimizer = torch.optim.SGD(fresh.parameters(), lr=0.1)
    expected = trained.state_dict()
    for name, value in fresh.state_dict().items():  # every entry has something to carry
        assert not torch.equal(value, expected[name]), name

    checkpoint.state_dict_to_torch(checkpoint.state_dict_from_torch(trained), fresh)

    got = fresh.state_dict()
    assert list(got) == list(expected)
    for name in expected:
        assert got[name].dtype == expected[name].dtype, name
        assert torch.equal(got[name], expected[name]), name
    assert strides(fresh) == strides_before
    assert fresh.conv.weight.is_contiguous(memory_format=torch.channels_last)
    for name, param in fresh.named_parameters():  # the same objects: the optimizer still
        assert param is params_before[name]          # points at them
    assert [p for g in optimizer.param_groups for p in g["params"]] == list(fresh.parameters())


def test_eval_forward_after_the_round_trip_equals_the_original(trained, x64):
    fresh = make_net(1)
    checkpoint.state_dict_to_torch(checkpoint.state_dict_from_torch(trained), fresh)
    trained.eval()
    fresh.eval()
    x, _ = batch(7)
    with torch.no_grad():
        assert torch.equal(fresh(x), trained(x))
        assert not torch.equal(make_net(1).eval()(x), trained(x))  # the check can fail


def test_a_jax_side_update_of_the_buffers_comes_back(trained, x64):
    before = snapshot(trained)
    arrays = checkpoint.state_dict_from_torch(trained)
    arrays["bn2.running_mean"] = arrays["bn2.running_mean"] * 2
    arrays["bn1.num_batches_tracked"] = arrays["bn1.num_batches_tracked"] + 1
    arrays["peak"] = -arrays["peak"]
    checkpoint.state_dict_to_torch(arrays, trained)

    assert torch.equal(trained.bn2.running_mean, before["bn2.running_mean"] * 2)
    assert trained.bn1.num_batches_tracked.dtype == torch.int64
    assert int(trained.bn1.num_batches_tracked) == STEPS + 1
    assert torch.equal(trained.peak, -before["peak"])
    assert trained.peak.dtype == torch.bfloat16
    for name in set(NAMES) - {"bn2.running_mean", "bn1.num_batches_tracked", "peak"}:
        assert torch.equal(trained.state_dict()[name], before[name]), name


def _drop(arrays, name):
    del arrays[name]


def _add(arrays, name):
    arrays[name] = jnp.zeros(3)


def _reshape(arrays, name):
    arrays[name] = arrays[name].reshape(1, -1)


def _cast(dtype):
    def cast(arrays, name):
        arrays[name] = arrays[name].astype(dtype)
    return cast


@pytest.mark.parametrize(("spoil", "name", "message"), [
    (_drop, "head.bias", r"missing \['head.bias'\], not in the module \[\]"),
    (_drop, "bn1.num_batches_tracked", r"missing \['bn1.num_batches_tracked'\]"),
    (_add, "scratch", r"missing \[\], not in the module \['scratch'\]"),
    (_add, "absent", r"not in the module \['absent'\]"),
    (_reshape, "head.bias", r"arrays\['head.bias'\] has shape \(1, 3\).* has \(3,\)"),
    (_reshape, "bn1.running_mean", r"arrays\['bn1.running_mean'\] has shape \(1, 6\)"),
    (_cast(jnp.float32), "head.bias", r"arrays\['head.bias'\] has dtype float32.* float64"),
    (_cast(jnp.int32), "bn1.num_batches_tracked",
     r"arrays\['bn1.num_batches_tracked'\] has dtype int32.* int64"),
    (_cast(jnp.float32), "peak", r"arrays\['peak'\] has dtype float32.* bfloat16"),
], ids=["missing", "missing-counter", "extra-nonpersistent", "extra-none-buffer", "shape",
        "shape-running-mean", "dtype", "dtype-counter", "dtype-bfloat16"])
def test_a_mismatch_is_refused_before_anything_is_copied(trained, x64, spoil, name, message):
    arrays = checkpoint.state_dict_from_torch(trained)
    spoil(arrays, name)
    fresh = make_net(1)
    before = snapshot(fresh)
    with pytest.raises(InputError, match=message):
        checkpoint.state_dict_to_torch(arrays, fresh)
    for key, value in fresh.state_dict().items():  # the good entries were not written either
        assert torch.equal(value, before[key]), key


def test_int64_counters_need_x64_and_are_never_cast():
    net = trained_net(torch.float32)
    with jax.enable_x64(False):
        with pytest.raises(InputError, match=r"'bn2.num_batches_tracked' is int64 but JAX "
                                             r"made it int32.*jax.enable_x64\(True\)"):
            checkpoint.state_dict_from_torch(net)
        with pytest.raises(InputError, match=r"'conv.weight' is float64.*enable_x64"):
            checkpoint.state_dict_from_torch(make_net(0))
    with jax.enable_x64(True):
        arrays = checkpoint.state_dict_from_torch(net)
    assert arrays["conv.weight"].dtype == jnp.float32
    assert arrays["bn2.num_batches_tracked"].dtype == jnp.int64


@pytest.mark.parametrize("call", [
    lambda bad: checkpoint.state_dict_from_torch(bad),
    lambda bad: checkpoint.state_dict_to_torch({}, bad),
], ids=["from", "to"])
@pytest.mark.parametrize("bad", [{"w": np.zeros(2)}, None, lambda x: x], ids=["dict", "none",
                                                                             "function"])
def test_a_module_that_is_not_an_nn_module_is_refused(call, bad):
    with pytest.raises(InputTypeError, match="module must be a torch.nn.Module"):
        call(bad)


def test_arrays_that_are_not_a_dict_are_refused(trained, x64):
    arrays = checkpoint.state_dict_from_torch(trained)
    with pytest.raises(InputTypeError, match="arrays must be a dict"):
        checkpoint.state_dict_to_torch(list(arrays.values()), make_net(1))


def test_tied_weights_must_carry_one_value(x64):
    net = nn.Sequential(nn.Linear(3, 3, dtype=F64), nn.Linear(3, 3, dtype=F64))
    net[1].weight = net[0].weight
    arrays = checkpoint.state_dict_from_torch(net)
    assert list(arrays) == ["0.weight", "0.bias", "1.weight", "1.bias"]
    arrays["1.weight"] = arrays["1.weight"] + 1
    with pytest.raises(InputError, match=r"'1.weight'\] and arrays\['0.weight'\] differ"):
        checkpoint.state_dict_to_torch(arrays, net)
    arrays["0.weight"] = arrays["1.weight"]
    checkpoint.state_dict_to_torch(arrays, net)
    assert net[0].weight is net[1].weight
    np.testing.assert_array_equal(bits(net[0].weight), np.asarray(arrays["0.weight"]))


def test_extra_state_that_is_not_a_tensor_is_refused(x64):
    class WithExtra(nn.Linear):
        def get_extra_state(self):
            return {"version": 2}

        def set_extra_state(self, state):
            pass

    with pytest.raises(InputError, match=r"'_extra_state' is a dict, not a tensor"):
        checkpoint.state_dict_from_torch(WithExtra(2, 2, dtype=F64))


def test_the_docs_example_runs():
    """docs/checkpoints.md's example, as written: the buffers and the optimizer come back."""
    text = (Path(__file__).resolve().parents[1] / "docs" / "checkpoints.md").read_text(
        encoding="utf-8")
    (example,) = re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)
    namespace = {}
    with torch.random.fork_rng():  # the example draws from torch's global generator
        torch.manual_seed(0)
        exec(compile(example, "docs/checkpoints.md", "exec"), namespace)
    model, optimizer, arrays = namespace["model"], namespace["optimizer"], namespace["arrays"]
    assert int(model[1].num_batches_tracked) == 1
    np.testing.assert_array_equal(bits(model[1].running_mean), bits(arrays["1.running_mean"]))
    assert {len(s) for s in optimizer.state.values()} == {1}  # momentum buffers came back
    assert all(p is q for p, q in zip(optimizer.param_groups[0]["params"], model.parameters(),
                                      strict=True))
