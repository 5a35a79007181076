"""The IR core: use lists, the rewriter, multi-output nodes, lazy data; and the naming fixes
(one-to-one tensor names, E022 for block uses, errors inside blocks named by their use)."""

import json
import textwrap

import numpy as np
import onnxruntime as ort
import pytest
import torch

from specc.build import build
from specc.codegen.onnx_export import to_onnx
from specc.codegen.torch_module import to_torch
from specc.codegen.weights import save_weights
from specc.compiler import compile_spec
from specc.diagnostics import SpeccError
from specc.ir.graph import Graph, Node, Value
from specc.ir.types import DTYPES, TensorType
from specc.ir.verifier import VerificationError, verify
from specc.lang.argtypes import Field, Int
from specc.limits import Limits
from specc.ops import REGISTRY
from specc.ops.base import OpDef


def write(tmp_path, text, name="s.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return str(path)


def test_dtypes():
    assert set(DTYPES) == {"float32", "float16", "bfloat16", "int8", "uint8", "int32", "int64", "bool"}


def small_graph():
    graph = Graph("g")
    x = graph.add_input(Value("x", TensorType("float32", ("N", 4)), "input"))
    relu = graph.append(Node("r", REGISTRY["relu"], "layer", {}, [x], [Value("r", x.type)], None))
    tanh = graph.append(Node("t", REGISTRY["tanh"], "layer", {}, [relu.output], [Value("t", x.type)], None))
    graph.set_output("y", tanh.output)
    return graph, x, relu, tanh


def test_use_lists_and_rewriter():
    graph, x, relu, tanh = small_graph()
    assert relu.output.uses() == [(tanh, 0)] and x.users() == [relu]
    assert len({relu, tanh, relu}) == 2  # nodes hash by identity
    sig = graph.insert_after(relu, Node("s", REGISTRY["sigmoid"], "layer", {}, [relu.output],
                                        [Value("s", x.type)], None))
    assert graph.replace_all_uses(relu.output, sig.output) == 2  # tanh's input, and sig's own input...
    graph.set_input(sig, 0, relu.output)  # ... which is put back
    verify(graph)
    assert tanh.inputs[0] is sig.output and relu.output.users() == [sig]
    with pytest.raises(ValueError, match="still used"):
        graph.erase(relu)
    graph.replace_all_uses(sig.output, relu.output)
    graph.erase(sig)
    verify(graph)
    assert [n.name for n in graph.nodes] == ["r", "t"]


def test_verifier_catches_a_use_list_out_of_step():
    graph, x, relu, tanh = small_graph()
    tanh._inputs = (x,)  # behind the rewriter's back
    with pytest.raises(VerificationError, match="use"):
        verify(graph)


class Split(OpDef):
    """A two-output op (defined here only): the IR, the verifier and both lowerings handle it."""
    name = "split_halves"
    fields = {"axis": Field(Int(), 1, "")}

    def infer(self, attrs, inputs):
        x = inputs[0]
        half = x.shape[1] // 2
        return (x.with_shape((x.shape[0], half)), x.with_shape((x.shape[0], x.shape[1] - half)))

    def torch_forward(self, attrs, params, xs, training):
        half = xs[0].shape[1] // 2
        return xs[0][:, :half], xs[0][:, half:]

    def onnx(self, g, attrs, xs, params, itypes, otype):
        a, b = g.unique(g.label + "_a"), g.unique(g.label + "_b")
        half = itypes[0].shape[1] // 2
        split = g.const(np.array([half, itypes[0].shape[1] - half], np.int64), g.label + "_sizes")
        g.multi_node("Split", [xs[0], split], [a, b], g.unique(g.label), axis=1)
        return [a, b]


def test_multi_output_node_in_both_lowerings():
    graph = Graph("multi")
    x = graph.add_input(Value("x", TensorType("float32", ("N", 6)), "input"))
    types = Split().infer({"axis": 1}, [x.type])
    split = graph.append(Node("split", Split(), "internal", {"axis": 1}, [x],
                              [Value("split", types[0]), Value("split:1", types[1])], None))
    add = graph.append(Node("mul", REGISTRY["mul"], "layer", {}, list(split.outputs), [Value("mul", types[0])], None))
    graph.set_output("y", add.output)
    graph.set_output("second", split.outputs[1])
    verify(graph)
    feed = np.random.default_rng(0).standard_normal((2, 6)).astype(np.float32)
    got = ort.InferenceSession(to_onnx(graph).SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": feed})
    want = to_torch(graph)(torch.from_numpy(feed))
    np.testing.assert_allclose(got[0], feed[:, :3] * feed[:, 3:], atol=1e-6)
    np.testing.assert_allclose(got[1], want["second"].numpy())


def test_data_is_lazy_until_asked(tmp_path):
    path = write(tmp_path, """\
        specc: 1
        name: big
        inputs: {x: {shape: [100000]}}
        network:
          - dense: 100000
    """)
    graph = compile_spec(path, Limits()).graph
    assert not any(v.data.materialized for v in graph.params.values())
    weight = graph.params["dense_1.weight"]
    assert weight.shape == (100000, 100000) and weight.trainable and weight.owner == "dense_1"


MANGLED = """\
    specc: 1
    name: mangled
    inputs: {x: {shape: [4]}}
    blocks:
      blk:
        network:
          - name: b
            dense: 3
    network:
      - name: a
        blk: {}
      - name: a__b
        dense: 3
        from: input
      - name: sum
        add: {}
        from: [a, a__b]
"""


def test_tensor_names_map_one_to_one(tmp_path):
    graph = compile_spec(write(tmp_path, MANGLED), Limits()).graph
    module = to_torch(graph)
    state = module.spec_state()
    assert {"a.b.weight", "a__b.weight"} <= set(state)
    assert not np.array_equal(state["a.b.weight"], state["a__b.weight"])
    feed = np.random.default_rng(0).standard_normal((2, 4)).astype(np.float32)
    got = ort.InferenceSession(to_onnx(graph).SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": feed})
    np.testing.assert_allclose(got[0], module(torch.from_numpy(feed))["output"].detach().numpy(), atol=1e-5)


@pytest.mark.parametrize("order", ["layer_after_use", "use_after_layer"])
def test_duplicate_name_with_a_block_use_is_refused(tmp_path, order):
    use = "  - name: res\n    blk: {}\n"
    layer = "  - name: res\n    relu: {}\n"
    body = use + layer if order == "layer_after_use" else layer + use
    text = ("specc: 1\nname: dup\ninputs: {x: {shape: [4]}}\nblocks:\n  blk:\n    network:\n      - dense: 4\n"
            "network:\n" + body)
    with pytest.raises(SpeccError) as info:
        compile_spec(write(tmp_path, text), Limits())
    (diag,) = info.value.diagnostics
    assert diag.code == "E022" and diag.span.line == 11 and "res" in diag.message


def test_error_inside_a_block_names_the_use_and_points_at_it(tmp_path):
    text = """\
        specc: 1
        name: deep
        inputs: {x: {shape: [8]}}
        blocks:
          twice:
            params: {u: null}
            network:
              - dense: "${u}"
              - name: sum
                add: {}
                from: [dense_1, input]
        network:
          - name: same
            twice: {u: 8}
          - name: deeper
            twice: {u: 5}
    """
    with pytest.raises(SpeccError) as info:
        compile_spec(write(tmp_path, text), Limits())
    (diag,) = info.value.diagnostics
    assert "`deeper.sum`" in diag.message and diag.span.line == 10  # the op key `add:`
    assert diag.notes and diag.notes[0][0].line == 16 and "deeper" in diag.notes[0][1]
    assert "note: " in diag.format_text()


def test_weights_load_into_the_graph_before_the_passes(tmp_path):
    path = write(tmp_path, """\
        specc: 1
        name: bnnet
        inputs: {x: {shape: [3, 6, 6]}}
        network:
          - conv: {filters: 4, kernel: 3}
          - batchnorm
          - relu
          - flatten
          - dense: 2
    """)
    graph = compile_spec(path, Limits()).graph
    rng = np.random.default_rng(3)
    weights = {name: (rng.uniform(0.5, 2.0, v.shape) if "running_var" in name else rng.standard_normal(v.shape))
               .astype(np.float32) for name, v in graph.params.items()}
    save_weights(str(tmp_path / "w.safetensors"), weights)
    result = build(path, str(tmp_path / "out"), weights=str(tmp_path / "w.safetensors"), limits=Limits())
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["passes"][0] == "inference_cleanup" and manifest["pass_changes"]["fold_batchnorm"] == {"folded": 1}
    feed = rng.standard_normal((2, 3, 6, 6)).astype(np.float32)
    got = ort.InferenceSession(result.model_path, providers=["CPUExecutionProvider"]).run(None, {"x": feed})[0]
    with torch.no_grad():
        want = to_torch(graph, weights).eval()(torch.from_numpy(feed))["output"].numpy()
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=1e-4)
    ops = [n.op_type for n in __import__("onnx").load(result.model_path).graph.node]
    assert "BatchNormalization" not in ops
