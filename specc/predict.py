"""`specc predict`: run a spec (torch or ONNX Runtime) or a built model (ONNX Runtime) on .npy/.npz input."""

from __future__ import annotations

import json
import os
import zipfile

import numpy as np

from specc.diagnostics import Span, error
from specc.limits import DEFAULT_LIMITS, Limits


def read_inputs(path: str, names: list[str]) -> dict:
    """A .npy for a single-input model, or a .npz with one array per input name. Never unpickles.
    Problems are E081, located at the file as a whole (an array file has no lines)."""
    where = Span.whole_file(path)
    if not os.path.isfile(path):
        raise error("E081", "input file not found", where)
    with open(path, "rb") as handle:
        head = handle.read(6)
    # numpy.load tries anything that is neither as a pickle, and then says so ("if you trust the file you
    # can load it"): wrong for a file that is no array at all, so the first bytes are looked at first.
    if not head.startswith((b"\x93NUMPY", b"PK\x03\x04", b"PK\x05\x06")):
        raise _unreadable(where, f"it does not begin as one: {head!r}" if head else "it is empty")
    try:
        loaded = np.load(path, allow_pickle=False)
        if isinstance(loaded, np.ndarray):
            if len(names) != 1:
                raise error("E081", f"the model has {len(names)} inputs ({', '.join(names)}) but a .npy holds "
                            "one array", where, "pass a .npz with one array per input name")
            return {names[0]: loaded}
        with loaded:
            missing = [n for n in names if n not in loaded.files]
            if missing:
                raise error("E081", f"no array named {', '.join(missing)} in the file", where,
                            f"arrays in the file: {', '.join(loaded.files) or 'none'}")
            arrays = {n: loaded[n] for n in names}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        pickled = "pickle" in str(exc) or "Object arrays" in str(exc)
        raise _unreadable(where, "it holds Python objects, which specc never unpickles" if pickled
                          else str(exc)[:80]) from None
    for name, array in arrays.items():  # numpy hands a member that is no .npy over as its raw bytes
        if not isinstance(array, np.ndarray):
            raise _unreadable(where, f"its member {name}.npy is not a .npy array")
    return arrays


def _unreadable(where: Span, why: str):
    return error("E081", f"not a readable .npy/.npz array file ({why})", where,
                 "save inputs with numpy.save (one input) or numpy.savez (one array per input name)")


def save_outputs(outputs: dict, path: str) -> None:
    """Every output into one .npz keyed by output name, or the only output into a .npy.
    Written to exactly `path` (numpy.save would append a suffix to any other name)."""
    if not path.endswith(".npz"):
        (array,) = outputs.values()
        with open(path, "wb") as handle:
            np.save(handle, array, allow_pickle=False)
        return
    # numpy.savez takes arrays as keyword arguments, so an output called `file` would collide with its
    # own parameter; the archive is written member by member, as numpy.savez does.
    with zipfile.ZipFile(path, "w") as archive:
        for name, array in outputs.items():
            with archive.open(f"{name}.npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.asanyarray(array), allow_pickle=False)


def conform(name: str, array: np.ndarray, dtype: str, shape: list, path: str) -> np.ndarray:
    """Check an input array against its declared dtype and shape (batch axis added when missing)."""
    if array.ndim == len(shape) - 1:
        array = array[None]
    where = Span.whole_file(path)
    if array.ndim != len(shape):
        raise error("E060", f"input `{name}` has shape {list(array.shape)}; the model needs {shape}", where)
    for got, want in zip(array.shape[1:], shape[1:]):
        if isinstance(want, int) and got != want:
            raise error("E060", f"input `{name}` has shape {list(array.shape)}; the model needs {shape}", where)
    if array.dtype != np.dtype(dtype):
        if not np.can_cast(array.dtype, dtype, casting="same_kind"):
            raise error("E061", f"input `{name}` has dtype {array.dtype}; the model needs {dtype}", where)
        array = array.astype(dtype)
    return np.ascontiguousarray(array)


def _run_onnx(model, feeds: dict) -> dict:
    import onnxruntime as ort

    source = model if isinstance(model, str) else model.SerializeToString()
    session = ort.InferenceSession(source, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, feeds)))


