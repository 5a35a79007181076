"""The TensorRT target and check from the command line, on a machine without TensorRT or a GPU."""

import json

import pytest
from conftest import run_cli

from specc.codegen.tensorrt_engine import tensorrt_available

NO_TENSORRT = not tensorrt_available()[0]


@pytest.mark.skipif(not NO_TENSORRT, reason="TensorRT and a GPU are here: the engine builds (see the gpu tests)")
def test_target_tensorrt_fails_clearly_and_keeps_the_onnx(tmp_path):
    out = tmp_path / "out"
    r = run_cli("build", "specs/lenet5.yaml", "-o", str(out), "--target", "tensorrt")
    assert r.returncode == 1
    assert "error[E09" in r.stderr and ("pip install 'specc[tensorrt]'" in r.stderr or "CUDA" in r.stderr)
    assert "Traceback" not in r.stderr
    assert (out / "model.onnx").exists()
    manifest = json.loads((out / "manifest.json").read_text())
    assert "tensorrt" not in manifest


@pytest.mark.skipif(not NO_TENSORRT, reason="TensorRT and a GPU are here: the engine builds (see the gpu tests)")
def test_spec_target_tensorrt_is_never_skipped(tmp_path):
    spec = tmp_path / "t.yaml"
    spec.write_text("specc: 1\nname: t\ninputs: {x: {shape: [4]}}\nnetwork: [{dense: 2}]\n"
                    "build: {targets: [onnx, tensorrt]}\n")
    r = run_cli("build", str(spec), "-o", str(tmp_path / "out"))
    assert r.returncode == 1 and "TensorRT" in r.stderr


@pytest.mark.parametrize("version", ["10", "11"])
def test_check_tensorrt_passes_on_zoo_specs(tmp_path, version):
    for spec in ("specs/resnet_small.yaml", "specs/preprocess_zoo.yaml", "specs/vgg_small_bn.yaml"):
        r = run_cli("build", spec, "-o", str(tmp_path / version), "--check", f"tensorrt={version}")
        assert r.returncode == 0, r.stderr
        assert f"passes the static tensorrt={version} check" in r.stdout


def test_check_option_is_validated(tmp_path):
    r = run_cli("build", "specs/lenet5.yaml", "-o", str(tmp_path / "o"), "--check", "tensorrt=9")
    assert r.returncode == 2 and "tensorrt=10" in r.stderr


def test_predict_tensorrt_needs_an_engine(tmp_path):
    out = tmp_path / "out"
    assert run_cli("build", "specs/tiny_mlp.yaml", "-o", str(out)).returncode == 0
    import numpy as np

    np.save(tmp_path / "x.npy", np.zeros((1, 1, 28, 28), np.uint8))
    r = run_cli("predict", str(out), "--input", str(tmp_path / "x.npy"), "--backend", "tensorrt")
    assert r.returncode == 1 and "--target tensorrt" in r.stderr
