"""The benchmark's ResNet-18 spec and its hand-written PyTorch twin are the network they claim to be."""

import importlib.util
import math
import os

import pytest

from specc.compiler import compile_spec
from specc.limits import DEFAULT_LIMITS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCHMARKS = os.path.join(ROOT, "benchmarks")
TORCHVISION_RESNET18_PARAMS = 11_689_512  # torchvision.models.resnet18().parameters(), BN weight and bias included


def test_resnet18_spec_has_torchvisions_parameter_count_and_output():
    graph = compile_spec(os.path.join(BENCHMARKS, "specs", "resnet18.yaml"), DEFAULT_LIMITS).graph
    trainable = sum(math.prod(info.shape) for info in graph.params.values() if info.trainable)
    assert trainable == TORCHVISION_RESNET18_PARAMS
    (output,) = graph.outputs.values()
    assert tuple(output.type.shape[1:]) == (1000,)
    convs = [n for n in graph.nodes if n.op == "conv"]
    assert len(convs) == 20  # stem + 16 in the basic blocks + 3 projections


def test_torch_twin_has_the_same_parameter_count():
    pytest.importorskip("torch")
    spec = importlib.util.spec_from_file_location("torch_export_resnet18",
                                                  os.path.join(BENCHMARKS, "torch_export_resnet18.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    model = module.ResNet18()
    assert sum(p.numel() for p in model.parameters()) == TORCHVISION_RESNET18_PARAMS
