"""specc in other repositories' CI: the light install, E098, `--skip-non-specs`, the pre-commit hook
(run for real with `pre-commit try-repo`), the recipes in docs/ci.md, and the JSON Schema against the zoo."""

from __future__ import annotations

import copy
import importlib.util
import json
import os
import re
import shlex
import shutil
import subprocess
import sys

import jsonschema
import pytest
import yaml

from conftest import ROOT, SPECS, run_cli, zoo_specs
from specc.cli import COMMANDS, main

CI_DOC = os.path.join(ROOT, "docs", "ci.md")
HEAVY = ("torch", "onnx", "onnxruntime", "safetensors", "matplotlib")
BAD_SPEC = "specc: 1\nname: bad\ninputs: {x: {shape: [4]}}\nnetwork:\n  - desne: 10\n"
WORKFLOW = "on: push\njobs:\n  test: {runs-on: ubuntu-latest, steps: [{run: make}]}\n"


# --- the light install -------------------------------------------------------------------------------

def test_core_dependencies_are_light():
    tomllib = pytest.importorskip("tomllib")
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as handle:
        project = tomllib.load(handle)["project"]
    core = {re.split(r"[<>=!~\[ ;]", dep)[0].lower() for dep in project["dependencies"]}
    assert core == {"pyyaml", "jsonschema", "numpy"}
    extras = project["optional-dependencies"]
    assert {"onnx", "torch", "train", "graph", "tensorrt", "all", "dev", "fuzz"} <= set(extras)
    assert extras["all"] == ["specc[onnx,torch,train,graph]"]
    assert "specc[all]" in extras["dev"] and any(d.startswith("pre-commit") for d in extras["dev"])


# One fresh interpreter in which the heavy packages cannot be imported, as in `pip install specc`.
_WITHOUT_HEAVY = f"""
import contextlib, io, json, sys
for name in {HEAVY!r}:
    sys.modules[name] = None  # `import name` now fails, and importlib.util.find_spec(name) is None
from specc.cli import main
results = []
for argv in json.loads(sys.argv[1]):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(argv)
    results.append([rc, out.getvalue(), err.getvalue()])
print(json.dumps(results))
"""


