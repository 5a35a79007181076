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


def require_importable(modules: tuple[str, ...], extra: str, feature: str) -> None:
    """`require`, then import each module: one that is installed but fails to import (a half-removed
    package, a wheel for another Python) stops the command before it starts any work, with E098."""
    require(modules, extra, feature)
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception as exc:  # a broken package raises whatever its own import raises
            raise SpeccError(broken_import(exc, name, feature)) from None


def broken_import(exc: BaseException, module: str, feature: str) -> Diagnostic:
    return Diagnostic(
        "E098", f"{feature} could not import {module}: {type(exc).__name__}: {str(exc)[:300]}", NOWHERE,
        f"the package that provides `{module}` is installed but broken: reinstall it "
        f"(pip install --force-reinstall --no-deps PACKAGE), or pip install 'specc[all]' in a fresh environment")


def failed_import_outside_specc(exc: BaseException) -> str | None:
    """The top-level module whose import raised `exc` when it is not specc's own, else None (a bug in specc).

    The first module top level in the traceback that lies outside specc and the import machinery is the
    package that broke; with none (`from tqdm import tqdm` where tqdm has no such name), the name the
    ImportError gives."""
    if not isinstance(exc, ImportError):
        return None
    ours = ("specc", "importlib", "__main__")
    tb, outside = exc.__traceback__, None
    while tb is not None:
        frame = tb.tb_frame
        top = str(frame.f_globals.get("__name__", "")).split(".")[0]
        importing = frame.f_code.co_name == "<module>"  # a module's top level: the package was being imported
        if importing and top and top not in ours and not frame.f_code.co_filename.startswith("<"):
            outside = outside or top  # the first such frame: the package specc imported
        tb = tb.tb_next
    named = (exc.name or "").split(".")[0]
    return outside or (named if named and named not in ours else None)


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
