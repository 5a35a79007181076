"""The epoch loop of `specc train`: run directory, best-epoch protocol, early stopping, losses, metrics, EMA."""

import json
import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import train_fixtures as tf
from specc.codegen.torch_module import to_torch
from specc.codegen.weights import load_weights
from specc.train.losses import LOG_PROBS, PROBS, SCORES, make_loss, output_kind
from specc.train.metrics import Tally, scores
from specc.train.run import train

HARD = {"noise": 255, "signal": 40}  # val accuracy rises and falls: the best epoch is not the last


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def rows(run_dir) -> list:
    with open(os.path.join(run_dir, "metrics.jsonl")) as handle:
        return [json.loads(line) for line in handle]


def test_run_directory_and_nielsen_protocol(tmp_path):
    spec = tf.write_spec(tmp_path, "epochs: 7\nbatch_size: 16\noptimizer: {sgd: {lr: 0.3}}\n"
                                   "metrics: [accuracy, f1, confusion]")
    run = str(tmp_path / "run")
    data = tf.dataset(**HARD)
    result = train(spec, run, options=tf.options(dataset=data, plots=True))
    assert sorted(os.listdir(run)) == ["accuracy.png", "checkpoint.json", "checkpoint.safetensors", "loss.png",
                                       "metrics.jsonl", "model.safetensors", "run.json", "spec.yaml",
                                       "summary.json"]
    history = rows(run)
    assert [r["epoch"] for r in history] == list(range(1, 8))
    first = history[0]
    assert set(first) >= {"epoch", "lr", "train", "val", "test", "seconds", "images_per_second"}
    assert set(first["val"]) == {"loss", "accuracy", "f1", "confusion"}
    assert np.array(first["test"]["confusion"]).sum() == 64
    # the kept epoch: the best validation accuracy, ties to the later epoch; its test accuracy is reported
    accuracies = [r["val"]["accuracy"] for r in history]
    best = max(i for i, a in enumerate(accuracies) if a == max(accuracies))
    assert best < len(history) - 1, "the data set should make a later epoch worse"
    assert result.best["epoch"] == best + 1
    assert result.best["test"] == history[best]["test"]
    # model.safetensors holds that epoch's weights
    graph = __import__("specc.compiler", fromlist=["x"]).compile_spec(spec, tf.options().limits).graph
    module = to_torch(graph, load_weights(os.path.join(run, "model.safetensors"), graph)).eval()
    with torch.no_grad():
        out = module(torch.from_numpy(data.val.x))["output"]
    assert (out.argmax(-1).numpy() == data.val.y).mean() == pytest.approx(history[best]["val"]["accuracy"])
    with open(os.path.join(run, "accuracy.png"), "rb") as handle:
        assert handle.read(8) == b"\x89PNG\r\n\x1a\n"
    from specc.train.plots import draw_curves

    _, axes = draw_curves(history, "accuracy")  # the plots mark the kept epoch
    assert axes.get_legend_handles_labels()[1] == ["train", "validation", "test", f"kept: epoch {best + 1}"]
    assert axes.lines[-1].get_xdata()[0] == best + 1
    summary = json.load(open(os.path.join(run, "summary.json")))
    assert summary["best"]["epoch"] == best + 1 and summary["epochs_run"] == 7


def test_spec_copy_is_self_contained(tmp_path):
    """spec.yaml merges `extends`, makes paths absolute and carries the command-line overrides."""
    base = tf.write_spec(tmp_path, "epochs: 3\noptimizer: {sgd: {lr: 0.3}}", name="base")
    os.makedirs(tmp_path / "sub")
    (tmp_path / "sub" / "child.yaml").write_text(
        "specc: 1\nname: child\nextends: ../base.yaml\ntraining:\n  batch_size: 8\n"
        "  init: {from: ../weights.safetensors, reinit: [dense_2, dense_3]}\n")
    from specc.codegen.weights import init_weights, save_weights
    from specc.compiler import compile_spec

    save_weights(str(tmp_path / "weights.safetensors"), init_weights(compile_spec(base, tf.options().limits).graph))
    run = str(tmp_path / "run")
    train(str(tmp_path / "sub" / "child.yaml"), run, epochs=1, seed=7, options=tf.options())
    import yaml

    copy = yaml.safe_load(open(os.path.join(run, "spec.yaml")))
    assert "extends" not in copy and copy["name"] == "child"
    assert copy["training"]["init"]["from"] == str(tmp_path / "weights.safetensors")
    assert copy["training"]["epochs"] == 1 and copy["training"]["seed"] == 7 and copy["training"]["batch_size"] == 8
    assert len(rows(run)) == 1


