"""The TensorRT engine builder against a recording fake of the `tensorrt` module: which calls it makes for
TensorRT 10 and 11 (profiles, workspace, optimization level, flags, timing cache), how parser and builder
failures reach the user, and the reason `tensorrt_available()` gives on this machine."""

import os
import sys

import onnx
import pytest

from fake_tensorrt import make_fake_tensorrt
from specc.codegen import tensorrt_engine
from specc.codegen.tensorrt_engine import (NOT_INSTALLED, CudaDevice, EngineOptions, build_engine, tensorrt_available,
                                           trtexec_command)
from specc.diagnostics import Span, SpeccError
from tensorrt_models import fp16_in_graph, quantized_convnet, small_convnet

GPU = CudaDevice("NVIDIA Fake GPU", (8, 9))


@pytest.fixture
def fake_trt(monkeypatch, tmp_path):
    """Install a fake TensorRT of a given version on a machine that has a (pretend) GPU."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(tensorrt_engine, "cuda_device", lambda: GPU)

    def install(version="10.13.0.35", **kwargs):
        fake = make_fake_tensorrt(version, **kwargs)
        monkeypatch.setitem(sys.modules, "tensorrt", fake)
        return fake
    return install


def save(model, tmp_path, name="model.onnx"):
    path = str(tmp_path / name)
    onnx.save(model, path)
    return path


def calls_named(fake, name):
    return [c for c in fake.calls if c[0] == name]


def test_tensorrt_10_build_records_profiles_pool_level_and_flags(fake_trt, tmp_path):
    fake = fake_trt("10.13.0.35")
    onnx_path = save(small_convnet(), tmp_path)
    options = EngineOptions(batch={"min": 1, "opt": 8, "max": 32}, workspace_mb=512, optimization_level=4,
                            hardware_compatibility="ampere_plus", version_compatible=True)
    entry = build_engine(onnx_path, str(tmp_path / "out" / "model.engine"), options)

    assert calls_named(fake, "create_network") == [("create_network", 1 << 1)]  # STRONGLY_TYPED is 1 in 10.x
    assert calls_named(fake, "set_shape") == [("set_shape", "image", (1, 1, 8, 8), (8, 1, 8, 8), (32, 1, 8, 8))]
    assert calls_named(fake, "set_memory_pool_limit") == [("set_memory_pool_limit", "WORKSPACE", 512 << 20)]
    assert ("config.builder_optimization_level", 4) in fake.calls
    assert [c[1].name for c in calls_named(fake, "config.hardware_compatibility_level")] == ["AMPERE_PLUS"]
    assert calls_named(fake, "set_flag") == [("set_flag", "VERSION_COMPATIBLE")]
    assert calls_named(fake, "clear_flag") == [("clear_flag", "TF32")]  # fp32 stays fp32, as on ONNX Runtime
    assert len(calls_named(fake, "add_optimization_profile")) == 1
    order = [c[0] for c in fake.calls]
    assert order.index("parse_from_file") < order.index("set_shape") < order.index("build_serialized_network")

    with open(tmp_path / "out" / "model.engine", "rb") as handle:
        assert handle.read() == b"fake-engine:image"
    assert [f for f in os.listdir(tmp_path / "out") if f != "model.engine"] == []  # no temporary left behind
    assert entry["tensorrt_version"] == "10.13.0.35" and entry["gpu"] == GPU.name
    assert entry["compute_capability"] == "8.9" and entry["strongly_typed"] is True
    assert entry["profiles"] == {"image": {"min": [1, 1, 8, 8], "opt": [8, 1, 8, 8], "max": [32, 1, 8, 8]}}
    assert entry["builder_flags"] == ["VERSION_COMPATIBLE"] and entry["hardware_compatibility"] == "ampere_plus"
    assert "--minShapes=image:1x1x8x8" in entry["trtexec"] and "--maxShapes=image:32x1x8x8" in entry["trtexec"]
    assert "--stronglyTyped" in entry["trtexec"] and "--versionCompatible" in entry["trtexec"]


def test_tensorrt_11_is_strongly_typed_and_has_no_precision_flags(fake_trt, tmp_path):
    fake = fake_trt("11.0.0.10")
    onnx_path = save(small_convnet(), tmp_path)
    entry = build_engine(onnx_path, str(tmp_path / "model.engine"), EngineOptions())
    assert calls_named(fake, "create_network") == [("create_network", 1 << 0)]  # STRONGLY_TYPED is 0 in 11.x
    assert calls_named(fake, "set_flag") == []
    assert "--stronglyTyped" not in entry["trtexec"]  # default-on and gone from trtexec 11

    fake = fake_trt("11.0.0.10")
    with pytest.raises(SpeccError) as raised:
        build_engine(onnx_path, str(tmp_path / "half.engine"), EngineOptions(precision="fp16"))
    assert raised.value.diagnostics[0].code == "E097"
    assert "no FP16/INT8 builder flags" in raised.value.diagnostics[0].message
    assert calls_named(fake, "Builder") == []  # refused before TensorRT was asked to do anything


def test_tensorrt_11_takes_fp16_and_int8_written_into_the_graph(fake_trt, tmp_path):
    for precision, graph in (("fp16", fp16_in_graph()), ("int8", quantized_convnet())):
        fake = fake_trt("11.0.0.10")
        build_engine(save(graph, tmp_path, f"{precision}.onnx"), str(tmp_path / f"{precision}.engine"),
                     EngineOptions(precision=precision))
        assert calls_named(fake, "set_flag") == [] and calls_named(fake, "clear_flag") == []


def test_tensorrt_10_uses_the_legacy_fp16_flag_only_for_an_fp32_graph(fake_trt, tmp_path):
    fake = fake_trt("10.13.0.35")
    entry = build_engine(save(small_convnet(), tmp_path), str(tmp_path / "a.engine"), EngineOptions(precision="fp16"))
    assert calls_named(fake, "create_network") == [("create_network", 0)]  # weakly typed: the flag chooses
    assert calls_named(fake, "set_flag") == [("set_flag", "FP16")]
    assert entry["strongly_typed"] is False and "--fp16" in entry["trtexec"]

    fake = fake_trt("10.13.0.35")
    build_engine(save(fp16_in_graph(), tmp_path, "h.onnx"), str(tmp_path / "h.engine"), EngineOptions(precision="fp16"))
    assert calls_named(fake, "create_network") == [("create_network", 1 << 1)]
    assert calls_named(fake, "set_flag") == []


def test_tensorrt_10_prefers_strong_typing_for_q_dq_and_refuses_int8_without_it(fake_trt, tmp_path):
    fake = fake_trt("10.13.0.35")
    build_engine(save(quantized_convnet(), tmp_path), str(tmp_path / "q.engine"), EngineOptions(precision="int8"))
    assert calls_named(fake, "create_network") == [("create_network", 1 << 1)]
    assert calls_named(fake, "set_flag") == []

    fake_trt("10.13.0.35")
    with pytest.raises(SpeccError) as raised:
        build_engine(save(small_convnet(), tmp_path, "f.onnx"), str(tmp_path / "f.engine"),
                     EngineOptions(precision="int8"))
    assert "calibrator" in raised.value.diagnostics[0].message


def test_timing_cache_is_keyed_loaded_and_saved(fake_trt, tmp_path):
    onnx_path = save(small_convnet(), tmp_path)
    fake = fake_trt("10.13.0.35")
    first = build_engine(onnx_path, str(tmp_path / "1.engine"), EngineOptions())
    cache = first["timing_cache"]["path"]
    assert cache == str(tmp_path / "cache" / "specc" / "tensorrt" / "timing-trt10.13.0.35-sm89.cache")
    assert first["timing_cache"]["loaded"] is False
    assert calls_named(fake, "create_timing_cache") == [("create_timing_cache", b"")]
    with open(cache, "rb") as handle:
        saved = handle.read()
    assert saved == b"|timed"

    fake = fake_trt("10.13.0.35")
    second = build_engine(onnx_path, str(tmp_path / "2.engine"), EngineOptions())
    assert second["timing_cache"]["loaded"] is True
    assert calls_named(fake, "create_timing_cache") == [("create_timing_cache", saved)]
    assert ("set_timing_cache", saved, False, True) in fake.calls  # mismatches are not ignored
    assert f"--timingCacheFile={cache}" in second["trtexec"]


def test_a_timing_cache_tensorrt_refuses_is_replaced(fake_trt, tmp_path):
    cache = tmp_path / "mine.cache"
    cache.write_bytes(b"other-gpu timings")
    fake = fake_trt("10.13.0.35")
    entry = build_engine(save(small_convnet(), tmp_path), str(tmp_path / "m.engine"),
                         EngineOptions(timing_cache=str(cache)))
    assert entry["timing_cache"] == {"path": str(cache), "loaded": False, "saved": True}
    assert calls_named(fake, "create_timing_cache")[-1] == ("create_timing_cache", b"")
    assert cache.read_bytes() == b"|timed"


def test_parser_errors_are_reported_at_their_spec_layer(fake_trt, tmp_path):
    fake_trt("10.13.0.35", parser_errors=[("conv_1/Conv", "Conv", "kernel weights must be an initializer"),
                                          ("dense_3/Gemm", "Gemm", "unsupported transA")])
    spans = {"conv_1": Span("net.yaml", 9, 5), "dense_3": Span("net.yaml", 12, 5)}
    with pytest.raises(SpeccError) as raised:
        build_engine(save(small_convnet(), tmp_path), str(tmp_path / "x.engine"), EngineOptions(), spans)
    first, second = raised.value.diagnostics
    assert (first.code, first.span, second.span) == ("E096", spans["conv_1"], spans["dense_3"])
    assert ("ONNX node `conv_1/Conv` (Conv): TensorRT's ONNX parser: kernel weights must be an initializer"
            in first.message)
    assert not os.path.exists(tmp_path / "x.engine")


def test_static_check_runs_before_tensorrt(fake_trt, tmp_path):
    fake = fake_trt("10.13.0.35")
    with pytest.raises(SpeccError) as raised:
        build_engine(save(small_convnet(opset=25), tmp_path), str(tmp_path / "x.engine"), EngineOptions())
    assert raised.value.diagnostics[0].code == "E096" and "opset 25" in raised.value.diagnostics[0].message
    assert fake.calls == []


def test_builder_failure_carries_tensorrt_s_reason(fake_trt, tmp_path):
    fake_trt("10.13.0.35", build_fails=True)
    with pytest.raises(SpeccError) as raised:
        build_engine(save(small_convnet(), tmp_path), str(tmp_path / "x.engine"), EngineOptions())
    diagnostic = raised.value.diagnostics[0]
    assert diagnostic.code == "E097" and "out of workspace memory for tactic" in diagnostic.message
    assert "workspace_mb" in diagnostic.hint
    assert not os.path.exists(tmp_path / "x.engine")


def test_ampere_plus_needs_an_ampere_gpu(fake_trt, monkeypatch, tmp_path):
    fake = fake_trt("10.13.0.35")
    monkeypatch.setattr(tensorrt_engine, "cuda_device", lambda: CudaDevice("Tesla T4", (7, 5)))
    with pytest.raises(SpeccError, match="needs an Ampere or newer GPU"):
        build_engine(save(small_convnet(), tmp_path), str(tmp_path / "x.engine"),
                     EngineOptions(hardware_compatibility=True))
    assert calls_named(fake, "Builder") == []


def test_options_from_a_spec_build_section():
    options = EngineOptions.from_build({"batch": 16, "precision": "fp16",
                                        "tensorrt": {"workspace_mb": 256, "optimization_level": 5,
                                                     "hardware_compatibility": "same_compute_capability",
                                                     "version_compatible": True, "timing_cache": "tc/"}})
    assert options.batch == {"min": 16, "opt": 16, "max": 16} and options.batch_range("image") == (16, 16, 16)
    assert (options.workspace_mb, options.optimization_level, options.precision) == (256, 5, "fp16")
    assert options.hardware_compatibility == "same_compute_capability" and options.timing_cache == "tc/"
    defaults = EngineOptions.from_build({"batch": None, "tensorrt": None})
    assert defaults.batch == {"min": 1, "opt": 1, "max": 64} and defaults.workspace_mb == 1024
    per_input = EngineOptions(batch={"image": {"min": 2, "opt": 4, "max": 8}})
    assert per_input.batch_range("image") == (2, 4, 8)


def test_trtexec_command_without_tensorrt(tmp_path):
    onnx_path = save(small_convnet(), tmp_path)
    options = EngineOptions(batch={"min": 1, "opt": 4, "max": 16}, workspace_mb=2048, optimization_level=5,
                            hardware_compatibility="same_compute_capability", timing_cache="/tmp/tc.cache")
    line = trtexec_command(onnx_path, options)
    assert line.startswith(f"trtexec --onnx={onnx_path} --saveEngine={onnx_path[:-5]}.engine --skipInference")
    for part in ("--minShapes=image:1x1x8x8", "--optShapes=image:4x1x8x8", "--maxShapes=image:16x1x8x8",
                 "--memPoolSize=workspace:2048M", "--builderOptimizationLevel=5",
                 "--hardwareCompatibilityLevel=sameComputeCapability", "--stronglyTyped", "--noTF32",
                 "--timingCacheFile=/tmp/tc.cache"):
        assert part in line.split(), part
    fixed = trtexec_command(onnx_path, EngineOptions(batch={"min": 2, "opt": 2, "max": 2}), version=11)
    assert "Shapes=" not in fixed and "--stronglyTyped" not in fixed


def test_tensorrt_available_gives_the_reason_here():
    ok, reason = tensorrt_available()
    try:
        import tensorrt
        real = hasattr(tensorrt, "Builder")
    except ImportError:
        real = False
    if not real:
        assert (ok, reason) == (False, NOT_INSTALLED)
    elif not ok:
        assert reason == "no CUDA device" or "not supported" in reason


def test_tensorrt_available_with_tensorrt_but_no_gpu(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", make_fake_tensorrt("10.13.0.35"))
    monkeypatch.setattr(tensorrt_engine, "cuda_device", lambda: None)
    assert tensorrt_available() == (False, "no CUDA device")
    with pytest.raises(SpeccError) as raised:
        build_engine("unused.onnx", "unused.engine", EngineOptions())
    assert raised.value.diagnostics[0].code == "E097" and "no CUDA device" in raised.value.diagnostics[0].message
    monkeypatch.setattr(tensorrt_engine, "cuda_device", lambda: GPU)
    assert tensorrt_available() == (True, "TensorRT 10.13.0.35 on NVIDIA Fake GPU (compute capability 8.9)")
    monkeypatch.setitem(sys.modules, "tensorrt", make_fake_tensorrt("8.6.1"))
    assert tensorrt_available() == (False, "TensorRT 8.6.1 is not supported: specc builds engines with TensorRT "
                                           "10 or 11")


def test_missing_tensorrt_is_error_e098(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # makes `import tensorrt` raise ImportError
    with pytest.raises(SpeccError) as raised:
        build_engine("unused.onnx", "unused.engine", EngineOptions())
    diagnostic = raised.value.diagnostics[0]
    assert diagnostic.code == "E098" and "pip install 'specc[tensorrt]'" in diagnostic.message
