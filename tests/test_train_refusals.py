"""What a new run refuses, and where it says so: problems only training finds (a batch larger than the
data, weights that do not fit, nothing to train, an augment step the input cannot take, bad data values)
are reported at the user's spec before any run directory exists; damaged run and weights files are
located errors, never a traceback; and the small semantics these refusals sit beside."""

import json
import os
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest

import train_fixtures as tf
from conftest import SPECS
from specc.diagnostics import SpeccError
from specc.train.run import train

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def edited(spec: str, old: str, new: str) -> str:
    """The spec file with `old` replaced by `new` (the fixtures write 1x6x6 uint8 inputs)."""
    with open(spec) as handle:
        text = handle.read().replace(old, new)
    with open(spec, "w") as handle:
        handle.write(text)
    return spec


def refusal(spec: str, run: str, **options):
    with pytest.raises(SpeccError) as caught:
        train(spec, run, options=tf.options(**options))
    assert not os.path.exists(run), "a refused run leaves no directory behind"
    return caught.value.diagnostics[0]


@pytest.mark.parametrize("training,augment,code,text", [
    ("epochs: 1\nbatch_size: 5000", "", "E100", "is larger than the training set"),
    ("epochs: 1\ninit: {from: nowhere.safetensors}", "", "E080", "nowhere.safetensors: not found"),
    ("epochs: 1\ninit: {from: .}", "", "E003", "`training.init.from` .: is not a regular file"),
    ("epochs: 1\nearly_stopping: {metric: val_confusion}", "", "E100", "the confusion matrix is a table"),
    ("epochs: 1", "[{crop: {size: [4, 4]}}]", "E076", "would change the input's size"),
    ("epochs: 1", "[{expand: {shift: 1}}, {expand: {shift: 1}}]", "E076", "`expand` is given twice"),
    ("epochs: 1\nbn_recalibration: 100", "", "E100", "this network has no batchnorm layer"),
])
def test_what_only_training_finds_is_reported_at_the_users_spec(tmp_path, training, augment, code, text):
    spec = tf.write_spec(tmp_path, training, augment=augment)
    found = refusal(spec, str(tmp_path / "run"))
    assert (found.code, found.span.path) == (code, spec) and text in found.message


def test_freezing_every_layer_is_refused(tmp_path):
    source = str(tmp_path / "source")
    train(tf.write_spec(tmp_path, "epochs: 1", name="source"), source, options=tf.options())
    spec = tf.write_spec(tmp_path, "epochs: 1\ninit: {from: source/model.safetensors, freeze: [dense_2, dense_3]}")
    found = refusal(spec, str(tmp_path / "run"))
    assert found.code == "E100" and "nothing to train" in found.message and found.span.path == spec


@pytest.mark.parametrize("optimizer,text", [
    ("adam: {lr: 0.01, betas: [0.9, 1.0]}", "`betas`[1] is 1.0, out of range"),
    ("rmsprop: {lr: 0.01, rho: 1.0}", "`rho` is 1.0, out of range"),
    ("sgd: {lr: 0.01, momentum: 1}", "`momentum` is 1, out of range"),
])
def test_decay_rates_of_one_are_refused_when_validated(tmp_path, optimizer, text):
    """A running average that keeps all of its past never forgets: the rate must stay below 1."""
    from specc.compiler import compile_spec
    from specc.limits import DEFAULT_LIMITS

    spec = tf.write_spec(tmp_path, "optimizer: {%s}" % optimizer)
    with pytest.raises(SpeccError) as caught:
        compile_spec(spec, DEFAULT_LIMITS)
    assert text in str(caught.value)


def test_nan_examples_are_a_data_error(tmp_path):
    data = tf.dataset()
    x = data.train.x.astype(np.float32)
    x[3, 0, 0, 0] = np.nan
    np.savez(tmp_path / "nan.npz", x_train=x, y_train=data.train.y, x_test=data.test.x.astype(np.float32),
             y_test=data.test.y)
    spec = edited(tf.write_spec(tmp_path, "epochs: 1\ndata: {dataset: npz, path: nan.npz, validation: 0}"),
                  "dtype: uint8", "dtype: float32")
    found = refusal(spec, str(tmp_path / "run"), dataset=None)
    assert found.code == "E074" and "NaN or infinite values (1 of 256 examples)" in found.message


@pytest.mark.parametrize("regularization,decay", [("", 0.01), ("regularization: {l2: 0.0}", 0.01),
                                                  ("regularization: {weight_decay: 0}", 0.0),
                                                  ("regularization: {weight_decay: 0.2}", 0.2)])