def test_early_stopping_on_a_plateau(tmp_path):
    spec = tf.write_spec(tmp_path, "epochs: 20\nbatch_size: 32\noptimizer: {sgd: {lr: 1.0e-9}}\n"
                                   "early_stopping: {metric: val_accuracy, patience: 2}")
    result = train(spec, str(tmp_path / "run"), options=tf.options())
    assert result.stopped_early and result.epochs_run == 3 and len(rows(tmp_path / "run")) == 3
    assert result.best["epoch"] == 3  # ties keep the later epoch


def test_early_stopping_needs_a_validation_split(tmp_path):
    from specc.diagnostics import SpeccError

    spec = tf.write_spec(tmp_path, "epochs: 2\nearly_stopping: {patience: 2}")
    with pytest.raises(SpeccError) as exc:
        train(spec, str(tmp_path / "run"), options=tf.options(dataset=tf.dataset(n_val=0)))
    assert "E100" in str(exc.value) and "validation" in str(exc.value)
    assert not os.path.exists(tmp_path / "run")  # nothing trained: no half-made run left behind


def test_divergence_is_a_located_error(tmp_path):
    from specc.diagnostics import SpeccError

    spec = tf.write_spec(tmp_path, "epochs: 2\nbatch_size: 16\noptimizer: {sgd: {lr: 1.0e+30}}", network="logits")
    with pytest.raises(SpeccError) as exc:
        train(spec, str(tmp_path / "run"), options=tf.options())
    assert "E102" in str(exc.value) and "grad_clip" in str(exc.value)


# --- losses --------------------------------------------------------------------------------------

def test_output_kinds(tmp_path):
    for network, kind in (("mlp", PROBS), ("logits", SCORES)):
        session, _ = tf.session(tmp_path, "epochs: 1", network=network)
        assert output_kind(session.compiled.graph, "output") == kind


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_cross_entropy_on_softmax_equals_cross_entropy_on_logits(smoothing):
    torch.manual_seed(0)
    logits = torch.randn(8, 5, requires_grad=True)
    y = torch.randint(0, 5, (8,))
    reference = F.cross_entropy(logits, y, label_smoothing=smoothing)
    (g_ref,) = torch.autograd.grad(reference, logits)
    for kind, out in ((PROBS, torch.softmax(logits, -1)), (LOG_PROBS, torch.log_softmax(logits, -1)),
                      (SCORES, logits)):
        loss = make_loss("cross_entropy", {"label_smoothing": smoothing}, kind)(out, y)
        (grad,) = torch.autograd.grad(loss, logits)
        assert float(loss.detach()) == pytest.approx(float(reference.detach()), rel=1e-5)
        torch.testing.assert_close(grad, g_ref, rtol=1e-4, atol=1e-6)


def test_mse_and_bce_use_one_hot_targets():
    probs = torch.tensor([[0.7, 0.2, 0.1]])
    y = torch.tensor([0])
    assert float(make_loss("mse", {}, PROBS)(probs, y)) == pytest.approx((0.09 + 0.04 + 0.01) / 3)
    bce = -(np.log(0.7) + np.log(0.8) + np.log(0.9)) / 3
    assert float(make_loss("bce", {}, PROBS)(probs, y)) == pytest.approx(bce, rel=1e-5)
    logits = torch.log(probs / (1 - probs))  # sigmoid(logits) == probs
    assert float(make_loss("bce", {}, SCORES)(logits, y)) == pytest.approx(bce, rel=1e-5)


# --- metrics -------------------------------------------------------------------------------------

def test_macro_metrics_by_hand():
    y = torch.tensor([0, 0, 1, 1, 2, 2])
    pred = torch.tensor([0, 1, 1, 1, 0, 0])
    tally = Tally(4)
    tally.add(pred, y, torch.tensor(3.0))
    out = tally.results(("accuracy", "precision", "recall", "f1", "confusion"))
    # class 0: tp 1, predicted 3, actual 2; class 1: tp 2, predicted 3, actual 2; class 2: tp 0; class 3 absent
    precision = [1 / 3, 2 / 3, 0.0]
    recall = [1 / 2, 1.0, 0.0]
    f1 = [2 * p * r / (p + r) if p + r else 0.0 for p, r in zip(precision, recall)]
    assert out["accuracy"] == pytest.approx(0.5) and out["loss"] == pytest.approx(0.5)
    assert out["precision"] == pytest.approx(np.mean(precision))
    assert out["recall"] == pytest.approx(np.mean(recall))
    assert out["f1"] == pytest.approx(np.mean(f1))
    assert out["confusion"][2] == [2, 0, 0, 0]
    assert scores(np.zeros((2, 2), int))["accuracy"] == 0.0


# --- Polyak averaging ----------------------------------------------------------------------------

