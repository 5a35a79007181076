"""The README's quick start, end to end: train on the bundled MNIST sample (with a progress bar), build
the run into ONNX, and get the same test accuracy from ONNX Runtime as training reported from PyTorch."""

import json

import numpy as np
import onnxruntime as ort
from conftest import ROOT, run_cli

from specc.compiler import compile_spec
from specc.limits import DEFAULT_LIMITS
from specc.train.data import load_dataset


def test_train_build_and_the_same_accuracy_in_onnxruntime(tmp_path):
    spec = f"{ROOT}/specs/tiny_mlp.yaml"
    run = tmp_path / "run"
    trained = run_cli("train", spec, "-o", str(run), "--epochs", "2", timeout=300)
    assert trained.returncode == 0, trained.stderr
    assert "it/s" in trained.stderr or "batch/s" in trained.stderr  # the progress bar
    for name in ("model.safetensors", "metrics.jsonl", "loss.png", "accuracy.png", "spec.yaml"):
        assert (run / name).exists(), name
    summary = json.loads((run / "summary.json").read_text())
    built = run_cli("build", spec, "-o", str(tmp_path / "out"), "--weights", str(run / "model.safetensors"))
    assert built.returncode == 0, built.stderr
    compiled = compile_spec(spec, DEFAULT_LIMITS)
    decl = compiled.spec.inputs[0]
    data = load_dataset(compiled.spec.training["data"], spec_path=spec, input_shape=tuple(decl.shape),
                        input_dtype=decl.dtype, seed=compiled.spec.seed)
    session = ort.InferenceSession(str(tmp_path / "out" / "model.onnx"), providers=["CPUExecutionProvider"])
    probs = session.run(None, {decl.name: data.test.x})[0]
    accuracy = float((probs.argmax(-1) == data.test.y).mean())
    assert abs(accuracy - summary["best"]["test"]["accuracy"]) < 1e-9
    assert accuracy > 0.5  # it learned something in two epochs
