"""ONNX -> serialized TensorRT engine, with TensorRT's Python API (10.x and 11.x).

The ONNX file is checked statically first (`tensorrt_check`), so most
problems are reported at their spec layer before TensorRT starts. Then:
a network from TensorRT's ONNX parser (every parser error mapped to its
layer), one optimization profile from `build.batch` (and ranges for any other
dynamic axis), the workspace limit, optimization level, hardware and version
compatibility, a timing cache that persists between builds (one file per
TensorRT version and GPU compute capability), and the engine written
atomically.

Precision lives in the ONNX graph (Casts for fp16, symmetric Q/DQ for int8),
so networks are strongly typed: always on TensorRT 11, which removed the
FP16/INT8 builder flags, and preferred on TensorRT 10, whose legacy flags are
used only for a reduced precision the graph does not carry itself.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import onnx

from specc.codegen.tensorrt_check import Finding, check_tensorrt_compat, format_findings, has_errors, layer_of
# EngineOptions and trtexec_command are part of this module's interface; they live with the other
# TensorRT-free planning code.
from specc.codegen.tensorrt_options import (UNLOCATED, EngineOptions, hardware_level, input_profiles,
                                            precision_in_graph, precision_plan, trtexec_command)
from specc.codegen.tensorrt_support import VERSIONS
from specc.diagnostics import Diagnostic, Span, SpeccError, error

if TYPE_CHECKING:
    import tensorrt as trt

NOT_INSTALLED = "tensorrt is not installed: pip install 'specc[tensorrt]'"
NO_DEVICE = "no CUDA device"


@dataclass(frozen=True)
class CudaDevice:
    name: str
    compute_capability: tuple[int, int]

    @property
    def capability(self) -> str:
        return f"{self.compute_capability[0]}.{self.compute_capability[1]}"


def cuda_device() -> CudaDevice | None:
    """The CUDA device engines are built for: from torch when it sees one, else from cuda-python."""
    try:
        import torch

        if torch.cuda.is_available():
            index = torch.cuda.current_device()
            major, minor = torch.cuda.get_device_capability(index)
            return CudaDevice(torch.cuda.get_device_name(index), (major, minor))
    except ImportError:
        pass
    try:
        from cuda.bindings import runtime as cudart  # cuda-python 12.6+
    except ImportError:
        try:
            from cuda import cudart  # older cuda-python
        except ImportError:
            return None
    status, count = cudart.cudaGetDeviceCount()
    if status != cudart.cudaError_t.cudaSuccess or count == 0:
        return None
    status, props = cudart.cudaGetDeviceProperties(0)
    if status != cudart.cudaError_t.cudaSuccess:
        return None
    name = props.name.decode(errors="replace") if isinstance(props.name, bytes) else str(props.name)
    return CudaDevice(name.rstrip("\x00"), (props.major, props.minor))


def tensorrt_major(version: str) -> int:
    return int(version.split(".", 1)[0])


def installed_major() -> int | None:
    """The major version of the TensorRT that is installed here, if any (no GPU needed)."""
    try:
        import tensorrt as trt
    except (ImportError, OSError):
        return None
    version = getattr(trt, "__version__", None)
    return tensorrt_major(version) if version and hasattr(trt, "Builder") else None


def tensorrt_available() -> tuple[bool, str]:
    """(True, what was found) or (False, why not): TensorRT 10/11 importable and a CUDA device present."""
    try:
        import tensorrt as trt
    except ImportError:
        return False, NOT_INSTALLED
    except OSError as exc:  # the wheel is there but libnvinfer is not loadable
        return False, f"tensorrt is installed but its libraries do not load ({exc}): reinstall 'specc[tensorrt]'"
    version = getattr(trt, "__version__", None)
    if version is None or not hasattr(trt, "Builder"):
        return False, NOT_INSTALLED  # e.g. only the type stubs' empty `tensorrt` namespace package
    if tensorrt_major(version) not in VERSIONS:
        return False, f"TensorRT {version} is not supported: specc builds engines with TensorRT 10 or 11"
    device = cuda_device()
    if device is None:
        return False, NO_DEVICE
    return True, f"TensorRT {version} on {device.name} (compute capability {device.capability})"


def require_tensorrt(what: str, span: Span = UNLOCATED) -> None:
    """Raise the reason TensorRT cannot be used here (E098: not installed, E097: no usable GPU or version)."""
    ok, reason = tensorrt_available()
    if not ok:
        code = "E098" if reason == NOT_INSTALLED else "E097"
        raise SpeccError(Diagnostic(code, f"{what} needs TensorRT 10 or 11 and a CUDA GPU: {reason}", span))


def timing_cache_file(options: EngineOptions, version: str, device: CudaDevice) -> str:
    """A timing cache is only valid for the TensorRT version and GPU architecture that wrote it."""
    name = f"timing-trt{version}-sm{device.compute_capability[0]}{device.compute_capability[1]}.cache"
    if options.timing_cache and not (os.path.isdir(options.timing_cache) or options.timing_cache.endswith(os.sep)):
        return options.timing_cache
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    directory = options.timing_cache or os.path.join(base, "specc", "tensorrt")
    return os.path.join(directory, name)


def build_engine(onnx_path: str, out_path: str, options: EngineOptions, layer_spans: dict | None = None) -> dict:
    """Build and write the engine; return its manifest entry. Errors are located at spec layers where
    `layer_spans` (layer name -> Span) knows them."""
    require_tensorrt("`--target tensorrt`")
    import tensorrt as trt

    spans = layer_spans or {}
    version = trt.__version__
    major = tensorrt_major(version)
    device = cuda_device()
    if device is None:  # seen a moment ago by require_tensorrt; a device can still disappear
        raise error("E097", f"`--target tensorrt` needs a CUDA GPU: {NO_DEVICE}", UNLOCATED)
    model = onnx.load(onnx_path, load_external_data=False)
    findings = check_tensorrt_compat(model, major, profiles=options.dims, layers=spans)
    if has_errors(findings):
        raise SpeccError(format_findings([f for f in findings if f.severity == "error"], spans, Span(onnx_path)))
    level = hardware_level(options)
    if level == "AMPERE_PLUS" and device.compute_capability < (8, 0):
        raise error("E097", f"`hardware_compatibility: ampere_plus` needs an Ampere or newer GPU to build on; "
                    f"{device.name} has compute capability {device.capability}", Span(onnx_path))
    profiles = input_profiles(model, options)
    builder_flags = set(trt.BuilderFlag.__members__)
    strongly_typed, precision_flags = precision_plan(major, options.precision, precision_in_graph(model),
                                                     builder_flags, Span(onnx_path))

    log = BuildLog()
    logger = _capturing_logger(log)
    builder = trt.Builder(logger)
    network_flags = 0
    if strongly_typed and "STRONGLY_TYPED" in trt.NetworkDefinitionCreationFlag.__members__:
        # Required for strong typing on 10.x, accepted and ignored on 11.x (where its value changed).
        network_flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(network_flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(onnx_path):
        raise SpeccError(format_findings(_parser_findings(parser, spans) or [
            Finding("", "", "TensorRT's ONNX parser failed: " + "; ".join(log.errors[-3:]), None)],
            spans, Span(onnx_path)))

    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, options.workspace_mb << 20)
    config.builder_optimization_level = options.optimization_level
    config.hardware_compatibility_level = getattr(trt.HardwareCompatibilityLevel, level)
    set_flags = list(precision_flags)
    if options.version_compatible:
        set_flags.append("VERSION_COMPATIBLE")
    for name in set_flags:
        config.set_flag(getattr(trt.BuilderFlag, name))
    cleared = []
    if options.precision == "fp32" and "TF32" in builder_flags:
        config.clear_flag(trt.BuilderFlag.TF32)  # fp32 means fp32: the same numbers as ONNX Runtime
        cleared.append("TF32")
    profile = builder.create_optimization_profile()
    for index in range(network.num_inputs):
        name = network.get_input(index).name
        shapes = profiles[name]
        profile.set_shape(name, trt.Dims(shapes["min"]), trt.Dims(shapes["opt"]), trt.Dims(shapes["max"]))
    config.add_optimization_profile(profile)
    cache_path = timing_cache_file(options, version, device)
    cache_loaded = _attach_timing_cache(config, cache_path)

    started = time.perf_counter()
    serialized = builder.build_serialized_network(network, config)
    seconds = time.perf_counter() - started
    if serialized is None:
        raise error("E097", "TensorRT could not build the engine: " + ("; ".join(log.errors[-5:]) or "no reason given"),
                    Span(onnx_path), "rerun with a larger `build.tensorrt.workspace_mb` if the log mentions memory")
    data = bytes(memoryview(serialized))
    write_atomically(out_path, data)
    write_atomically(cache_path, bytes(memoryview(config.get_timing_cache().serialize())))
    return {
        "target": "tensorrt", "engine": os.path.basename(out_path), "engine_bytes": len(data),
        "engine_sha256": hashlib.sha256(data).hexdigest(), "tensorrt_version": version, "gpu": device.name,
        "compute_capability": device.capability, "profiles": profiles, "precision": options.precision,
        "strongly_typed": strongly_typed, "builder_flags": set_flags, "cleared_flags": cleared,
        "workspace_mb": options.workspace_mb, "optimization_level": options.optimization_level,
        "hardware_compatibility": level.lower(), "version_compatible": options.version_compatible,
        "timing_cache": {"path": cache_path, "loaded": cache_loaded, "saved": True},
        "build_seconds": round(seconds, 2), "warnings": [f.reason for f in findings] + log.warnings[-10:],
        "trtexec": trtexec_command(onnx_path, options, out_path, major, cache_path),
    }


@dataclass
class BuildLog:
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _capturing_logger(log: BuildLog) -> trt.ILogger:
    """A TensorRT logger that keeps errors and warnings for the diagnostics and the manifest."""
    import tensorrt as trt

    class CapturingLogger(trt.ILogger):
        def __init__(self) -> None:
            trt.ILogger.__init__(self)  # TensorRT's bindings need the base initialized explicitly

        def log(self, severity: trt.ILogger.Severity, msg: str) -> None:
            if severity in (trt.ILogger.Severity.ERROR, trt.ILogger.Severity.INTERNAL_ERROR):
                log.errors.append(msg)
            elif severity == trt.ILogger.Severity.WARNING:
                log.warnings.append(msg)

    return CapturingLogger()


def _parser_findings(parser: trt.OnnxParser, spans: dict) -> list[Finding]:
    findings = []
    for index in range(parser.num_errors):
        problem = parser.get_error(index)
        node = problem.node_name()
        findings.append(Finding(node, problem.node_operator() or "", f"TensorRT's ONNX parser: {problem.desc()}",
                                layer_of(node, spans) if spans else layer_of(node)))
    return findings


def _attach_timing_cache(config: trt.IBuilderConfig, path: str) -> bool:
    """Start from the saved timing cache when there is one TensorRT accepts; True when it was used."""
    saved = b""
    if os.path.isfile(path):
        with open(path, "rb") as handle:
            saved = handle.read()
    try:
        cache = config.create_timing_cache(saved)
        if config.set_timing_cache(cache, False):  # False: a cache from another GPU or version is refused
            return bool(saved)
    except (RuntimeError, TypeError, ValueError):
        pass  # a damaged cache file: start afresh, the build overwrites it
    config.set_timing_cache(config.create_timing_cache(b""), False)
    return False


def write_atomically(path: str, data: bytes) -> None:
    """Write through a temporary file in the same directory: readers see the old file or the whole new one."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=".specc-", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise
