"""`specc train --resume`: a run killed part-way and resumed ends where an uninterrupted run ends."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from safetensors.numpy import load_file

import train_fixtures as tf
from specc.train.checkpoint import load_checkpoint
from specc.train.run import resume, train

# Everything that draws random numbers or keeps state: dropout, augmentation, Adam's moments, EMA.
TRAINING = "epochs: 4\nbatch_size: 16\noptimizer: {adam: {lr: 0.01}}\nema: 0.9\nseed: 3"
AUGMENT = "[{noise: 8}, {shift: 1}]"
TESTS = os.path.dirname(os.path.abspath(__file__))


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the killed process runs with OMP_NUM_THREADS=1: same arithmetic
    yield
    torch.set_num_threads(threads)


def final_state(run_dir) -> dict:
    tensors, state = load_checkpoint(str(run_dir))
    out = {k: v.numpy() for k, v in tensors.items() if k.startswith(("model.", "ema."))}
    out.update({f"kept.{k}": v for k, v in load_file(os.path.join(run_dir, "model.safetensors")).items()})
    return out


def assert_same_run(a, b):
    sa, sb = final_state(a), final_state(b)
    assert sa.keys() == sb.keys()
    for key in sa:
        assert np.max(np.abs(sa[key] - sb[key])) <= 1e-5, key
    ra = [json.loads(line) for line in open(os.path.join(a, "metrics.jsonl"))]
    rb = [json.loads(line) for line in open(os.path.join(b, "metrics.jsonl"))]
    assert len(ra) == len(rb)
    for x, y in zip(ra, rb):
        assert x["val"]["accuracy"] == y["val"]["accuracy"]
        assert x["train"]["loss"] == pytest.approx(y["train"]["loss"], abs=1e-6)


def uninterrupted_run(tmp_path):
    """(spec, run directory) of the reference run: the spec trained in this process without a stop."""
    spec = tf.write_spec(tmp_path, TRAINING, network="dropout", augment=AUGMENT)
    whole = tmp_path / "whole"
    train(spec, str(whole), options=tf.options())
    return spec, whole


def fixture_command(spec, run_dir, *flags) -> tuple:
    """(argv, env) of a training run of train_fixtures.py in its own one-thread process."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.path.dirname(TESTS)}
    return [sys.executable, os.path.join(TESTS, "train_fixtures.py"), spec, str(run_dir), *flags], env


def test_kill_9_and_resume_equals_uninterrupted(tmp_path):
    spec, whole = uninterrupted_run(tmp_path)
    killed = tmp_path / "killed"
    argv, env = fixture_command(spec, killed, "--pause", "2")
    process = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and process.poll() is None:
            if os.path.exists(killed / "checkpoint.json"):
                break
            time.sleep(0.05)
        assert process.poll() is None, process.communicate()[1].decode()[-2000:]
        os.kill(process.pid, signal.SIGKILL)  # during the pause after the first checkpoint
    finally:
        process.wait()
    _, state = load_checkpoint(str(killed))
    assert 1 <= state["epoch"] < 4 and not state["finished"]

    resume(str(killed), tf.options())
    assert_same_run(whole, killed)


@pytest.mark.parametrize("network", ["dropout", "wide_conv"])  # wide_conv trains in channels-last order
def test_resume_mid_epoch(tmp_path, monkeypatch, network):
    """With --checkpoint-every, a crash loses at most that many steps and the position is restored."""
    from specc.train import loop

    spec = tf.write_spec(tmp_path, TRAINING, network=network, augment=AUGMENT)
    whole = tmp_path / "whole"
    train(spec, str(whole), options=tf.options(checkpoint_every=5))

    original = loop.Trainer.save_progress

    def crash_inside_second_epoch(self):
        original(self)
        if (self.progress.epoch, self.progress.step) == (1, 10):
            raise KeyboardInterrupt

    monkeypatch.setattr(loop.Trainer, "save_progress", crash_inside_second_epoch)
    crashed = tmp_path / "crashed"
    with pytest.raises(KeyboardInterrupt):
        train(spec, str(crashed), options=tf.options(checkpoint_every=5))
    _, state = load_checkpoint(str(crashed))
    assert (state["epoch"], state["step"]) == (1, 10) and state["partial"]["count"] == 160
    monkeypatch.setattr(loop.Trainer, "save_progress", original)
    torch.manual_seed(12345)  # as a fresh process would: the checkpoint must restore the generator
    resume(str(crashed), tf.options(checkpoint_every=5))
    assert_same_run(whole, crashed)


