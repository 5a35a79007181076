"""benchmarks/nielsen/gpu_prelude.sh: the first steps both GPU scripts take, each checked on this machine."""

import os
import shutil
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PRELUDE = os.path.join(ROOT, "benchmarks", "nielsen", "gpu_prelude.sh")

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")


def prelude(script: str, tmp_path, **env) -> str:
    """Runs `script` after sourcing the prelude as the GPU scripts do; its stdout and stderr."""
    here = tmp_path / "nielsen"
    here.mkdir(exist_ok=True)
    setup = (f'set -u; HERE="{here}"; ROOT="{ROOT}"; OUT="{tmp_path}/out"; RUNS="{tmp_path}/runs"; '
             f'say() {{ echo "say: $*"; }}; . "{PRELUDE}"; ')
    full_env = {k: v for k, v in os.environ.items() if k not in ("SPECC_MNIST_DIR", "PYTHON")}
    full_env.update(env)
    done = subprocess.run(["bash", "-c", setup + script], capture_output=True, text=True, env=full_env,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout + done.stderr


def test_the_machine_is_described_and_missing_modules_named(tmp_path):
    out = prelude('find_python; describe_machine torch=required "no_such_module_xyz=for the check"', tmp_path)
    assert "CPU: " in out and "logical CPUs" in out
    assert "missing: no_such_module_xyz - for the check" in out
    assert "missing: torch" not in out and "torch " in out


def test_python_is_the_one_given_or_one_that_imports_torch(tmp_path):
    assert prelude('find_python; echo "PYTHON=$PYTHON"', tmp_path, PYTHON="/opt/mine").strip().endswith(
        "PYTHON=/opt/mine")
    found = prelude('find_python; echo "PYTHON=$PYTHON"', tmp_path).strip().splitlines()[-1]
    assert found in ("PYTHON=python3", "PYTHON=python")


def test_mnist_is_the_variable_then_the_carried_copy_then_none(tmp_path):
    given = tmp_path / "given"
    given.mkdir()
    assert prelude('find_mnist; echo "DATA=$DATA"', tmp_path, SPECC_MNIST_DIR=str(given)).strip() == f"DATA={given}"
    assert prelude('find_mnist; echo "DATA=[$DATA]"', tmp_path).strip() == "DATA=[]"
    (tmp_path / "nielsen" / "mnist").mkdir()
    assert prelude('find_mnist; echo "DATA=$DATA"', tmp_path).strip() == f"DATA={tmp_path / 'nielsen' / 'mnist'}"


def test_install_stops_a_script_when_specc_cannot_train(tmp_path):
    python = tmp_path / "fake-python"  # an interpreter without torch: the check after the install fails
    python.write_text('#!/usr/bin/env bash\nif [ "${1:-}" = -c ]; then exit 1; fi\nexit 0\n')
    python.chmod(0o755)
    out = prelude(f'PYTHON="{python}"; install_wheels "{tmp_path}/site" || echo "stopped"', tmp_path)
    assert "specc cannot train without those: stopping" in out and out.strip().endswith("stopped")
