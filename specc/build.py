"""`specc build`: spec -> DIR/model.onnx + DIR/manifest.json, written atomically.

Everything is first written into a temporary directory beside DIR and
checked; only then are the files moved into DIR, the manifest last. The old
manifest is removed before the model is replaced, so an interrupted build
never leaves a model and a manifest that disagree.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass

from specc import __version__
from specc.compiler import compile_spec
from specc.diagnostics import Span, SpeccError, error
from specc.ir.analysis import check_memory_budget, weight_bytes
from specc.ir.graph import Graph
from specc.ir.types import BATCH
from specc.limits import DEFAULT_LIMITS, Limits

EXTERNAL_DATA_THRESHOLD = 1_800_000_000  # protobuf's hard limit is 2 GiB; keep a margin for the graph


@dataclass
class BuildResult:
    model_path: str
    manifest_path: str
    manifest: dict
    spans: dict = None      # spec layer and input name -> Span: where a finding about the model points
    build_cfg: dict = None  # the spec's `build` section
    spec_path: str = ""

    @property
    def summary(self) -> str:
        m = self.manifest
        return f"{m['total_params']:,} params, opset {m['opset']}, {m['precision']}"


def sha256_file(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _version(package: str) -> str | None:
    """The installed version of `package`, from its `<name>-<version>.dist-info` directory on sys.path:
    what importlib.metadata finds for a pip-installed package, without importing it (about 30 ms, a
    twentieth of a ResNet-18 build) or the package itself."""
    prefix = package.lower().replace("-", "_") + "-"
    for entry in sys.path:
        try:
            names = os.listdir(entry or ".")
        except OSError:
            continue
        for name in names:
            if name.endswith(".dist-info") and name.lower().startswith(prefix):
                return name[len(prefix):-len(".dist-info")]
    return None


def _tensor_info(name: str, value) -> dict:
    return {"name": name, "dtype": value.type.dtype,
            "shape": ["batch" if d == BATCH else d for d in value.type.shape]}


def check_targets(build_cfg: dict, span_of) -> None:
    """A requested target or precision that cannot be built is an error, never skipped quietly.
    `span_of(key)` is where `build.<key>` is written."""
    from specc.precision import PRECISIONS

    if build_cfg["precision"] not in PRECISIONS:
        raise error("E099", f"precision `{build_cfg['precision']}` is not available in this version of specc",
                    span_of("precision"), "the precisions: " + ", ".join(PRECISIONS))


def tta_manifest(tta: dict) -> dict:
    from specc.tta_build import tta_views

    return {"transforms": [step.op for step in tta["transforms"]], "views": 1 + len(tta_views(tta["transforms"])),
            "combine": tta["combine"]}


def resolve_weights(graph: Graph, weights_path: str | None) -> dict:
    """Load a weights file into the graph's data (before the passes rewrite it); the provenance."""
    from specc.codegen.weights import load_weights_into

    if weights_path:
        info = load_weights_into(graph, weights_path)
        return {**info, "sha256": sha256_file(weights_path)}
    return {"source": "init", "seed": graph.seed}


def optimized_graph(graph: Graph, spec_path: str, weights: str | None, choice, limits: Limits,
                    tta: dict | None = None):
    """The graph with its weights, through the passes: (graph, passes run, their counts, weights provenance).
    An ensemble's weights file (from `training.ensemble`) gives one graph running every member. `tta` (the
    spec's `build.tta`) runs each model on its test-time views too (specc/tta_build.py), before the passes."""
    from specc.compiler import optimize
    from specc.ensemble_build import ensemble_graph
    from specc.tta_build import with_views

    prepare = (lambda g: with_views(g, tta["transforms"], tta["combine"])) if tta else None
    if weights:
        ensemble = ensemble_graph(spec_path, limits, weights, compile_spec, optimize, choice, prepare)
        if ensemble is not None:
            merged, applied, changes, info = ensemble
            return merged, applied, changes, {**info, "path": os.path.basename(weights),
                                              "sha256": sha256_file(weights)}
    weights_info = resolve_weights(graph, weights)
    if prepare is not None:
        graph = prepare(graph)
    graph, applied, changes = optimize(graph, choice)
    return graph, applied, changes, weights_info


