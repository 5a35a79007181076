"""specc writes ONNX's protobuf wire format itself (specc/codegen/onnx_wire.py): every model it can
lower must come out as exactly the bytes the onnx package serializes for the same model."""

from __future__ import annotations

import hashlib
import json
import os

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from conftest import SPECS, zoo_specs
from onnx import helper, numpy_helper

from specc.build import build
from specc.codegen import onnx_wire as wire
from specc.codegen.onnx_export import lower, to_onnx
from specc.compiler import compile_spec, optimize
from specc.limits import DEFAULT_LIMITS
from specc.precision.calibration import CalibrationSet
from specc.precision.pipeline import lower_precision


def reference(model: wire.Model) -> onnx.ModelProto:
    """The same records, assembled by the onnx package's helpers."""
    def value_info(v):
        return helper.make_tensor_value_info(v.name, v.elem_type, v.dims)

    nodes = [helper.make_node(n.op_type, n.input, n.output, name=n.name, domain=n.domain, **n.attrs)
             for n in model.nodes]
    inits = [numpy_helper.from_array(wire.array_of(i), name=i.name) for i in model.initializers]
    graph = helper.make_graph(nodes, model.graph_name, [value_info(v) for v in model.inputs],
                              [value_info(v) for v in model.outputs], initializer=inits)
    proto = helper.make_model(graph, producer_name=model.producer_name, producer_version=model.producer_version,
                              opset_imports=[helper.make_opsetid("", model.opset)])
    proto.ir_version = wire.IR_VERSION
    proto.doc_string = model.doc_string
    for key, value in model.metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    return proto


def assert_same_as_onnx(model: wire.Model) -> bytes:
    ours = wire.encode(model)
    expected = reference(model)
    assert onnx.ModelProto.FromString(ours) == expected
    assert ours == expected.SerializeToString()  # protobuf writes fields in number order, as we do
    return ours


@pytest.mark.parametrize("passes", ["none", "standard"])
@pytest.mark.parametrize("name", zoo_specs(), ids=lambda n: n[:-5])
def test_zoo_encodes_as_the_onnx_package_does(name, passes):
    graph = compile_spec(os.path.join(SPECS, name), DEFAULT_LIMITS).graph
    if passes == "standard":
        graph = optimize(graph, "standard")[0]
    ours = assert_same_as_onnx(lower(graph, None, 17, {"specc.name": graph.name}))
    onnx.checker.check_model(onnx.ModelProto.FromString(ours), full_check=True)


@pytest.mark.parametrize("precision", ["fp16", "int8"])
def test_reduced_precision_graphs_encode_as_the_onnx_package_does(precision):
    spec = os.path.join(SPECS, "vgg_small_bn.yaml")
    graph = optimize(compile_spec(str(spec), DEFAULT_LIMITS).graph, "standard")[0]
    x = np.random.default_rng(0).uniform(0, 255, (8, *graph.inputs[0].type.shape[1:])).astype(
        graph.inputs[0].type.dtype)
    calibration = CalibrationSet(x, "test", "minmax", 99.99, True) if precision == "int8" else None
    lowered = lower_precision(graph, precision, (), calibration).graph
    model = lower(lowered, None, 17)
    assert_same_as_onnx(model)
    session = ort.InferenceSession(wire.encode(model), providers=["CPUExecutionProvider"])
    (out,) = session.run(None, {graph.inputs[0].name: x[:2]})[:1]
    assert np.isfinite(out.astype(np.float32)).all()


def test_attribute_kinds_and_edge_values():
    model = wire.Model(
        "g", [wire.Node("Custom", ["x", ""], ["y"], "n", {"i": -3, "b": True, "f": 0.5, "s": "abc", "raw": b"\x00",
                                                          "ints": [1, -2, 2**40], "floats": [1.5, 2],
                                                          "strings": ["a", "bé"], "skipped": None}, "my.domain")],
        [wire.Initializer(name, array) for name, array in [
            ("f16", np.arange(6, dtype=np.float16).reshape(2, 3)), ("i64", np.array([-1, 2**40], np.int64)),
            ("b", np.array([True, False])), ("u8", np.array(7, np.uint8)), ("empty", np.zeros((0, 4), np.float32))]],
        [wire.ValueInfo("x", 1, ["batch", 3, 0])], [wire.ValueInfo("y", 7, [])], 17,
        producer_name="p", producer_version="1", doc_string="d", metadata={"k": "v", "ü": "∑"})
    ours = assert_same_as_onnx(model)
    parsed = onnx.ModelProto.FromString(ours)
    assert {a.name for a in parsed.graph.node[0].attribute} == {"i", "b", "f", "s", "raw", "ints", "floats", "strings"}


