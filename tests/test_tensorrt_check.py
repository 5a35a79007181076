"""The static TensorRT compatibility check: the zoo passes for TensorRT 10 and 11; hand-made graphs that
TensorRT's ONNX parser would refuse are refused here, naming the ONNX node and the spec layer."""

import os

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from conftest import SPECS, zoo_specs
from specc.codegen.tensorrt_check import check_tensorrt_compat, format_findings, layer_of
from specc.codegen.tensorrt_support import RULES, VERSIONS, support_table
from specc.diagnostics import Span
from tensorrt_models import const, fp16_in_graph, model, quantized_convnet, small_convnet, tensor

@pytest.fixture(scope="module")
def zoo_models(tmp_path_factory):
    from specc.build import build

    built = {}
    for name in zoo_specs():
        out = tmp_path_factory.mktemp(name.replace(".", "_"))
        built[name] = onnx.load(build(os.path.join(SPECS, name), str(out)).model_path)
    return built


@pytest.mark.parametrize("version", VERSIONS)
def test_every_zoo_spec_passes(zoo_models, version):
    # uint8 inputs are cast before any transpose: TensorRT takes UINT8 only at the network's edges
    for name, onnx_model in zoo_models.items():
        errors = [f for f in check_tensorrt_compat(onnx_model, version) if f.severity == "error"]
        assert errors == [], (name, errors)


def only(findings, severity="error"):
    chosen = [f for f in findings if f.severity == severity]
    assert len(chosen) == 1, findings
    return chosen[0]


def test_a_small_convnet_passes_both_versions():
    for version in VERSIONS:
        assert check_tensorrt_compat(small_convnet(), version) == []


def test_onnx_runtime_contrib_op_is_refused_with_node_and_layer():
    contrib = model([helper.make_node("FusedGelu", ["x"], ["y"], name="dense_4/FusedGelu", domain="com.microsoft")],
                    [tensor("x", shape=("batch", 16))], [tensor("y", shape=("batch", 16))],
                    extra_opsets=[("com.microsoft", 1)])
    finding = only(check_tensorrt_compat(contrib, 10))
    assert (finding.node, finding.layer) == ("dense_4/FusedGelu", "dense_4")
    assert finding.op_type == "com.microsoft::FusedGelu"
    assert "ONNX Runtime contrib op" in finding.reason


def test_asymmetric_quantization_is_refused():
    findings = check_tensorrt_compat(quantized_convnet(zero_point=128, zero_point_type=np.uint8), 10)
    quantize = [f for f in findings if f.node == "conv_1/QuantizeLinear"]
    assert {f.layer for f in quantize} == {"conv_1"}
    assert any("`y_zero_point` must be all zeros" in f.reason and "128" in f.reason for f in quantize)
    dequantize = [f.reason for f in findings if f.node == "conv_1/DequantizeLinear"]
    assert any("`x_zero_point` must be all zeros" in r for r in dequantize)
    assert any("input type UINT8 is not supported by TensorRT's DequantizeLinear" in r for r in dequantize)


def test_uint8_quantization_with_zero_point_zero_is_refused():
    # TensorRT would substitute INT8 for UINT8 and so compute something else than ONNX Runtime.
    findings = check_tensorrt_compat(quantized_convnet(zero_point=0, zero_point_type=np.uint8), 10)
    assert any(f.node == "conv_1/QuantizeLinear" and "quantizes to UINT8" in f.reason for f in findings)


def test_symmetric_int8_quantization_passes():
    for version in VERSIONS:
        assert check_tensorrt_compat(quantized_convnet(), version) == []


def test_quantize_without_zero_point_defaults_to_uint8_and_is_refused():
    quantize = model([helper.make_node("QuantizeLinear", ["x", "s"], ["y"], name="q_1/QuantizeLinear")],
                     [tensor("x", shape=("batch", 4))],
                     [helper.make_tensor_value_info("y", TensorProto.UINT8, ["batch", 4])],
                     [const("s", np.float32(0.1))])
    assert "quantizes to UINT8" in only(check_tensorrt_compat(quantize, 10)).reason