@pytest.mark.parametrize("steps", [4, 40])
def test_ema_matches_averaged_model(tmp_path, steps):
    """AveragedModel with an EMA whose decay warms up as TensorFlow's ExponentialMovingAverage(num_updates):
    min(decay, (1 + n) / (10 + n)). Four steps at 0.9 stay in the warm-up; 40 at 0.5 pass it (from n = 8)."""
    from torch.optim.swa_utils import AveragedModel

    decay = 0.9 if steps == 4 else 0.5
    session, trainer = tf.session(tmp_path, f"batch_size: 16\noptimizer: {{sgd: {{lr: 0.5}}}}\nema: {decay}")
    key = {name: name.replace(".", "__") for name, _ in session.module.spec_parameters()}
    shadow = torch.nn.ParameterDict({key[n]: torch.nn.Parameter(p.detach().clone())
                                     for n, p in session.module.spec_parameters()})

    def warmed_up(average, current, n):  # n: updates made so far (1 at the first average after the copy)
        d = min(decay, (1 + int(n)) / (10 + int(n)))
        return d * average + (1 - d) * current
    averaged = AveragedModel(shadow, avg_fn=warmed_up)
    for x, y in tf.batches(steps):
        trainer.step(x, y, 1.0)
        with torch.no_grad():
            for n, p in session.module.spec_parameters():
                shadow[key[n]].copy_(p)
        averaged.update_parameters(shadow)
    ours = session.eval_module.spec_state()
    for name in key:
        np.testing.assert_allclose(ours[name], averaged.module[key[name]].detach().numpy(), atol=1e-6, err_msg=name)
    if steps == 4:
        assert not np.allclose(ours["dense_2.weight"], session.module.spec_state()["dense_2.weight"])
    else:
        assert [session.averager.decay_at(n) for n in (1, 7, 8, 39)] == [2 / 11, 8 / 17, 0.5, 0.5]
    assert session.kept_weights()["dense_2.weight"] is not None


def test_ema_weights_are_the_kept_model(tmp_path):
    spec = tf.write_spec(tmp_path, "epochs: 2\nbatch_size: 16\noptimizer: {sgd: {lr: 0.5}}\nema: 0.5")
    run = tmp_path / "run"
    train(spec, str(run), options=tf.options())
    from safetensors.numpy import load_file
    from specc.train.checkpoint import load_checkpoint

    kept = load_file(str(run / "model.safetensors"))
    tensors, _ = load_checkpoint(str(run))
    np.testing.assert_array_equal(kept["dense_2.weight"], tensors["ema.dense_2.weight"].numpy())
    assert not np.array_equal(kept["dense_2.weight"], tensors["model.dense_2.weight"].numpy())


# --- batchnorm statistics recomputed for evaluation ----------------------------------------------