def test_big_endian_arrays_are_written_little_endian():
    def model(array):
        return wire.Model("g", [], [wire.Initializer("w", array)], [], [], 17)

    assert wire.encode(model(np.arange(3, dtype=">f4"))) == wire.encode(model(np.arange(3, dtype="<f4")))


def test_unsupported_attribute_and_dtype_are_refused():
    with pytest.raises(TypeError, match="attribute a"):
        wire.encode(wire.Model("g", [wire.Node("X", [], ["y"], "n", {"a": [object()]})], [], [], [], 17))
    with pytest.raises(TypeError, match="dtype"):
        wire.encode(wire.Model("g", [], [wire.Initializer("c", np.zeros(2, np.complex64))], [], [], 17))


def test_lazy_weights_are_drawn_while_written_and_hashed(tmp_path):
    """`write` streams lazy weights: the file, its hash and `to_onnx` agree, and a weight of the wrong
    size (its length prefix is written before it is drawn) is an error, not a corrupt file."""
    graph = compile_spec(os.path.join(SPECS, "resnet_small.yaml"), DEFAULT_LIMITS).graph
    assert not any(v.data.materialized for v in graph.params.values())
    model = lower(graph, None, 17)
    path = tmp_path / "m.onnx"
    digest = wire.write(model, str(path))
    data = path.read_bytes()
    assert digest == hashlib.sha256(data).hexdigest()
    assert data == to_onnx(graph, None, 17).SerializeToString()

    class WrongSize:
        shape, dtype = (4,), "float32"

        def numpy(self):
            return np.zeros(3, np.float32)

    with pytest.raises(ValueError, match="12 bytes, 16 expected"):
        wire.write(wire.Model("g", [], [wire.Initializer("w", WrongSize())], [], [], 17), str(tmp_path / "x.onnx"))


def test_build_checks_the_model_only_when_asked(tmp_path, monkeypatch):
    spec = os.path.join(SPECS, "tiny_mlp.yaml")
    monkeypatch.delenv("SPECC_CHECK_ONNX", raising=False)
    calls = []
    real = onnx.checker.check_model
    monkeypatch.setattr(onnx.checker, "check_model", lambda *a, **k: (calls.append(a), real(*a, **k)))
    unchecked = build(str(spec), str(tmp_path / "a"))
    assert calls == [] and json.loads(open(unchecked.manifest_path).read())["onnx_checked"] is False
    checked = build(str(spec), str(tmp_path / "b"), check_onnx=True)
    assert len(calls) == 1 and checked.manifest["onnx_checked"] is True
    assert open(checked.model_path, "rb").read() == open(unchecked.model_path, "rb").read()


def test_check_onnx_option_and_its_error(tmp_path, monkeypatch, capsys):
    from specc.cli import main

    spec = os.path.join(SPECS, "tiny_mlp.yaml")
    monkeypatch.delenv("SPECC_CHECK_ONNX", raising=False)
    assert main(["build", spec, "-o", str(tmp_path / "a"), "--check", "onnx"]) == 0
    assert "passes the onnx checker" in capsys.readouterr().out

    def broken(*args, **kwargs):
        raise onnx.checker.ValidationError("Field 'type' of 'attr' is required but missing.")

    monkeypatch.setattr(onnx.checker, "check_model", broken)
    assert main(["build", spec, "-o", str(tmp_path / "b"), "--check", "onnx"]) == 1
    err = capsys.readouterr().err
    assert "error[E087]" in err and "is required but missing" in err and "Traceback" not in err
    assert not (tmp_path / "b" / "model.onnx").exists()