def test_light_commands_need_no_heavy_package_and_others_say_which_extra(tmp_path):
    lenet = os.path.join(SPECS, "lenet5.yaml")
    np_input = tmp_path / "x.npy"
    np_input.write_bytes(b"")  # never read: the dependency check comes first
    (tmp_path / "built").mkdir()
    (tmp_path / "built" / "manifest.json").write_text("{}")
    commands = [["validate", SPECS], ["inspect", lenet], ["inspect", lenet, "--ir"], ["schema"],
                ["build", lenet, "-o", str(tmp_path / "out")],
                ["predict", lenet, "--input", str(np_input)],
                ["predict", lenet, "--input", str(np_input), "--backend", "onnxruntime"],
                ["predict", str(tmp_path / "built"), "--input", str(np_input)]]
    if "ops" in COMMANDS:
        commands.append(["ops", "conv"])
    if "graph" in COMMANDS:
        commands.append(["graph", lenet, "-o", str(tmp_path / "lenet5.dot")])  # .dot needs no drawing library
    done = subprocess.run([sys.executable, "-c", _WITHOUT_HEAVY, json.dumps(commands)], capture_output=True,
                          text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    (validate, inspect, ir, schema, build, predict_torch, predict_ort, predict_dir, *others) = json.loads(done.stdout)
    for rc, out, err in (validate, inspect, ir, schema, *others):
        assert rc == 0, err
    assert "total params" in inspect[1] and json.loads(schema[1])["$schema"].endswith("2020-12/schema")
    assert build[0] == 1 and build[2].splitlines() == [
        "error[E098]: `specc build` needs onnx, which is not installed: pip install 'specc[onnx]'",
        "  hint: pip install 'specc[all]' installs every optional dependency"]
    assert predict_torch[0] == 1 and predict_torch[2].startswith(
        "error[E098]: `specc predict` on a spec (torch by default) needs torch, which is not installed: "
        "pip install 'specc[torch]'")
    assert "--backend onnxruntime" in predict_torch[2]  # the hint offers the other backend
    assert predict_ort[2].startswith("error[E098]: `specc predict --backend onnxruntime` needs onnx and "
                                     "onnxruntime, which are not installed: pip install 'specc[onnx]'")
    assert predict_dir[2].startswith("error[E098]: `specc predict --backend onnxruntime` needs onnxruntime,")
    assert not os.path.exists(tmp_path / "out")


def test_located_free_diagnostic_formats():
    from specc.diagnostics import NOWHERE, Diagnostic, format_diagnostics

    diag = Diagnostic("E098", "`specc build` needs onnx", NOWHERE, "pip install 'specc[onnx]'")
    assert format_diagnostics([diag], "text") == ("error[E098]: `specc build` needs onnx\n"
                                                   "  hint: pip install 'specc[onnx]'")
    assert format_diagnostics([diag], "github").startswith("::error title=specc E098::[E098] `specc build`")


# --- validate --skip-non-specs -----------------------------------------------------------------------

def test_skip_non_specs(tmp_path, capsys):
    (tmp_path / "ci.yml").write_text(WORKFLOW)
    (tmp_path / "flow.yaml").write_text('{"specc": 1, name: flow, inputs: {x: {shape: [4]}}, network: [dense: 2]}')
    (tmp_path / "bom.yaml").write_text("\ufeffspecc: 1\nname: bom\ninputs: {x: {shape: [4]}}\nnetwork: [dense: 2]\n")
    (tmp_path / "bad.yaml").write_text(BAD_SPEC)
    paths = [str(tmp_path / name) for name in ("ci.yml", "flow.yaml", "bom.yaml")]
    assert main(["validate", *paths]) == 1  # without the flag a workflow is an invalid spec
    capsys.readouterr()
    assert main(["validate", "--skip-non-specs", *paths]) == 0
    captured = capsys.readouterr()
    assert "flow.yaml: ok" in captured.out and "bom.yaml: ok" in captured.out and "ci.yml" not in captured.out
    assert "2 of 2 specs valid; 1 YAML file without a top-level `specc:` key skipped" in captured.err
    assert main(["validate", "--skip-non-specs", str(tmp_path)]) == 1  # a spec is still checked in full
    assert "bad.yaml:5:5: error[E020]" in capsys.readouterr().out
    assert main(["validate", "--skip-non-specs", str(tmp_path / "ci.yml")]) == 0  # nothing to check is fine


def test_skip_non_specs_still_reports_what_it_cannot_read(tmp_path, capsys):
    fifo = tmp_path / "pipe.yaml"
    os.mkfifo(fifo)  # opening it to look for the key would block: it is reported instead
    assert main(["validate", "--skip-non-specs", str(fifo)]) == 1
    assert "error[E003]" in capsys.readouterr().out


# --- the JSON Schema, as an editor or another tool uses it --------------------------------------------

@pytest.fixture(scope="module")
def schema_validator():
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["schema"]) == 0
    schema = json.loads(out.getvalue())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


@pytest.mark.parametrize("name", zoo_specs())
def test_zoo_spec_is_valid_against_the_schema(schema_validator, name):
    with open(os.path.join(SPECS, name)) as handle:
        document = yaml.safe_load(handle)  # YAML 1.1, as many tools read it: `1e-8` is a string here
    problems = [f"{'/'.join(map(str, e.absolute_path))}: {e.message[:200]}"
                for e in schema_validator.iter_errors(document)]
    assert not problems, "\n".join(problems)


def _lenet():
    with open(os.path.join(SPECS, "lenet5.yaml")) as handle:
        return yaml.safe_load(handle)


@pytest.mark.parametrize("mistake", ["unknown op", "unknown argument", "unknown top-level key", "wrong type",
                                     "no name", "unknown preprocess step"])
def test_schema_refuses_invalid_specs(schema_validator, mistake):
    spec = copy.deepcopy(_lenet())
    if mistake == "unknown op":
        spec["network"].append({"desne": 10})
    elif mistake == "unknown argument":
        spec["network"].append({"dense": {"unit": 10}})
    elif mistake == "unknown top-level key":
        spec["netwrok"] = spec["network"]
    elif mistake == "wrong type":
        spec["network"].append({"maxpool": "big"})
    elif mistake == "no name":
        del spec["name"]
    else:
        spec["preprocess"] = [{"sharpen": 2}]
    assert not schema_validator.is_valid(spec)


