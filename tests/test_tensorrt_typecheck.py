"""The TensorRT builder and runtime type-check against TensorRT's real Python API (the `tensorrt-stubs`
package, TensorRT 10.13), so a misspelt method or a wrong argument type shows up without a GPU.

The stubs cannot be used as installed: they lack a py.typed marker (so mypy treats `tensorrt` as untyped
and checks nothing), name parameters `in`, put a parameter without a default after defaulted ones, and
shadow `bool` with a module attribute. A sanitized copy is written to the pytest cache and put on mypy's
path. A probe with a deliberate mistake proves the stubs are in effect.
"""

import importlib.util
import os
import re
import subprocess
import sys
from importlib import metadata

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHECKED = ["specc/codegen/tensorrt_engine.py", "specc/codegen/tensorrt_options.py", "specc/runtime/tensorrt_runtime.py",
           "specc/runtime/onnxruntime_gpu.py"]
STUB_FILES = ["tensorrt/__init__.pyi", "tensorrt_bindings/__init__.pyi", "tensorrt_bindings/tensorrt.pyi"]
PROBE = """import tensorrt as trt
config = trt.Builder(trt.Logger(trt.Logger.WARNING)).create_builder_config()
config.set_memory_pool_limit("workspace", 1 << 30)
"""
MYPY_INI = """[mypy]
ignore_missing_imports = True
follow_imports = silent
mypy_path = {stubs}
[mypy-torch.*]
follow_imports = skip
[mypy-tensorrt.*]
ignore_errors = True
[mypy-tensorrt_bindings.*]
ignore_errors = True
"""


def _split_parameters(text: str) -> list[str]:
    parts, depth, current = [], 0, ""
    for char in text:
        depth += char in "([{"
        depth -= char in ")]}"
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    return parts + [current]


def _sanitize_def(line: str) -> str:
    match = re.match(r"^(\s*def \w+\()(.*)(\)\s*(->.*)?:\s*(\.\.\.)?\s*)$", line)
    if not match:
        return line
    defaulted, fixed = False, []
    for parameter in _split_parameters(match.group(2)):
        if parameter.split(":")[0].strip() == "in":  # a keyword: not a valid parameter name
            parameter = parameter.replace("in:", "in_:", 1)
        if "=" in parameter:
            defaulted = True
        elif defaulted and parameter.strip() and not parameter.strip().startswith("*"):
            parameter += " = ..."
        fixed.append(parameter)
    return match.group(1) + ",".join(fixed) + match.group(3)


def sanitized_stubs(target: str) -> str:
    distribution = metadata.distribution("tensorrt-stubs")
    for relative in STUB_FILES:
        with open(distribution.locate_file(relative), encoding="utf-8") as handle:
            lines = handle.read().split("\n")
        text = "\n".join(_sanitize_def(line) for line in lines if not line.startswith("bool: "))
        compile(text, relative, "exec")  # the copy must at least parse
        os.makedirs(os.path.dirname(os.path.join(target, relative)), exist_ok=True)
        with open(os.path.join(target, relative), "w", encoding="utf-8") as handle:
            handle.write(text)
    return target


def test_engine_builder_and_runtimes_typecheck_against_tensorrt_stubs(request, tmp_path):
    if importlib.util.find_spec("mypy") is None:
        pytest.skip("mypy is not installed (pip install mypy)")
    try:
        metadata.distribution("tensorrt-stubs")
    except metadata.PackageNotFoundError:
        pytest.skip("tensorrt-stubs is not installed (pip install --no-deps tensorrt-stubs)")
    cache = request.config.cache.mkdir("tensorrt-mypy") if hasattr(request.config, "cache") else tmp_path
    stubs = sanitized_stubs(str(cache / "stubs"))
    config = tmp_path / "mypy.ini"
    config.write_text(MYPY_INI.format(stubs=stubs))
    probe = tmp_path / "probe_wrong_call.py"
    probe.write_text(PROBE)
    result = subprocess.run([sys.executable, "-m", "mypy", "--config-file", str(config), "--cache-dir",
                             str(cache / "mypy"), "--no-error-summary", "--hide-error-context", *CHECKED, str(probe)],
                            capture_output=True, text=True, cwd=ROOT, timeout=300)
    errors = [line for line in result.stdout.splitlines() if ": error:" in line]
    # By file name: mypy's incremental cache may replay the probe's errors under the path it first had.
    ours = [line for line in errors if probe.name not in line]
    assert ours == [], "\n".join(ours)
    # The probe's wrong argument type is caught: the stubs, not `Any`, stood behind `tensorrt`.
    assert any('"set_memory_pool_limit" of "IBuilderConfig"' in line for line in errors), result.stdout + result.stderr
