"""The invalid-spec corpus: every file in tests/invalid/*.yaml is a spec with one
kind of mistake, and `specc validate` must refuse it with exit code 1, the right
code at the right line, and exactly the text in tests/invalid/<name>.expected.

Each corpus file starts with a header comment:

    # <what mistake this file shows>
    # expect: E023 line 12                      one line per expected diagnostic
    # expect: E041 line 3 in _support/b.yaml    ... located in another file
    # expect-hint: indent                       some hint must contain this text
    # forbid: give 1 or 1 values                the output must not contain this

Files under tests/invalid/_support/ are helpers (e.g. the other half of an
`extends` cycle), never entry points. Golden files are written by
tests/invalid/update_golden.py and reviewed by eye; a case whose current output is
wrong goes into KNOWN_BAD (strict xfail, no golden file) until specc is fixed.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from specc.cli import main

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "tests" / "invalid"
REL = "tests/invalid"

CASES = sorted(p.stem for p in CORPUS.glob("*.yaml"))  # not recursive: _support/ is skipped

# Compiler bugs found by this corpus: the case fails today and must flip to passing
# when the bug is fixed (then remove it here and run tests/invalid/update_golden.py).
KNOWN_BAD = {}  # type: dict[str, str]

# Files that cannot carry a header comment.
HEADERLESS = {"empty_zero_bytes": ["E001 line 1"]}

# A handful run as a real subprocess (`python -m specc validate ...`).
SUBPROCESS_CASES = ["unknown_op_typo", "expr_injection_import", "unsafe_tag_python_apply",
                    "extends_cycle", "several_mistakes", "yaml_unclosed_list"]

DIAG_RE = re.compile(r"^(?P<path>.+?):(?P<line>\d+):(?P<col>\d+): (?P<sev>error|warning)"
                     r"\[(?P<code>E\d{3})\]: (?P<message>.+)$")
EXPECT_RE = re.compile(r"^(?P<code>E\d{3}) line (?P<line>\d+)(?: in (?P<path>\S+))?$")


@dataclass
class Header:
    expects: list = field(default_factory=list)   # [(path, line, code)]
    hints: list = field(default_factory=list)
    forbid: list = field(default_factory=list)
    description: str = ""


def _expect(name: str, text: str) -> tuple:
    m = EXPECT_RE.match(text.strip())
    assert m, f"{name}: malformed `# expect: {text}` (want `E023 line 12 [in other.yaml]`)"
    path = f"{REL}/{name}.yaml"
    if m["path"]:
        path = os.path.normpath(f"{REL}/{m['path']}").replace(os.sep, "/")
    return path, int(m["line"]), m["code"]


def parse_header(name: str) -> Header:
    header = Header()
    if name in HEADERLESS:
        header.expects = [_expect(name, e) for e in HEADERLESS[name]]
        return header
    text = (CORPUS / f"{name}.yaml").read_bytes().decode("utf-8", errors="replace")
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        body = line[1:].strip()
        key, _, value = body.partition(":")
        if key == "expect":
            header.expects.append(_expect(name, value))
        elif key == "expect-hint":
            header.hints.append(value.strip())
        elif key == "forbid":
            header.forbid.append(value.strip())
        elif not header.description:
            header.description = body
    return header


def parse_text(output: str) -> list[dict]:
    """Diagnostics from `--format text` output: path, line, column, code, message, hint."""
    diags = []
    for line in output.splitlines():
        m = DIAG_RE.match(line)
        if m:
            diags.append({"path": m["path"], "line": int(m["line"]), "column": int(m["col"]),
                          "code": m["code"], "message": m["message"], "hint": None})
        elif line.startswith("  hint: ") and diags:
            diags[-1]["hint"] = line[len("  hint: "):]
    return diags


@pytest.fixture
def cli(capsys, monkeypatch):
    """Run `specc <args>` in-process from the repository root; returns (exit code, stdout + stderr)."""
    monkeypatch.chdir(ROOT)
    for var in ("CI", "SPECC_TRUSTED", "SPECC_DEBUG"):
        monkeypatch.delenv(var, raising=False)

    def run(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        rc = main(list(args))
        out, err = capsys.readouterr()
        return rc, out, err

    return run


def spec_path(name: str) -> str:
    return f"{REL}/{name}.yaml"


def xfail_known_bad(names):
    return [pytest.param(n, marks=pytest.mark.xfail(reason=KNOWN_BAD[n], strict=True, raises=AssertionError))
            if n in KNOWN_BAD else n for n in names]


def assert_no_crash(output: str) -> None:
    assert "Traceback" not in output
    assert "internal error" not in output


# ---------------------------------------------------------------- the corpus itself

def test_corpus_is_complete():
    assert len(CASES) >= 40, CASES
    for name in CASES:
        header = parse_header(name)
        assert header.expects, f"{name}.yaml has no `# expect:` line"
        if name not in HEADERLESS:
            assert header.description, f"{name}.yaml has no header comment saying which mistake it shows"
    assert not set(KNOWN_BAD) - set(CASES), "KNOWN_BAD names a case that does not exist"
    assert not set(HEADERLESS) - set(CASES)
    assert all(n in CASES for n in SUBPROCESS_CASES)
    # the helper files exist and are not entry points
    assert (CORPUS / "_support" / "cycle_b.yaml").is_file()
    assert "cycle_b" not in CASES


def test_every_golden_file_has_a_case():
    for golden in CORPUS.glob("*.expected"):
        assert golden.stem in CASES, f"{golden.name} has no {golden.stem}.yaml"
        assert golden.stem not in KNOWN_BAD, f"{golden.name}: a KNOWN_BAD case must not have a blessed golden file"


# ---------------------------------------------------------------- per case

@pytest.mark.parametrize("name", CASES)
def test_never_crashes(cli, name):
    rc, out, err = cli("validate", spec_path(name))
    assert rc in (0, 1), out + err
    assert_no_crash(out + err)


@pytest.mark.parametrize("name", xfail_known_bad(CASES))
def test_diagnostics(cli, name):
    header = parse_header(name)
    rc, out, err = cli("validate", spec_path(name))
    output = out + err
    assert_no_crash(output)
    assert rc == 1, f"{name}: exit code {rc}, expected 1 (invalid spec)\n{output}"
    diags = parse_text(output)
    got = sorted((d["path"], d["line"], d["code"]) for d in diags)
    assert got == sorted(header.expects), f"{name}: diagnostics differ from `# expect:`\n{output}"
    for d in diags:
        assert d["column"] >= 1
        assert len(d["message"]) >= 10, f"{name}: message too short to be clear: {d['message']!r}"
    for text in header.hints:
        hints = [d["hint"] or "" for d in diags]
        assert any(text.lower() in h.lower() for h in hints), f"{name}: no hint mentions {text!r}\n{output}"
    for text in header.forbid:
        assert text not in output, f"{name}: output contains {text!r}\n{output}"


@pytest.mark.parametrize("name", [n for n in CASES if n not in KNOWN_BAD])
def test_golden(cli, name):
    golden = CORPUS / f"{name}.expected"
    assert golden.exists(), f"no {golden.name}: run python tests/invalid/update_golden.py {name} and review it"
    rc, out, err = cli("validate", "--format", "text", spec_path(name))
    assert rc == 1
    assert out + err == golden.read_text()


@pytest.mark.parametrize("name", SUBPROCESS_CASES)
def test_subprocess(name):
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    for var in ("CI", "SPECC_TRUSTED", "SPECC_DEBUG"):
        env.pop(var, None)
    proc = subprocess.run([sys.executable, "-m", "specc", "validate", spec_path(name)], cwd=ROOT, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120)
    assert_no_crash(proc.stdout)
    assert "pwned" not in proc.stdout.replace("echo pwned", "")   # nothing was executed
    assert proc.returncode == 1, proc.stdout
    if name not in KNOWN_BAD:
        assert proc.stdout == (CORPUS / f"{name}.expected").read_text()


JSON_KEYS = {"path", "line", "column", "severity", "code", "message", "hint"}


@pytest.mark.parametrize("name", CASES)
def test_json_format(cli, name):
    rc, out, err = cli("validate", "--format", "json", spec_path(name))
    assert_no_crash(out + err)
    diags = json.loads(out)
    assert isinstance(diags, list)
    for d in diags:
        assert set(d) == JSON_KEYS, d
        assert isinstance(d["line"], int) and d["line"] >= 1
        assert isinstance(d["column"], int) and d["column"] >= 1
        assert d["severity"] == "error"
        assert re.fullmatch(r"E\d{3}", d["code"])
        assert isinstance(d["message"], str) and d["message"]
        assert d["hint"] is None or (isinstance(d["hint"], str) and d["hint"])
        assert isinstance(d["path"], str) and d["path"].endswith((".yaml", ".yml"))
    assert rc == (1 if diags else 0)
    # the same diagnostics as the text format
    _, text_out, text_err = cli("validate", "--format", "text", spec_path(name))
    text = parse_text(text_out + text_err)
    assert [(d["path"], d["line"], d["column"], d["code"], d["message"], d["hint"]) for d in diags] == \
           [(d["path"], d["line"], d["column"], d["code"], d["message"], d["hint"]) for d in text]
    if name not in KNOWN_BAD:
        assert sorted((d["path"], d["line"], d["code"]) for d in diags) == sorted(parse_header(name).expects)


@pytest.mark.parametrize("name", CASES)
def test_github_format(cli, name):
    rc, out, err = cli("validate", "--format", "github", spec_path(name))
    assert_no_crash(out + err)
    lines = [line for line in out.splitlines() if line.strip()]
    _, json_out, _ = cli("validate", "--format", "json", spec_path(name))
    diags = json.loads(json_out)
    assert len(lines) == len(diags)
    for line, d in zip(lines, diags):
        assert line.startswith("::error file="), line
        assert f"file={d['path']},line={d['line']},col={d['column']}," in line
        assert f"[{d['code']}]" in line
    if name not in KNOWN_BAD:
        assert rc == 1 and lines


# ---------------------------------------------------------------- specific promises

def test_several_mistakes_are_all_reported(cli):
    rc, out, err = cli("validate", spec_path("several_mistakes"))
    diags = parse_text(out + err)
    assert rc == 1
    assert len(diags) == 5, out + err
    assert [d["code"] for d in diags] == ["E014", "E020", "E013", "E023", "E023"]
    assert len({d["line"] for d in diags}) == 5


@pytest.mark.parametrize("name", ["expr_injection_import", "expr_injection_open", "expr_injection_dunder",
                                  "unsafe_tag_python_apply", "unsafe_tag_python_name"])
def test_injection_is_refused_not_run(cli, name):
    rc, out, err = cli("validate", spec_path(name))
    assert rc == 1
    assert "pwned" not in (out + err).replace("echo pwned", "")
    assert "root:" not in out + err      # /etc/passwd was not read into a message


def test_validate_whole_corpus_directory(cli):
    rc, out, err = cli("validate", REL)
    assert rc == 1
    assert_no_crash(out + err)
    assert re.search(r"\d+ of \d+ specs valid", err)
