"""Regenerate the golden outputs of the invalid-spec corpus.

    python tests/invalid/update_golden.py            # every case not listed in KNOWN_BAD
    python tests/invalid/update_golden.py NAME ...   # only these cases

Runs `python -m specc validate --format text tests/invalid/<name>.yaml` from the
repository root (so paths in the output are relative) and writes stdout+stderr to
tests/invalid/<name>.expected. Cases listed in KNOWN_BAD (tests/test_invalid_corpus.py)
are skipped: their current output is wrong and must not be blessed. Review every
changed .expected file by eye (`git diff tests/invalid`) before committing it.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent


def known_bad() -> dict:
    """KNOWN_BAD from tests/test_invalid_corpus.py, read without importing the test module."""
    tree = ast.parse((ROOT / "tests" / "test_invalid_corpus.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "KNOWN_BAD" for t in node.targets):
            return ast.literal_eval(node.value)
    raise SystemExit("KNOWN_BAD not found in tests/test_invalid_corpus.py")


def run_cli(name: str) -> tuple[int, str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("CI", None)
    env.pop("SPECC_TRUSTED", None)
    proc = subprocess.run(
        [sys.executable, "-m", "specc", "validate", "--format", "text", f"tests/invalid/{name}.yaml"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120,
    )
    return proc.returncode, proc.stdout


def main(argv: list[str]) -> int:
    bad = known_bad()
    names = argv or sorted(p.stem for p in HERE.glob("*.yaml"))
    for name in names:
        if name in bad:
            print(f"skip  {name}: KNOWN_BAD ({bad[name]})")
            continue
        rc, out = run_cli(name)
        target = HERE / f"{name}.expected"
        old = target.read_text() if target.exists() else None
        target.write_text(out)
        state = "same " if old == out else ("new  " if old is None else "CHANGED")
        warn = "" if rc == 1 else f"   <-- exit code {rc}, expected 1"
        print(f"{state} {name}{warn}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
