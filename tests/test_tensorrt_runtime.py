"""GPU runtimes. On a machine with a CUDA GPU and TensorRT (or onnxruntime-gpu) these build and run real
engines and compare them with ONNX Runtime on the CPU; elsewhere they are skipped with the reason, and only
the refusals that need no GPU run."""

import os

import numpy as np
import onnxruntime as ort
import pytest

from conftest import SPECS
from specc.codegen.tensorrt_engine import EngineOptions, build_engine, tensorrt_available
from specc.diagnostics import SpeccError
from specc.runtime import onnxruntime_gpu

BATCH = {"min": 1, "opt": 4, "max": 8}


def cpu_reference(onnx_path, feeds):
    session = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, feeds)))


@pytest.fixture(scope="module")
def lenet(tmp_path_factory):
    from specc.build import build

    out = tmp_path_factory.mktemp("lenet5")
    return build(os.path.join(SPECS, "lenet5.yaml"), str(out)).model_path


@pytest.fixture(scope="module")
def trt_engine(lenet, tmp_path_factory):
    ok, reason = tensorrt_available()
    if not ok:
        pytest.skip(reason)
    cache = tmp_path_factory.mktemp("timing")
    engine_path = str(tmp_path_factory.mktemp("engine") / "model.engine")
    entry = build_engine(lenet, engine_path, EngineOptions(batch=BATCH, timing_cache=str(cache) + os.sep))
    return engine_path, entry, str(cache)


@pytest.mark.gpu
@pytest.mark.parametrize("batch", [1, 3, 8])
def test_tensorrt_engine_matches_onnx_runtime_cpu(lenet, trt_engine, batch):
    from specc.runtime import tensorrt_runtime

    engine_path, entry, _ = trt_engine
    feeds = {"image": np.random.default_rng(batch).standard_normal((batch, 1, 32, 32)).astype(np.float32)}
    got = tensorrt_runtime.run(engine_path, feeds)
    want = cpu_reference(lenet, feeds)
    assert set(got) == set(want)
    for name in want:
        np.testing.assert_allclose(got[name], want[name], rtol=1e-3, atol=1e-4)  # fp32 with TF32 off
    assert entry["precision"] == "fp32" and entry["profiles"]["image"]["max"][0] == 8


@pytest.mark.gpu
def test_tensorrt_engine_refuses_a_batch_beyond_its_profile(trt_engine):
    from specc.runtime import tensorrt_runtime

    engine_path, _, _ = trt_engine
    with pytest.raises(SpeccError, match="outside the engine's range"):
        tensorrt_runtime.run(engine_path, {"image": np.zeros((9, 1, 32, 32), np.float32)})


@pytest.mark.gpu
def test_tensorrt_timing_cache_is_reused(lenet, trt_engine, tmp_path):
    _, first, cache = trt_engine
    assert os.path.isfile(first["timing_cache"]["path"])
    options = EngineOptions(batch=BATCH, timing_cache=cache + os.sep)
    second = build_engine(lenet, str(tmp_path / "again.engine"), options)
    assert second["timing_cache"]["loaded"] is True and second["timing_cache"]["path"] == first["timing_cache"]["path"]


@pytest.mark.gpu
def test_onnxruntime_gpu_matches_onnx_runtime_cpu(lenet):
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        pytest.skip("onnxruntime-gpu is not installed (CUDAExecutionProvider missing)")
    feeds = {"image": np.random.default_rng(0).standard_normal((2, 1, 32, 32)).astype(np.float32)}
    session = onnxruntime_gpu.OnnxRuntimeGpuSession(lenet, use_tensorrt=False)
    assert session.providers[0] == "CUDAExecutionProvider"
    want = cpu_reference(lenet, feeds)
    for name, value in session.run(feeds).items():
        np.testing.assert_allclose(value, want[name], rtol=1e-3, atol=1e-3)  # cuDNN may use TF32


def test_onnxruntime_without_cuda_is_refused_with_what_to_install(lenet):
    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this onnxruntime has CUDA")
    with pytest.raises(SpeccError) as raised:
        onnxruntime_gpu.run(lenet, {})
    diagnostic = raised.value.diagnostics[0]
    assert diagnostic.code == "E098" and "onnxruntime-gpu" in diagnostic.message
    assert "CPUExecutionProvider" in diagnostic.message and "pip install onnxruntime-gpu" in diagnostic.hint


def test_provider_order_prefers_tensorrt_then_cuda():
    providers = onnxruntime_gpu.gpu_providers(["TensorrtExecutionProvider", "CUDAExecutionProvider",
                                               "CPUExecutionProvider"])
    assert providers[0][0] == "TensorrtExecutionProvider" and providers[0][1]["trt_engine_cache_enable"] is True
    assert providers[1:] == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert onnxruntime_gpu.gpu_providers(["CUDAExecutionProvider", "CPUExecutionProvider"], use_tensorrt=True) == [
        "CUDAExecutionProvider", "CPUExecutionProvider"]


def test_tensorrt_runtime_without_tensorrt_says_why(tmp_path):
    ok, reason = tensorrt_available()
    if ok:
        pytest.skip("TensorRT and a GPU are present")
    from specc.runtime import tensorrt_runtime

    with pytest.raises(SpeccError) as raised:
        tensorrt_runtime.run(str(tmp_path / "model.engine"), {})
    assert reason in raised.value.diagnostics[0].message