def test_bn_recalibration_gives_the_evaluated_weights_the_statistics_of_clean_images(tmp_path):
    """Under `ema`, the averaged weights' batchnorm gets the mean and unbiased variance of its input over the
    sampled training images (two chunks of 500 and one of 24, averaged as nn.BatchNorm's momentum=None does)."""
    from specc.train.bn_stats import recalibration_images

    data = tf.dataset(n_train=1024)
    session, trainer = tf.session(tmp_path, "batch_size: 16\noptimizer: {sgd: {lr: 0.5}}\nema: 0.5\n"
                                            "bn_recalibration: 5000", "bn", data=data)
    for x, y in tf.batches(8):
        trainer.step(x, y, 1.0)
    images = trainer.recalibration_images
    assert len(images) == 1024 and torch.equal(images, recalibration_images(trainer.train_x, 5000, 0))
    module = session.prepare_evaluation(images)
    assert module is session.averager.averaged and not module.training
    state = module.spec_state()
    conv = F.conv2d(images.float() / 255, torch.from_numpy(state["conv_1.weight"]), torch.from_numpy(state["conv_1.bias"]))
    chunks = [conv[i:i + 500].transpose(0, 1).flatten(1) for i in range(0, 1024, 500)]
    sizes = torch.tensor([c.shape[1] for c in chunks], dtype=torch.float64)
    mean = sum(c.double().mean(1) * n for c, n in zip(chunks, sizes)) / sizes.sum()
    var = sum(c.double().var(1) * n for c, n in zip(chunks, sizes)) / sizes.sum()
    np.testing.assert_allclose(state["batchnorm_2.running_mean"], mean.numpy(), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(state["batchnorm_2.running_var"], var.numpy(), rtol=1e-4, atol=1e-6)
    live = session.module.spec_state()["batchnorm_2.running_mean"]
    assert not np.allclose(live, state["batchnorm_2.running_mean"], atol=1e-3), "the live statistics stay the live ones"
    assert [a["momentum"] for a in module.batchnorm_attrs()] == [0.1], "the spec's momentum is restored"


def test_bn_recalibration_changes_evaluation_and_nothing_of_training(tmp_path):
    """Two runs, with and without `bn_recalibration`, on a network with batchnorm and dropout: every live
    weight and the averaged weights end bit-identical (dropout's draws are forked); the kept model's
    batchnorm statistics and the validation figures are the recalibrated ones."""
    from safetensors.numpy import load_file
    from specc.train.checkpoint import load_checkpoint

    runs = {}
    for name, extra in (("plain", ""), ("recal", "\nbn_recalibration: 200")):
        spec = tf.write_spec(tmp_path, "epochs: 2\nbatch_size: 16\noptimizer: {adam: {lr: 0.01}}\nema: 0.9" + extra,
                             network="wide_conv", name=name)
        train(spec, str(tmp_path / name), options=tf.options())
        runs[name] = (load_checkpoint(str(tmp_path / name))[0], load_file(str(tmp_path / name / "model.safetensors")),
                      rows(tmp_path / name))
    (plain, plain_kept, plain_rows), (recal, recal_kept, recal_rows) = runs["plain"], runs["recal"]
    for key in plain:
        if key.startswith("model.") or (key.startswith("ema.") and "running" not in key):
            assert torch.equal(plain[key], recal[key]), key
    assert [r["train"] for r in plain_rows] == [r["train"] for r in recal_rows]
    assert not np.allclose(plain_kept["batchnorm_2.running_var"], recal_kept["batchnorm_2.running_var"])
    np.testing.assert_array_equal(recal_kept["batchnorm_2.running_mean"], recal["ema.batchnorm_2.running_mean"].numpy())
    assert [r["val"]["loss"] for r in plain_rows] != [r["val"]["loss"] for r in recal_rows]


def test_batchnorm_and_dropout_train(tmp_path):
    for network in ("bn", "dropout"):
        spec = tf.write_spec(tmp_path, "epochs: 2\nbatch_size: 16\noptimizer: {adam: {lr: 0.01}}", network=network,
                             name=network)
        result = train(spec, str(tmp_path / network), options=tf.options())
        assert result.best["val"]["accuracy"] > 0.5


@pytest.mark.parametrize("name", ["tiny_mlp", "mlp_gcn", "nielsen_relu", "nielsen_final", "lenet5_fashion"])
def test_zoo_specs_take_training_steps(name):
    """Every zoo spec with a `training` section builds its session and trains (on random data of its shape)."""
    from conftest import SPECS
    from specc.compiler import compile_spec
    from specc.train.config import training_config
    from specc.train.distributed import SINGLE
    from specc.train.feed import Arrays, expanded
    from specc.train.loop import Trainer
    from specc.train.session import Session

    compiled = compile_spec(os.path.join(SPECS, f"{name}.yaml"), tf.options().limits)
    spec = compiled.spec
    first = spec.inputs[0]
    classes = next(iter(compiled.graph.outputs.values())).type.shape[-1]
    cfg = training_config(spec.training)
    rng = np.random.default_rng(0)
    n = 2 * cfg.batch_size
    x = rng.integers(0, 256, (n,) + tuple(first.shape)).astype(first.dtype)
    y = rng.integers(0, classes, n)
    arrays = expanded(Arrays(name, x, y, x[:8], y[:8], None, None, classes), spec.augment, first.layout)
    session = Session(compiled, cfg, arrays, SINGLE, tf.options().limits)
    trainer = Trainer(session, arrays, None, progress_bar=False)
    before = {k: v.copy() for k, v in session.module.spec_state().items()}
    batch = slice(0, cfg.batch_size)
    out, loss = trainer.step(torch.from_numpy(arrays.train_x[batch]), torch.from_numpy(arrays.train_y[batch]), 1.0)
    assert out.shape == (cfg.batch_size, classes) and np.isfinite(loss.item())
    after = session.module.spec_state()
    assert any(not np.array_equal(before[k], after[k]) for k, _ in session.module.spec_parameters())
    row = trainer.epoch(0)
    assert 0.0 <= row["val"]["accuracy"] <= 1.0


def test_fitted_preprocessing_travels_with_the_weights(tmp_path):
    spec = tmp_path / "fit.yaml"
    spec.write_text("specc: 1\nname: fit\ninputs:\n  image: {shape: [1, 6, 6], dtype: uint8}\npreprocess:\n"
                    "  - scale: ${1/255}\n  - mean_image\nnetwork:\n  - flatten\n  - dense: 4\n"
                    "training:\n  epochs: 1\n  batch_size: 16\n")
    data = tf.dataset()
    train(str(spec), str(tmp_path / "run"), options=tf.options(dataset=data))
    from safetensors.numpy import load_file

    kept = load_file(str(tmp_path / "run" / "model.safetensors"))
    np.testing.assert_allclose(kept["preprocess.mean_image_2.mean"], data.train.x.mean(axis=0) / 255, rtol=1e-5)