def test_schema_reads_exponents_either_way(schema_validator):
    spec = _lenet()
    for eps, valid in (("1e-8", True), (1e-8, True), ("1.5E+3", True), ("tiny", False), ("1e-8x", False)):
        spec["preprocess"] = [{"gcn": {"scale": 55, "eps": eps}}]
        assert schema_validator.is_valid(spec) is valid, eps


def test_schema_modeline_is_only_a_comment(tmp_path):
    with open(os.path.join(SPECS, "lenet5.yaml")) as handle:
        text = handle.read()
    spec = tmp_path / "lenet5.yaml"
    spec.write_text("# yaml-language-server: $schema=../specc.schema.json\n" + text)
    assert main(["validate", str(spec)]) == 0


# --- the recipes in docs/ci.md ------------------------------------------------------------------------

def doc_files(path: str) -> dict[str, str]:
    """The fenced blocks a doc marks with `<!-- file: NAME -->` on the line before."""
    with open(path) as handle:
        text = handle.read()
    return {name: body for name, body in
            re.findall(r"^<!-- file: (\S+) -->\n```[a-z]*\n(.*?)^```$", text, re.MULTILINE | re.DOTALL)}


def test_github_workflow_recipe(tmp_path, monkeypatch, capsys):
    workflow = yaml.safe_load(doc_files(CI_DOC)[".github/workflows/specc.yml"])
    runs = [step["run"] for job in workflow["jobs"].values() for step in job["steps"] if "run" in step]
    install = next(r for r in runs if r.startswith("pip install"))
    assert shlex.split(install, comments=True) == ["pip", "install", "specc"]  # light: no extras
    validate = shlex.split(next(r for r in runs if r.startswith("specc validate")))
    assert "--format" in validate and validate[validate.index("--format") + 1] == "github"
    monkeypatch.setenv("CI", "true")  # as on GitHub
    monkeypatch.chdir(ROOT)
    assert main(validate[1:]) == 0  # the zoo, as the workflow checks it
    (tmp_path / "specs").mkdir()
    (tmp_path / "specs" / "bad.yaml").write_text(BAD_SPEC)
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    assert main(validate[1:]) == 1
    assert capsys.readouterr().out.startswith("::error file=specs/bad.yaml,line=5,col=5,title=specc E020::")


def _pre_commit() -> list[str]:
    if importlib.util.find_spec("pre_commit") is None or shutil.which("git") is None:
        pytest.skip("pre-commit is not installed (it comes with pip install -e '.[dev]'), or git is missing")
    return [sys.executable, "-m", "pre_commit"]


