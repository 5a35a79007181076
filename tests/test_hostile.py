"""Hostile specs: specc must be safe to run on a stranger's spec (SECURITY.md).

Every file in tests/hostile/*.yaml is an attack on one resource or trust
boundary (alias expansion, nesting, repeat counts, expression evaluation,
`extends` to devices, pipes, symlink loops, secrets and files outside the tree,
unsafe tags, code-execution canaries ...). Each is run through the real CLI in a
fresh interpreter, in a scratch copy of its directory, with

* a wall-clock limit (2 s for `validate`), enforced by killing the process;
* an address-space limit (RLIMIT_AS, 2 GiB) set in preexec_fn;
* an audit hook (tests/hostile/audit_run.py) that stops the process if it
  spawns a process, opens a socket, loads native code or opens a file for
  writing - `validate` does none of these, in CI mode or not;

and the test checks: the exit code (1, or 0 for a valid-but-huge spec), the
diagnostic code and line from the `# expect:` header, no traceback, no
"internal error", nothing listed under `# forbid:` in the output (secrets,
/etc/passwd lines), no `CANARY` file, and the golden output
tests/hostile/<name>.expected (written by tests/hostile/update_golden.py and
reviewed by eye).

Header lines (leading `#` comments; other comment lines describe the case):

    # expect: E003 line 9 "substring"   code(s) `E051|E090`, line(s) `20|25`, optional
    #                                   `in other.yaml`, optional message substring
    # expect: ok                        the spec is valid (exit 0)
    # args: --ci --allow-outside        extra CLI arguments
    # env: CI=true                      extra environment
    # stdin: text                       what is piped into the process
    # setup: mkfifo NAME | symlink NAME TARGET | write NAME TEXT(\\n escapes)
    #        | spec PATH (a valid base spec) | big NAME BYTES
    # forbid: text                      must not appear in the output
    # forbid-hint: text                 must not appear in the expected diagnostic's hint
    # reject: E031                      this code must not be reported
    # canary: NAME                      no file NAME may exist after the run
    # forbid-control-chars              no raw control characters in the output

Cases whose current output is wrong are listed in KNOWN_PROBLEMS: their checks
are strict xfails (they must flip when specc is fixed) and they have no golden
file (a wrong output is never blessed). Larger cases (a 2 MiB file, 10^5-deep
nesting, a 1 MB expression, a 40-file `extends` chain) are generated at test time.
"""

from __future__ import annotations

import codecs
import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from specc.limits import DEFAULT_LIMITS

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "tests" / "hostile"
AUDIT_RUN = CORPUS / "audit_run.py"

# The bound for validating any hostile spec, under the audit hook, interpreter start included. It was 2 s;
# on the 2-core machines CI now runs on, the heaviest valid cases (a file of 6,500 dense layers, 2,000
# misspelled `from`s each needing a hint) take 1.3-2.1 s of CPU, so 2 s made the suite flaky: 3 s.
VALIDATE_SECONDS = float(os.environ.get("SPECC_HOSTILE_SECONDS", "3.0"))
INSPECT_HUGE_SECONDS = 1.0       # inspect of a 10^13-parameter network, interpreter start included
MEMORY_LIMIT = 2 << 30           # RLIMIT_AS of every specc process
ENV_CANARY = "envcanary-SECRET-7f3a"  # set in the child's environment; /proc/self/environ must not leak it

_STUTTER = ("the not-a-spec message says the same thing twice: `` `extends` target X is not a valid spec file: "
            "`extends` target X is not a spec: it has no top-level `specc:` key`` (load_document raises the "
            "marker error inside the `try` whose `except` wraps E001/E003 in the `not a valid spec file:` prefix)")

# Problems found by this corpus. Each entry names the checks it breaks - "safe" (test_safe: time,
# exit code, crash, echo, control characters), "diagnostic" (test_diagnostic: code, line, message) and
# "json" (test_json_format) - which are strict xfails until specc is fixed; a case with an entry gets no
# golden file (a wrong output is never blessed). When one is fixed, its strict xfail fails as XPASS:
# remove the entry and run tests/hostile/update_golden.py NAME.
# (Times below are under the audit hook on a 2-core machine; `builtins.id` is an audited event, so
# code that calls id() per node pays for the hook.)
SAFE, DIAG, JSON = "safe", "diagnostic", "json"
EVERY = frozenset({SAFE, DIAG, JSON})
KNOWN_PROBLEMS = {}  # every problem found so far is fixed; add new ones here as strict xfails
# Known to take longer than the bound: killed after this many seconds instead of at the bound, so that
# their diagnostics can still be checked (test_safe fails on the time they took).
SLOW: dict = {}  # cases allowed more than the 2 s bound (none)


# ---------------------------------------------------------------- cases

EXPECT_RE = re.compile(r'^(?P<codes>E\d{3}(?:\|E\d{3})*) line (?P<lines>\d+(?:\|\d+)*)'
                       r'(?: in (?P<path>\S+))?(?: "(?P<message>[^"]*)")?')


@dataclass
class Case:
    name: str
    data: bytes | None = None              # the spec's bytes (None: `command` names its own paths)
    ok: bool = False                        # expect exit 0
    codes: tuple = ()
    lines: tuple = ()
    path: str | None = None                 # file the diagnostic is in (default: the case itself)
    message: str | None = None
    args: list = field(default_factory=list)
    env: dict = field(default_factory=dict)
    stdin: bytes | None = None
    setup: list = field(default_factory=list)
    forbid: list = field(default_factory=list)
    forbid_hint: list = field(default_factory=list)
    reject: list = field(default_factory=list)
    canaries: list = field(default_factory=lambda: ["CANARY"])
    no_control: bool = False
    command: list | None = None             # full argv after `specc` (default: validate <name>.yaml ...)
    make: object = None                     # generated cases: callable(directory) writing their files
    seconds: float = VALIDATE_SECONDS
    generated: bool = False

    @property
    def spec_file(self) -> str:
        return f"{self.name}.yaml"

    @property
    def argv(self) -> list:
        if self.command is not None:
            return list(self.command)
        return ["validate", self.spec_file, *self.args]


