"""Precision: fp16 and int8 written into the graph by passes, calibration, the accuracy guard, `specc bench`.

Golden IR: tests/golden/passes/precision/<case>.yaml is compiled, run through the standard pipeline and
then a precision's passes; <case>.<precision>.after.ir holds the expected IR (SPECC_UPDATE_GOLDEN=1
rewrites it; read it before committing). Numbers: ONNX Runtime runs the reduced model against the
float32 one, and the torch lowering of the reduced graph agrees with ONNX Runtime.
"""

import json
import os
import zipfile
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from conftest import SPECS, zoo_specs

from specc.build import build
from specc.cli import main
from specc.codegen.onnx_export import to_onnx
from specc.codegen.tensorrt_check import check_tensorrt_compat
from specc.codegen.torch_module import to_torch
from specc.compiler import compile_spec, optimize
from specc.diagnostics import SpeccError
from specc.ir.graph import Graph, Node, Value
from specc.ir.printer import print_graph
from specc.ir.tensor import TensorData
from specc.ir.types import TensorType
from specc.limits import Limits
from specc.ops import STEPS
from specc.passes.cancel_casts import CancelCasts
from specc.passes.convert_to_fp16 import ConvertToFp16
from specc.passes.quantize_int8 import QuantizeInt8
from specc.passes.sink_relu import SinkRelu
from specc.precision import accuracy
from specc.precision.calibration import CalibrationSet, entropy_amax, percentile_amax
from specc.precision.pipeline import lower_precision

GOLDEN = Path(__file__).parent / "golden" / "passes" / "precision"
CASES = sorted(GOLDEN.glob("*.yaml"))
FP16_TOLERANCE = 1e-2  # max |fp16 - fp32| over max |fp32|, per output (docs/precision.md)


def check_golden(path: Path, text: str) -> None:
    if os.environ.get("SPECC_UPDATE_GOLDEN") == "1":
        path.write_text(text)
    assert path.exists(), f"no golden file {path.name}; run with SPECC_UPDATE_GOLDEN=1"
    assert text == path.read_text(), f"{path.name} differs"


def feeds(graph, batch=8, seed=0) -> dict:
    rng = np.random.default_rng(seed)
    out = {}
    for v in graph.inputs:
        shape = [batch] + [d if isinstance(d, int) else 7 for d in v.type.shape[1:]]
        if v.type.dtype == "uint8":
            out[v.name] = rng.integers(0, 256, shape).astype(np.uint8)
        elif v.type.dtype == "int64":
            out[v.name] = rng.integers(0, 2, shape).astype(np.int64)
        else:
            out[v.name] = rng.uniform(0, 1, shape).astype(v.type.dtype)
    return out


def randomize(graph, seed=1) -> None:
    """Weights of a trained net's scale (1/sqrt(fan-in)), so activations stay O(1) layer after layer."""
    rng = np.random.default_rng(seed)
    for value in graph.params.values():
        fan_in = int(np.prod(value.shape[1:])) if len(value.shape) > 1 else 10
        array = (rng.standard_normal(value.shape) / np.sqrt(fan_in)).astype(np.float32)
        if value.local == "running_var":
            array = rng.uniform(0.5, 2.0, value.shape).astype(np.float32)
        value.data = TensorData.of(array, source="file")


def optimized(path, seed=1):
    graph = compile_spec(str(path), Limits()).graph
    randomize(graph, seed)
    return optimize(graph, "standard", verify_each=True)[0]


def calibration(graph, samples=16) -> CalibrationSet:
    return CalibrationSet(feeds(graph, samples, seed=7)[graph.inputs[0].name], "test", "minmax", 99.99, True)


def run_ort(graph, inputs) -> list:
    session = ort.InferenceSession(to_onnx(graph).SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, inputs)


def relative(a, b) -> float:
    return float(np.abs(a.astype(np.float32) - b).max() / max(np.abs(b).max(), 1e-12))


