"""Regenerate the golden outputs of the hostile-spec corpus.

    python tests/hostile/update_golden.py            # every committed case not in KNOWN_PROBLEMS
    python tests/hostile/update_golden.py NAME ...   # only these cases

Runs each case exactly as tests/test_hostile.py does (a scratch copy of the case
and its setup, `python -m specc` under the audit hook, the time and memory
limits) and writes the normalized result (exit code, stdout, stderr; the
scratch directory shown as <TMP>) to tests/hostile/<name>.expected.

Cases listed in KNOWN_PROBLEMS (tests/test_hostile.py) are skipped: their
current output is wrong and must not be blessed. Review every changed
.expected file by eye (`git diff tests/hostile`) before committing it.
"""

from __future__ import annotations

import importlib.util
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent


def load_tests():
    sys.path.insert(0, str(ROOT))
    spec = importlib.util.spec_from_file_location("test_hostile", ROOT / "tests" / "test_hostile.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def main(argv: list[str]) -> int:
    t = load_tests()
    names = argv or [c.name for c in t.COMMITTED]
    status = 0
    for name in names:
        case = t.BY_NAME.get(name)
        if case is None or case.generated:
            print(f"error {name}: not a committed case")
            status = 1
            continue
        if name in t.KNOWN_PROBLEMS:
            print(f"skip  {name}: known problem ({t.KNOWN_PROBLEMS[name][1][:90]}...)")
            continue
        with tempfile.TemporaryDirectory(prefix=f"hostile-{name}-") as base:
            result = t.run_case(case, Path(base))
            text = t.normalize(result)
        target = HERE / f"{name}.expected"
        old = target.read_text(encoding="utf-8") if target.exists() else None
        target.write_text(text, encoding="utf-8")
        state = "same " if old == text else ("new  " if old is None else "CHANGED")
        want = 0 if case.ok else 1
        warn = "" if result.rc == want else f"   <-- exit code {result.rc}, expected {want}"
        print(f"{state} {name} ({result.seconds:.2f} s){warn}")
    return status


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