def _unescape(text: str) -> bytes:
    return codecs.escape_decode(text.encode("utf-8"))[0]


def parse_case(path: Path) -> Case:
    data = path.read_bytes()
    case = Case(path.stem, data)
    expect_seen = False
    for raw in data.split(b"\n"):
        if not raw.startswith(b"#"):
            break
        line = raw[1:].decode("latin-1").strip()
        if "expect:" in line and line.startswith(("A binary", "expect:")):  # binary_file keeps it mid-line
            line = line[line.index("expect:"):]
        key, _, value = line.partition(":")
        value = value.strip()
        if key == "expect":
            expect_seen = True
            if value == "ok":
                case.ok = True
                continue
            m = EXPECT_RE.match(value)
            assert m, f"{path.name}: malformed `# expect: {value}`"
            case.codes = tuple(m["codes"].split("|"))
            case.lines = tuple(int(n) for n in m["lines"].split("|"))
            case.path, case.message = m["path"], m["message"]
        elif key == "args":
            case.args = value.split()
        elif key == "env":
            k, _, v = value.partition("=")
            case.env[k] = v
        elif key == "stdin":
            case.stdin = _unescape(value)
        elif key == "setup":
            case.setup.append(value)
        elif key == "forbid":
            case.forbid.append(value)
        elif key == "forbid-hint":
            case.forbid_hint.append(value)
        elif key == "reject":
            case.reject.append(value)
        elif key == "canary":
            case.canaries.append(value)
        elif line == "forbid-control-chars":
            case.no_control = True
    assert expect_seen, f"{path.name} has no `# expect:` header"
    return case


COMMITTED = [parse_case(p) for p in sorted(CORPUS.glob("*.yaml"))]

# ---- generated at test time (too large to commit, or made of several files)

SKELETON = "specc: 1\nname: {name}\ninputs:\n  x: {{shape: [4]}}\nnetwork:\n  - dense: 4\n"


def _write(directory: Path, name: str, data: bytes | str) -> None:
    target = directory / name
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data.encode() if isinstance(data, str) else data)