def test_pre_commit_files_are_well_formed(tmp_path):
    pre_commit = _pre_commit()
    config = tmp_path / ".pre-commit-config.yaml"
    config.write_text(doc_files(CI_DOC)[".pre-commit-config.yaml"])
    for command in (["validate-manifest", os.path.join(ROOT, ".pre-commit-hooks.yaml")],
                    ["validate-config", str(config)]):
        done = subprocess.run(pre_commit + command, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stdout + done.stderr
    hook, = yaml.safe_load(open(os.path.join(ROOT, ".pre-commit-hooks.yaml")))
    assert (hook["id"], hook["entry"], hook["args"]) == ("specc-validate", "specc validate", ["--skip-non-specs"])


def _git(*args, cwd):
    subprocess.run(["git", "-c", "user.name=specc tests", "-c", "user.email=tests@specc.invalid",
                    "-c", "init.defaultBranch=main", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def hook_repository(destination) -> str:
    """A committed copy of what pre-commit installs from this checkout: its committed state may not have
    the working tree's changes yet, and `try-repo` on a checkout leaves new, untracked files out."""
    os.makedirs(destination)
    for name in ("pyproject.toml", "README.md", ".pre-commit-hooks.yaml"):
        shutil.copy(os.path.join(ROOT, name), destination)
    shutil.copytree(os.path.join(ROOT, "specc"), os.path.join(destination, "specc"),
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    _git("init", "-q", cwd=destination)
    _git("add", "-A", cwd=destination)
    _git("commit", "-q", "-m", "specc", cwd=destination)
    return str(destination)


def test_pre_commit_hook_runs_for_real(tmp_path):
    """`pre-commit try-repo` installs the hook into a fresh environment (the light install) and runs it on a
    valid spec, an invalid one and a CI workflow, as a commit touching them would."""
    pre_commit = _pre_commit()
    hooks = hook_repository(tmp_path / "specc")
    project = tmp_path / "project"
    (project / "specs").mkdir(parents=True)
    (project / ".github" / "workflows").mkdir(parents=True)
    shutil.copy(os.path.join(SPECS, "lenet5.yaml"), project / "specs")
    (project / "specs" / "bad.yaml").write_text(BAD_SPEC)
    (project / ".github" / "workflows" / "ci.yml").write_text(WORKFLOW)
    _git("init", "-q", cwd=project)
    _git("add", "-A", cwd=project)
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "SPECC_TRUSTED") and not k.startswith("PRE_COMMIT")}
    env["PRE_COMMIT_HOME"] = str(tmp_path / "pre-commit-home")
    done = subprocess.run(pre_commit + ["try-repo", hooks, "specc-validate", "--all-files"], cwd=project, env=env,
                          capture_output=True, text=True, timeout=300)
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    assert "specs/bad.yaml:5:5: error[E020]: unknown op `desne`" in output
    assert "specs/lenet5.yaml: ok" in output
    assert "1 of 2 specs valid; 1 YAML file without a top-level `specc:` key skipped" in output


# --- a real light install (long: run with -m slow) ---------------------------------------------------

@pytest.mark.slow
def test_light_install_in_a_fresh_venv(tmp_path, request):
    if "slow" not in (request.config.option.markexpr or ""):
        pytest.skip("installs specc into a fresh virtual environment (about a minute): run with -m slow")
    source = hook_repository(tmp_path / "specc")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    pip = subprocess.run([str(venv / "bin" / "pip"), "install", "-q", source], capture_output=True, text=True,
                         timeout=600)
    assert pip.returncode == 0, pip.stderr
    site = subprocess.run([str(venv / "bin" / "python"), "-c", "import importlib.util as u, json; print(json.dumps("
                           f"[m for m in {HEAVY!r} if u.find_spec(m)]))"], capture_output=True, text=True)
    assert json.loads(site.stdout) == []
    specc = str(venv / "bin" / "specc")
    assert subprocess.run([specc, "validate", SPECS], capture_output=True, cwd=tmp_path).returncode == 0
    build = subprocess.run([specc, "build", os.path.join(SPECS, "lenet5.yaml"), "-o", str(tmp_path / "out")],
                           capture_output=True, text=True, cwd=tmp_path)
    assert build.returncode == 1 and build.stderr.startswith("error[E098]: `specc build` needs onnx")


def _broken_package(root, name: str) -> dict:
    """An environment in which `name` is installed but raises on import, as a half-removed package does."""
    package = root / name
    package.mkdir()
    (package / "__init__.py").write_text('raise ImportError("libbroken.so: cannot open shared object file")\n')
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])}


@pytest.mark.parametrize("command", [
    ["train", "specs/tiny_mlp.yaml", "--no-plots"],  # checked before the run starts
    ["build", "specs/tiny_mlp.yaml"],  # caught where the command imports it (SPECC_CHECK_ONNX: the checker)
], ids=["train-tqdm", "build-onnx"])
def test_a_broken_package_is_e098_not_an_internal_error(command, tmp_path):
    broken = "tqdm" if command[0] == "train" else "onnx"
    env = {**_broken_package(tmp_path, broken), "SPECC_CHECK_ONNX": "1"}
    result = run_cli(*command, "-o", str(tmp_path / "out"), env=env)
    assert result.returncode == 1, result.stderr
    assert result.stderr.startswith(f"error[E098]: `specc {command[0]}` could not import {broken}: ImportError: "
                                    "libbroken.so"), result.stderr
    assert "installed but broken" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "out" / "model.onnx").exists() and not (tmp_path / "out" / "model.safetensors").exists()


def test_an_import_error_inside_specc_stays_an_internal_error(monkeypatch, capsys):
    from specc import cli

    def broken(args):
        raise ImportError("cannot import name 'nothing' from 'specc.diagnostics'", name="specc.diagnostics")
    monkeypatch.setitem(cli.COMMANDS, "validate", broken)
    assert cli.main(["validate", "specs/tiny_mlp.yaml"]) == 3
    assert "internal error: ImportError" in capsys.readouterr().err
