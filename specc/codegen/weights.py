"""Weights: deterministic initialization from the spec, and safetensors files checked against it.

Initialization runs in NumPy, seeded per tensor from (training.seed, tensor
name), so the torch module and the ONNX model of one spec hold identical
weights, and adding a layer does not change the others' initial values.
"""

from __future__ import annotations

import os

from specc.diagnostics import Diagnostics, Span, error
from specc.ir.graph import Graph
from specc.ops.base import tensor_rng as _tensor_rng


def tensor_rng(seed: int, name: str):
    return _tensor_rng(seed, name)


def init_weights(graph: Graph) -> dict:
    """name -> array of every data value of the graph (its initial values, or what was loaded into it)."""
    return {name: value.data.numpy() for name, value in graph.params.items()}


def load_weights_into(graph: Graph, path: str) -> dict:
    """Read a safetensors file, check it against the graph and make it the graph's data.
    Returns the provenance for the manifest."""
    from specc.ir.tensor import TensorData

    tensors = load_weights(path, graph)
    for name, value in graph.params.items():
        if name in tensors:
            value.data = TensorData(value.shape, value.type.dtype, array=tensors[name], source="file")
    return {"source": "file", "path": os.path.basename(path)}


def missing_weights(path: str):
    """The error for a weights path that is no regular file; a run directory gets the file inside it as the hint."""
    import os

    if os.path.isdir(path):
        inside = os.path.join(path, "model.safetensors")
        return error("E080", f"{path} is a directory, not a weights file", Span(path, 0),
                     f"give the file: --weights {inside}" if os.path.isfile(inside) else
                     "give a .safetensors file, e.g. a run's model.safetensors")
    if os.path.exists(path):  # a device or pipe: never opened, it could hang or flood the read
        return error("E003", f"{path} is not a regular file (a device, pipe or socket)", Span(path, 0),
                     "give a .safetensors file, e.g. a run's model.safetensors")
    return error("E080", f"weights file not found: {path}", Span(path, 0), "give the model.safetensors of a run")


def unreadable_weights(path: str, exc: Exception):
    """The error for a file that safetensors cannot read (located at the file as a whole)."""
    return error("E080", f"{path} is not a readable safetensors file ({type(exc).__name__})", Span.whole_file(path),
                 "weights are stored as .safetensors: give a run's model.safetensors")


def load_weights(path: str, graph: Graph) -> dict:
    """Read a safetensors file (never a pickle) and check it fits the graph, tensor by tensor."""
    import os

    import numpy as np

    shown = path
    if not os.path.isfile(path):
        raise missing_weights(path)
    try:
        from safetensors.numpy import load_file

        tensors = load_file(path)
    except Exception as exc:  # safetensors raises its own error types for malformed headers
        raise unreadable_weights(shown, exc) from None
    diags = Diagnostics()
    expected = {name: info for name, info in graph.params.items() if info.kind != "const"}
    if tensors and expected and not set(tensors) & set(expected):  # one error, not one per tensor of both
        raise error("E080", f"weights file {shown} does not fit this spec: none of its {len(tensors)} tensors "
                    f"({_names(tensors)}) is one of the spec's {len(expected)} ({_names(expected)})",
                    Span(shown), "was the file saved from another spec? A run keeps the spec it trained as "
                    "RUN_DIR/spec.yaml")
    for name, info in expected.items():
        tensor = tensors.get(name)
        if tensor is None:
            diags.error("E080", f"weights file {shown} has no tensor `{name}` ({list(info.shape)}) "
                        f"for layer `{info.owner}`", info.span)
        elif tuple(tensor.shape) != info.shape:
            diags.error("E080", f"tensor `{name}` in {shown} has shape {list(tensor.shape)}, but layer "
                        f"`{info.owner}` needs {list(info.shape)}", info.span)
        elif not np.issubdtype(tensor.dtype, np.floating):
            diags.error("E080", f"tensor `{name}` in {shown} has dtype {tensor.dtype}; a float type is needed",
                        info.span)
    extra = sorted(set(tensors) - set(expected))
    if extra:
        what = f"tensor `{extra[0]}`, which" if len(extra) == 1 else f"{len(extra)} tensors that"
        diags.error("E080", f"weights file {shown} has {what} no layer of the spec uses"
                    + (f": {_names(extra)}" if len(extra) > 1 else ""), Span(shown),
                    "was the file saved from another spec?")
    diags.raise_if_errors()
    return {name: np.ascontiguousarray(tensors[name], dtype=np.float32) for name in expected}


def _names(names, shown: int = 4) -> str:
    """`a`, `b`, `c`, `d` and 7 more: enough to recognise a file by, in one line."""
    names = sorted(names)
    listed = ", ".join(f"`{n}`" for n in names[:shown])
    return listed + (f" and {len(names) - shown} more" if len(names) > shown else "")


def readable(path: str) -> None:
    """mkstemp makes files only their owner can read; weights and run files are ordinary files (umask applies)."""
    import os

    mask = os.umask(0o022)
    os.umask(mask)
    os.chmod(path, 0o666 & ~mask)


def save_weights(path: str, weights: dict, metadata: dict | None = None) -> None:
    """Atomically write weights as safetensors, readable as any file the user writes."""
    import os
    import tempfile

    import numpy as np
    from safetensors.numpy import save_file

    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".specc-weights-", suffix=".safetensors", dir=directory)
    os.close(fd)
    try:
        save_file({k: np.ascontiguousarray(v) for k, v in weights.items()}, tmp,
                  metadata={k: str(v) for k, v in (metadata or {}).items()})
        readable(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