def predict(model: str, input_path: str, weights: str | None = None, backend: str | None = None,
            limits: Limits = DEFAULT_LIMITS, passes=None) -> dict:
    """Run a spec or a build directory. On a spec, `passes` optimizes the graph first (None: none for
    torch, which runs the graph as trained; the spec's pipeline for onnxruntime, as `build` would)."""
    if os.path.isdir(model):
        return _predict_build_dir(model, input_path, backend)
    from specc.build import optimized_graph
    from specc.compiler import compile_spec, spec_pass_choice
    from specc.ir.analysis import check_memory_budget

    compiled = compile_spec(model, limits)
    graph = compiled.graph
    declared = {v.name: (v.type.dtype, list(v.type.shape)) for v in graph.inputs}
    raw = read_inputs(input_path, list(declared))
    feeds = {n: conform(n, raw[n], *declared[n], input_path) for n in declared}
    batch = max(a.shape[0] for a in feeds.values())
    check_memory_budget(graph, limits.memory_budget, batch=batch, what="predict")
    backend = backend or "torch"
    if backend in ("tensorrt", "onnxruntime-gpu"):
        raise error("E040", f"`--backend {backend}` runs a build directory", Span(model),
                    f"build first: `specc build {model} -o DIR" + (" --target tensorrt" if backend == "tensorrt"
                                                                  else "") + "`, then predict DIR")
    if passes is None:
        passes = spec_pass_choice(compiled.spec) if backend == "onnxruntime" else "none"
    graph = optimized_graph(graph, model, weights, passes, limits, compiled.spec.build.get("tta"))[0]  # as built
    if backend == "onnxruntime":
        from specc.codegen.onnx_export import to_onnx

        return _run_onnx(to_onnx(graph, None, compiled.spec.build["opset"]), feeds)
    import torch

    from specc.codegen.torch_module import to_torch

    module = to_torch(graph).eval()
    with torch.no_grad():
        outputs = module(*[torch.from_numpy(feeds[v.name]) for v in graph.inputs])
    return {k: v.numpy() for k, v in outputs.items()}


def _predict_build_dir(directory: str, input_path: str, backend: str | None) -> dict:
    manifest_path = os.path.join(directory, "manifest.json")
    if not os.path.isfile(manifest_path):
        raise error("E040", f"{directory} is not a build directory (no manifest.json)", Span(directory),
                    "run `specc build SPEC -o DIR` first")
    if backend == "torch":
        raise error("E040", "a build directory runs on `--backend onnxruntime`; pass the spec to run torch",
                    Span(directory))
    try:
        with open(manifest_path) as handle:
            manifest = json.load(handle)
        declared = {i["name"]: (i["dtype"], i["shape"]) for i in manifest["inputs"]}
    except (ValueError, KeyError, TypeError):
        raise error("E040", f"{manifest_path} is not a specc manifest", Span(manifest_path)) from None
    raw = read_inputs(input_path, list(declared))
    feeds = {n: conform(n, raw[n], *declared[n], input_path) for n in declared}
    model_path = os.path.join(directory, manifest.get("model", "model.onnx"))
    if backend == "tensorrt":
        engine = manifest.get("tensorrt")
        if not engine:
            raise error("E040", f"{directory} has no TensorRT engine", Span(directory),
                        "build it with `specc build SPEC -o DIR --target tensorrt` (needs a CUDA GPU)")
        from specc.runtime import tensorrt_runtime

        return tensorrt_runtime.run(os.path.join(directory, "model.engine"), feeds,
                                    host_code_allowed=engine.get("version_compatible", False))
    if backend == "onnxruntime-gpu":
        from specc.runtime import onnxruntime_gpu

        return onnxruntime_gpu.run(model_path, feeds)
    return _run_onnx(model_path, feeds)