# --- golden IR and numbers ----------------------------------------------
@pytest.mark.parametrize("precision", ["fp16", "int8"])
@pytest.mark.parametrize("case", CASES, ids=lambda p: p.stem)
def test_precision_golden_and_numeric(case, precision):
    spec = compile_spec(str(case), Limits()).spec
    graph = optimized(case)
    inputs = feeds(graph)
    before = run_ort(graph, inputs)
    lowered = lower_precision(graph, precision, spec.build["keep_fp32"], calibration(graph))
    check_golden(case.with_name(f"{case.stem}.{precision}.after.ir"), print_graph(lowered.graph, spans=False) + "\n")
    after = run_ort(lowered.graph, inputs)
    for a, b in zip(after, before):
        assert relative(a, b) < (FP16_TOLERANCE if precision == "fp16" else 0.1)
    with torch.no_grad():
        got = to_torch(lowered.graph).eval()(*[torch.from_numpy(inputs[v.name]) for v in lowered.graph.inputs])
    for a, b in zip(got.values(), after):
        np.testing.assert_allclose(a.float().numpy(), b, atol=2e-2 if precision == "fp16" else 1e-3, rtol=1e-2)


def test_fp16_types_borders_and_keep_fp32():
    graph = optimized(GOLDEN / "mlp.yaml")
    lowered = lower_precision(graph, "fp16", ("dense_2",)).graph
    by_name = {n.name: n for n in lowered.nodes}
    assert by_name["dense_1"].output.type.dtype == "float16"
    assert all(p.type.dtype == "float16" for p in by_name["dense_1"].params.values())
    for kept in ("dense_2", "softmax_5"):  # a layer named in keep_fp32, and softmax (kept by default)
        assert by_name[kept].output.type.dtype == "float32"
        assert all(p.type.dtype == "float32" for p in by_name[kept].params.values())
    casts = [n for n in lowered.nodes if n.op == "cast"]
    # x -> f16 at the entry, into and out of the dense_2 island, and into softmax: one Cast per border
    assert [(n.inputs[0].type.dtype, n.attrs["to"]) for n in casts] == \
        [("float32", "float16"), ("float16", "float32"), ("float32", "float16"), ("float16", "float32")]
    assert lowered.inputs[0].type.dtype == "float32" and lowered.outputs["output"].type.dtype == "float32"


@pytest.mark.parametrize("dtype", ["uint8", "float16"])
def test_fp16_inputs_cast_once(tmp_path, dtype):
    """A uint8 input's Cast goes straight to float16; a float16 input needs none."""
    spec = tmp_path / "s.yaml"
    spec.write_text(f"specc: 1\nname: s\ninputs: {{x: {{shape: [1, 8, 8], dtype: {dtype}}}}}\n"
                    "network:\n  - conv: {filters: 4, kernel: 3}\n  - flatten\n  - dense: 3\n")
    graph = optimized(spec)
    lowered = lower_precision(graph, "fp16").graph
    casts = [(n.inputs[0].type.dtype, n.attrs["to"]) for n in lowered.nodes if n.op == "cast"]
    entry = [("uint8", "float16")] if dtype == "uint8" else []
    assert casts == entry + [("float16", "float32")]  # and the output back to its declared float32
    out = run_ort(lowered, feeds(lowered))[0]
    assert out.dtype == np.float32 and np.isfinite(out).all()


def _cast_chain(source: str, middle: str, target: str) -> Graph:
    graph = Graph("casts")
    x = graph.add_input(Value("x", TensorType(source, ("N", 4)), "input"))
    cast = STEPS["internal"]["cast"]
    a = graph.append(Node("a", cast, "internal", {"to": middle}, [x], [Value("a", TensorType(middle, ("N", 4)))], None))
    b = graph.append(Node("b", cast, "internal", {"to": target}, [a.output],
                          [Value("b", TensorType(target, ("N", 4)))], None))
    graph.set_output("y", b.output)
    return graph


