"""`specc train` and `specc eval` on the command line: a real run on the bundled MNIST sample, and every
refusal a user can meet, each a located diagnostic with a hint (never a traceback)."""

import json
import os

import pytest

import train_fixtures as tf
from conftest import SPECS
from specc.cli import main


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def test_train_then_eval_on_the_mnist_sample(tmp_path, capsys):
    run = str(tmp_path / "run")
    assert main(["train", os.path.join(SPECS, "tiny_mlp.yaml"), "-o", run, "--no-progress", "--epochs", "1"]) == 0
    out = capsys.readouterr().out
    assert "best epoch 1 of 1" in out and "test accuracy" in out and run in out
    summary = json.load(open(os.path.join(run, "summary.json")))
    assert summary["best"]["test"]["accuracy"] > 0.5  # 784-32-10 on 1,666 images, one epoch

    weights = os.path.join(run, "model.safetensors")
    assert main(["eval", os.path.join(SPECS, "tiny_mlp.yaml"), "--weights", weights, "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["examples"] == 500 and report["split"] == "test"
    assert report["metrics"]["accuracy"] == pytest.approx(summary["best"]["test"]["accuracy"])
    assert set(report["metrics"]) == {"loss", "accuracy", "precision", "recall", "f1", "confusion"}
    assert main(["eval", os.path.join(SPECS, "tiny_mlp.yaml"), "--weights", weights]) == 0
    text = capsys.readouterr().out
    assert "accuracy" in text and "confusion (rows: true class" in text


def test_missing_training_section(tmp_path, capsys):
    spec = tmp_path / "bare.yaml"
    spec.write_text("specc: 1\nname: bare\ninputs: {x: {shape: [4]}}\nnetwork:\n  - dense: 3\n")
    assert main(["train", str(spec), "-o", str(tmp_path / "run")]) == 1
    err = capsys.readouterr().err
    assert f"{spec}:1:1: error[E100]: the spec has no `training` section" in err
    assert "hint: add e.g. `training:" in err
    assert not os.path.exists(tmp_path / "run")


def test_missing_data(tmp_path, capsys):
    spec = tf.write_spec(tmp_path, "epochs: 1")
    assert main(["train", spec, "-o", str(tmp_path / "run")]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"{spec}:") and "error[E100]: `training.data` is missing" in err
    assert "dataset: mnist-sample" in err
    assert not os.path.exists(tmp_path / "run")


def test_bad_run_directories(tmp_path, capsys):
    spec = os.path.join(SPECS, "tiny_mlp.yaml")
    afile = tmp_path / "file"
    afile.write_text("x")
    assert main(["train", spec, "-o", str(afile)]) == 1
    assert "error[E101]: run directory" in capsys.readouterr().err

    full = tmp_path / "full"
    full.mkdir()
    (full / "notes.txt").write_text("mine")
    assert main(["train", spec, "-o", str(full)]) == 1
    assert "is not empty" in capsys.readouterr().err
    assert (full / "notes.txt").read_text() == "mine"

    assert main(["train", "--resume", str(tmp_path / "nowhere")]) == 1
    assert "error[E101]: no run directory" in capsys.readouterr().err
    assert main(["train", "--resume", str(full)]) == 1
    assert "is not a run directory" in capsys.readouterr().err


def test_existing_run_is_not_overwritten(tmp_path, capsys):
    spec = tf.write_spec(tmp_path, "epochs: 1\nbatch_size: 32")
    from specc.train.run import train

    run = str(tmp_path / "run")
    train(spec, run, options=tf.options())
    assert main(["train", spec, "-o", run]) == 1
    err = capsys.readouterr().err
    assert "already holds a run" in err and f"specc train --resume {run}" in err


@pytest.mark.parametrize("argv", [
    ["train"],
    ["train", "x.yaml", "--resume", "runs/x"],
    ["train", "--resume", "runs/x", "--epochs", "3"],
    ["train", "x.yaml", "--nproc", "0"],
])
def test_usage_errors(argv, capsys):
    assert main(argv) == 2
    assert "specc train: error:" in capsys.readouterr().err


@pytest.mark.parametrize("training,expected", [
    ("optimizer: {sgd: {lr: 0.1, nesterov: true}}", "`nesterov: true` needs a momentum above 0"),
    ("optimizer: {lbfgs: {lr: 1}}\nlr_mult: {dense_2: 0.5}", "`lbfgs` takes one learning rate"),
    ("distill: {teacher: other.yaml}", "needs the teacher's `weights`"),
    ("search: {trials: 2, space: {optimizer.sgd.lr: {uniform: [0.3, 0.1]}}}", "lo < hi"),
    ("search: {trials: 2, space: {epochs: {uniform: [1, 3]}}}", "`search` draws values that make `training` invalid"),
])
def test_configuration_errors_are_located(tmp_path, capsys, training, expected):
    spec = tf.write_spec(tmp_path, "data: {dataset: mnist-sample}\n" + training)
    assert main(["train", spec, "-o", str(tmp_path / "run")]) == 1
    err = capsys.readouterr().err
    assert expected in err
    assert err.startswith(spec + ":")  # at the key in the user's file


def test_eval_errors(tmp_path, capsys):
    spec = tf.write_spec(tmp_path, "epochs: 1")
    assert main(["eval", spec, "--weights", str(tmp_path / "none.safetensors")]) == 1
    assert "error[E100]" in capsys.readouterr().err  # no data named
    assert main(["eval", os.path.join(SPECS, "tiny_mlp.yaml"), "--weights", str(tmp_path / "none.safetensors")]) == 1
    assert "error[E080]: weights file not found" in capsys.readouterr().err