def test_resume_a_finished_run_trains_nothing(tmp_path, capsys):
    spec = tf.write_spec(tmp_path, "epochs: 1\nbatch_size: 32")
    run = tmp_path / "run"
    first = train(spec, str(run), options=tf.options())
    stamp = os.path.getmtime(run / "checkpoint.safetensors")
    again = resume(str(run), tf.options())
    assert again.best == first.best and os.path.getmtime(run / "checkpoint.safetensors") == stamp
    assert "not trained further" not in capsys.readouterr().err
    copy = run / "spec.yaml"
    copy.write_text(copy.read_text().replace("epochs: 1", "epochs: 3"))
    assert resume(str(run), tf.options()).epochs_run == 1
    assert "finished after 1 epoch(s); its spec copy now says 3" in capsys.readouterr().err


@pytest.mark.parametrize("signum", ["SIGTERM", "SIGINT"])
def test_a_signal_saves_the_place_mid_epoch_and_resume_equals_uninterrupted(tmp_path, signum):
    """Ctrl-C or SIGTERM during the 6th mini-batch of the second epoch (16 a epoch): the run finishes that
    mini-batch, checkpoints after it and stops; resumed, it ends as the uninterrupted run ends."""
    spec, whole = uninterrupted_run(tmp_path)
    stopped = tmp_path / "stopped"
    argv, env = fixture_command(spec, stopped, "--signal-at", str(16 + 6), "--signal", signum)
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 130, done.stderr[-2000:]
    assert f"specc: {signum}: stopping after this mini-batch" in done.stderr
    assert "interrupted: RunInterrupted" in done.stderr
    _, state = load_checkpoint(str(stopped))
    assert (state["epoch"], state["step"]) == (1, 6) and state["partial"]["count"] == 6 * 16
    assert len(open(stopped / "metrics.jsonl").readlines()) == 1

    torch.manual_seed(12345)
    resume(str(stopped), tf.options())
    assert_same_run(whole, stopped)


def test_a_second_signal_stops_at_once():
    from specc.train.interrupt import GracefulStop

    with GracefulStop() as stop:
        assert signal.getsignal(signal.SIGTERM) == stop._ask
        stop._ask(signal.SIGTERM, None)
        assert stop.requested
        with pytest.raises(KeyboardInterrupt):
            stop._ask(signal.SIGINT, None)
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL  # restored
    with GracefulStop(enabled=False) as stop:
        assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL and not stop.requested


def test_the_cli_names_the_run_to_resume(monkeypatch, capsys):
    from specc import cli
    from specc.train.interrupt import RunInterrupted

    def stopped(args):
        raise RunInterrupted("runs/mnist")

    monkeypatch.setitem(cli.COMMANDS, "train", stopped)
    assert cli.main(["train", "spec.yaml"]) == 130
    assert "the run is saved: continue it with `specc train --resume runs/mnist`" in capsys.readouterr().err


