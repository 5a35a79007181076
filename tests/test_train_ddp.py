"""Data-parallel training: `specc train --nproc 2` (gloo, CPU) agrees with one process.

Slow: each process starts its own Python and torch (run with `-m slow`)."""

import json
import os

import numpy as np
import pytest

import train_fixtures as tf
from specc.train.checkpoint import load_checkpoint
from specc.train.run import resume, train

TRAINING = "epochs: 2\nbatch_size: 16\noptimizer: {sgd: {lr: 0.2, momentum: 0.9}}\nregularization: {l2: 1.0}"


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.mark.slow
def test_two_processes_agree_with_one(tmp_path):
    spec = tf.write_spec(tmp_path, TRAINING)
    one, two = tmp_path / "one", tmp_path / "two"
    single = train(spec, str(one), options=tf.options())
    double = train(spec, str(two), options=tf.options(nproc=2))
    info = json.load(open(two / "run.json"))
    assert double.epochs_run == 2 and info["nproc"] == 2
    each = max(1, (os.cpu_count() or 1) // 2)  # each process's share of the cores, as it trained
    assert info["threads"] == each and double.threads == each
    # each step averages the two halves' gradients: the same update as one process, up to rounding
    a, _ = load_checkpoint(str(one))
    b, _ = load_checkpoint(str(two))
    for key in (k for k in a if k.startswith("model.")):
        np.testing.assert_allclose(a[key].numpy(), b[key].numpy(), atol=1e-4, err_msg=key)
    for split in ("val", "test"):
        assert double.best[split]["accuracy"] == pytest.approx(single.best[split]["accuracy"], abs=1 / 64)
        assert double.best[split]["loss"] == pytest.approx(single.best[split]["loss"], rel=1e-3)
    rows = [json.loads(line) for line in open(two / "metrics.jsonl")]
    assert [r["epoch"] for r in rows] == [1, 2]
    assert rows[-1]["train"]["loss"] == pytest.approx(
        json.loads(open(one / "metrics.jsonl").readlines()[-1])["train"]["loss"], rel=1e-3)
    assert resume(str(two), tf.options()).best == double.best  # finished: nothing to do


@pytest.mark.slow
def test_a_failing_process_reports_its_diagnostic(tmp_path):
    from specc.diagnostics import SpeccError

    spec = tf.write_spec(tmp_path, "epochs: 1\nbatch_size: 16\noptimizer: {sgd: {lr: 1.0e+30}}", network="logits")
    with pytest.raises(SpeccError) as exc:
        train(spec, str(tmp_path / "run"), options=tf.options(nproc=2))
    assert "E102" in str(exc.value) and "diverged" in str(exc.value)
