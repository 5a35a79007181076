"""Optional dependencies: what each command needs beyond the light install.

`pip install specc` brings only PyYAML, jsonschema and NumPy, enough for
`validate`, `inspect`, `schema` and `ops` (so CI jobs and pre-commit hooks
stay small and fast). Building and running models need the extras named in
pyproject.toml. A command checks for them before it starts, so a user reads
which extra to install (error E098) instead of an import failure halfway
through.
"""

from __future__ import annotations

import importlib.util
import os

from specc.diagnostics import NOWHERE, Diagnostic, SpeccError


def missing_modules(modules) -> list[str]:
    # find_spec locates a package without importing it: the check costs no torch start-up.
    return [name for name in modules if importlib.util.find_spec(name) is None]


def require(modules: str | tuple[str, ...], extra: str, feature: str, hint: str | None = None) -> None:
    """Raise E098 naming `feature`, the missing modules and the extra that brings them."""
    absent = missing_modules((modules,) if isinstance(modules, str) else modules)
    if not absent:
        return
    names = " and ".join(absent)
    verb = "is" if len(absent) == 1 else "are"
    raise SpeccError(Diagnostic(
        "E098", f"{feature} needs {names}, which {verb} not installed: pip install 'specc[{extra}]'", NOWHERE,
        hint or "pip install 'specc[all]' installs every optional dependency"))


def require_for_build(weights: str | None) -> None:
    # onnx exports and checks the model; safetensors reads a weights file.
    require(("onnx", "safetensors") if weights else ("onnx",), "onnx", "`specc build`")


def require_for_predict(model: str, backend: str | None, weights: str | None) -> None:
    """The modules `specc predict` will use: a build directory runs on ONNX Runtime, a spec on torch
    unless `--backend onnxruntime` asks to export it first."""
    from_dir = os.path.isdir(model)
    chosen = backend is not None
    backend = backend or ("onnxruntime" if from_dir else "torch")
    if from_dir and backend == "torch":
        return  # refused by predict itself with a better message: a build directory has no torch model
    reads_weights = ("safetensors",) if weights and not from_dir else ()
    if backend == "torch":
        feature = "`specc predict --backend torch`" if chosen else "`specc predict` on a spec (torch by default)"
        require(("torch",) + reads_weights, "torch", feature,
                "or run the spec on ONNX Runtime: --backend onnxruntime (pip install 'specc[onnx]')")
    elif backend == "onnxruntime":
        exports = () if from_dir else ("onnx",)
        require(exports + ("onnxruntime",) + reads_weights, "onnx", "`specc predict --backend onnxruntime`")
    # The GPU backends (onnxruntime-gpu, tensorrt) check their runtimes themselves, GPU and versions with
    # them, and say what to install (E098) or what is wrong with the GPU (E097).