def test_resume_repeats_the_runs_threads_and_checkpoint_interval(tmp_path):
    """Another thread count rounds sums differently: a plain `--resume` takes the count (and the checkpoint
    interval, and no plots) from run.json, so it repeats the uninterrupted run's arithmetic."""
    from specc.train.run import RunOptions, as_started

    spec = tf.write_spec(tmp_path, "epochs: 1\nbatch_size: 32")
    train(spec, str(tmp_path / "run"), options=tf.options(checkpoint_every=7))
    info = json.load(open(tmp_path / "run" / "run.json"))
    assert (info["threads"], info["checkpoint_every"], info["plots"]) == (1, 7, False)
    started = as_started(RunOptions(), info)
    assert (started.threads, started.checkpoint_every, started.plots) == (1, 7, False)
    given = as_started(RunOptions(threads=2, checkpoint_every=3), info)
    assert (given.threads, given.checkpoint_every) == (2, 3), "what --resume is given wins"
    assert as_started(RunOptions(), {**info, "nproc": 2}).threads == 0, "--nproc shares the cores out itself"


def test_a_start_killed_before_run_json_can_be_started_again(tmp_path):
    from specc.diagnostics import SpeccError

    spec = tf.write_spec(tmp_path, "epochs: 1\nbatch_size: 32")
    run = tmp_path / "run"
    run.mkdir()
    (run / "spec.yaml").write_text("# The spec this run trains: tiny.yaml, resolved by specc\nspecc: 1\n")
    (run / ".run.json.abc123").write_text("{")
    with pytest.raises(SpeccError) as caught:
        resume(str(run), tf.options())
    assert "stopped while it was being created" in str(caught.value) and f"-o {run}" in str(caught.value)
    assert train(spec, str(run), options=tf.options()).best is not None
    own = tmp_path / "own"
    own.mkdir()
    (own / "spec.yaml").write_text("specc: 1\n")  # a user's own spec is never taken for a half-made run
    with pytest.raises(SpeccError) as caught:
        train(spec, str(own), options=tf.options())
    assert "is not empty" in str(caught.value) and (own / "spec.yaml").read_text() == "specc: 1\n"


def test_resume_removes_what_killed_writes_left_behind(tmp_path):
    spec = tf.write_spec(tmp_path, "epochs: 2\nbatch_size: 32")
    run = tmp_path / "run"
    train(spec, str(run), epochs=1, options=tf.options())
    os.unlink(run / "summary.json")  # as if killed before the end
    leftovers = [".checkpoint.x1y2.safetensors", ".specc-weights-abc.safetensors", ".tmpQ8x2", ".metrics.jsonl.k3"]
    for name in leftovers:
        (run / name).write_bytes(b"\0" * 64)
    (run / ".keep-me").write_text("not ours")
    resume(str(run), tf.options())
    assert not [name for name in leftovers if (run / name).exists()] and (run / ".keep-me").exists()


@pytest.mark.parametrize("edit,refused", [
    (("batch_size: 32", "batch_size: 16"), "was changed after the run began"),
    (("seed: 3", "seed: 4"), "was changed after the run began"),
    (("network:", "network: ["), "no longer valid YAML"),
    (("epochs: 2", "epochs: 3"), None),
])
def test_an_edited_spec_copy_is_refused_unless_only_epochs_changed(tmp_path, edit, refused):
    from specc.diagnostics import SpeccError

    spec = tf.write_spec(tmp_path, "epochs: 2\nbatch_size: 32\nseed: 3")
    run = tmp_path / "run"
    train(spec, str(run), options=tf.options())
    os.unlink(run / "summary.json")
    copy = run / "spec.yaml"
    text = copy.read_text()
    assert edit[0] in text
    copy.write_text(text.replace(edit[0], edit[1]))
    if refused is None:  # a run stopped part-way may be told to train longer (or shorter)
        from specc.train.rundir import check_unchanged, read_run, read_tree

        check_unchanged(str(run), read_run(str(run)), read_tree(str(run)))
        return
    with pytest.raises(SpeccError) as caught:
        resume(str(run), tf.options())
    found = caught.value.diagnostics[0]
    assert found.code == "E101" and refused in found.message and found.span.path == str(copy)
