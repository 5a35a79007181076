"""Every lowered op of the registry: its ONNX lowering (run by ONNX Runtime) equals its torch lowering.

The cases are enumerated from the registry, not listed by hand: each layer op and preprocess step
runs in every form of its generated example (`specc.op_examples`), at batch 1 and 3; internal ops
(made by the front end and the passes, never written in a spec) run on small hand-built graphs.
"""

import numpy as np
import onnxruntime as ort
import pytest
import torch

from specc.codegen.onnx_export import to_onnx
from specc.codegen.torch_module import to_torch
from specc.compiler import compile_spec
from specc.ir.graph import Graph, Node, Value
from specc.ir.types import TensorType
from specc.limits import Limits
from specc.op_examples import example_for, example_spec
from specc.ops import REGISTRY, STEPS
from specc.passes.rewrite import data

SPEC_OPS = [op for op in REGISTRY.values()] + list(STEPS["preprocess"].values())
LOWERED = [op for op in SPEC_OPS if op.lowered]
CASES = [(op, form) for op in LOWERED for form in example_for(op).forms]


def feeds_for(graph, batch, seed=0):
    rng = np.random.default_rng(seed)
    feeds = {}
    for v in graph.inputs:
        shape = [batch] + [d if isinstance(d, int) else 5 for d in v.type.shape[1:]]
        if v.type.dtype == "int64":
            feeds[v.name] = rng.integers(0, 8, shape).astype(np.int64)
        else:
            feeds[v.name] = rng.uniform(0.1, 1.0, shape).astype(v.type.dtype)
    return feeds