def test_weight_decay_zero_turns_adamws_own_decay_off(tmp_path, regularization, decay):
    from specc.compiler import compile_spec
    from specc.limits import DEFAULT_LIMITS
    from specc.train.config import training_config

    spec = tf.write_spec(tmp_path, "optimizer: {adamw: {lr: 0.01, weight_decay: 0.01}}\n" + regularization)
    training = compile_spec(spec, DEFAULT_LIMITS).spec.training
    assert training_config(training).regularization.weight_decay == decay


def test_damaged_run_files_are_located_errors(tmp_path, capsys):
    from specc.cli import main

    run = str(tmp_path / "run")
    spec = os.path.join(SPECS, "tiny_mlp.yaml")  # on the bundled MNIST sample: a resume reads its data again
    assert main(["train", spec, "-o", run, "--no-progress", "--no-plots", "--epochs", "1"]) == 0
    capsys.readouterr()
    assert oct(os.stat(os.path.join(run, "model.safetensors")).st_mode & 0o777) == \
        oct(os.stat(os.path.join(run, "summary.json")).st_mode & 0o777)  # umask applies to the weights too

    with open(os.path.join(run, "summary.json"), "w") as handle:
        handle.write('{"kind": "sing')
    assert main(["train", "--resume", run]) == 1
    assert "summary.json of the finished run" in capsys.readouterr().err

    os.remove(os.path.join(run, "summary.json"))
    checkpoint = os.path.join(run, "checkpoint.safetensors")
    with open(checkpoint, "r+b") as handle:
        handle.truncate(300)
    assert main(["train", "--resume", run]) == 1
    err = capsys.readouterr().err
    assert "error[E101]: the checkpoint in" in err and "SafetensorError" in err


def test_expand_keeps_each_shifted_copy_with_probability_p():
    from specc.train.augment import expand_static

    class Step:
        op, span = "expand", None

        def __init__(self, p):
            self.attrs = {"shift": 1, "p": p}

    x = np.arange(1000 * 36, dtype=np.uint8).reshape(1000, 1, 6, 6)
    y = np.arange(1000) % 4
    assert len(expand_static(x, y, [Step(1.0)])[0]) == 5000
    assert len(expand_static(x, y, [Step(0.0)])[0]) == 1000
    half, labels = expand_static(x, y, [Step(0.5)], seed=3)
    assert 2800 < len(half) < 3200 and len(labels) == len(half)
    assert np.array_equal(half, expand_static(x, y, [Step(0.5)], seed=3)[0])  # seeded: the same set
    assert not np.array_equal(half[:2900], expand_static(x, y, [Step(0.5)], seed=4)[0][:2900])


