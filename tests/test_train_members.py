"""benchmarks/nielsen/train_members.py: an ensemble's members trained side by side end where `specc train`
ends when it trains them one after another, and a finished run can stand in as a member."""

import json
import os
import subprocess
import sys

import numpy as np
from safetensors.numpy import load_file

from conftest import ROOT

SCRIPT = os.path.join(ROOT, "benchmarks", "nielsen", "train_members.py")
SPEC = """specc: 1
name: {name}
inputs:
  image: {{shape: [1, 28, 28], dtype: uint8}}
preprocess:
  - scale: 0.00392156862745098
network:
  - flatten
  - dense: {{units: 16, activation: relu}}
  - dense: 10
  - softmax
training:
  data: {{dataset: mnist-sample, validation: 200}}
  epochs: 1
  batch_size: 50
  optimizer:
    adam: {{lr: 0.003}}
  seed: 0
{extra}"""
ENSEMBLE = "  ensemble: {members: 3, combine: mean}\n"
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": ROOT}


def specc(*args):
    subprocess.run([sys.executable, "-m", "specc", *args, "--device", "cpu", "--threads", "1", "--no-progress"],
                   check=True, env=ENV, capture_output=True)


def test_members_side_by_side_equal_one_after_another(tmp_path):
    ensemble = tmp_path / "ensemble.yaml"
    ensemble.write_text(SPEC.format(name="ens", extra=ENSEMBLE))
    single = tmp_path / "single.yaml"
    single.write_text(SPEC.format(name="one", extra=""))  # member 0's spec: seed 0, the ensemble's split

    specc("train", str(ensemble), "-o", str(tmp_path / "sequential"))
    specc("train", str(single), "-o", str(tmp_path / "single"))
    done = subprocess.run([sys.executable, SCRIPT, str(ensemble), "-o", str(tmp_path / "parallel"),
                           "--parallel", "2", "--threads-per-run", "1", "--adopt", f"0={tmp_path / 'single'}"],
                          env=ENV, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr

    a = load_file(str(tmp_path / "sequential" / "model.safetensors"))
    b = load_file(str(tmp_path / "parallel" / "model.safetensors"))
    assert a.keys() == b.keys() and {k.split(".")[0] for k in a} == {"member_0", "member_1", "member_2"}
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    summary = json.loads((tmp_path / "parallel" / "summary.json").read_text())
    assert summary["kind"] == "ensemble"
    assert summary["best"]["test"] == json.loads((tmp_path / "sequential" / "summary.json").read_text())["best"]["test"]
    adopted = json.loads((tmp_path / "parallel" / "member_0" / "summary.json").read_text())
    assert adopted["adopted_from"] == str(tmp_path / "single")


def test_a_run_of_another_spec_is_not_adopted(tmp_path):
    ensemble = tmp_path / "ensemble.yaml"
    ensemble.write_text(SPEC.format(name="ens", extra=ENSEMBLE))
    other = tmp_path / "other.yaml"
    other.write_text(SPEC.format(name="one", extra="").replace("seed: 0", "seed: 5"))
    specc("train", str(other), "-o", str(tmp_path / "other"))
    done = subprocess.run([sys.executable, SCRIPT, str(ensemble), "-o", str(tmp_path / "parallel"),
                           "--adopt", f"1={tmp_path / 'other'}"], env=ENV, capture_output=True, text=True)
    assert done.returncode != 0 and "is not member 1's" in done.stderr
