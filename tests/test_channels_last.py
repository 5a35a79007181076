"""Channels-last memory order for convolutional networks on a CPU: the same function, only faster."""

import os

import numpy as np
import pytest
import torch

import train_fixtures as tf
from conftest import zoo_specs
from test_zoo import random_inputs
from specc.codegen.torch_module import to_torch
from specc.codegen.weights import init_weights
from specc.compiler import compile_spec
from specc.limits import DEFAULT_LIMITS
from specc.train.device import fast_layout

SPECS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "specs")
CPU = torch.device("cpu")


def module(name: str):
    graph = compile_spec(os.path.join(SPECS, name), DEFAULT_LIMITS).graph
    return to_torch(graph, init_weights(graph))


def test_wide_convolutions_on_a_cpu_get_channels_last(monkeypatch):
    monkeypatch.delenv("SPECC_CHANNELS_LAST", raising=False)
    assert fast_layout(module("mnist_best.yaml"), CPU).channels_last  # 3x3 convs reading 32 and 64 channels
    assert fast_layout(module("mnist_best.yaml"), None).channels_last  # no device: the CPU
    assert not fast_layout(module("nielsen_conv2.yaml"), CPU).channels_last  # reads 1 and 20 channels
    assert not fast_layout(module("mnist_best.yaml"), torch.device("cuda")).channels_last  # not measured there
    assert not fast_layout(module("nielsen_shallow.yaml"), CPU).channels_last  # no convolution at all


@pytest.mark.parametrize("value, expected", [("1", True), ("0", False)])
def test_the_environment_forces_the_layout(monkeypatch, value, expected):
    monkeypatch.setenv("SPECC_CHANNELS_LAST", value)
    assert fast_layout(module("nielsen_conv2.yaml"), CPU).channels_last is expected
    assert fast_layout(module("mnist_best.yaml"), CPU).channels_last is expected


def test_same_outputs_gradients_and_saved_weights():
    plain, fast = module("mnist_best.yaml"), module("mnist_best.yaml").to_channels_last()
    fast.load_spec_state(plain.spec_state())
    # Every 4-D weight is channels-last, the first convolution's one input channel included (its strides say
    # so: `contiguous(memory_format=...)` would leave that tensor in the default order).
    for name, tensor in fast.spec_parameters():
        if tensor.dim() == 4:
            assert tensor.stride()[1] == 1, name
    x = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (8, 1, 28, 28)).astype(np.uint8))
    outputs = []
    for m in (plain, fast):
        m.train()
        torch.manual_seed(0)  # the same dropout mask on both sides
        out = m(x)["output"]
        (out * torch.arange(10.0)).sum().backward()  # not out.sum(): probabilities sum to 1, its gradient is 0
        outputs.append((out.detach(), {n: p.grad.clone() for n, p in m.spec_parameters()}))
    (a, grads_a), (b, grads_b) = outputs
    # other kernels sum in another order (AVX2 and AVX-512 differ; batch statistics of 8 images magnify it):
    # 1.9e-5 apart on an AVX2-only CPU, where a layout mistake moves probabilities by tenths
    torch.testing.assert_close(b, a, rtol=1e-3, atol=1e-4)
    for name in grads_a:  # float rounding of sums taken in another order: small against the gradient's scale
        scale = grads_a[name].abs().max()
        assert (grads_b[name] - grads_a[name]).abs().max() <= 1e-4 * scale, name
    saved = fast.spec_state()
    for name, array in plain.spec_state().items():
        assert saved[name].flags["C_CONTIGUOUS"], name  # safetensors files hold C order whatever the layout
        if name.endswith("weight") and array.ndim == 4:
            np.testing.assert_array_equal(saved[name], array)


def test_convolution_outputs_stay_channels_last():
    fast = module("mnist_best.yaml").to_channels_last().eval()
    seen = []
    for step in fast._plan:
        original = step.run

        def spy(attrs, params, xs, training, original=original):
            out = original(attrs, params, xs, training)
            if isinstance(out, torch.Tensor) and out.dim() == 4:
                seen.append(out.is_contiguous(memory_format=torch.channels_last))
            return out

        fast._plan[fast._plan.index(step)] = step._replace(run=spy)
    fast(torch.zeros(4, 1, 28, 28, dtype=torch.uint8))
    assert len(seen) > 8 and all(seen)  # no op hands a convolution the default order (a copy per step)


def test_a_channels_last_run_trains(tmp_path):
    from specc.train.run import train

    spec = tf.write_spec(tmp_path, "epochs: 2\nbatch_size: 16\noptimizer: {adam: {lr: 0.01}}\nseed: 1",
                         network="wide_conv")
    result = train(spec, str(tmp_path / "run"), options=tf.options())
    assert result.best["val"]["accuracy"] > 0.5


@pytest.mark.parametrize("name", zoo_specs())
def test_every_zoo_network_computes_the_same_in_channels_last(name):
    """Whatever ops a network uses (residual adds, concatenation, reshapes, attention, fitted steps), the
    memory order must not change what it computes."""
    graph = compile_spec(os.path.join(SPECS, name), DEFAULT_LIMITS).graph
    weights = init_weights(graph)
    feeds = [torch.from_numpy(a) for a in random_inputs(graph, 2).values()]
    plain, fast = to_torch(graph, weights).eval(), to_torch(graph, weights).to_channels_last().eval()
    with torch.no_grad():
        a, b = plain(*feeds), fast(*feeds)
    for key in a:
        scale = float(a[key].abs().max()) or 1.0
        assert float((b[key] - a[key]).abs().max()) <= 1e-4 * scale, key