def test_a_run_expands_its_training_set_once(tmp_path, monkeypatch):
    """The preflight (on the user's spec) and the training (on the run's copy) share one expansion."""
    from specc.train import augment

    calls = []
    original = augment.expand_static
    monkeypatch.setattr(augment, "expand_static", lambda *a, **k: (calls.append(1), original(*a, **k))[1])
    spec = tf.write_spec(tmp_path, "epochs: 1\nbatch_size: 16\noptimizer: {sgd: {lr: 0.1}}",
                         augment="[{expand: {shift: 1}}]")
    from specc.train.session import Session

    sessions = []
    made = Session.__init__
    monkeypatch.setattr(Session, "__init__", lambda self, *a, **k: (made(self, *a, **k), sessions.append(self))[0])
    train(spec, str(tmp_path / "run"), options=tf.options())
    assert len(calls) == 1
    # both the preflight's session and the training's saw the expanded set: five times the mini-batches
    assert [s.steps_per_epoch for s in sessions] == [len(tf.dataset().train.y) * 5 // 16] * 2


def test_search_checks_extreme_draws_beyond_the_first_hundred():
    from specc.train.search import FIRST_CHECKED, checked_trials

    trials = [{"lr": 0.1, "opt": "a"} for _ in range(500)]
    trials[350]["lr"], trials[420]["lr"], trials[470]["opt"] = 0.9, 0.001, "b"
    picked = checked_trials(trials, {"lr": ("uniform", {}), "opt": ("choice", {})})
    assert set(range(FIRST_CHECKED)) <= set(picked) and {350, 420, 470} <= set(picked)
    assert len(picked) <= FIRST_CHECKED + 4


def test_workers_die_with_their_launcher(tmp_path):
    """`kill -9` of `specc train --nproc N` must not leave its workers writing the run directory."""
    if not sys.platform.startswith("linux"):
        pytest.skip("the kernel's parent-death signal is Linux's")
    pid_file = tmp_path / "child.pid"
    child = ("import os, sys, time; from specc.train.distributed import die_with_parent; "
             f"die_with_parent(int(sys.argv[1])); open({str(pid_file)!r}, 'w').write(str(os.getpid())); time.sleep(60)")
    parent = subprocess.Popen([sys.executable, "-c",
                               "import os, subprocess, sys, time; "
                               f"subprocess.Popen([sys.executable, '-c', {child!r}, str(os.getpid())]); time.sleep(60)"])
    deadline = time.time() + 30
    while not pid_file.exists() or not pid_file.read_text():
        assert time.time() < deadline, "the child never started"
        time.sleep(0.05)
    child_pid = int(pid_file.read_text())
    parent.kill()
    parent.wait()
    deadline = time.time() + 10
    while os.path.exists(f"/proc/{child_pid}") and _state(child_pid) not in ("Z", "X"):
        assert time.time() < deadline, "the child outlived its parent"
        time.sleep(0.05)


def _state(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "X"


@pytest.mark.parametrize("augment,text", [
    ("[{crop: {size: [4, 4]}}]", "would change the input's size [6, 6]"),
    ("[{color: {saturation: 0.3}}]", "saturation needs 3 (RGB) channels, but the input has 1"),
    ("[{expand: {shift: 1}}, {expand: {shift: 1}}]", "`expand` is given twice"),
    ("[{expand: {shift: 6}}]", "as much as the image's size"),
])
def test_validate_refuses_augment_steps_the_input_cannot_take(tmp_path, augment, text):
    """Found from the spec alone, so `specc validate` (and CI) refuses what `specc train` would."""
    from specc.compiler import check_spec
    from specc.limits import DEFAULT_LIMITS

    spec = tf.write_spec(tmp_path, "epochs: 1", augment=augment)
    (found,) = [d for d in check_spec(spec, DEFAULT_LIMITS) if d.severity == "error"]
    assert found.code == "E076" and text in found.message and found.span.path == spec and found.span.line == 7


def _npz_spec(tmp_path, data_line: str) -> str:
    return tf.write_spec(tmp_path, "epochs: 1\n" + data_line)


def test_a_pipe_as_a_data_file_is_refused_without_opening_it(tmp_path):
    data = tf.dataset()
    np.savez(tmp_path / "d.npz", x_train=data.train.x, y_train=data.train.y, x_test=data.test.x, y_test=data.test.y)
    os.mkfifo(tmp_path / "pipe.npz")  # opening it would block until a writer came
    for line in ("data: {dataset: npz, path: d.npz, validation: pipe.npz}", "data: {dataset: npz, path: pipe.npz}"):
        found = refusal(_npz_spec(tmp_path, line), str(tmp_path / "run"), dataset=None)
        assert found.code == "E003" and "not a regular file" in found.message


def test_an_npz_that_unpacks_past_the_budget_is_refused(tmp_path):
    from specc.limits import Limits

    data = tf.dataset()
    big = np.zeros((40_000, 1, 6, 6), np.uint8)  # 1.4 MB unpacked, a few KB packed
    np.savez_compressed(tmp_path / "d.npz", x_train=big, y_train=np.zeros(len(big), np.int64), x_test=data.test.x,
                        y_test=data.test.y)
    found = refusal(_npz_spec(tmp_path, "data: {dataset: npz, path: d.npz}"), str(tmp_path / "run"), dataset=None,
                    limits=Limits(memory_budget_bytes=1_000_000))
    assert found.code == "E072" and "once decompressed" in found.message


def test_training_memory_is_checked_against_the_budget(tmp_path):
    from specc.limits import Limits

    spec = tf.write_spec(tmp_path, "epochs: 1")
    found = refusal(spec, str(tmp_path / "run"), limits=Limits(memory_budget_bytes=8_000))
    assert found.code == "E091" and "`train` would need" in found.message and "optimizer state" in found.message


def test_mnist_labels_beyond_nine_are_a_data_error(tmp_path):
    from specc.train.idx import write_idx

    data = tf.dataset(shape=(1, 28, 28))
    folder = tmp_path / "mnist"
    folder.mkdir()
    labels = data.train.y.astype(np.uint8)
    labels[5] = 12
    for stem, array in (("train-images-idx3-ubyte", data.train.x[:, 0]), ("train-labels-idx1-ubyte", labels),
                        ("t10k-images-idx3-ubyte", data.test.x[:, 0]),
                        ("t10k-labels-idx1-ubyte", data.test.y.astype(np.uint8))):
        write_idx(str(folder / stem), array)
    spec = edited(tf.write_spec(tmp_path, "epochs: 1\ndata: {dataset: mnist, path: mnist, validation: 0}"),
                  "[1, 6, 6]", "[1, 28, 28]")
    found = refusal(spec, str(tmp_path / "run"), dataset=None)
    assert found.code == "E074" and "the MNIST labels include 12" in found.message


def test_a_batch_smaller_than_the_processes_is_refused(tmp_path):
    found = refusal(tf.write_spec(tmp_path, "epochs: 1\nbatch_size: 2"), str(tmp_path / "run"), nproc=3)
    assert found.code == "E100" and "split across 3 processes" in found.message


def test_default_run_directories_are_claimed_once(tmp_path, monkeypatch):
    from specc.train.rundir import default_run_dir

    monkeypatch.chdir(tmp_path)
    names = [default_run_dir("same") for _ in range(3)]  # the same second, most likely
    assert len(set(names)) == 3 and all(os.path.isdir(n) and not os.listdir(n) for n in names)


def test_an_interrupted_member_resumes_through_its_ensemble(tmp_path, monkeypatch):
    from specc.train import ensemble, run
    from specc.train.interrupt import RunInterrupted

    spec = tf.write_spec(tmp_path, "epochs: 1\nensemble: {members: 2, combine: mean}")

    def stopped(member_dir, options):
        raise RunInterrupted(member_dir)

    monkeypatch.setattr(run, "run_single", stopped)
    monkeypatch.setattr(ensemble, "run_single", stopped, raising=False)
    with pytest.raises(RunInterrupted) as caught:
        train(spec, str(tmp_path / "run"), options=tf.options())
    assert caught.value.run_dir == str(tmp_path / "run")  # what `--resume` must be given


@pytest.mark.parametrize("distill,code,key,text", [
    ("teacher: nowhere.yaml, weights: source/model.safetensors", "E040", "teacher", "nowhere.yaml: not found"),
    ("teacher: source.yaml, weights: nowhere.safetensors", "E080", "weights", "nowhere.safetensors: not found"),
    ("teacher: source.yaml, weights: source", "E003", "weights", "source: is not a regular file"),
    ("teacher: source.yaml, weights: source/metrics.jsonl", "E080", "weights", "not a readable safetensors file"),
])
def test_distillation_files_are_refused_at_their_line(tmp_path, distill, code, key, text):
    train(tf.write_spec(tmp_path, "epochs: 1", name="source"), str(tmp_path / "source"), options=tf.options())
    spec = tf.write_spec(tmp_path, "epochs: 1\ndistill: {%s, temperature: 2, alpha: 0.5}" % distill)
    found = refusal(spec, str(tmp_path / "run"))
    assert (found.code, found.span.path) == (code, spec) and text in found.message
    assert f"{key}:" in open(spec).read().splitlines()[found.span.line - 1][found.span.column - 1:]


def test_a_run_that_diverges_before_training_anything_points_at_the_users_spec(tmp_path):
    """Nothing was trained, so the run directory is removed; the diagnostic must not name its deleted copy."""
    spec = tf.write_spec(tmp_path, "epochs: 1\nbatch_size: 16\noptimizer: {sgd: {lr: 1.0e+30}}")
    found = refusal(spec, str(tmp_path / "run"))
    assert found.code == "E102" and "diverged" in found.message and found.span.path == spec
    assert open(spec).read().splitlines()[found.span.line - 1].strip().startswith("optimizer:")


def test_init_from_in_ci_mode_resolves_as_the_validator_checked_it(tmp_path, monkeypatch):
    """In CI mode `~` is not expanded (the validator confines the literal path to the spec's tree), so
    training must not open the home directory's file either; a path inside the tree still works."""
    from specc.limits import DEFAULT_LIMITS

    source = str(tmp_path / "source")
    train(tf.write_spec(tmp_path, "epochs: 1", name="source"), source, options=tf.options())
    home = tmp_path.parent / (tmp_path.name + "-home")
    home.mkdir()
    shutil.copy(os.path.join(source, "model.safetensors"), home / "w.safetensors")
    monkeypatch.setenv("HOME", str(home))
    ci = DEFAULT_LIMITS.strict()

    spec = tf.write_spec(tmp_path, "epochs: 1\ninit: {from: ~/w.safetensors}")
    found = refusal(spec, str(tmp_path / "run"), limits=ci)
    assert found.code == "E080" and "~/w.safetensors: not found" in found.message

    spec = tf.write_spec(tmp_path, "epochs: 1\ninit: {from: source/model.safetensors}", name="target")
    train(spec, str(tmp_path / "target"), options=tf.options(limits=ci))
    assert os.path.isfile(tmp_path / "target" / "model.safetensors")
