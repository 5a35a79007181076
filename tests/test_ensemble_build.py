"""An ensemble run (`training.ensemble`) built into one ONNX model that runs every member and combines
them: ONNX Runtime's accuracy equals the training run's (and `specc eval`'s)."""

import json

import numpy as np
import onnxruntime as ort
import pytest

import train_fixtures as tf
from specc.build import build
from specc.limits import DEFAULT_LIMITS
from specc.train.run import train


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.mark.parametrize("combine", ["vote", "mean"])
def test_ensemble_builds_into_one_model(tmp_path, combine):
    spec = tf.write_spec(tmp_path, "epochs: 2\nbatch_size: 16\noptimizer: {sgd: {lr: 0.3}}\nseed: 3\n"
                                   f"ensemble: {{members: 3, combine: {combine}}}")
    data = tf.dataset(noise=255, signal=60)
    result = train(spec, str(tmp_path / "run"), options=tf.options(dataset=data))
    built = build(spec, str(tmp_path / "out"), weights=str(tmp_path / "run" / "model.safetensors"),
                  limits=DEFAULT_LIMITS)
    manifest = json.loads(open(built.manifest_path).read())
    assert manifest["weights"]["ensemble"]["members"] == 3 and manifest["weights"]["ensemble"]["combine"] == combine
    session = ort.InferenceSession(built.model_path, providers=["CPUExecutionProvider"])
    probs = session.run(None, {"image": data.test.x})[0]
    assert probs.shape == (len(data.test.y), tf.CLASSES)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    accuracy = float((probs.argmax(-1) == data.test.y).mean())
    assert accuracy == pytest.approx(result.best["test"]["accuracy"])
    nodes = [n.name for n in __import__("onnx").load(built.model_path).graph.node]
    assert any(n.startswith("member_2.") for n in nodes)