def _gen_huge_file(d: Path) -> None:      # 2 MiB: twice max_file_bytes
    text = SKELETON.format(name="huge_file") + "description: |\n"
    text += ("  " + "x" * 78 + "\n") * ((2 << 20) // 81 + 1)
    _write(d, "gen_huge_file.yaml", text[: 2 << 20])


def _gen_deep_flow(d: Path) -> None:      # 10^5 nested flow sequences on line 7
    _write(d, "gen_deep_flow_100k.yaml", SKELETON.format(name="deep") + "description: " + "[" * 100_000 + "]" * 100_000 + "\n")


def _gen_deep_dashes(d: Path) -> None:    # 10^5 nested block sequences (`- - - ...`) on line 8
    _write(d, "gen_deep_dashes_100k.yaml", SKELETON.format(name="deep") + "description:\n  " + "- " * 100_000 + "x\n")


def _gen_deep_mapping(d: Path) -> None:   # 5*10^4 nested flow mappings (within max_file_bytes) `{a: {a: ...}}` on line 7
    _write(d, "gen_deep_flow_mapping_50k.yaml", SKELETON.format(name="deep") + "description: " + "{a: " * 50_000 + "1" + "}" * 50_000 + "\n")


def _gen_expr_200kb(d: Path) -> None:       # a 200 KB expression (within max_file_bytes)
    _write(d, "gen_expr_200kb.yaml", SKELETON.format(name="expr_200kb").replace("dense: 4", 'dense: "${' + "1+" * 100_000 + '1}"'))


def _gen_string_param_200kb(d: Path) -> None:  # a ~200 KB string param interpolated into a string
    _write(d, "gen_string_param_200kb.yaml", "specc: 1\nname: s\nparams:\n  s: \"" + "y" * 200_000 + "\"\n"
           "  t: \"${s}!\"\ninputs:\n  x: {shape: [4]}\nnetwork:\n  - dense: 4\n")


def _gen_near_limit_file(d: Path) -> None:  # just under max_file_bytes of dense layers
    text = "specc: 1\nname: near_limit\ninputs:\n  x: {shape: [4]}\nnetwork:\n"
    layer = "  - dense: {units: 4, activation: relu}\n"
    text += layer * ((DEFAULT_LIMITS.max_file_bytes - len(text)) // len(layer))
    _write(d, "gen_near_limit_file.yaml", text)


def _gen_many_nodes(d: Path) -> None:     # 125,000 scalars (over max_yaml_nodes), no alias, within max_file_bytes
    _write(d, "gen_many_nodes.yaml", SKELETON.format(name="many") + "description: [" + "1," * 124_999 + "1]\n")


def _gen_many_errors(name: str, count: int):  # `count` layers with a typo each (13 bytes a layer)
    return lambda d: _write(d, f"{name}.yaml", "specc: 1\nname: typos\ninputs:\n  x: {shape: [4]}\nnetwork:\n"
                            + "  - desne: 1\n" * count)


HINTS = 2000                               # mistakes (and names to compare them with) in the hint cases


def _gen_hint_from(d: Path) -> None:     # 2,000 layers, then 2,000 whose `from` names none of them (90 KB)
    _write(d, "gen_did_you_mean_from.yaml", "specc: 1\nname: hints\ninputs:\n  x: {shape: [4]}\nnetwork:\n"
           + "  - relu\n" * HINTS + "".join(f"  - relu: {{}}\n    from: relu_{i}x\n" for i in range(HINTS)))


def _gen_hint_best_match(d: Path) -> None:  # 1,000 layers, then one `from: relu_99x` (relu_99 exists)
    _write(d, "gen_did_you_mean_best_match.yaml", "specc: 1\nname: hints\ninputs:\n  x: {shape: [4]}\n"
           "network:\n" + "  - relu\n" * 1000 + "  - relu: {}\n    from: relu_99x\n")


def _gen_hint_blocks(d: Path) -> None:   # 2,000 blocks, then 2,000 uses of misspelled block names (93 KB)
    _write(d, "gen_did_you_mean_blocks.yaml", "specc: 1\nname: hints\ninputs:\n  x: {shape: [4]}\nblocks:\n"
           + "".join(f"  blk{i}:\n    network: [relu]\n" for i in range(HINTS)) + "network:\n"
           + "".join(f"  - blk{i}x: {{}}\n" for i in range(HINTS)))


def _gen_extends_chain(d: Path) -> None:  # c0 -> c1 -> ... -> c40 (max_extends_depth 16)
    for i in range(40):
        _write(d, f"c{i}.yaml", f"specc: 1\nname: c{i}\nextends: c{i + 1}.yaml\n")
    _write(d, "c40.yaml", SKELETON.format(name="c40"))
    shutil.copy(d / "c0.yaml", d / "gen_extends_chain_40.yaml")


def _gen_extends_cycle_long(d: Path) -> None:  # entry -> b -> c -> entry, all valid specs otherwise
    for me, base in (("gen_extends_cycle_3", "cyc_b"), ("cyc_b", "cyc_c"), ("cyc_c", "gen_extends_cycle_3")):
        _write(d, f"{me}.yaml", SKELETON.format(name="cyc") + f"extends: {base}.yaml\n")


def _gen_symlink_loop(d: Path) -> None:
    os.symlink("loop_b.yaml", d / "loop_a.yaml")
    os.symlink("loop_a.yaml", d / "loop_b.yaml")


def _gen_fifo(d: Path) -> None:
    os.mkfifo(d / "pipe.yaml")


def _gen_directory_of_traps(d: Path) -> None:  # `validate DIR` walking a FIFO, a loop and a device link
    trap = d / "traps"
    trap.mkdir()
    os.mkfifo(trap / "a_pipe.yaml")
    os.symlink("loop_b.yaml", trap / "loop_a.yaml")
    os.symlink("loop_a.yaml", trap / "loop_b.yaml")
    os.symlink("/dev/zero", trap / "zero.yaml")
    os.symlink("/etc/passwd", trap / "passwd.yaml")
    os.symlink(".", trap / "self_dir")          # a directory loop os.walk must not follow
    _write(trap, "valid.yaml", SKELETON.format(name="valid"))


def _gen_dir_symlink_out(d: Path) -> None:  # a *.yaml in the tree that is a symlink to a config file outside it
    _write(d.parent / "outside", "hosts.yml", "name: Hunter2-SECRET-name\noauth_token: hunter2-SECRET-token\n")
    (d / "specs").mkdir()
    os.symlink("../../outside/hosts.yml", d / "specs" / "token.yaml")


GENERATED = [
    Case("gen_huge_file", codes=("E003",), lines=(1,), message="bytes", make=_gen_huge_file, generated=True),
    Case("gen_deep_flow_100k", codes=("E003",), lines=(7,), message="64", make=_gen_deep_flow, generated=True),
    Case("gen_deep_dashes_100k", codes=("E003",), lines=(8,), message="64", make=_gen_deep_dashes, generated=True),
    Case("gen_deep_flow_mapping_50k", codes=("E003",), lines=(7,), message="64", make=_gen_deep_mapping,
         generated=True),
    Case("gen_expr_200kb", codes=("E032",), lines=(6,), message="too long", make=_gen_expr_200kb, generated=True),
    Case("gen_string_param_200kb", codes=("E032",), lines=(5,), message="string too long", make=_gen_string_param_200kb,
         generated=True),
    Case("gen_near_limit_file", make=_gen_near_limit_file, generated=True),
    Case("gen_many_nodes", codes=("E003",), lines=(7,), message="nodes", make=_gen_many_nodes, generated=True),
    Case("gen_many_errors", codes=("E020",), lines=(6,), message="desne",
         make=_gen_many_errors("gen_many_errors", 5000), generated=True),
    Case("gen_many_errors_19k", codes=("E020",), lines=(6,), message="desne",
         make=_gen_many_errors("gen_many_errors_19k", 19_000), generated=True),
    Case("gen_did_you_mean_from", codes=("E023",), lines=(HINTS + 7,), message="relu_0x", make=_gen_hint_from,
         generated=True),
    Case("gen_did_you_mean_blocks", codes=("E020",), lines=(2 * HINTS + 7,), message="blk0x",
         make=_gen_hint_blocks, generated=True),
    Case("gen_did_you_mean_best_match", codes=("E023",), lines=(1007,), message="did you mean `relu_99`?",
         make=_gen_hint_best_match, generated=True),
    Case("gen_extends_chain_40", codes=("E042",), lines=(3,), path="c16.yaml", message="16",
         make=_gen_extends_chain, generated=True),
    Case("gen_extends_cycle_3", codes=("E041",), lines=(7,), path="cyc_c.yaml", message="cycle",
         make=_gen_extends_cycle_long, generated=True),
    Case("gen_validate_symlink_loop", codes=("E040",), lines=(1,), path="loop_a.yaml", message="symbolic link",
         make=_gen_symlink_loop, command=["validate", "loop_a.yaml"], generated=True),
    Case("gen_validate_fifo", codes=("E003",), lines=(1,), path="pipe.yaml", message="not a regular file",
         make=_gen_fifo, command=["validate", "pipe.yaml"], generated=True),
    Case("gen_validate_dev_zero", codes=("E003",), lines=(1,), path="/dev/zero", message="not a regular file",
         command=["validate", "/dev/zero"], generated=True),
    Case("gen_validate_dev_stdin", codes=("E003",), lines=(1,), path="/dev/stdin", message="not a regular file",
         command=["validate", "/dev/stdin"], stdin=b"password: hunter2-SECRET\n", forbid=["hunter2"],
         generated=True),
    Case("gen_validate_etc_passwd", codes=("E001",), lines=(1,), path="/etc/passwd", message="not a spec",
         command=["validate", "/etc/passwd"], forbid=["root:"], generated=True),
    Case("gen_validate_secret_mapping", codes=("E001", "E011"), lines=(1,), path="secret.yaml", message="specc",
         make=lambda d: _write(d, "secret.yaml", "password: hunter2-SECRET\napi_token: hunter2-TOKEN\n"),
         command=["validate", "secret.yaml"], forbid=["hunter2"], generated=True),
    Case("gen_validate_dir_symlink_out_ci", codes=("E001", "E040"), lines=(1,), path="specs/token.yaml",
         make=_gen_dir_symlink_out, command=["validate", "specs", "--ci"], forbid=["unter2"], generated=True),
    Case("gen_validate_directory_of_traps", codes=("E003",), lines=(1,), path="traps/a_pipe.yaml",
         make=_gen_directory_of_traps, command=["validate", "traps", "--ci"], forbid=["root:"], generated=True),
]
# The near-limit file may be refused (E003/E090) or accepted: only time, memory and no crash are checked.
_ANY_OUTCOME = {"gen_near_limit_file"}

CASES = COMMITTED + GENERATED
BY_NAME = {c.name: c for c in CASES}


# ---------------------------------------------------------------- running

@dataclass
class Result:
    rc: int | None          # None: killed at the time limit
    stdout: str
    stderr: str
    seconds: float
    workdir: Path
    created: list           # canary files found after the run

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def _limit_resources() -> None:  # preexec_fn: runs in the child before exec
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    os.setsid()  # its own process group, so a timeout kills everything it started


def child_env(extra: dict | None = None) -> dict:
    # The canary first: /proc/self/environ then starts the same way wherever the tests run.
    env = {"SPECC_TEST_CANARY": ENV_CANARY}
    env.update((k, v) for k, v in os.environ.items()
               if k not in ("CI", "SPECC_TRUSTED", "SPECC_DEBUG", "PYTHONPATH", "GITHUB_ACTIONS"))
    env.update(PYTHONPATH=str(ROOT), PYTHONDONTWRITEBYTECODE="1", PYTHONIOENCODING="utf-8",
               HOME="/nonexistent-home")
    env.update(extra or {})
    return env


def run_specc(argv: list, cwd: Path, env: dict | None = None, stdin: bytes | None = None,
              timeout: float = VALIDATE_SECONDS, audit: bool = True) -> tuple[int | None, str, str, float]:
    """`python -m specc ARGV` (through the audit hook unless `audit` is false) with the time and memory limits."""
    start = time.monotonic()
    launcher = [str(AUDIT_RUN)] if audit else ["-m", "specc"]
    proc = subprocess.Popen([sys.executable, *launcher, *argv], cwd=cwd, env=child_env(env),
                            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=_limit_resources)
    try:
        out, err = proc.communicate(stdin, timeout=timeout)
        rc = proc.returncode
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        rc = None
    seconds = time.monotonic() - start
    return rc, out.decode("utf-8", "replace"), err.decode("utf-8", "replace"), seconds


def prepare(case: Case, base: Path) -> Path:
    """A scratch tree: base/tree holds the case (and what its setup makes); base/outside is beside it."""
    tree = base / "tree"
    tree.mkdir(parents=True)
    (base / "outside").mkdir()
    if case.data is not None:
        (tree / case.spec_file).write_bytes(case.data)
    if case.make is not None:
        case.make(tree)
    for step in case.setup:
        verb, _, rest = step.partition(" ")
        if verb == "mkfifo":
            os.mkfifo(tree / rest)
        elif verb == "symlink":
            name, target = rest.split()
            os.symlink(target, tree / name)
        elif verb == "write":
            name, _, text = rest.partition(" ")
            _write(tree, name, _unescape(text))
        elif verb == "spec":
            _write(tree, rest, SKELETON.format(name="base"))
        elif verb == "big":
            name, size = rest.split()
            _write(tree, name, b"# big\n" + b"x" * (int(size) - 6))
        else:
            raise AssertionError(f"{case.name}: unknown setup step {step!r}")
    return tree


def run_case(case: Case, base: Path) -> Result:
    tree = prepare(case, base)
    kill = SLOW.get(case.name, case.seconds)
    rc, out, err, seconds = run_specc(case.argv, tree, case.env, case.stdin, kill)
    created = [str(p) for name in case.canaries for p in base.rglob(name)]
    return Result(rc, out, err, seconds, tree, created)


_RESULTS: dict = {}


@pytest.fixture(scope="session")
def results(tmp_path_factory):
    """Each case runs once per session; the checks below share its result."""

    def get(case: Case) -> Result:
        if case.name not in _RESULTS:
            _RESULTS[case.name] = run_case(case, tmp_path_factory.mktemp(case.name))
        return _RESULTS[case.name]

    return get


# ---------------------------------------------------------------- output parsing

DIAG_RE = re.compile(r"^(?P<path>.+?):(?P<line>\d+):(?P<col>\d+): (?P<sev>error|warning)"
                     r"\[(?P<code>E\d{3})\]: (?P<message>.+)$")


def parse_text(output: str) -> list[dict]:
    diags = []
    for line in output.splitlines():
        m = DIAG_RE.match(line)
        if m:
            diags.append({"path": m["path"], "line": int(m["line"]), "column": int(m["col"]),
                          "code": m["code"], "message": m["message"], "hint": None})
        elif line.startswith("  hint: ") and diags:
            diags[-1]["hint"] = line[len("  hint: "):]
    return diags


def normalize(result: Result, base: Path | None = None) -> str:
    """The golden form of a run: exit code, then stdout and stderr, scratch paths replaced."""
    text = f"exit: {result.rc}\n--- stdout\n{result.stdout}--- stderr\n{result.stderr}"
    for path in {str(result.workdir.parent), os.path.realpath(result.workdir.parent)}:
        text = text.replace(path, "<TMP>")
    return text


CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\x9b]")


def known(cases, aspect: str):
    """Parameters for `cases`, strict xfail where KNOWN_PROBLEMS says this aspect is broken."""
    params = []
    for c in cases:
        aspects, reason = KNOWN_PROBLEMS.get(c.name, ((), ""))
        marks = [pytest.mark.xfail(reason=reason, strict=True)] if aspect in aspects else []
        params.append(pytest.param(c, id=c.name, marks=marks))
    return params


# ---------------------------------------------------------------- the corpus itself

def test_corpus_is_complete():
    assert len(COMMITTED) >= 40
    names = {c.name for c in CASES}
    assert not set(KNOWN_PROBLEMS) - names, "KNOWN_PROBLEMS names a case that does not exist"
    for case in COMMITTED:
        assert case.ok or case.codes, case.name
        text = case.data.split(b"\n", 1)[0]
        assert text.startswith(b"# "), f"{case.name}.yaml: the first line must say what the case attacks"
    for golden in CORPUS.glob("*.expected"):
        assert golden.stem in names, f"{golden.name} has no case"
        assert golden.stem not in KNOWN_PROBLEMS, f"{golden.name}: a known-wrong output must not be blessed"
    # every class the issue lists has at least one case
    for prefix in ("billion_laughs", "deep_nesting_flow", "deep_nesting_block", "gen_huge_file", "repeat_billion",
                   "layers_repeat_product", "expr_power_tower", "expr_pow_100000", "expr_parens_10k",
                   "gen_expr_200kb", "expr_string_repeat", "gen_extends_chain_40", "extends_self_cycle",
                   "extends_etc_passwd", "extends_dev_zero", "extends_dev_stdin", "extends_fifo",
                   "extends_symlink_loop", "extends_outside_ci", "binary_file", "non_utf8", "extends_etc_shadow_ci",
                   "extends_secret", "huge_dense_1e13", "unsafe_tag_apply", "expr_canary_import"):
        assert prefix in names, prefix


# ---------------------------------------------------------------- per case

@pytest.mark.parametrize("case", known(CASES, SAFE))
def test_safe(case, results):
    """Bounded time and memory, the right exit code, no crash, no echo, no code execution."""
    r = results(case)
    assert r.rc is not None, f"{case.name}: killed after {case.seconds} s (hang or too slow)\n{r.output[-2000:]}"
    assert "AUDIT VIOLATION" not in r.stderr, r.stderr
    assert "Traceback" not in r.output, r.output[-3000:]
    assert "internal error" not in r.output, r.output[-3000:]
    assert "MemoryError" not in r.output and r.rc != -signal.SIGKILL, r.output[-3000:]
    if case.name not in _ANY_OUTCOME:
        assert r.rc == (0 if case.ok else 1), f"{case.name}: exit {r.rc}\n{r.output[-3000:]}"
    else:
        assert r.rc in (0, 1), r.output[-3000:]
    assert r.seconds < case.seconds, f"{case.name}: {r.seconds:.2f} s"
    assert not r.created, f"{case.name}: code execution: {r.created} exists"
    for text in case.forbid + [ENV_CANARY]:
        assert text not in r.output, f"{case.name}: output contains {text!r}\n{r.output[-3000:]}"
    assert len(r.output) < 20_000, f"{case.name}: {len(r.output)} characters of output"
    if case.no_control:
        assert not CONTROL.search(r.output), f"{case.name}: raw control characters in {r.output!r}"


@pytest.mark.parametrize("case", known([c for c in CASES if c.name not in _ANY_OUTCOME], DIAG))
def test_diagnostic(case, results):
    """The expected code at the offending line (in the right file), with a clear message."""
    r = results(case)
    assert r.rc is not None, f"{case.name}: killed after {case.seconds} s"
    assert "internal error" not in r.output and "Traceback" not in r.output, r.output[-3000:]
    diags = parse_text(r.output)
    if case.ok:
        assert r.rc == 0 and not diags, r.output
        return
    assert r.rc == 1, r.output[-3000:]
    where = case.path or case.spec_file
    matching = [d for d in diags if d["code"] in case.codes and d["line"] in case.lines
                and (d["path"] == where or os.path.normpath(d["path"]) == os.path.normpath(where))]
    assert matching, (f"{case.name}: want {'|'.join(case.codes)} at {where}:{'|'.join(map(str, case.lines))}, "
                      f"got\n{r.output[-3000:]}")
    d = matching[0]
    assert len(d["message"]) >= 15, f"{case.name}: message too short to be clear: {d['message']!r}"
    repeated = _repeated_phrase(d["message"])
    assert repeated is None, f"{case.name}: the message starts with {repeated!r} twice: {d['message']!r}"
    for text in case.forbid_hint:
        assert text not in (d["hint"] or ""), f"{case.name}: the hint should not say {text!r}: {d['hint']!r}"
    if case.message:
        text = d["message"] + " " + (d["hint"] or "")
        assert case.message.lower() in text.lower(), f"{case.name}: {case.message!r} not in {text!r}"
    for code in case.reject:
        assert code not in {x["code"] for x in diags}, f"{case.name}: {code} reported\n{r.output}"
    for text in case.forbid:
        assert text not in r.output


def _repeated_phrase(message: str, size: int = 20) -> str | None:
    """The opening of a message when the message says it again (a stutter such as `X is not a valid spec
    file: X is not a spec`), or None. (Only the opening: a cycle `a -> b -> a` names a file twice.)"""
    opening = message[:size]
    return opening if len(message) >= 2 * size and message.find(opening, size) != -1 else None


@pytest.mark.parametrize("case", [pytest.param(c, id=c.name) for c in COMMITTED])
def test_golden(case, results):
    """The whole output, as reviewed by eye (tests/hostile/update_golden.py writes it)."""
    if case.name in KNOWN_PROBLEMS:
        pytest.skip(f"known problem, output not blessed: {KNOWN_PROBLEMS[case.name][1]}")
    golden = CORPUS / f"{case.name}.expected"
    assert golden.exists(), f"no {golden.name}: run python tests/hostile/update_golden.py {case.name}, review it"
    assert normalize(results(case)) == golden.read_text(encoding="utf-8")


@pytest.mark.parametrize("case", known([c for c in CASES if not c.ok and c.name not in _ANY_OUTCOME
                                         and c.name not in SLOW], JSON))
def test_json_format(case, tmp_path):
    """`--format json` (what CI reads): valid JSON, same code and line, exit 1, within the bound.
    (The known-slow cases are left out: their diagnostics are checked in text form, and JSON adds nothing.)"""
    tree = prepare(case, tmp_path)
    kill = SLOW.get(case.name, case.seconds)
    rc, out, err, seconds = run_specc(case.argv + ["--format", "json"], tree, case.env, case.stdin, kill)
    assert rc == 1, out + err
    assert "internal error" not in err and "Traceback" not in err, err
    diags = json.loads(out)
    where = case.path or case.spec_file
    assert any(d["code"] in case.codes and d["line"] in case.lines and os.path.normpath(d["path"]) ==
               os.path.normpath(where) for d in diags), out
    for text in case.forbid + [ENV_CANARY]:
        assert text not in out + err


def test_diagnostics_are_printable():
    """What a diagnostic quotes is escaped: control characters, a bidi override, a lone surrogate. (libyaml
    refuses a `"\\ud800"` escape, so surrogate_in_name/_op no longer reach this from a spec; this keeps it
    covered.)"""
    from specc.diagnostics import Diagnostic, Span, format_diagnostics

    hostile = "a\x1b[2J\x1b]0;pwned\x07\u202e\ud800\udfff\x00\r\x9b"
    diags = [Diagnostic("E013", f"`name` `{hostile}` is not a valid name", Span(f"{hostile}.yaml", 5, 7),
                        f"not `{hostile}`")]
    for fmt in ("text", "github", "json"):
        text = format_diagnostics(diags, fmt)
        text.encode("utf-8")                              # strict: no lone surrogate left
        assert not CONTROL.search(text) and "\u202e" not in text, (fmt, text)
    assert "\\x1b[2J" in format_diagnostics(diags, "text") and "\\ud800" in format_diagnostics(diags, "text")


# ---------------------------------------------------------------- sizes computed, never allocated

def test_inspect_1e13_parameters_in_milliseconds(tmp_path):
    case = BY_NAME["huge_dense_1e13"]
    (tmp_path / "huge.yaml").write_bytes(case.data)
    rc, out, err, seconds = run_specc(["inspect", "huge.yaml", "--format", "json"], tmp_path,
                                      timeout=10 * INSPECT_HUGE_SECONDS)
    assert rc == 0, out + err
    info = json.loads(out)
    assert info["total_params"] == 10**7 * 10**6 + 10**7          # weights + biases
    assert info["total_macs"] == 10**7 * 10**6
    assert info["weight_bytes"] == 4 * info["total_params"]       # 40 TB, never allocated
    assert seconds < INSPECT_HUGE_SECONDS, f"inspect took {seconds:.2f} s"


def test_inspect_huge_conv(tmp_path):
    case = BY_NAME["huge_conv"]
    (tmp_path / "conv.yaml").write_bytes(case.data)
    rc, out, err, seconds = run_specc(["inspect", "conv.yaml", "--format", "json"], tmp_path, timeout=10)
    assert rc == 0, out + err
    info = json.loads(out)
    conv2 = 10**6 * 10**6 * 9 + 10**6
    assert info["total_params"] == (10**6 * 3 * 9 + 10**6) + conv2 + (10**6 * 10**6 + 10**6)
    assert info["layers"][1]["output_shape"] == ["N", 10**6, 10**5, 10**5]
    assert seconds < INSPECT_HUGE_SECONDS * 2


def _has_module(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


@pytest.mark.skipif(not _has_module("specc.build"), reason="specc build is not implemented in this tree")
def test_build_refuses_over_budget_before_allocating(tmp_path):
    (tmp_path / "huge.yaml").write_bytes(BY_NAME["huge_dense_1e13"].data)
    rc, out, err, seconds = run_specc(["build", "huge.yaml", "-o", "out", "--memory-budget", "1G"], tmp_path,
                                      timeout=10, audit=False)  # build loads torch/onnx (ctypes)
    assert rc == 1, out + err
    assert "E091" in out + err and "internal error" not in out + err and "MemoryError" not in out + err
    assert not (tmp_path / "out" / "model.onnx").exists()


@pytest.mark.skipif(not _has_module("specc.predict"), reason="specc predict is not implemented in this tree")
def test_predict_refuses_over_budget_before_allocating(tmp_path):
    import numpy as np

    (tmp_path / "huge.yaml").write_bytes(BY_NAME["huge_dense_1e13"].data)
    np.save(tmp_path / "x.npy", np.zeros((1, 10**6), np.float32))  # the right input, 4 MB
    rc, out, err, seconds = run_specc(["predict", "huge.yaml", "--input", "x.npy", "--backend", "torch",
                                       "--memory-budget", "1G"], tmp_path, timeout=30,
                                      audit=False)
    assert rc == 1, out + err
    assert "E091" in out + err and "internal error" not in out + err and "MemoryError" not in out + err


# ---------------------------------------------------------------- CI mode

def test_ci_mode_writes_nothing_and_stays_offline(tmp_path):
    """validate --ci over the whole committed corpus: the audit hook sees no write, socket or process."""
    work = tmp_path / "corpus"
    shutil.copytree(CORPUS, work, ignore=shutil.ignore_patterns("*.expected", "*.py", "README*",
                                                               *(f"{n}.yaml" for n in KNOWN_PROBLEMS)))
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    rc, out, err, seconds = run_specc(["validate", "corpus", "--ci", "--format", "json"], tmp_path, timeout=60)
    assert rc == 1, err
    assert "AUDIT VIOLATION" not in err and "internal error" not in err and "Traceback" not in err, err
    json.loads(out)
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before, "validate wrote files"


def test_ci_env_is_ci_mode(tmp_path):
    _write(tmp_path, "outside/base.yaml", SKELETON.format(name="base"))
    _write(tmp_path, "tree/spec.yaml", "specc: 1\nname: s\nextends: ../outside/base.yaml\n")
    for env, args, want in (({}, [], 0), ({"CI": "true"}, [], 1), ({"CI": "TRUE"}, [], 1), ({}, ["--ci"], 1),
                            ({"CI": "true"}, ["--allow-outside"], 0), ({}, ["--ci", "--allow-outside"], 0)):
        rc, out, err, _ = run_specc(["validate", "spec.yaml", *args], tmp_path / "tree", env)
        assert rc == want, (env, args, out + err)
        if want:
            assert "E040" in out + err and "--allow-outside" in out + err


@pytest.mark.parametrize("how", ["--trusted", "SPECC_TRUSTED=1"])
def test_trusted_validates_a_plain_spec(tmp_path, how):
    _write(tmp_path, "spec.yaml", SKELETON.format(name="t"))
    args, env = (["--trusted"], {}) if how == "--trusted" else ([], {"SPECC_TRUSTED": "1"})
    rc, out, err, _ = run_specc(["validate", "spec.yaml", *args], tmp_path, env)
    assert rc == 0, out + err


def test_trusted_lifts_the_limits(tmp_path):
    """The documented override: --trusted accepts what the default limits refuse (a repeat of 20,000)."""
    text = SKELETON.format(name="t").replace("  - dense: 4\n", "  - relu: {}\n    repeat: 20000\n")
    _write(tmp_path, "spec.yaml", text)
    rc, out, err, _ = run_specc(["validate", "spec.yaml"], tmp_path)
    assert rc == 1 and "--trusted" in out + err, out + err
    rc, out, err, seconds = run_specc(["validate", "spec.yaml", "--trusted"], tmp_path, timeout=30)
    assert rc == 0, out + err


def test_github_format_escapes_file_names(tmp_path):
    """A pull request can add a spec whose *name* is hostile; `validate DIR --format github` must not obey it."""
    tree = tmp_path / "specs"
    tree.mkdir()
    _write(tree, "x\n::warning file=pwn.yaml::INJECTED.yaml", "specc: 1\nname: a\n")   # invalid: no inputs
    rc, out, err, _ = run_specc(["validate", "specs", "--format", "github"], tmp_path)
    assert rc == 1 and "internal error" not in err, out + err
    lines = out.splitlines()
    assert lines and all(line.startswith("::error ") for line in lines), out


# ---------------------------------------------------------------- property-based fuzzing (in process)

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

# SPECC_FUZZ_EXAMPLES=20000 for a long hunt; the default keeps this file around a minute.
EXAMPLES = int(os.environ.get("SPECC_FUZZ_EXAMPLES", "300"))
FUZZ = settings(max_examples=EXAMPLES, deadline=2000, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.filter_too_much, HealthCheck.function_scoped_fixture])

# Fragments a hostile spec is made of; hypothesis strings them together.
FRAGMENTS = [
    "specc: 1\n", "name: h\n", "inputs:\n  x: {shape: [4]}\n", "network:\n", "  - dense: 4\n", "  - relu\n",
    "    repeat: ", "10000\n", "1000000000\n", "extends: ", "base.yaml\n", "/dev/zero\n", "/etc/passwd\n",
    "../../etc/shadow\n", "params: {a: 9, s: xx}\n", "${", "}", "a**a**a", "9**9**9", "(" * 70, ")" * 70,
    "s*1000", "min(", "max(", "round(", "&x ", "*x", "[*x, *x, *x, *x]", "[" * 70, "]" * 70, "{a: ", "}",
    "!!python/object/apply:os.system [x]", "!tag ", "? ", ": ", "- ", "\n", "  ", "\t", "\"", "'", "\\x00",
    "\x00", "\xe9", "\ufeff", "---\n", "...\n", "%YAML 1.2\n", "%TAG !a! tag:yaml.org,2002:\n", "blocks:\n",
    "  b:\n    network:\n      - b: {}\n", "  c:\n    params: {u: null}\n    network:\n      - dense: ${u}\n",
    "  - b: {}\n", "  - c: {u: 3}\n", "outputs: {y: dense_1}\n", "training: {epochs: 1}\n",
    "build: {targets: [onnx]}\n", "description: ", "|\n", ">-\n", "1e999", "-0x1f", ".nan", "~", "null",
    "9" * 200, "x" * 300, "\\e[2J", "\\u00e9", "\\ud800", "\\udfff", "\\a", "\u202e",
]
SPEC_TEXT = st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=8)), max_size=40).map("".join)