def test_dynamic_non_batch_axis_needs_a_profile():
    sequence = model([helper.make_node("Relu", ["tokens"], ["y"], name="relu_1")],
                     [tensor("tokens", shape=("batch", "seq", 16))], [tensor("y", shape=("batch", "seq", 16))])
    finding = only(check_tensorrt_compat(sequence, 10))
    assert (finding.node, finding.op_type, finding.layer) == ("tokens", "input", "tokens")
    assert "axis 1 is dynamic (`seq`)" in finding.reason
    assert check_tensorrt_compat(sequence, 10, profiles={"seq": {"min": 1, "opt": 64, "max": 256}}) == []
    bad = check_tensorrt_compat(sequence, 10, profiles={"seq": {"min": 8, "opt": 4, "max": 256}})
    assert "min <= opt <= max" in only(bad).reason


def test_unsupported_and_unknown_ops_are_refused():
    unsupported = model([helper.make_node("Unique", ["x"], ["y"], name="uniq_1/Unique")],
                        [tensor("x", shape=("batch", 4))], [tensor("y", shape=("batch", 4))])
    finding = only(check_tensorrt_compat(unsupported, 10))
    assert finding.layer == "uniq_1" and "marked unsupported" in finding.reason
    unknown = model([helper.make_node("Frobnicate", ["x"], ["y"], name="frob_2")],
                    [tensor("x", shape=("batch", 4))], [tensor("y", shape=("batch", 4))])
    assert "is not in TensorRT 11's ONNX operator table" in only(check_tensorrt_compat(unknown, 11)).reason


def test_swish_is_known_to_tensorrt_11_only():
    swish = model([helper.make_node("Swish", ["x"], ["y"], name="silu_1")],
                  [tensor("x", shape=("batch", 4))], [tensor("y", shape=("batch", 4))], opset=24)
    assert "not in TensorRT 10's" in only(check_tensorrt_compat(swish, 10)).reason
    assert check_tensorrt_compat(swish, 11) == []


def test_opset_outside_the_range_is_refused():
    finding = only(check_tensorrt_compat(small_convnet(opset=25), 10))
    assert finding.op_type == "opset" and "9..24" in finding.reason and finding.layer is None


def resize(**attrs):
    sizes = const("sizes", np.array([1, 1, 16, 16], np.int64))
    return model([helper.make_node("Resize", ["x", "", "", "sizes"], ["y"], name="resize_1", **attrs)],
                 [tensor("x", shape=(1, 1, 8, 8))], [tensor("y", shape=(1, 1, 16, 16))], [sizes])


def test_resize_modes_follow_the_parser():
    assert check_tensorrt_compat(resize(mode="linear", coordinate_transformation_mode="half_pixel"), 10) == []
    assert check_tensorrt_compat(resize(mode="cubic"), 10) == []
    crop = only(check_tensorrt_compat(resize(mode="linear", coordinate_transformation_mode="tf_crop_and_resize"), 10))
    assert "`coordinate_transformation_mode` = `tf_crop_and_resize` is not supported" in crop.reason
    assert "antialias" in only(check_tensorrt_compat(resize(mode="linear", antialias=1), 10)).reason


def test_pad_mode_and_constant_axes():
    pads = const("pads", np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64))
    ok = model([helper.make_node("Pad", ["x", "pads"], ["y"], name="pad_1", mode="reflect")],
               [tensor("x")], [tensor("y", shape=("batch", 1, 10, 10))], [pads], opset=18)
    assert check_tensorrt_compat(ok, 10) == []
    dynamic_axes = model([helper.make_node("Pad", ["x", "pads2", "", "axes"], ["y"], name="pad_1")],
                         [tensor("x"), helper.make_tensor_value_info("axes", TensorProto.INT64, [2])],
                         [tensor("y", shape=("batch", 1, 10, 10))], [const("pads2", np.array([1, 1, 1, 1], np.int64))],
                         opset=18)
    assert "input `axes` must be an initializer" in only(check_tensorrt_compat(dynamic_axes, 10)).reason


def test_maxpool_indices_output_and_dilations_are_refused():
    pool = model([helper.make_node("MaxPool", ["x"], ["y", "idx"], name="maxpool_2", kernel_shape=[2, 2],
                                   dilations=[2, 2])],
                 [tensor("x")], [tensor("y", shape=("batch", 1, 6, 6)),
                                 helper.make_tensor_value_info("idx", TensorProto.INT64, ["batch", 1, 6, 6])])
    reasons = " | ".join(f.reason for f in check_tensorrt_compat(pool, 10))
    assert "`Indices` output is not supported" in reasons and "`dilations` must be empty or all 1" in reasons


