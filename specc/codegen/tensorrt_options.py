"""How a TensorRT engine is to be built: the options from a spec's `build` section, the optimization
profile of each input, the precision plan for TensorRT 10 and 11, and the equivalent `trtexec` line.
Nothing here needs TensorRT or a GPU."""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass, field

import onnx

from specc.diagnostics import Span, error

DEFAULT_BATCH = {"min": 1, "opt": 1, "max": 64}
HARDWARE_LEVELS = {"none": "NONE", False: "NONE", "ampere_plus": "AMPERE_PLUS", True: "AMPERE_PLUS",
                   "same_compute_capability": "SAME_COMPUTE_CAPABILITY"}
TRTEXEC_HARDWARE = {"AMPERE_PLUS": "ampere+", "SAME_COMPUTE_CAPABILITY": "sameComputeCapability"}
UNLOCATED = Span("", 0, 0)  # a problem with the machine or the options, not with any file


@dataclass
class EngineOptions:
    batch: dict = field(default_factory=lambda: dict(DEFAULT_BATCH))  # {min, opt, max}, or input name -> that
    workspace_mb: int = 1024
    optimization_level: int = 3
    hardware_compatibility: str | bool = "none"
    version_compatible: bool = False
    timing_cache: str | None = None  # a file, or a directory for one file per TensorRT version and GPU
    precision: str = "fp32"
    dims: dict = field(default_factory=dict)  # other dynamic axes: dim_param name -> {min, opt, max}

    @classmethod
    def from_build(cls, build: dict) -> EngineOptions:
        """Options from a spec's `build` section (`batch`, `precision`, `tensorrt`)."""
        tensorrt = build.get("tensorrt") or {}
        batch = build.get("batch") or DEFAULT_BATCH
        if isinstance(batch, int):
            batch = {"min": batch, "opt": batch, "max": batch}
        return cls(batch=dict(batch), workspace_mb=tensorrt.get("workspace_mb", 1024),
                   optimization_level=tensorrt.get("optimization_level", 3),
                   hardware_compatibility=tensorrt.get("hardware_compatibility", "none"),
                   version_compatible=tensorrt.get("version_compatible", False),
                   timing_cache=tensorrt.get("timing_cache"), precision=build.get("precision", "fp32"))

    def batch_range(self, input_name: str) -> tuple[int, int, int]:
        spec = self.batch if "min" in self.batch else self.batch.get(input_name)
        if spec is None:
            raise ValueError(f"EngineOptions.batch gives no batch range for input `{input_name}`")
        return spec["min"], spec["opt"], spec["max"]


def hardware_level(options: EngineOptions) -> str:
    """The `trt.HardwareCompatibilityLevel` member name for `options.hardware_compatibility`."""
    if options.hardware_compatibility not in HARDWARE_LEVELS:
        raise ValueError(f"hardware_compatibility must be one of none, ampere_plus, same_compute_capability, true, "
                         f"false; got {options.hardware_compatibility!r}")
    return HARDWARE_LEVELS[options.hardware_compatibility]


def input_profiles(model: onnx.ModelProto, options: EngineOptions) -> dict:
    """min/opt/max shapes per network input: the batch axis from `options.batch`, named dynamic axes from
    `options.dims`, fixed axes as the ONNX declares them."""
    stored = {t.name for t in model.graph.initializer}
    profiles = {}
    for value in model.graph.input:
        if value.name in stored:
            continue
        low: list[int] = []
        mid: list[int] = []
        high: list[int] = []
        for axis, dim in enumerate(value.type.tensor_type.shape.dim):
            if axis == 0:
                rng = options.batch_range(value.name)
            elif dim.HasField("dim_value") and dim.dim_value > 0:
                rng = (dim.dim_value,) * 3
            elif dim.dim_param in options.dims:
                spec = options.dims[dim.dim_param]
                rng = (spec["min"], spec["opt"], spec["max"])
            else:
                raise error("E096", f"input `{value.name}` axis {axis} is dynamic and has no min/opt/max range",
                            UNLOCATED, "give the axis a fixed size, or a range in the engine options' `dims`")
            for shape, size in zip((low, mid, high), rng):
                shape.append(int(size))
        profiles[value.name] = {"min": low, "opt": mid, "max": high}
    return profiles


def precision_in_graph(model: onnx.ModelProto) -> bool:
    """Whether the ONNX carries its precision itself: Q/DQ pairs or Casts to float16."""
    for node in model.graph.node:
        if node.op_type in ("QuantizeLinear", "DequantizeLinear"):
            return True
        to_half = any(a.name == "to" and a.i == onnx.TensorProto.FLOAT16 for a in node.attribute)
        if node.op_type == "Cast" and to_half:
            return True
    return any(t.data_type == onnx.TensorProto.FLOAT16 for t in model.graph.initializer)


def precision_plan(major: int, precision: str, in_graph: bool, builder_flags: set[str],
                   span: Span = UNLOCATED) -> tuple[bool, list[str]]:
    """(strongly typed?, legacy precision flags to set) for a TensorRT major version."""
    if precision == "fp32" or in_graph:
        return True, []
    if major >= 11 or precision.upper() not in builder_flags:
        raise error("E097", f"precision `{precision}` must be written into the ONNX graph for TensorRT {major}, "
                    "which has no FP16/INT8 builder flags (networks are strongly typed)", span,
                    "build with specc's precision passes, which insert the Casts and Q/DQ pairs")
    if precision == "int8":
        raise error("E097", "int8 without Q/DQ pairs in the ONNX would need a TensorRT calibrator", span,
                    "build with specc's precision passes, which insert symmetric Q/DQ pairs from calibration")
    return False, [precision.upper()]


def trtexec_command(onnx_path: str, options: EngineOptions, engine_path: str | None = None,
                    version: int = 10, timing_cache: str | None = None) -> str:
    """The trtexec line that builds the same engine (for a user who wants to reproduce or profile it)."""
    model = onnx.load(onnx_path, load_external_data=False)
    engine_path = engine_path or os.path.splitext(onnx_path)[0] + ".engine"
    strongly_typed, flags = precision_plan(version, options.precision, precision_in_graph(model),
                                           {"FP16", "INT8"} if version == 10 else set())
    args = ["trtexec", f"--onnx={onnx_path}", f"--saveEngine={engine_path}", "--skipInference"]
    profiles = {name: p for name, p in input_profiles(model, options).items() if p["min"] != p["max"]}
    for key in ("min", "opt", "max"):
        if profiles:
            shapes = ",".join(f"{name}:{'x'.join(map(str, p[key]))}" for name, p in profiles.items())
            args.append(f"--{key}Shapes={shapes}")
    args += [f"--memPoolSize=workspace:{options.workspace_mb}M",
             f"--builderOptimizationLevel={options.optimization_level}"]
    level = hardware_level(options)
    if level in TRTEXEC_HARDWARE:
        args.append(f"--hardwareCompatibilityLevel={TRTEXEC_HARDWARE[level]}")
    if options.version_compatible:
        args.append("--versionCompatible")
    if strongly_typed and version == 10:
        args.append("--stronglyTyped")  # TensorRT 11 is always strongly typed and no longer needs it
    args += [f"--{flag.lower()}" for flag in flags]
    if options.precision == "fp32":
        args.append("--noTF32")
    if timing_cache or options.timing_cache:
        args.append(f"--timingCacheFile={timing_cache or options.timing_cache}")
    return " ".join(shlex.quote(arg) for arg in args)