@pytest.mark.parametrize("chain,left", [
    (("float16", "float32", "float16"), []),                      # exact round trip: both go
    (("uint8", "float32", "float16"), [("uint8", "float16")]),    # uint8 is exact in float32: one Cast
    (("float32", "float16", "float32"), [("float32", "float16"), ("float16", "float32")]),  # rounds: kept
])
def test_cancel_casts_removes_only_exact_pairs(chain, left):
    graph = _cast_chain(*chain)
    result = CancelCasts().run(graph)
    assert [(n.inputs[0].type.dtype, n.attrs["to"]) for n in graph.nodes] == left
    assert result.changed == (left != [("float32", "float16"), ("float16", "float32")])


def test_precision_passes_are_idempotent():
    for precision in ("fp16", "int8"):
        graph = optimized(GOLDEN / "convnet.yaml")
        lowered = lower_precision(graph, precision, (), calibration(graph)).graph
        text = print_graph(lowered, spans=False)
        again = ConvertToFp16().run(lowered) if precision == "fp16" else QuantizeInt8({}).run(lowered)
        assert not again.changed and print_graph(lowered, spans=False) == text


def test_sink_relu_is_exact():
    graph = optimized(GOLDEN / "convnet.yaml")
    inputs = feeds(graph)
    before = run_ort(graph, inputs)
    from specc.passes.split_activations import SplitActivations

    SplitActivations().run(graph)
    assert SinkRelu().run(graph).stats == {"moved": 1}
    order = [n.op for n in graph.nodes]
    assert order.index("maxpool") < order.index("relu")
    np.testing.assert_allclose(run_ort(graph, inputs)[0], before[0], rtol=1e-5, atol=1e-6)


# --- int8: what the ONNX holds and what ONNX Runtime makes of it --------------
def int8_model(path=os.path.join(SPECS, "nielsen_final.yaml")):
    graph = optimized(path)
    return graph, lower_precision(graph, "int8", (), calibration(graph)).graph


