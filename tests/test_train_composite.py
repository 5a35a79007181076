"""Beyond one network: ensembles, distillation and random search."""

import json
import os

import numpy as np
import pytest
import torch
from safetensors import safe_open

import train_fixtures as tf
from specc.cli import main
from specc.train.run import resume, train


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def test_ensemble_members_and_combined_file(tmp_path):
    spec = tf.write_spec(tmp_path, "epochs: 2\nbatch_size: 16\noptimizer: {sgd: {lr: 0.3}}\nseed: 5\n"
                                   "ensemble: {members: 3, combine: vote}")
    run = tmp_path / "run"
    data = tf.dataset(noise=255, signal=60)
    result = train(spec, str(run), options=tf.options(dataset=data))
    assert result.kind == "ensemble" and [p["seed"] for p in result.parts] == [5, 6, 7]
    members = [f"member_{i}" for i in range(3)]
    assert all((run / m / "model.safetensors").exists() for m in members)
    firsts = [json.loads(open(run / m / "metrics.jsonl").readline()) for m in members]
    assert len({f["train"]["loss"] for f in firsts}) == 3  # each member its own seed
    with safe_open(str(run / "model.safetensors"), "np") as handle:
        meta = handle.metadata()
        keys = set(handle.keys())
    assert meta["specc.ensemble.members"] == "3" and meta["specc.ensemble.combine"] == "vote"
    assert json.loads(meta["specc.ensemble.seeds"]) == [5, 6, 7]
    assert keys == {f"member_{i}.{t}" for i in range(3) for t in
                    ("dense_2.weight", "dense_2.bias", "dense_3.weight", "dense_3.bias")}
    # the combined prediction is the members' majority vote
    from safetensors.numpy import load_file
    from specc.codegen.torch_module import to_torch
    from specc.compiler import compile_spec
    from specc.train.ensemble import member_weights
    from specc.train.evaluate import load_predictor

    graph = compile_spec(spec, tf.options().limits).graph
    predict, _, count = load_predictor(graph, str(run / "model.safetensors"))
    assert count == 3
    x = torch.from_numpy(data.test.x)
    weights = member_weights(load_file(str(run / "model.safetensors")), graph, "ensemble")
    with torch.no_grad():
        votes = np.stack([to_torch(graph, w).eval()(x)["output"].argmax(-1).numpy() for w in weights])
    combined = predict(x).argmax(-1).numpy()
    for column, choice in zip(votes.T, combined):
        counts = np.bincount(column, minlength=4)
        if (counts == counts.max()).sum() == 1:  # a clear majority (ties go to the mean probability)
            assert choice == counts.argmax()
    vote_acc = float((predict(x).argmax(-1).numpy() == data.test.y).mean())
    assert result.best["test"]["accuracy"] == pytest.approx(vote_acc)
    # the run's own metrics.jsonl: every member's epochs, then the combined model's row
    rows = [json.loads(line) for line in open(run / "metrics.jsonl")]
    assert [(r.get("member"), r.get("epoch")) for r in rows] == [(0, 1), (0, 2), (1, 1), (1, 2), (2, 1), (2, 2),
                                                                  (None, None)]
    assert rows[0] == {"member": 0, **firsts[0]}
    assert rows[-1] == {"combined": "vote", "members": 3, "val": result.best.get("val"),
                        "test": result.best["test"], "best": True}
    # a finished ensemble resumes to its summary
    assert resume(str(run), tf.options(dataset=data)).best == result.best


