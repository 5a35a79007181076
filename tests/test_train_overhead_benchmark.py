"""benchmarks/train_overhead.py runs both of its timing methods, and its two loops do the same arithmetic:
after the same epochs in the same order, specc's weights and the hand-written ones are bit-identical."""

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize("method", ["interleaved", "epochs"])
def test_the_benchmark_compares_like_with_like(method):
    done = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "train_overhead.py"), "--examples", "200",
                           "--rounds", "2", "--batch", "10", "--method", method],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    assert f"200 examples, batch 10, 20 steps per epoch, 1 thread(s), 2 rounds, {method}" in lines[0]
    assert any(line.startswith("ratio specc / hand-written: ") for line in lines)
    assert lines[-1] == "weights after 3 epochs each: bit-identical"
