"""A recording stand-in for the `tensorrt` module, for tests on machines without TensorRT or a GPU.

It has the names specc's engine builder uses, with TensorRT 10's or 11's
enum members (11 removed the FP16/INT8/... builder flags and renumbered
NetworkDefinitionCreationFlag), and records every call in `calls` so a test
can assert what the builder asked TensorRT to do. Its ONNX parser reads the
real ONNX file to declare the network inputs (dynamic axes as -1, as
TensorRT does). Install it with `monkeypatch.setitem(sys.modules, "tensorrt",
make_fake_tensorrt(...))`; it lives only in the tests.
"""

from __future__ import annotations

import enum
import types

import onnx

FLAGS_10 = ["FP16", "INT8", "DEBUG", "GPU_FALLBACK", "REFIT", "DISABLE_TIMING_CACHE", "TF32", "SPARSE_WEIGHTS",
            "SAFETY_SCOPE", "OBEY_PRECISION_CONSTRAINTS", "PREFER_PRECISION_CONSTRAINTS", "DIRECT_IO",
            "REJECT_EMPTY_ALGORITHMS", "VERSION_COMPATIBLE", "EXCLUDE_LEAN_RUNTIME", "FP8",
            "ERROR_ON_TIMING_CACHE_MISS", "BF16", "DISABLE_COMPILATION_CACHE", "WEIGHTLESS", "STRIP_PLAN",
            "REFIT_IDENTICAL", "WEIGHT_STREAMING", "INT4", "REFIT_INDIVIDUAL", "STRICT_NANS", "MONITOR_MEMORY", "FP4", "DISTRIBUTIVE_INDEPENDENCE"]
REMOVED_IN_11 = {"FP16", "INT8", "BF16", "FP8", "INT4", "FP4", "OBEY_PRECISION_CONSTRAINTS",
                 "PREFER_PRECISION_CONSTRAINTS", "DIRECT_IO", "REJECT_EMPTY_ALGORITHMS"}


def make_fake_tensorrt(version: str = "10.13.0.35", parser_errors=(), build_fails: bool = False,
                       foreign_cache_marker: bytes = b"other-gpu"):
    """`parser_errors`: (node name, op type, description) triples the parser reports; `build_fails`: the
    builder returns None; a saved timing cache starting with `foreign_cache_marker` is refused as TensorRT
    refuses one from another GPU."""
    major = int(version.split(".")[0])
    trt = types.ModuleType("tensorrt")
    trt.__version__ = version
    calls: list[tuple] = []
    trt.calls = calls

    flags = FLAGS_10 if major == 10 else [f for f in FLAGS_10 if f not in REMOVED_IN_11]
    trt.BuilderFlag = enum.IntEnum("BuilderFlag", {name: i for i, name in enumerate(flags)})
    creation = {"EXPLICIT_BATCH": 0, "STRONGLY_TYPED": 1} if major == 10 else {"STRONGLY_TYPED": 0}
    trt.NetworkDefinitionCreationFlag = enum.IntEnum("NetworkDefinitionCreationFlag", creation)
    trt.MemoryPoolType = enum.IntEnum("MemoryPoolType", {"WORKSPACE": 0, "DLA_MANAGED_SRAM": 1})
    trt.HardwareCompatibilityLevel = enum.IntEnum("HardwareCompatibilityLevel",
                                                  {"NONE": 0, "AMPERE_PLUS": 1, "SAME_COMPUTE_CAPABILITY": 2})
    trt.TensorIOMode = enum.IntEnum("TensorIOMode", {"NONE": 0, "INPUT": 1, "OUTPUT": 2})

    class ILogger:
        Severity = enum.IntEnum("Severity", {"INTERNAL_ERROR": 0, "ERROR": 1, "WARNING": 2, "INFO": 3,
                                             "VERBOSE": 4})

        def __init__(self):
            calls.append(("ILogger.__init__",))

    class Logger(ILogger):
        WARNING = ILogger.Severity.WARNING

        def __init__(self, min_severity=ILogger.Severity.WARNING):
            super().__init__()

        def log(self, severity, msg):
            pass

    def Dims(shape):  # noqa: N802 - TensorRT's name
        return tuple(shape)

    class Tensor:
        def __init__(self, name, shape):
            self.name, self.shape = name, shape

    class Network:
        def __init__(self, flags):
            self.flags = flags
            self.inputs: list[Tensor] = []

        @property
        def num_inputs(self):
            return len(self.inputs)

        def get_input(self, index):
            return self.inputs[index]

    class ParserError:
        def __init__(self, node, op, desc):
            self._node, self._op, self._desc = node, op, desc

        def node_name(self):
            return self._node

        def node_operator(self):
            return self._op

        def desc(self):
            return self._desc

        def code(self):
            return 8  # kUNSUPPORTED_NODE

    class OnnxParser:
        def __init__(self, network, logger):
            calls.append(("OnnxParser",))
            self.network, self.errors = network, []

        def parse_from_file(self, path):
            calls.append(("parse_from_file", path))
            model = onnx.load(path, load_external_data=False)
            stored = {t.name for t in model.graph.initializer}
            for value in model.graph.input:
                if value.name not in stored:
                    shape = tuple(d.dim_value if d.HasField("dim_value") else -1
                                  for d in value.type.tensor_type.shape.dim)
                    self.network.inputs.append(Tensor(value.name, shape))
            self.errors = [ParserError(*e) for e in parser_errors]
            return not self.errors

        @property
        def num_errors(self):
            return len(self.errors)

        def get_error(self, index):
            return self.errors[index]

    class TimingCache:
        def __init__(self, data):
            self.data = bytes(data)

        def serialize(self):
            calls.append(("serialize_timing_cache",))
            return self.data + b"|timed"

    class Profile:
        def set_shape(self, name, low, opt, high):
            calls.append(("set_shape", name, low, opt, high))

    class Config:
        def __init__(self):
            self.__dict__["cache"] = None

        def __setattr__(self, name, value):
            calls.append(("config." + name, value))
            self.__dict__[name] = value

        def set_memory_pool_limit(self, pool, size):
            calls.append(("set_memory_pool_limit", pool.name, size))

        def set_flag(self, flag):
            calls.append(("set_flag", flag.name))

        def clear_flag(self, flag):
            calls.append(("clear_flag", flag.name))

        def add_optimization_profile(self, profile):
            calls.append(("add_optimization_profile",))
            return 0

        def create_timing_cache(self, data):
            calls.append(("create_timing_cache", bytes(data)))
            return TimingCache(data)

        def set_timing_cache(self, cache, ignore_mismatch):
            accepted = not cache.data.startswith(foreign_cache_marker)
            calls.append(("set_timing_cache", cache.data, ignore_mismatch, accepted))
            if accepted:
                self.__dict__["cache"] = cache
            return accepted

        def get_timing_cache(self):
            return self.__dict__["cache"]

    class Builder:
        def __init__(self, logger):
            calls.append(("Builder",))
            self.logger = logger

        def create_network(self, flags=0):
            calls.append(("create_network", flags))
            return Network(flags)

        def create_builder_config(self):
            return Config()

        def create_optimization_profile(self):
            return Profile()

        def build_serialized_network(self, network, config):
            calls.append(("build_serialized_network",))
            if build_fails:
                self.logger.log(ILogger.Severity.ERROR, "out of workspace memory for tactic")
                return None
            return b"fake-engine:" + ",".join(t.name for t in network.inputs).encode()

    for name, value in list(locals().items()):
        if name in ("ILogger", "Logger", "Dims", "OnnxParser", "Builder"):
            setattr(trt, name, value)
    return trt