@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("hostile_fuzz")
    _write(d, "base.yaml", SKELETON.format(name="base"))
    return d


def _timed(fn, seconds: float):
    """fn(), asserting it takes under `seconds`; a slow first call is timed again, so that a GC pause or a
    busy machine is not reported as a slow input (a slow input is slow twice)."""
    for attempt in (1, 2):
        start = time.monotonic()
        result = fn()
        elapsed = time.monotonic() - start
        if elapsed < seconds:
            return result
    raise AssertionError(f"took {elapsed:.2f} s twice (bound {seconds} s)")


def _check_in_process(directory: Path, data: bytes) -> list:
    from specc.compiler import check_spec
    from specc.diagnostics import format_diagnostics
    from specc.limits import DEFAULT_LIMITS

    path = directory / "fuzz.yaml"
    path.write_bytes(data)
    diags = _timed(lambda: check_spec(str(path), DEFAULT_LIMITS.strict()), VALIDATE_SECONDS)
    assert isinstance(diags, list)
    for d in diags:
        assert re.fullmatch(r"[EW]0\d\d", d.code) and d.span.line >= 1 and d.span.column >= 1 and d.message, d
    for fmt in ("text", "github", "json"):
        format_diagnostics(diags, fmt).encode("utf-8")   # printing must not fail
    assert not CONTROL.search(format_diagnostics(diags, "text")), diags   # nor reach the terminal raw
    return diags


