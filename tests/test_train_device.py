"""`specc train --device/--threads` and `specc eval --device`: the CPU path end to end, the refusals, the
GPU-side bookkeeping checked on the CPU, and real GPU runs where a CUDA GPU is present (`-m gpu`)."""

import json
import os

import numpy as np
import pytest
import torch

import train_fixtures as tf
from conftest import SPECS
from specc.cli import main
from specc.diagnostics import SpeccError
from specc.train.device import resolve_device

TINY = os.path.join(SPECS, "tiny_mlp.yaml")
NO_GPU = not torch.cuda.is_available()


@pytest.fixture(autouse=True)
def keep_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)  # --threads sets them for the whole process


def test_cpu_run_records_its_device_and_threads(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", TINY, "-o", str(run), "--epochs", "1", "--device", "cpu", "--threads", "1",
                 "--no-plots"]) == 0
    captured = capsys.readouterr()
    assert "training tiny_mlp on cpu (1 thread): 1 epoch of 52 mini-batches of 32" in captured.err
    assert "on cpu (1 thread)" in captured.out  # the closing summary says where it ran
    info = json.load(open(run / "run.json"))
    summary = json.load(open(run / "summary.json"))
    assert info["device"] == summary["device"] == "cpu (1 thread)" and info["threads"] == summary["threads"] == 1
    assert not (run / "loss.png").exists() and (run / "model.safetensors").exists()

    assert main(["eval", TINY, "--weights", str(run / "model.safetensors"), "--device", "cpu", "--threads", "2",
                 "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["device"] == "cpu (2 threads)" and torch.get_num_threads() == 2
    assert report["metrics"]["accuracy"] == pytest.approx(summary["best"]["test"]["accuracy"])


@pytest.mark.skipif(not NO_GPU, reason="this machine has a CUDA GPU")
def test_cuda_without_a_gpu_is_a_located_error(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", TINY, "-o", str(run), "--device", "cuda"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"{TINY}:") and "error[E097]: --device cuda: PyTorch sees no CUDA GPU" in err
    assert "hint: train on the CPU with `--device cpu`" in err
    assert not run.exists()  # refused before the run directory is made
    assert main(["eval", TINY, "--weights", str(tmp_path / "none.safetensors"), "--device", "cuda"]) == 1
    assert "error[E097]" in capsys.readouterr().err


def test_device_and_threads_usage_errors(tmp_path, capsys):
    assert main(["train", TINY, "-o", str(tmp_path / "r"), "--threads", "-1"]) == 2
    assert "--threads must be at least 0" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["train", TINY, "--device", "tpu"])
    assert exc.value.code == 2 and "invalid choice: 'tpu'" in capsys.readouterr().err


def test_data_parallel_runs_are_cpu_runs(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # as on a GPU machine
    assert resolve_device("auto", "spec.yaml", processes=2).type == "cpu"
    with pytest.raises(SpeccError) as exc:
        resolve_device("cuda", "spec.yaml", processes=2)
    assert "E100" in str(exc.value) and "runs on the CPU (gloo)" in str(exc.value)


def test_deferred_sums_of_a_gpu_run_equal_the_immediate_ones():
    """On a GPU the running loss and accuracy stay on the device until read; the arithmetic is checked here
    on CPU tensors (only the device's type decides which way the sums go)."""
    from specc.train.loop import _Sums

    rng = np.random.default_rng(0)
    now, later = _Sums(), _Sums(device=torch.device("cuda"))
    for _ in range(7):
        out = torch.from_numpy(rng.standard_normal((16, 4)).astype(np.float32))
        y = torch.from_numpy(rng.integers(0, 4, 16))
        loss = torch.nn.functional.cross_entropy(out, y)
        assert now.add(loss, out, y) == pytest.approx(loss.item())
        assert later.add(loss, out, y) == 0.0
    a, b = now.as_dict(), later.as_dict()
    assert a["loss"] == pytest.approx(b["loss"], rel=1e-6) and (a["correct"], a["count"]) == (b["correct"], b["count"])
    later.add(torch.tensor(float("nan")), out, y)
    assert np.isnan(later.settle())


def test_cuda_rng_state_is_saved_only_for_gpu_runs(tmp_path):
    session, _ = tf.session(tmp_path, "epochs: 1\nbatch_size: 16\noptimizer: {adam: {lr: 0.01}}")
    tensors, _ = session.state_tensors()
    assert "rng.torch" in tensors and "rng.cuda" not in tensors


MINE = ["nielsen_shallow", "nielsen_conv1", "nielsen_conv2", "nielsen_relu", "nielsen_expanded", "nielsen_extra_fc",
        "nielsen_final", "nielsen_ensemble", "mnist_best", "mnist_best_ensemble"]


@pytest.mark.parametrize("name", MINE)
def test_training_step_stays_on_the_model_device(name):
    """Every tensor a training step makes lives on the device of the model and its input: on PyTorch's
    `meta` device (shapes, no data) a constant made on the CPU anywhere in forward or backward raises."""
    from specc.codegen.torch_module import to_torch
    from specc.codegen.weights import init_weights
    from specc.compiler import compile_spec
    from specc.limits import DEFAULT_LIMITS
    from specc.train.config import training_config
    from specc.train.losses import make_loss, output_kind

    compiled = compile_spec(os.path.join(SPECS, f"{name}.yaml"), DEFAULT_LIMITS)
    graph = compiled.graph
    module = to_torch(graph, init_weights(graph)).to("meta").train()
    value = graph.inputs[0]
    x = torch.empty([3] + list(value.type.shape[1:]), dtype=getattr(torch, value.type.dtype), device="meta")
    output = next(iter(graph.outputs))
    out = module(x.float() if compiled.spec.augment and value.type.dtype == "uint8" else x)[output]
    loss = make_loss(*training_config(compiled.spec.training).loss, output_kind(graph, output))
    loss(out, torch.zeros(3, dtype=torch.int64, device="meta")).backward()
    assert out.device.type == "meta" and all(p.grad is not None for p in module.parameters())


# --- on a CUDA GPU ------------------------------------------------------------------------------------

GPU_TRAINING = """\
epochs: 2
batch_size: 16
loss: {cross_entropy: {label_smoothing: 0.1}}
optimizer: {adam: {lr: 0.003}}
schedule: {one_cycle: {max_lr: 0.01, pct_start: 0.3}}
regularization: {l2: 0.001}
ema: 0.9
seed: 5"""
GPU_AUGMENT = "[{shift: 1}, {rotate: 10}, {scale: {range: [0.9, 1.1]}}, {elastic: {alpha: 2, sigma: 1}}, {noise: 8}]"


@pytest.mark.gpu
@pytest.mark.skipif(NO_GPU, reason="needs a CUDA GPU")
def test_gpu_run_checkpoints_resumes_and_evaluates(tmp_path, monkeypatch):
    """Everything that keeps state or draws random numbers, on the GPU: batchnorm, dropout, augmentation,
    Adam, EMA, l2. A run crashed mid-epoch and resumed ends like an uninterrupted one (cuDNN in its
    deterministic mode), and its kept weights evaluate the same on the GPU and the CPU."""
    from specc.train import loop
    from specc.train.checkpoint import load_checkpoint
    from specc.train.evaluate import evaluate_spec
    from specc.train.run import resume, train

    spec = tf.write_spec(tmp_path, GPU_TRAINING, network="bn", augment=GPU_AUGMENT)
    whole = train(spec, str(tmp_path / "whole"), options=tf.options(device="cuda", checkpoint_every=5))
    assert whole.device.startswith("cuda:") and whole.best["val"]["accuracy"] > 0.5

    original = loop.Trainer.save_progress

    def crash(self):
        original(self)
        if (self.progress.epoch, self.progress.step) == (1, 5):
            raise KeyboardInterrupt

    monkeypatch.setattr(loop.Trainer, "save_progress", crash)
    with pytest.raises(KeyboardInterrupt):
        train(spec, str(tmp_path / "crashed"), options=tf.options(device="cuda", checkpoint_every=5))
    tensors, state = load_checkpoint(str(tmp_path / "crashed"))
    assert "rng.cuda" in tensors and (state["epoch"], state["step"]) == (1, 5)
    monkeypatch.setattr(loop.Trainer, "save_progress", original)
    resumed = resume(str(tmp_path / "crashed"), tf.options(device="cuda", checkpoint_every=5))
    a, _ = load_checkpoint(str(tmp_path / "whole"))
    b, _ = load_checkpoint(str(tmp_path / "crashed"))
    for key in (k for k in a if k.startswith(("model.", "ema."))):
        assert torch.allclose(a[key], b[key], atol=1e-4), key
    assert resumed.best["val"]["accuracy"] == pytest.approx(whole.best["val"]["accuracy"], abs=0.02)

    weights = str(tmp_path / "whole" / "model.safetensors")
    data = tf.dataset()
    on_gpu = evaluate_spec(spec, weights, dataset=data, device="cuda")
    on_cpu = evaluate_spec(spec, weights, dataset=data, device="cpu")
    assert on_gpu["device"].startswith("cuda:") and on_cpu["device"].startswith("cpu")
    # cuDNN may compute convolutions in TF32: a borderline image may flip, the loss moves a little
    assert abs(on_gpu["metrics"]["accuracy"] - on_cpu["metrics"]["accuracy"]) <= 2 / 64
    assert on_gpu["metrics"]["loss"] == pytest.approx(on_cpu["metrics"]["loss"], rel=0.02, abs=1e-3)


@pytest.mark.gpu
@pytest.mark.skipif(NO_GPU, reason="needs a CUDA GPU")
def test_gpu_run_of_the_cli_on_the_mnist_sample(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", TINY, "-o", str(run), "--epochs", "1", "--no-plots"]) == 0  # auto picks the GPU
    assert "training tiny_mlp on cuda:" in capsys.readouterr().err
    summary = json.load(open(run / "summary.json"))
    assert summary["device"].startswith("cuda:") and summary["best"]["test"]["accuracy"] > 0.5
    assert main(["train", "--resume", str(run), "--device", "cpu"]) == 0  # finished: nothing to train anywhere
    capsys.readouterr()
    assert main(["eval", TINY, "--weights", str(run / "model.safetensors"), "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["device"].startswith("cuda:")
    assert report["metrics"]["accuracy"] == pytest.approx(summary["best"]["test"]["accuracy"], abs=0.004)


@pytest.mark.gpu
@pytest.mark.skipif(NO_GPU, reason="needs a CUDA GPU")
def test_augmenter_on_the_gpu_matches_its_cpu_arithmetic():
    """The same draws (made on the CPU, then used on the GPU) give the same images on both devices."""
    from specc.train.augment import Augmenter
    from specc.train.feed import batch_generator

    steps = mnist_best_augment_steps()
    x = torch.from_numpy(tf.dataset().train.x[:32]).float()
    augmenter = Augmenter(steps, 0)
    on_cpu = augmenter(x, batch_generator(0, 0, 0, 0))
    on_gpu = augmenter(x.cuda(), batch_generator(0, 0, 0, 0))  # a CPU generator: draws on the CPU, moved over
    # mnist_best resamples by the nearest pixel: a sampling point a rounding error from a pixel border may
    # read the neighbour on one device, so a few pixels may differ; the rest agree.
    differ = (on_cpu - on_gpu.cpu()).abs() > 1e-2
    assert on_gpu.device.type == "cuda" and differ.float().mean() < 1e-3
    drawn_on_gpu = augmenter(x.cuda(), batch_generator(0, 0, 0, 0, torch.device("cuda")))
    assert drawn_on_gpu.shape == x.shape and torch.isfinite(drawn_on_gpu).all()


def mnist_best_augment_steps():
    from specc.compiler import compile_spec
    from specc.limits import DEFAULT_LIMITS

    return compile_spec(os.path.join(SPECS, "mnist_best.yaml"), DEFAULT_LIMITS).spec.augment
