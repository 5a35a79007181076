"""Run a serialized TensorRT engine: `trt.Runtime` -> engine -> execution context, with inputs and outputs
in torch CUDA tensors and `execute_async_v3` on the current torch CUDA stream."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import numpy as np

from specc.codegen.tensorrt_engine import require_tensorrt
from specc.diagnostics import Span, error

if TYPE_CHECKING:
    import tensorrt as trt

# TensorRT data types (by member name, so a type missing from one version is simply absent) -> torch dtypes.
TORCH_DTYPES = {"FLOAT": "float32", "HALF": "float16", "BF16": "bfloat16", "INT8": "int8", "INT32": "int32",
                "INT64": "int64", "BOOL": "bool", "UINT8": "uint8"}


def dims(value: trt.Dims) -> tuple[int, ...]:
    # Dims indexes like a tuple but declares no __iter__; read it by index.
    return tuple(int(value[i]) for i in range(len(value)))


class TensorRTSession:
    """A deserialized engine and one execution context; `run` may be called many times."""

    def __init__(self, engine_path: str, host_code_allowed: bool = False):
        require_tensorrt("`--backend tensorrt`")
        if not os.path.isfile(engine_path):
            raise error("E040", f"engine not found: {engine_path}", Span(engine_path),
                        "build one with `specc build SPEC -o DIR --target tensorrt`")
        import tensorrt as trt
        import torch

        self.path = engine_path
        self._torch = torch
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        # Version-compatible engines embed TensorRT's lean runtime (host code); only trusted engines get it.
        self._runtime.engine_host_code_allowed = host_code_allowed
        with open(engine_path, "rb") as handle:
            engine = self._runtime.deserialize_cuda_engine(handle.read())
        if engine is None:
            raise error("E097", f"TensorRT {trt.__version__} cannot load the engine {engine_path}", Span(engine_path),
                        "an engine runs only with the TensorRT version (and GPU type) that built it, unless it was "
                        "built with `version_compatible` / `hardware_compatibility`; rebuild it here")
        self.engine = engine
        self.context = engine.create_execution_context()
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        self.inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self.outputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]

    def _dtype(self, name: str):
        type_name = self.engine.get_tensor_dtype(name).name
        if type_name not in TORCH_DTYPES:
            raise error("E097", f"engine tensor `{name}` has type {type_name}, which specc cannot exchange with "
                        "numpy", Span(self.path))
        return getattr(self._torch, TORCH_DTYPES[type_name])

    def _check_profile(self, name: str, shape: tuple) -> None:
        low, _, high = (dims(d) for d in self.engine.get_tensor_profile_shape(name, 0))
        if len(low) != len(shape) or any(not lo <= s <= hi for lo, s, hi in zip(low, shape, high)):
            raise error("E097", f"input `{name}` has shape {list(shape)}, outside the engine's range "
                        f"{list(low)} .. {list(high)}", Span(self.path),
                        "rebuild with a larger `build.batch.max`, or run smaller batches")

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        torch = self._torch
        missing = [n for n in self.inputs if n not in feeds]
        if missing:
            raise error("E040", f"no array for engine input(s) {', '.join(missing)}", Span(self.path))
        keep = []  # device buffers must live until the stream has finished with them
        for name in self.inputs:
            array = np.ascontiguousarray(feeds[name])
            self._check_profile(name, array.shape)
            tensor = torch.from_numpy(array).to(device="cuda", dtype=self._dtype(name))
            keep.append(tensor)
            self.context.set_input_shape(name, tuple(tensor.shape))
            self.context.set_tensor_address(name, tensor.data_ptr())
        outputs = {}
        for name in self.outputs:
            shape = dims(self.context.get_tensor_shape(name))
            if any(d < 0 for d in shape):
                raise error("E097", f"output `{name}` has a data-dependent shape {list(shape)}, which specc's "
                            "TensorRT runtime does not allocate", Span(self.path))
            outputs[name] = torch.empty(shape, dtype=self._dtype(name), device="cuda")
            self.context.set_tensor_address(name, outputs[name].data_ptr())
        stream = torch.cuda.current_stream()
        if not self.context.execute_async_v3(stream.cuda_stream):
            raise error("E097", f"TensorRT failed to run the engine {self.path}", Span(self.path))
        stream.synchronize()
        del keep
        return {name: tensor.cpu().numpy() for name, tensor in outputs.items()}


def run(model_path: str, feeds: dict[str, np.ndarray], host_code_allowed: bool = False) -> dict[str, np.ndarray]:
    """Load the engine at `model_path` and run it once on `feeds` (input name -> array)."""
    return TensorRTSession(model_path, host_code_allowed).run(feeds)