@FUZZ
@given(text=SPEC_TEXT)
def test_fuzz_spec_text(fuzz_dir, text):
    _check_in_process(fuzz_dir, text.encode("utf-8", "surrogatepass"))


@FUZZ
@given(data=st.binary(max_size=2000))
def test_fuzz_spec_bytes(fuzz_dir, data):
    _check_in_process(fuzz_dir, data)


EXPR_TOKENS = st.sampled_from(["1", "9", "99999999999", "0.5", "1e308", "a", "s", "__import__", "(", ")", "+", "-",
                               "*", "/", "//", "%", "**", ",", "min(", "max(", "round(", " ", "'x'", ".", "[", "]"])


@FUZZ
@given(parts=st.lists(EXPR_TOKENS, max_size=60))
def test_fuzz_expressions(parts):
    """Any expression: a value or an ExprError (E030-E032), quickly; never another exception."""
    from specc.parser.expr import ExprError, ExprLimits, substitute

    text = "".join(parts)

    def run():
        try:
            return substitute("${" + text + "}", {"a": 9, "s": "x" * 100}, ExprLimits())
        except ExprError as exc:
            assert exc.code in ("E030", "E031", "E032")
            return None

    value = _timed(run, 0.5)
    if value is not None:
        assert isinstance(value, (int, float, str, bool))
        if isinstance(value, int) and not isinstance(value, bool):
            assert value.bit_length() <= 128


