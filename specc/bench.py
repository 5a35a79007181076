"""`specc bench`: latency and throughput of a model on each backend and batch size, in one table.

Backends: `torch` (the spec's optimized float32 graph in PyTorch eager), `onnxruntime` (float32 build),
`onnxruntime-fp16` and `onnxruntime-int8` (builds at those precisions), `tensorrt` (an engine; needs
TensorRT and a CUDA GPU). A SPEC is built once per precision in a temporary directory with
`specc.build.build`; a BUILD_DIR is run as built (its `model.onnx` under the name of its precision, its
`model.engine` if it has one). Backends that cannot run here are listed with the reason.

Timing is interleaved: each of `repeat` rounds runs every backend once, in turn, so that whatever else
the machine does at that moment slows every backend alike; `warmup` rounds before are not counted.
Latency is per call (the whole batch); throughput is batch / median latency. ONNX Runtime's thread
pool does not spin between runs here (it would take the cores of the backend that runs next).
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import dataclass, field

import numpy as np

from specc.diagnostics import SpeccError

BACKENDS = ("torch", "onnxruntime", "onnxruntime-fp16", "onnxruntime-int8", "onnxruntime-gpu", "tensorrt")
PRECISION_OF = {"onnxruntime": "fp32", "onnxruntime-fp16": "fp16", "onnxruntime-int8": "int8",
                "onnxruntime-gpu": "fp32"}


@dataclass
class BenchOptions:
    batches: tuple = (1, 64)
    backends: tuple = BACKENDS
    threads: int = 0          # 0: every core this process may use
    warmup: int = 10
    repeat: int = 50
    weights: str | None = None
    calibration_data: str | None = None
    data_dir: str | None = None


@dataclass
class BenchReport:
    model: str
    threads: int
    warmup: int
    repeat: int
    rows: list = field(default_factory=list)          # {backend, batch, median_ms, p90_ms, throughput}
    unavailable: dict = field(default_factory=dict)   # backend -> why

    def as_json(self) -> str:
        return json.dumps({"model": self.model, "threads": self.threads, "warmup": self.warmup,
                           "repeat": self.repeat, "interleaved": True, "results": self.rows,
                           "unavailable": self.unavailable}, indent=2)

    def as_text(self) -> str:
        lines = [f"{self.model}: {self.threads} thread{'s' * (self.threads != 1)}, warm-up {self.warmup}, "
                 f"repeat {self.repeat}, backends interleaved",
                 f"{'backend':<18} {'batch':>5} {'median ms':>10} {'p90 ms':>9} {'samples/s':>11} {'speed-up':>9}"]
        base = {r["batch"]: r["median_ms"] for r in self.rows if r["backend"] == "onnxruntime"}
        for r in self.rows:
            ratio = f"{base[r['batch']] / r['median_ms']:.2f}x" if r["batch"] in base else "-"
            lines.append(f"{r['backend']:<18} {r['batch']:>5} {r['median_ms']:>10.3f} {r['p90_ms']:>9.3f} "
                         f"{r['throughput']:>11,.0f} {ratio:>9}")
        if base:
            lines.append("speed-up: against onnxruntime (float32) at the same batch size")
        for backend, why in self.unavailable.items():
            lines.append(f"{backend}: not run: {why}")
        return "\n".join(lines)


def threads_available() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def random_inputs(inputs: list, batch: int, seed: int = 0) -> dict:
    """name -> array for [(name, dtype, feature shape)]: pixels for uint8, [0, 1) floats, small int ids."""
    rng = np.random.default_rng(seed)
    feeds = {}
    for name, dtype, shape in inputs:
        dims = [batch] + [d if isinstance(d, int) else 16 for d in shape]
        if dtype == "uint8":
            feeds[name] = rng.integers(0, 256, dims).astype(np.uint8)
        elif dtype == "int64":
            feeds[name] = rng.integers(0, 2, dims).astype(np.int64)
        else:
            feeds[name] = rng.random(dims).astype(dtype)
    return feeds


# --- runners: a callable per backend that runs one batch ------------------
def onnxruntime_runner(model_path: str, threads: int):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    # ONNX Runtime's workers spin for a while after each run, waiting for the next: interleaved, that
    # spinning would eat the CPU of whichever backend runs next. Off, each backend has the cores to itself.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(model_path, options, providers=["CPUExecutionProvider"])
    return lambda feeds: session.run(None, feeds)


def _torch_runner(spec_path: str, weights: str | None, limits):
    import torch

    from specc.build import optimized_graph
    from specc.codegen.torch_module import to_torch
    from specc.compiler import compile_spec, spec_pass_choice

    compiled = compile_spec(spec_path, limits)
    # The model `build` writes: an ensemble's members and `build.tta`'s views included.
    graph = optimized_graph(compiled.graph, spec_path, weights, spec_pass_choice(compiled.spec), limits,
                            compiled.spec.build.get("tta"))[0]
    module = to_torch(graph).eval()
    names = [v.name for v in graph.inputs]

    def run(feeds):
        with torch.inference_mode():
            return module(*[torch.from_numpy(feeds[n]) for n in names])

    return run


def _onnxruntime_gpu_runner(model_path: str):
    """ONNX Runtime's CUDA/TensorRT providers; unavailable (with the reason) without onnxruntime-gpu or a GPU."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    if "CUDAExecutionProvider" not in available and "TensorrtExecutionProvider" not in available:
        raise _Unavailable("onnxruntime has no GPU provider here (pip install onnxruntime-gpu; needs a CUDA GPU)")
    from specc.diagnostics import SpeccError
    from specc.runtime.onnxruntime_gpu import OnnxRuntimeGpuSession

    try:
        return OnnxRuntimeGpuSession(model_path).run
    except SpeccError as exc:
        raise _Unavailable(exc.diagnostics[0].message) from None