def test_one_dimensional_pooling_is_accepted():
    # The matrix says "2D or 3D", but the parser expands a 1-D window to 2-D (importerUtils.cpp poolingHelper).
    pool = model([helper.make_node("MaxPool", ["x"], ["y"], name="maxpool_1", kernel_shape=[2])],
                 [tensor("x", shape=("batch", 4, 16))], [tensor("y", shape=("batch", 4, 8))])
    assert check_tensorrt_compat(pool, 10) == []


def test_int64_shape_values_beyond_int32_are_refused():
    huge = const("shape", np.array([0, 2**31], np.int64))
    reshape = model([helper.make_node("Reshape", ["x", "shape"], ["y"], name="reshape_3")],
                    [tensor("x", shape=("batch", 4))], [tensor("y", shape=("batch", 4))], [huge])
    finding = only(check_tensorrt_compat(reshape, 10))
    assert finding.layer == "reshape_3" and "2147483648" in finding.reason and "int32" in finding.reason
    fine = model([helper.make_node("Reshape", ["x", "shape"], ["y"], name="reshape_3")],
                 [tensor("x", shape=("batch", 4))], [tensor("y", shape=("batch", 2, 2))],
                 [const("shape", np.array([0, 2, 2], np.int64))])
    assert check_tensorrt_compat(fine, 10) == []


def test_double_weights_are_cast_down_with_a_warning_and_overflow_is_an_error():
    def scaled(value):
        return model([helper.make_node("Mul", ["x", "k"], ["y"], name="scale_1")],
                     [helper.make_tensor_value_info("x", TensorProto.DOUBLE, ["batch", 2])],
                     [helper.make_tensor_value_info("y", TensorProto.DOUBLE, ["batch", 2])],
                     [const("k", np.array(value, np.float64))])
    warnings = [f for f in check_tensorrt_compat(scaled([0.5, 2.0]), 10) if f.severity == "warning"]
    assert any("DOUBLE initializer `k` is cast to FP32" in f.reason for f in warnings)
    assert "values beyond FP32's range are clamped" in only(check_tensorrt_compat(scaled([1e300, 1.0]), 10)).reason


def test_uint8_between_layers_is_refused_with_a_hint():
    transposed = model([helper.make_node("Transpose", ["image"], ["t"], name="image.to_channels_first",
                                         perm=[0, 3, 1, 2]),
                        helper.make_node("Cast", ["t"], ["y"], name="image.to_float", to=TensorProto.FLOAT)],
                       [tensor("image", TensorProto.UINT8, ("batch", 8, 8, 3))],
                       [tensor("y", shape=("batch", 3, 8, 8))])
    finding = only(check_tensorrt_compat(transposed, 10))
    assert "UINT8" in finding.reason and "Cast it to float first" in finding.hint
    cast_first = model([helper.make_node("Cast", ["image"], ["f"], name="image.to_float", to=TensorProto.FLOAT),
                        helper.make_node("Transpose", ["f"], ["y"], name="image.to_channels_first", perm=[0, 3, 1, 2])],
                       [tensor("image", TensorProto.UINT8, ("batch", 8, 8, 3))],
                       [tensor("y", shape=("batch", 3, 8, 8))])
    assert check_tensorrt_compat(cast_first, 10) == []


def test_fp16_casts_pass():
    for version in VERSIONS:
        assert check_tensorrt_compat(fp16_in_graph(), version) == []


def test_layer_names_resolve_to_the_longest_spec_layer():
    layers = ["stem", "stem_act", "res1", "res1.conv_1", "dense_13"]
    assert layer_of("stem_act_erf", layers) == "stem_act"
    assert layer_of("stem/Conv", layers) == "stem"
    assert layer_of("res1.conv_1/Conv", layers) == "res1.conv_1"
    assert layer_of("res1.add/Add", layers) == "res1"
    assert layer_of("dense_13/weight_T", layers) == "dense_13"
    assert layer_of("output/logits", layers) is None
    assert layer_of("conv_1/Conv") == "conv_1"


