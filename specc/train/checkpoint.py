"""Checkpoints: everything a run needs to continue, in one safetensors file written atomically.

Tensors (weights, averaged weights, optimizer state, the torch RNG state) are
safetensors entries; everything else (position, best so far, history) is one
JSON document in the file's metadata, so tensors and state can never come
from two different moments. `checkpoint.json` is a readable copy of that
document, written after the checkpoint; resuming reads only the safetensors
file. Nothing is ever pickled.
"""

from __future__ import annotations

import json
import os
import tempfile

import torch

from specc.codegen.weights import readable

CHECKPOINT = "checkpoint.safetensors"
CHECKPOINT_JSON = "checkpoint.json"
FORMAT = 1


def write_atomic(path: str, data: str | bytes) -> None:
    """Write to a temporary file beside `path`, then rename it over `path` (readers see old or new)."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data.encode() if isinstance(data, str) else data)
        readable(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def save_checkpoint(run_dir: str, tensors: dict, state: dict) -> None:
    from safetensors.torch import save_file

    path = os.path.join(run_dir, CHECKPOINT)
    fd, tmp = tempfile.mkstemp(prefix=".checkpoint.", suffix=".safetensors", dir=run_dir)
    os.close(fd)
    document = json.dumps({"format": FORMAT, **state})
    try:
        # Host copies: optimizer state lives beside the parameters, on the GPU in a CUDA run.
        save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, tmp,
                  metadata={"specc.state": document})
        readable(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    write_atomic(os.path.join(run_dir, CHECKPOINT_JSON), json.dumps({"format": FORMAT, **state}, indent=1) + "\n")


def load_checkpoint(run_dir: str) -> tuple[dict, dict]:
    """(tensors, state). Raises ValueError for a file that is not a specc checkpoint."""
    from safetensors import safe_open

    path = os.path.join(run_dir, CHECKPOINT)
    with safe_open(path, "pt") as handle:
        metadata = handle.metadata() or {}
        tensors = {key: handle.get_tensor(key) for key in handle.keys()}
    if "specc.state" not in metadata:
        raise ValueError("no specc training state in the file")
    state = json.loads(metadata["specc.state"])
    if state.get("format") != FORMAT:
        raise ValueError(f"checkpoint format {state.get('format')} (this specc reads {FORMAT})")
    return tensors, state


# --- optimizer state as tensors + JSON ---------------------------------------------------------

def optimizer_state(optimizer: torch.optim.Optimizer, prefix: str = "optim.") -> tuple[dict, dict]:
    """The per-parameter state (moments, step counts, L-BFGS history) as tensors plus a JSON skeleton.
    Hyperparameters are not saved: they come from the spec, and the lr from the schedule."""
    tensors: dict = {}

    def encode(value, key):
        if isinstance(value, torch.Tensor):
            tensors[prefix + key] = value
            return {"tensor": prefix + key}
        if isinstance(value, (list, tuple)):
            return {"list": [encode(v, f"{key}.{i}") for i, v in enumerate(value)]}
        if value is None or isinstance(value, (bool, int, float, str)):
            return {"value": value}
        raise TypeError(f"cannot save optimizer state of type {type(value).__name__}")

    skeleton = {str(index): {k: encode(v, f"{index}.{k}") for k, v in entries.items()}
                for index, entries in optimizer.state_dict()["state"].items()}
    return tensors, skeleton


def restore_optimizer(optimizer: torch.optim.Optimizer, tensors: dict, skeleton: dict) -> None:
    def decode(node):
        if "tensor" in node:
            return tensors[node["tensor"]]
        if "list" in node:
            return [decode(v) for v in node["list"]]
        return node["value"]

    state_dict = optimizer.state_dict()
    state_dict["state"] = {int(index): {k: decode(v) for k, v in entries.items()}
                           for index, entries in skeleton.items()}
    optimizer.load_state_dict(state_dict)