def test_int8_is_symmetric_standard_qdq():
    _, lowered = int8_model()
    model = to_onnx(lowered)
    onnx.checker.check_model(model, full_check=True)
    ops = {n.op_type for n in model.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear", "Conv", "Gemm"} <= ops
    assert not ops & {"QLinearConv", "MatMulInteger", "ConvInteger", "DynamicQuantizeLinear", "QLinearMatMul"}
    assert all(n.domain in ("", "ai.onnx") for n in model.graph.node)
    inits = {i.name: onnx.numpy_helper.to_array(i) for i in model.graph.initializer}
    zero_points = [inits[n.input[2]] for n in model.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")]
    assert zero_points and all(z.dtype == np.int8 and not z.any() for z in zero_points)
    weight = inits["conv_3.weight.int8"]
    scale = inits["conv_3.weight.scale"]
    float_weight = optimized(os.path.join(SPECS, "nielsen_final.yaml")).params["conv_3.weight"].numpy()
    # 7 bits of int8 (ONNX Runtime's reduce_range): no int16 saturation on x86 CPUs without VNNI
    assert weight.dtype == np.int8 and np.abs(weight).max() == 63 and scale.shape == (40,)
    np.testing.assert_allclose(scale, np.abs(float_weight).reshape(40, -1).max(1) / 63, rtol=1e-6)
    assert check_tensorrt_compat(model) == []


def test_int8_placement_fuses_in_onnx_runtime(tmp_path):
    """ONNX Runtime turns every int8 conv and gemm of nielsen_final into QLinearConv/QGemm; the first conv
    (one input channel) stays float by policy, and pooling runs on int8 (NhwcMaxPool)."""
    _, lowered = int8_model()
    options = ort.SessionOptions()
    options.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    ort.InferenceSession(to_onnx(lowered).SerializeToString(), options, providers=["CPUExecutionProvider"])
    ops = [n.op_type for n in onnx.load(options.optimized_model_filepath).graph.node]
    assert ops.count("QLinearConv") == 1 and ops.count("QGemm") == 3 and ops.count("Conv") == 1
    assert "NhwcMaxPool" in ops


def test_int8_keep_fp32_and_kept_ops():
    graph = optimized(GOLDEN / "mlp.yaml")
    lowered = lower_precision(graph, "int8", ("dense_2",), calibration(graph)).graph
    ops = {n.name: n.op for n in lowered.nodes}
    assert ops["dense_1"] == "gemm_qdq" and ops["dense_3"] == "gemm_qdq" and ops["dense_4"] == "gemm_qdq"
    assert ops["dense_2"] == "dense" and ops["softmax_5"] == "softmax"
    assert all(p.type.dtype == "float32" for p in lowered.node("dense_2").params.values())


# --- calibration ----------------------------------------------------------
def test_calibration_methods_clip_outliers():
    rng = np.random.default_rng(0)
    values = np.abs(np.concatenate([rng.standard_normal(200_000), [40.0]]))
    amax = float(values.max())
    hist = np.histogram(values, 2048, (0, amax))[0]
    assert percentile_amax(hist, amax, 99.99) == pytest.approx(np.percentile(values, 99.99), rel=0.02)
    threshold = entropy_amax(hist, amax)
    assert 2.5 < threshold < 8.0  # clips the lone outlier, keeps the body of the Gaussian


def test_calibration_data_file_and_errors(tmp_path):
    spec = Path(SPECS) / "lenet5.yaml"  # no training section
    with pytest.raises(SpeccError) as exc:
        build(str(spec), str(tmp_path / "out"), precision="int8")
    assert exc.value.diagnostics[0].code == "E084" and "--calibration-data" in exc.value.diagnostics[0].hint
    np.savez(tmp_path / "wrong.npz", x=np.zeros((4, 1, 28, 28), np.float32))
    with pytest.raises(SpeccError) as exc:
        build(str(spec), str(tmp_path / "out"), precision="int8", calibration_data=str(tmp_path / "wrong.npz"))
    assert exc.value.diagnostics[0].code == "E084" and "(N, 1, 32, 32)" in exc.value.diagnostics[0].message
    (tmp_path / "garbled.npz").write_bytes(b"PK\x03\x04 garbled")
    with zipfile.ZipFile(tmp_path / "bytes.npz", "w") as archive:
        archive.writestr("x.npy", b"not an array")
    for name, why in (("garbled.npz", "is not a readable .npz file"), ("bytes.npz", "x.npy is not a .npy array")):
        with pytest.raises(SpeccError) as exc:
            build(str(spec), str(tmp_path / "out"), precision="int8", calibration_data=str(tmp_path / name))
        assert exc.value.diagnostics[0].code == "E084" and why in exc.value.diagnostics[0].message
    np.savez(tmp_path / "calib.npz", x=np.random.default_rng(0).random((6, 1, 32, 32)).astype(np.float32))
    result = build(str(spec), str(tmp_path / "out"), precision="int8", calibration_data=str(tmp_path / "calib.npz"))
    manifest = json.loads(Path(result.manifest_path).read_text())
    assert manifest["precision"] == "int8"
    assert manifest["calibration"] == {"data": "calib.npz", "samples": 6, "method": "minmax", "per_channel": True}
    assert manifest["passes"][-4:] == ["split_activations", "sink_relu", "quantize_int8", "dead_code_elimination"]
    assert manifest["accuracy"]["checked"] is False


# --- every zoo spec at every precision ------------------------------------
@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
@pytest.mark.parametrize("spec", zoo_specs())
def test_zoo_builds_at_every_precision(tmp_path, spec, precision):
    path = os.path.join(SPECS, spec)
    graph = compile_spec(path, Limits()).graph
    if any(not n.opdef.lowered for n in graph.nodes):
        pytest.skip("has an op without a lowering in this version")
    calib = tmp_path / "calib.npz"
    np.savez(calib, x=feeds(graph, 4, seed=3)[graph.inputs[0].name])
    result = build(path, str(tmp_path / "out"), precision=precision, calibration_data=str(calib))
    onnx.checker.check_model(result.model_path, full_check=True)  # build checks too; this is the file on disk
    assert result.manifest["precision"] == precision
    if precision == "fp32":
        return
    assert check_tensorrt_compat(onnx.load(result.model_path)) == []  # TensorRT's parser takes it as written
    session = ort.InferenceSession(result.model_path, providers=["CPUExecutionProvider"])
    reference = ort.InferenceSession(to_onnx(optimize(graph, "standard")[0]).SerializeToString(),
                                     providers=["CPUExecutionProvider"])
    inputs = feeds(graph, 3)
    for got, want in zip(session.run(None, inputs), reference.run(None, inputs)):
        assert got.dtype == want.dtype and got.shape == want.shape and np.isfinite(got).all()
        if precision == "fp16":
            assert relative(got, want) < FP16_TOLERANCE


# --- the accuracy guard -----------------------------------------------------
def test_accuracy_check_reports_both_models(tmp_path, capsys):
    spec = os.path.join(SPECS, "tiny_mlp.yaml")  # mnist-sample: shipped, always available offline
    assert main(["build", spec, "-o", str(tmp_path / "out"), "--precision", "int8", "--check-accuracy"]) == 0
    assert "agrees with fp32 on" in capsys.readouterr().out
    report = json.loads((tmp_path / "out" / "manifest.json").read_text())["accuracy"]
    assert report["checked"] and report["split"] == "test" and report["samples"] == 500
    assert {"top1_agreement", "accuracy", "accuracy_fp32", "drop"} <= set(report)
    assert report["drop"] == pytest.approx(report["accuracy_fp32"] - report["accuracy"], abs=1e-6)


def test_accuracy_drop_is_an_error_naming_layers(tmp_path):
    spec = GOLDEN / "convnet.yaml"
    reference = optimized(spec)
    lowered = lower_precision(optimized(spec), "int8", (), calibration(reference)).graph
    rows = accuracy.layer_errors(reference, lowered, feeds(reference, 16)[reference.inputs[0].name])
    assert {name for name, _, _ in rows} == {"conv_3", "conv_4", "dense_8"}
    assert all(err >= 0 and added >= 0 for _, err, added in rows)
    assert [r[2] for r in rows] == sorted((r[2] for r in rows), reverse=True)
    report = {"samples": 100, "accuracy_fp32": 98.0, "accuracy": 96.5, "drop": 1.5}
    with pytest.raises(SpeccError) as exc:
        accuracy.check_drop(report, 1.0, "int8", rows, compile_spec(str(spec), Limits()).spec.network_span, "minmax")
    diagnostic = exc.value.diagnostics[0]
    assert diagnostic.code == "E085" and "1.50 points" in diagnostic.message
    assert f"`{rows[0][0]}`" in diagnostic.hint and "keep_fp32" in diagnostic.hint
    accuracy.check_drop({**report, "drop": 0.5}, 1.0, "int8", rows, None)  # within the limit: no error


# --- specc bench ------------------------------------------------------------
def test_bench_interleaves_backends_and_says_what_cannot_run(tmp_path, capsys):
    spec = os.path.join(SPECS, "tiny_mlp.yaml")
    code = main(["bench", spec, "--batch", "1,4", "--backends", "torch,onnxruntime,onnxruntime-int8,tensorrt",
                 "--threads", "1", "--warmup", "1", "--repeat", "3", "--format", "json"])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["interleaved"] and report["repeat"] == 3 and report["threads"] == 1
    assert {(r["backend"], r["batch"]) for r in report["results"]} == \
        {(b, n) for b in ("torch", "onnxruntime", "onnxruntime-int8") for n in (1, 4)}
    assert all(r["median_ms"] > 0 and r["p90_ms"] >= r["median_ms"] for r in report["results"])
    assert "tensorrt" in report["unavailable"] and report["unavailable"]["tensorrt"]
    out_dir = tmp_path / "build"
    build(spec, str(out_dir))
    assert main(["bench", str(out_dir), "--batch", "2", "--backends", "onnxruntime,onnxruntime-fp16",
                 "--warmup", "0", "--repeat", "2"]) == 0
    text = capsys.readouterr().out
    assert "median ms" in text and "onnxruntime-fp16: not run: the build directory holds a fp32 model" in text
    assert main(["bench", spec, "--backends", "cuda"]) == 2
