"""Run an ONNX model on ONNX Runtime's GPU execution providers: TensorRT's where the installed onnxruntime
has it (engines cached between runs), then CUDA, with the CPU provider for any node neither takes."""

from __future__ import annotations

import os

import numpy as np

from specc.diagnostics import Diagnostic, Span, SpeccError, error

CUDA = "CUDAExecutionProvider"
TENSORRT = "TensorrtExecutionProvider"
CPU = "CPUExecutionProvider"


def cache_dir() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "specc", "onnxruntime-tensorrt")


def gpu_providers(available: list[str], use_tensorrt: bool = True) -> list:
    """The provider list for a session, best first; refuses (E098) an onnxruntime without CUDA."""
    if CUDA not in available:
        raise SpeccError(Diagnostic(
            "E098", f"`--backend onnxruntime-gpu` needs onnxruntime-gpu; the installed onnxruntime has only "
            f"{', '.join(available)}", Span("", 0, 0),
            "pip uninstall onnxruntime && pip install onnxruntime-gpu (the two packages cannot be installed together)"))
    providers: list = []
    if use_tensorrt and TENSORRT in available:
        # Engines and timing data are cached: the first run builds, later runs load.
        providers.append((TENSORRT, {"trt_engine_cache_enable": True, "trt_engine_cache_path": cache_dir(),
                                     "trt_timing_cache_enable": True, "trt_timing_cache_path": cache_dir()}))
    return providers + [CUDA, CPU]


class OnnxRuntimeGpuSession:
    """An ONNX Runtime session that really runs on the GPU (a silent fall-back to the CPU is an error)."""

    def __init__(self, model_path: str, use_tensorrt: bool = True):
        import onnxruntime as ort

        self.path = model_path
        providers = gpu_providers(ort.get_available_providers(), use_tensorrt)
        with_tensorrt = isinstance(providers[0], tuple)
        if with_tensorrt:
            os.makedirs(cache_dir(), exist_ok=True)
        try:
            self.session = ort.InferenceSession(model_path, providers=providers)
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own exception types
            if not with_tensorrt:
                raise error("E097", f"ONNX Runtime could not load {model_path} on the GPU: {str(exc)[:300]}",
                            Span(model_path)) from None
            # The TensorRT provider is listed but its libraries may be absent: CUDA alone still runs the model.
            self.session = ort.InferenceSession(model_path, providers=providers[1:])
        self.providers = self.session.get_providers()
        if CUDA not in self.providers and TENSORRT not in self.providers:
            raise error("E097", f"ONNX Runtime fell back to the CPU for {model_path} (providers in use: "
                        f"{', '.join(self.providers)})", Span(model_path),
                        "check that a CUDA device is visible and that the CUDA and cuDNN libraries onnxruntime-gpu "
                        "needs are installed")
        self.outputs = [o.name for o in self.session.get_outputs()]

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return dict(zip(self.outputs, self.session.run(self.outputs, feeds)))


def run(model_path: str, feeds: dict[str, np.ndarray], use_tensorrt: bool = True) -> dict[str, np.ndarray]:
    """Run the ONNX model at `model_path` once on the GPU."""
    return OnnxRuntimeGpuSession(model_path, use_tensorrt).run(feeds)