def test_findings_become_located_diagnostics():
    contrib = model([helper.make_node("FusedGelu", ["x"], ["y"], name="dense_4/FusedGelu", domain="com.microsoft"),
                     helper.make_node("Identity", ["y"], ["z"], name="output/z")],
                    [tensor("x", shape=("batch", 16))], [tensor("z", shape=("batch", 16))],
                    extra_opsets=[("com.microsoft", 1)])
    spans = {"dense_4": Span("net.yaml", 12, 5)}
    findings = check_tensorrt_compat(contrib, 10, layers=spans)
    (diagnostic,) = format_findings(findings, spans, Span("net.yaml"))
    assert diagnostic.code == "E096" and diagnostic.span == Span("net.yaml", 12, 5)
    assert diagnostic.format_text().startswith("net.yaml:12:5: error[E096]: TensorRT: layer `dense_4`: "
                                               "ONNX node `dense_4/FusedGelu` (com.microsoft::FusedGelu)")
    assert "TensorRT plugin" in diagnostic.hint
    (opset,) = format_findings(check_tensorrt_compat(small_convnet(opset=25), 11), spans, Span("net.yaml", 3, 1))
    assert opset.span == Span("net.yaml", 3, 1) and "opset 25" in opset.message


def test_the_table_is_consistent():
    for version in VERSIONS:
        table = support_table(version)
        assert table.opset[0] <= 13 and table.opset[1] >= 23  # every opset `build.opset` accepts
        for support in table.ops.values():
            assert support.supported or not support.types
            for rule in support.rules:
                assert rule["kind"] in RULES, (support.name, rule)
    assert support_table(10).op("Swish") is None and support_table(11).op("Swish").supported
    assert support_table(11).strongly_typed_only and support_table(11).precision_flags == ()
    with pytest.raises(ValueError):
        support_table(9)


def test_cast_to_uint8_between_layers_is_refused():
    narrowed = model([helper.make_node("Cast", ["x"], ["u"], name="quant_1/Cast", to=TensorProto.UINT8),
                      helper.make_node("Cast", ["u"], ["y"], name="quant_1/back", to=TensorProto.FLOAT)],
                     [tensor("x")], [tensor("y")])
    finding = only(check_tensorrt_compat(narrowed, 11))
    assert finding.node == "quant_1/Cast" and "produces the UINT8 tensor `u` between layers" in finding.reason


def test_check_option_and_file_helpers(tmp_path, monkeypatch):
    from specc.codegen import tensorrt_engine
    from specc.codegen.tensorrt_check import check_onnx_file, check_version

    assert check_version("tensorrt=11") == 11 and check_version("tensorrt=10") == 10
    monkeypatch.setattr(tensorrt_engine, "installed_major", lambda: None)
    assert check_version("tensorrt") == 10
    monkeypatch.setattr(tensorrt_engine, "installed_major", lambda: 11)
    assert check_version("tensorrt") == 11
    for wrong in ("tensorrt=9", "trt", "tensorrt=eleven"):
        with pytest.raises(ValueError, match="--check takes"):
            check_version(wrong)
    path = str(tmp_path / "model.onnx")
    onnx.save(small_convnet(opset=25), path)
    (diagnostic,) = check_onnx_file(path, 10, {"conv_1": Span("net.yaml", 9, 5)})
    assert diagnostic.span == Span(path) and diagnostic.code == "E096"


def test_layer_spans_come_from_the_ir():
    from specc.compiler import compile_spec
    from specc.codegen.tensorrt_check import layer_spans
    from specc.limits import DEFAULT_LIMITS

    compiled = compile_spec(os.path.join(SPECS, "resnet_small.yaml"), DEFAULT_LIMITS)
    spans = layer_spans(compiled.graph, compiled.spec)
    assert spans["image"].line == spans["image.to_channels_first"].line
    assert layer_of("stage1.1.conv_1/Conv", spans) == "stage1.1.conv_1"
    assert spans["stem"].path.endswith("resnet_small.yaml")


def test_external_weights_count_as_constants(tmp_path):
    # A model saved with external data and loaded without it still has its initializers (no values).
    pads = const("pads_axes", np.array([2, 3], np.int64))
    padded = model([helper.make_node("Pad", ["x", "pads", "", "pads_axes"], ["y"], name="pad_1")],
                   [tensor("x")], [tensor("y", shape=("batch", 1, 10, 10))],
                   [const("pads", np.array([1, 1, 1, 1], np.int64)), pads,
                    const("big", np.zeros(4096, np.float32))], opset=18)
    path = str(tmp_path / "m.onnx")
    onnx.save(padded, path, save_as_external_data=True, all_tensors_to_one_file=True, location="m.data",
              size_threshold=0)
    assert check_tensorrt_compat(onnx.load(path, load_external_data=False), 10) == []
