"""An ensemble run (`training.ensemble`) built into one ONNX model that runs every member and combines
them: ONNX Runtime's accuracy equals the training run's (and `specc eval`'s)."""

import json
import os

import numpy as np
import onnxruntime as ort
import pytest

import train_fixtures as tf
from conftest import SPECS
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
    assert manifest["total_params"] == 3 * 660  # every member's: the mlp has 660


@pytest.fixture(scope="module")
def vote_run(tmp_path_factory):
    """A two-member `vote` ensemble of tiny_mlp trained one epoch on the bundled MNIST sample."""
    directory = tmp_path_factory.mktemp("vote")
    spec = directory / "vote.yaml"
    spec.write_text(f"specc: 1\nname: vote\nextends: {os.path.join(SPECS, 'tiny_mlp.yaml')}\n"
                    "training:\n  epochs: 1\n  ensemble: {members: 2, combine: vote}\n")
    train(str(spec), str(directory / "run"), options=tf.options(dataset=None))
    return str(spec), str(directory / "run" / "model.safetensors")


def test_a_vote_ensemble_builds_in_fp16(vote_run, tmp_path):
    spec, weights = vote_run
    half = tmp_path / "half.yaml"
    half.write_text(f"specc: 1\nname: half\nextends: {spec}\nbuild: {{precision: fp16}}\n")
    built = build(str(half), str(tmp_path / "out"), weights=weights, limits=DEFAULT_LIMITS)
    session = ort.InferenceSession(built.model_path, providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).integers(0, 256, (8, 1, 28, 28)).astype(np.uint8)
    votes = session.run(None, {"image": x})[0]
    assert votes.shape == (8, 10) and np.all(np.isfinite(votes))


def test_predict_runs_an_ensembles_weights_as_its_build_does(vote_run, tmp_path):
    from specc.predict import predict

    spec, weights = vote_run
    x = np.random.default_rng(1).integers(0, 256, (16, 1, 28, 28)).astype(np.uint8)
    np.save(tmp_path / "x.npy", x)
    built = build(spec, str(tmp_path / "out"), weights=weights, limits=DEFAULT_LIMITS)
    session = ort.InferenceSession(built.model_path, providers=["CPUExecutionProvider"])
    expected = session.run(None, {"image": x})[0]
    for backend in ("torch", "onnxruntime"):
        got = next(iter(predict(spec, str(tmp_path / "x.npy"), weights=weights, backend=backend).values()))
        np.testing.assert_allclose(got, expected, atol=1e-5)


@pytest.mark.parametrize("damage,message", [
    ({"specc.ensemble.seeds": "[3,"}, "not a JSON list of whole numbers"),
    ({"specc.ensemble.combine": "max"}, "unknown combine `max`"),
    ({"specc.ensemble.members": "5"}, "its metadata says '5' members, the file holds 2"),
    ("drop member_0", "member 0 is missing"),
])
def test_a_damaged_ensemble_file_is_refused_by_eval_and_build(vote_run, tmp_path, capsys, damage, message):
    from safetensors import safe_open
    from safetensors.numpy import load_file, save_file

    from specc.cli import main

    spec, weights = vote_run
    tensors = load_file(weights)
    with safe_open(weights, "np") as handle:
        metadata = handle.metadata()
    if isinstance(damage, dict):
        metadata = {**metadata, **damage}
    else:
        tensors = {k: v for k, v in tensors.items() if not k.startswith("member_0.")}
    damaged = str(tmp_path / "damaged.safetensors")
    save_file(tensors, damaged, metadata=metadata)
    for argv in (["eval", spec, "--weights", damaged], ["build", spec, "--weights", damaged, "-o", str(tmp_path / "o")]):
        assert main(argv) == 1
        err = capsys.readouterr().err
        assert "error[E080]" in err and message in err