@FUZZ
@given(units=st.integers(1, 2**127), inputs=st.integers(1, 2**64), repeat=st.integers(1, 10_000),
       op=st.sampled_from(["dense", "embedding", "lstm", "conv", "multihead_attention", "maxpool", "reshape",
                           "positional_encoding", "batchnorm", "layernorm"]))
def test_fuzz_huge_sizes(fuzz_dir, units, inputs, repeat, op):
    """Huge numbers in any op are computed symbolically: diagnostics or sizes, fast, never allocated."""
    args = {"dense": f"{{units: {units}}}", "embedding": f"{{vocab: {units}, dim: {inputs}}}",
            "lstm": f"{{hidden: {units}}}", "conv": f"{{filters: {units}, kernel: {inputs}}}",
            "multihead_attention": f"{{heads: {repeat}, dim: {units}}}", "maxpool": str(units),
            "reshape": f"[{units}, -1]", "positional_encoding": f"{{max_len: {units}}}", "batchnorm": "{}",
            "layernorm": "{}"}[op]
    text = (f"specc: 1\nname: h\ninputs:\n  x: {{shape: [{inputs}, {inputs}, {inputs}]}}\nnetwork:\n"
            f"  - {op}: {args}\n    repeat: {min(repeat, 50)}\n")
    diags = _check_in_process(fuzz_dir, text.encode())
    if not diags:
        from specc.compiler import compile_spec
        from specc.inspection import inspect_json
        from specc.limits import DEFAULT_LIMITS

        info = inspect_json(compile_spec(str(fuzz_dir / "fuzz.yaml"), DEFAULT_LIMITS).graph)
        assert info["total_params"] >= 0