def assert_lowerings_agree(graph, batch):
    feeds = feeds_for(graph, batch)
    session = ort.InferenceSession(to_onnx(graph).SerializeToString(), providers=["CPUExecutionProvider"])
    got = session.run(None, feeds)
    with torch.no_grad():
        want = to_torch(graph).eval()(*[torch.from_numpy(feeds[v.name]) for v in graph.inputs])
    for a, b in zip(got, want.values()):
        assert a.shape == tuple(b.shape)
        np.testing.assert_allclose(a, b.numpy().astype(a.dtype), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("op,form", CASES, ids=[f"{op.category}.{op.name}.{form.kind}" for op, form in CASES])
@pytest.mark.parametrize("batch", [1, 3])
def test_spec_op_lowerings_agree(tmp_path, op, form, batch):
    path = tmp_path / "example.yaml"
    path.write_text(example_spec(op, form, example_for(op)))
    graph = compile_spec(str(path), Limits()).graph
    assert any(n.op == op.name for n in graph.nodes)
    assert_lowerings_agree(graph, batch)


def _graph(x_type):
    graph = Graph("internal")
    return graph, graph.add_input(Value("x", x_type, "input"))


def _node(graph, name, op, attrs, inputs, out_type, params=None):
    return graph.append(Node(name, STEPS["internal"][op], "internal", attrs, inputs, [Value(name, out_type)], None,
                             params=params)).output


def _int8(graph, x):
    """quantize -> dequantize, per tensor and per channel (symmetric, zero point 0)."""
    per_tensor = {"scale": data("q.scale", np.array(0.02, np.float32), "const"),
                  "zero_point": data("q.zero_point", np.array(0, np.int8), "const")}
    q = _node(graph, "q", "quantize_linear", {"axis": None, "dtype": "int8"}, [x], TensorType("int8", x.type.shape),
              per_tensor)
    dq = _node(graph, "dq", "dequantize_linear", {"axis": None, "dtype": "int8", "shape": None}, [q],
               TensorType("float32", x.type.shape),
               {"scale": data("dq.scale", np.array(0.02, np.float32), "const"),
                "zero_point": data("dq.zero_point", np.array(0, np.int8), "const")})
    weights = np.random.default_rng(0).integers(-127, 128, (3, 4)).astype(np.int8)
    w = _node(graph, "w", "dequantize_linear", {"axis": 0, "dtype": "int8", "shape": [3, 4]}, [],
              TensorType("float32", (3, 4)),
              {"q": data("w.q", weights, "const"), "scale": data("w.scale", np.array([0.1, 0.2, 0.3], np.float32), "const"),
               "zero_point": data("w.zero_point", np.zeros(3, np.int8), "const")})
    return dq, w


def internal_cases():
    def cast():
        graph, x = _graph(TensorType("float32", ("N", 4)))
        y = _node(graph, "c", "cast", {"to": "float16"}, [x], TensorType("float16", ("N", 4)))
        graph.set_output("y", _node(graph, "back", "cast", {"to": "float32"}, [y], TensorType("float32", ("N", 4))))
        return graph

    def gemm():
        graph, x = _graph(TensorType("float32", ("N", 4)))
        rng = np.random.default_rng(0)
        params = {"weight": data("g.weight", rng.standard_normal((3, 4)).astype(np.float32)),
                  "bias": data("g.bias", rng.standard_normal(3).astype(np.float32))}
        graph.set_output("y", _node(graph, "g", "gemm", {"units": 3, "bias": True, "activation": "relu"}, [x],
                                    TensorType("float32", ("N", 3)), params))
        return graph

    def matmul_and_constant():
        graph, x = _graph(TensorType("float32", ("N", 2, 4)))
        k = _node(graph, "k", "constant", {"shape": [4, 5], "dtype": "float32"}, [], TensorType("float32", (4, 5)),
                  {"value": data("k.value", np.random.default_rng(1).standard_normal((4, 5)).astype(np.float32),
                                 "const")})
        graph.set_output("y", _node(graph, "mm", "matmul", {}, [x, k], TensorType("float32", ("N", 2, 5))))
        return graph

    def quantize_dequantize():
        graph, x = _graph(TensorType("float32", ("N", 4)))
        dq, w = _int8(graph, x)
        graph.set_output("activations", dq)
        graph.set_output("weights", w)
        return graph

    def gemm_qdq():  # the weight arrives dequantized, as an input (what quantize_int8 makes)
        graph, x = _graph(TensorType("float32", ("N", 4)))
        dq, w = _int8(graph, x)
        bias = {"bias": data("g.bias", np.random.default_rng(2).standard_normal(3).astype(np.float32))}
        graph.set_output("y", _node(graph, "g", "gemm_qdq", {"units": 3, "bias": True, "activation": "relu"}, [dq, w],
                                    TensorType("float32", ("N", 3)), bias))
        return graph

    def conv_qdq():
        x_type = TensorType("float32", ("N", 2, 6, 6))
        graph, x = _graph(x_type)
        op = STEPS["internal"]["conv_qdq"]
        attrs = {"filters": 3, "kernel": 3, "stride": 1, "padding": "same", "dilation": 1, "groups": 1, "bias": True,
                 "activation": "relu", "init": "glorot_uniform"}
        attrs.update(op.resolve(attrs, [x_type]))
        q = np.random.default_rng(3).integers(-127, 128, (3, 2, 3, 3)).astype(np.int8)
        w = _node(graph, "w", "dequantize_linear", {"axis": 0, "dtype": "int8", "shape": [3, 2, 3, 3]}, [],
                  TensorType("float32", (3, 2, 3, 3)),
                  {"q": data("w.q", q, "const"), "scale": data("w.scale", np.array([0.01, 0.02, 0.03], np.float32), "const"),
                   "zero_point": data("w.zero_point", np.zeros(3, np.int8), "const")})
        bias = {"bias": data("c.bias", np.array([0.1, -0.2, 0.3], np.float32))}
        graph.set_output("y", _node(graph, "c", "conv_qdq", attrs, [x, w], TensorType("float32", ("N", 3, 6, 6)), bias))
        return graph

    def ensemble(combine, kind):
        def make():
            graph, x = _graph(TensorType("float32", ("N", 5)))
            members = [x] + [graph.append(Node(op, REGISTRY[op], "layer", {}, [x], [Value(op, x.type)], None)).output
                             for op in ("tanh", "sigmoid")]
            graph.set_output("y", _node(graph, "combine", "ensemble_combine", {"combine": combine, "kind": kind},
                                        members, x.type))
            return graph
        return make

    def tta_view():  # every view of a non-square image, so a swapped H and W shows
        x_type = TensorType("float32", ("N", 2, 6, 7))
        graph, x = _graph(x_type)
        views = {"flip_w": {"view": "flip_horizontal"}, "flip_h": {"view": "flip_vertical"},
                 "down_left": {"view": "translate", "dy": 2, "dx": -1, "fill": 0.5},
                 "up": {"view": "translate", "dy": -1, "fill": -1.0}, "rotate": {"view": "rotate", "degrees": 30.0},
                 "zoom": {"view": "scale", "factor": 1.3}}
        op = STEPS["internal"]["tta_view"]
        for name, attrs in views.items():
            full = {**{k: f.default for k, f in op.fields.items()}, **attrs}
            graph.set_output(name, _node(graph, name, "tta_view", full, [x], x_type))
        return graph

    return {"ensemble_combine_vote": ensemble("vote", "scores"), "ensemble_combine_mean": ensemble("mean", "probs"),
            "tta_view": tta_view, "cast": cast, "gemm": gemm, "matmul+constant": matmul_and_constant,
            "quantize_linear+dequantize_linear": quantize_dequantize, "gemm_qdq": gemm_qdq, "conv_qdq": conv_qdq}


INTERNAL = internal_cases()


@pytest.mark.parametrize("case", list(INTERNAL))
@pytest.mark.parametrize("batch", [1, 3])
def test_internal_op_lowerings_agree(case, batch):
    assert_lowerings_agree(INTERNAL[case](), batch)


def test_every_registry_op_is_covered():
    covered = {op.name for op, _ in CASES}
    covered |= {name for case in INTERNAL for name in case.split("+")}
    covered |= {"ensemble_combine"}  # its cases are named by how they combine
    covered |= {"to_channels_first"}  # every NHWC zoo spec (resnet_small) runs it through both lowerings
    missing = [f"{op.category}.{op.name}" for op in LOWERED + list(STEPS["internal"].values())
               if op.name not in covered]
    assert not missing, f"lowered ops without an equivalence case: {missing}"
