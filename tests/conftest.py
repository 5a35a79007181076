import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SPECS = os.path.join(ROOT, "specs")
collect_ignore_glob = ["fuzz/*"]
# Every pass run in the tests verifies the IR after it, naming the pass that broke it.
os.environ.setdefault("SPECC_VERIFY_PASSES", "1")
# Every model a test builds goes through the onnx checker with full shape inference.
os.environ.setdefault("SPECC_CHECK_ONNX", "1")


@pytest.fixture(autouse=True)
def _not_ci(monkeypatch):
    """Tests choose CI mode explicitly (`--ci`); CI's own CI=true must not change what they check."""
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.delenv("SPECC_TRUSTED", raising=False)


def zoo_specs():
    return sorted(f for f in os.listdir(SPECS) if f.endswith(".yaml"))


def run_cli(*args, env=None, timeout=60):
    """Run `python -m specc` in a fresh interpreter (cold start, real exit code)."""
    import subprocess

    return subprocess.run([sys.executable, "-m", "specc", *args], capture_output=True, text=True, cwd=ROOT,
                          env=env, timeout=timeout)


@pytest.fixture
def one_thread():
    """Training tests pin torch to one thread: small models run faster so, and results do not depend
    on the machine's core count."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