def build(spec_path: str, out_dir: str, weights: str | None = None, limits: Limits = DEFAULT_LIMITS,
          passes=None, precision: str | None = None, check_accuracy: bool | None = None,
          calibration_data: str | None = None, data_dir: str | None = None,
          check_onnx: bool | None = None) -> BuildResult:
    """`passes`: None for the spec's `build.passes` (default: the standard pipeline), `none`, or a list.
    `precision`: None for the spec's `build.precision`; fp16/int8 run the precision passes after the
    others, and `check_accuracy` (None: when weights and data are at hand) compares the model with fp32
    (see specc/precision/build_step.py). `check_onnx` runs the onnx package's checker, with full shape
    inference, on the written model (None: when SPECC_CHECK_ONNX=1, as the tests set it)."""
    from specc.codegen import onnx_wire
    from specc.codegen.onnx_export import as_proto, lower
    from specc.compiler import optimize, spec_pass_choice

    compiled = compile_spec(spec_path, limits)
    graph, spec = compiled.graph, compiled.spec
    build_cfg = {**spec.build, "precision": precision or spec.build["precision"]}
    check_targets(build_cfg, lambda key: spec.span_of("build", key))
    check_memory_budget(graph, limits.memory_budget, batch=1, what="build")
    spec_params = graph.trainable_params  # as `inspect` counts them: the passes fold some into others
    choice = spec_pass_choice(spec) if passes is None else passes
    tta = build_cfg.get("tta")
    graph, applied, changes, weights_info = optimized_graph(graph, spec_path, weights, choice, limits, tta)
    spec_params *= (weights_info.get("ensemble") or {}).get("members", 1)  # the model runs every member
    lowered = None
    if build_cfg["precision"] != "fp32":
        from specc.precision.build_step import guard_accuracy, reduce_precision

        lowered = reduce_precision(graph, spec, build_cfg["precision"], calibration_data=calibration_data,
                                   data_dir=data_dir, limits=limits)
        graph, applied, changes = lowered.graph, applied + lowered.passes, {**changes, **lowered.changes}
    opset = spec.build["opset"]
    spec_sha = sha256_file(spec_path)
    model = lower(graph, None, opset, metadata={"specc.spec_sha256": spec_sha, "specc.name": graph.name})
    accuracy = None
    if lowered is not None:  # before anything is written: a failed guard leaves the old build in place

        def fp32_graph():
            return optimized_graph(compile_spec(spec_path, limits).graph, spec_path, weights, choice, limits, tta)[0]

        small = weight_bytes(graph) <= EXTERNAL_DATA_THRESHOLD
        accuracy = guard_accuracy(spec, build_cfg["precision"], onnx_wire.encode(model) if small else None,
                                  fp32_graph, lowered, check=check_accuracy, weights=weights, data_dir=data_dir,
                                  limits=limits)

    out_dir = os.path.abspath(out_dir)
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise error("E040", f"output {out_dir} exists and is not a directory", Span(spec_path))
    os.makedirs(out_dir, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".specc-build-", dir=out_dir)
    try:
        model_tmp = os.path.join(staging, "model.onnx")
        external = weight_bytes(graph) > EXTERNAL_DATA_THRESHOLD
        if check_onnx is None:
            check_onnx = os.environ.get("SPECC_CHECK_ONNX") == "1"
        if external:  # past protobuf's 2 GiB: the onnx package writes the weights beside the graph
            import onnx

            onnx.save_model(as_proto(model), model_tmp,
                            save_as_external_data=True, all_tensors_to_one_file=True,
                            location="model.onnx.data", size_threshold=1024)
            model_sha = sha256_file(model_tmp)
        else:  # streamed from the weight arrays to the file and the hash, no copy in between
            model_sha = onnx_wire.write(model, model_tmp)
        del model
        if check_onnx:
            import onnx

            try:
                onnx.checker.check_model(model_tmp, full_check=True)
            except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
                raise error("E087", f"the built model fails the onnx checker: {str(exc).strip()}",
                            Span(spec_path), "this is a defect in specc's ONNX lowering; the model was "
                            "not written") from None
        manifest = {
            "specc_version": __version__,
            "name": graph.name,
            "spec": os.path.basename(spec_path),
            "spec_sha256": spec_sha,
            "model": "model.onnx",
            "model_sha256": model_sha,
            "external_data": "model.onnx.data" if external else None,
            "onnx_checked": bool(check_onnx),
            "opset": opset,
            "precision": build_cfg["precision"],
            "targets": spec.build["targets"],
            "inputs": [_tensor_info(v.name, v) for v in graph.inputs],
            "outputs": [_tensor_info(name, v) for name, v in graph.outputs.items()],
            "total_params": spec_params,
            "weights": weights_info,
            **({"tta": tta_manifest(tta)} if tta else {}),
            "passes": applied,
            "pass_changes": {name: counts for name, counts in changes.items() if counts},
            **({"keep_fp32": list(build_cfg.get("keep_fp32") or []), "accuracy": accuracy}
               if lowered is not None else {}),
            **({"calibration": lowered.calibration} if lowered is not None and lowered.calibration else {}),
            "versions": {"specc": __version__, "onnx": _version("onnx"), "torch": _version("torch"),
                         "onnxruntime": _version("onnxruntime")},
            "build_time": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        }
        with open(os.path.join(staging, "manifest.json"), "w") as handle:
            json.dump(manifest, handle, indent=2)
        manifest_path = os.path.join(out_dir, "manifest.json")
        if os.path.exists(manifest_path):
            os.unlink(manifest_path)  # from here until the end the directory holds no valid-looking build
        for name in ("model.onnx.data", "model.onnx"):
            if os.path.exists(os.path.join(staging, name)):
                os.replace(os.path.join(staging, name), os.path.join(out_dir, name))
            elif os.path.exists(os.path.join(out_dir, name)):
                os.unlink(os.path.join(out_dir, name))  # a stale external-data file from an older build
        os.replace(os.path.join(staging, "manifest.json"), manifest_path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    from specc.codegen.layer_spans import layer_spans

    return BuildResult(os.path.join(out_dir, "model.onnx"), manifest_path, manifest, layer_spans(graph, spec),
                       build_cfg, spec_path)


def check_tensorrt(result: BuildResult, option: str = "tensorrt") -> list:
    """`--check tensorrt[=10|11]`: located diagnostics about what TensorRT's ONNX parser would refuse."""
    from specc.codegen.tensorrt_check import check_onnx_file, check_version
    from specc.codegen.tensorrt_options import EngineOptions

    try:
        version = check_version(option)
    except ValueError as exc:
        raise error("E096", str(exc), Span(result.spec_path)) from None
    options = EngineOptions.from_build(result.build_cfg)
    return check_onnx_file(result.model_path, version, result.spans, options.dims or None, Span(result.spec_path))


def build_tensorrt(result: BuildResult) -> dict:
    """The `tensorrt` target: the static check first, then the engine next to model.onnx; the manifest
    gains the engine's cache key. The ONNX model is already written when this fails."""
    from specc.codegen.tensorrt_engine import build_engine, require_tensorrt
    from specc.codegen.tensorrt_options import EngineOptions

    diagnostics = check_tensorrt(result)
    if any(d.severity == "error" for d in diagnostics):
        raise SpeccError(diagnostics)
    require_tensorrt("build target `tensorrt`", Span(result.spec_path))
    options = EngineOptions.from_build(result.build_cfg)
    if options.timing_cache and not os.path.isabs(options.timing_cache):
        options.timing_cache = os.path.join(os.path.dirname(os.path.abspath(result.spec_path)), options.timing_cache)
    directory = os.path.dirname(result.model_path)
    entry = build_engine(result.model_path, os.path.join(directory, "model.engine"), options, result.spans)
    result.manifest["tensorrt"] = entry
    tmp = result.manifest_path + ".tmp"
    with open(tmp, "w") as handle:
        json.dump(result.manifest, handle, indent=2)
    os.replace(tmp, result.manifest_path)
    return entry