def test_eval_of_an_ensemble_file(tmp_path, capsys):
    spec = tf.write_spec(tmp_path, "data: {dataset: mnist-sample}\nepochs: 1\nbatch_size: 64\n"
                                   "ensemble: {members: 2}", name="mnist2")
    # the fixture spec's 6x6 input does not fit MNIST: give this one 28x28
    text = open(spec).read().replace("shape: [1, 6, 6]", "shape: [1, 28, 28]").replace("dense: 4", "dense: 10")
    open(spec, "w").write(text)
    run = str(tmp_path / "run")
    assert main(["train", spec, "-o", run, "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["eval", spec, "--weights", os.path.join(run, "model.safetensors"), "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    summary = json.load(open(os.path.join(run, "summary.json")))
    assert report["members"] == 2
    assert report["metrics"]["accuracy"] == pytest.approx(summary["best"]["test"]["accuracy"])


def test_distillation_pulls_the_student_toward_the_teacher(tmp_path):
    teacher_spec = tf.write_spec(tmp_path, "epochs: 3\nbatch_size: 16\noptimizer: {sgd: {lr: 0.3}}", name="teacher")
    train(teacher_spec, str(tmp_path / "teacher"), options=tf.options())
    weights = str(tmp_path / "teacher" / "model.safetensors")
    student_spec = tf.write_spec(tmp_path, "epochs: 2\nbatch_size: 16\noptimizer: {sgd: {lr: 0.3}}\n"
                                           "distill: {teacher: teacher.yaml, weights: teacher/model.safetensors, "
                                           "temperature: 3, alpha: 1.0}", network="logits", name="student")
    from specc.train.losses import distillation_loss, PROBS, SCORES

    session, trainer = tf.session(tmp_path, open(student_spec).read().split("training:\n")[1], network="logits")
    assert session.teacher is not None
    x, y = tf.batches(1)[0]

    def gap():
        with torch.no_grad():
            return float(distillation_loss(session.module(x)["output"], session.teacher(x), SCORES, PROBS, 3.0))

    before = gap()
    for x_, y_ in tf.batches(8):
        trainer.step(x_, y_, 1.0)
    after = gap()
    assert after < before / 2
    result = train(student_spec, str(tmp_path / "student"), options=tf.options())
    assert result.best["val"]["accuracy"] > 0.5 and os.path.exists(weights)


def test_distillation_loss_is_hintons():
    from specc.train.losses import SCORES, distillation_loss

    s, t, temp = torch.randn(4, 3), torch.randn(4, 3), 2.0
    p_t = torch.softmax(t / temp, -1)
    expected = (p_t * (torch.log(p_t) - torch.log_softmax(s / temp, -1))).sum(-1).mean() * temp ** 2
    assert float(distillation_loss(s, t, SCORES, SCORES, temp)) == pytest.approx(float(expected), rel=1e-5)


def test_random_search_trials_and_table(tmp_path, capsys):
    spec = tf.write_spec(tmp_path, "epochs: 1\nbatch_size: 16\noptimizer: {sgd: {lr: 0.1}}\nseed: 2\n"
                                   "search: {trials: 3, space: {optimizer.sgd.lr: {log_uniform: [0.001, 1.0]}, "
                                   "batch_size: {choice: [16, 32]}}}")
    run = tmp_path / "run"
    result = train(spec, str(run), options=tf.options())
    rows = [json.loads(line) for line in open(run / "trials.jsonl")]
    assert [r["trial"] for r in rows] == [0, 1, 2]
    for r in rows:
        assert 0.001 <= r["values"]["optimizer.sgd.lr"] <= 1.0 and r["values"]["batch_size"] in (16, 32)
        import yaml

        trial = yaml.safe_load(open(run / f"trial_{r['trial']}" / "spec.yaml"))["training"]
        assert trial["optimizer"]["sgd"]["lr"] == r["values"]["optimizer.sgd.lr"] and "search" not in trial
    assert len({r["values"]["optimizer.sgd.lr"] for r in rows}) == 3
    best = max(rows, key=lambda r: r["val"]["accuracy"])
    assert result.kind == "search" and result.best["trial"] == best["trial"]
    summary = json.load(open(run / "summary.json"))
    assert summary["epochs_run"] == 1 and summary["device"] == "cpu (1 thread)" and summary["threads"] == 1
    top = [json.loads(line) for line in open(run / "metrics.jsonl")]  # each trial's epochs, marked
    assert [r["trial"] for r in top] == [0, 1, 2]
    assert all({k: v for k, v in r.items() if k != "trial"} == json.loads(open(run / f"trial_{i}" / "metrics.jsonl")
                                                                           .readline()) for i, r in enumerate(top))
    winner = run / f"trial_{best['trial']}" / "model.safetensors"
    assert (run / "model.safetensors").read_bytes() == winner.read_bytes()
    from specc.train.run import summary_text

    text = summary_text(result)
    assert "optimizer.sgd.lr" in text and "val acc" in text and f"{best['trial']} *" in text


@pytest.mark.parametrize("kind,part", [("ensemble: {members: 2, combine: mean}", "member_1"),
                                       ("search: {trials: 2, space: {optimizer.sgd.lr: {choice: [0.1, 0.3]}}}",
                                        "trial_1")])
def test_a_part_killed_while_its_directory_was_made_is_made_again(tmp_path, kind, part):
    """A kill between making member_<i>/ (or trial_<i>/) and writing its run.json left a directory that
    every later `--resume` tripped over; it is now made again, and the run ends as an uninterrupted one."""
    from safetensors.numpy import load_file

    spec = tf.write_spec(tmp_path, f"epochs: 1\nbatch_size: 16\noptimizer: {{sgd: {{lr: 0.1}}}}\nseed: 2\n{kind}")
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    train(spec, str(whole), options=tf.options())
    train(spec, str(killed), options=tf.options())
    for name in ("summary.json", "model.safetensors", "trials.jsonl"):
        if (killed / name).exists():
            os.unlink(killed / name)
    for name in os.listdir(killed / part):
        os.unlink(killed / part / name)
    (killed / part / "spec.yaml").write_text("# half\n")  # the copy was being written: run.json never came
    resume(str(killed), tf.options())
    a, b = load_file(str(whole / "model.safetensors")), load_file(str(killed / "model.safetensors"))
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def test_an_ensemble_and_a_search_plot_each_part(tmp_path, monkeypatch):
    """The top of an ensemble or search has loss.png and accuracy.png: one validation curve per member or
    trial, drawn as each finishes."""
    from specc.train import plots

    drawn = []
    original = plots._curve
    monkeypatch.setattr(plots, "_curve", lambda axes, rows, split, metric, label: (
        drawn.append((label, split, metric, len(rows))), original(axes, rows, split, metric, label)))
    for kind, labels in (("ensemble: {members: 2}", ["member 0 (seed 2)", "member 1 (seed 3)"]),
                         ("search: {trials: 2, space: {optimizer.sgd.lr: {choice: [0.1, 0.3]}}}",
                          ["trial 0: lr=", "trial 1: lr="])):
        drawn.clear()
        name = kind.split(":")[0]
        spec = tf.write_spec(tmp_path, f"epochs: 2\nbatch_size: 16\noptimizer: {{sgd: {{lr: 0.1}}}}\nseed: 2\n{kind}",
                             name=name)
        run = tmp_path / name
        train(spec, str(run), options=tf.options(plots=True))
        for png in ("loss.png", "accuracy.png"):
            assert (run / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        last = drawn[-4:]  # the final redraw: two parts, loss then accuracy
        assert [(label[:12], split, metric, rows) for label, split, metric, rows in last] == \
            [(labels[0][:12], "val", "loss", 2), (labels[1][:12], "val", "loss", 2),
             (labels[0][:12], "val", "accuracy", 2), (labels[1][:12], "val", "accuracy", 2)]