def _tensorrt_runner(engine_path: str):
    from specc.runtime.tensorrt_runtime import TensorRTSession

    session = TensorRTSession(engine_path)
    return session.run


class _Backends:
    """Builds (for a SPEC) or finds (for a BUILD_DIR) what each backend runs; records why one cannot."""

    def __init__(self, model: str, options: BenchOptions, limits, workdir: str):
        self.model, self.options, self.limits, self.workdir = model, options, limits, workdir
        self.is_spec = not os.path.isdir(model)
        self.unavailable: dict = {}
        self.inputs: list = []
        self._builds: dict = {}

    def build(self, precision: str):
        """The BuildResult of `precision` (SPEC), built once."""
        from specc.build import build

        if precision not in self._builds:
            out = os.path.join(self.workdir, precision)
            self._builds[precision] = build(self.model, out, weights=self.options.weights, limits=self.limits,
                                            precision=precision, check_accuracy=False,
                                            calibration_data=self.options.calibration_data,
                                            data_dir=self.options.data_dir)
            if not self.inputs:
                manifest = self._builds[precision].manifest
                self.inputs = [(i["name"], i["dtype"], i["shape"][1:]) for i in manifest["inputs"]]
        return self._builds[precision]

    def runner(self, backend: str):
        from specc.codegen.tensorrt_engine import tensorrt_available

        threads = self.options.threads
        if backend == "tensorrt":
            ok, why = tensorrt_available()
            if not ok:
                raise _Unavailable(why)
        if not self.is_spec:
            return self._build_dir_runner(backend, threads)
        if backend == "torch":
            import torch

            torch.set_num_threads(threads)
            self.build("fp32")  # for the input list, and so that a spec that cannot build says so here
            return _torch_runner(self.model, self.options.weights, self.limits)
        if backend == "tensorrt":
            from specc.build import build_tensorrt

            result = self.build("fp32")
            return _tensorrt_runner(build_tensorrt(result)["engine"])
        if backend == "onnxruntime-gpu":
            return _onnxruntime_gpu_runner(self.build("fp32").model_path)
        return onnxruntime_runner(self.build(PRECISION_OF[backend]).model_path, threads)

    def _build_dir_runner(self, backend: str, threads: int):
        with open(os.path.join(self.model, "manifest.json")) as handle:
            manifest = json.load(handle)
        self.inputs = [(i["name"], i["dtype"], i["shape"][1:]) for i in manifest["inputs"]]
        precision = manifest.get("precision", "fp32")
        if backend == "torch":
            raise _Unavailable("a build directory holds no spec to run in torch; bench the spec instead")
        if backend == "tensorrt":
            engine = os.path.join(self.model, "model.engine")
            if not os.path.isfile(engine):
                raise _Unavailable("the build directory has no model.engine (build with `--target tensorrt`)")
            return _tensorrt_runner(engine)
        if backend == "onnxruntime-gpu":
            return _onnxruntime_gpu_runner(os.path.join(self.model, "model.onnx"))
        if PRECISION_OF[backend] != precision:
            raise _Unavailable(f"the build directory holds a {precision} model; bench the spec to build "
                               f"{PRECISION_OF[backend]}")
        return onnxruntime_runner(os.path.join(self.model, "model.onnx"), threads)


class _Unavailable(Exception):
    pass


def bench(model: str, options: BenchOptions, limits) -> BenchReport:
    threads = options.threads or threads_available()
    options = BenchOptions(**{**options.__dict__, "threads": threads})
    report = BenchReport(os.path.basename(os.path.normpath(model)), threads, options.warmup, options.repeat)
    with tempfile.TemporaryDirectory(prefix="specc-bench-") as workdir:
        backends = _Backends(model, options, limits, workdir)
        runners = {}
        for backend in options.backends:
            try:
                runners[backend] = backends.runner(backend)
            except _Unavailable as exc:
                report.unavailable[backend] = str(exc)
            except SpeccError as exc:
                d = exc.diagnostics[0]
                report.unavailable[backend] = f"error[{d.code}]: {d.message}"
        for batch in options.batches:
            feeds = random_inputs(backends.inputs, batch)
            times = {name: [] for name in runners}
            for round_ in range(options.warmup + options.repeat):
                for name, run in runners.items():  # round-robin: machine noise hits every backend alike
                    start = time.perf_counter()
                    run(feeds)
                    if round_ >= options.warmup:
                        times[name].append(time.perf_counter() - start)
            for name, samples in times.items():
                ms = np.array(samples) * 1e3
                median = float(np.median(ms))
                report.rows.append({"backend": name, "batch": batch, "median_ms": round(median, 4),
                                    "p90_ms": round(float(np.percentile(ms, 90)), 4),
                                    "throughput": round(batch / (median / 1e3), 1)})
    return report
