"""docs/tutorial.md is run as written, in an empty directory: its files are written, its edits applied,
its commands run, and every output it shows is compared with what the command printed.

The tutorial marks its blocks with HTML comments (invisible when rendered) on the line before the fence:

    <!-- file: NAME -->         the block is the content of NAME
    <!-- edit: NAME -->         a ```diff block: its `-` lines (with its ` ` context lines) become its `+` lines
    <!-- run -->                a ```sh block, run with `bash -e`; `<!-- run, exit: 1 -->` expects status 1
    <!-- output -->             a ```text block: what the run before it printed (stdout and stderr);
                                runs of spaces compare equal, a line `...` stands for any number of lines,
                                and `...` inside a line for any text
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass

import pytest

from conftest import ROOT

TUTORIAL = os.path.join(ROOT, "docs", "tutorial.md")
MARKER = re.compile(r"^<!--\s*(file|edit|run|output)\s*(?::\s*(\S+))?\s*(?:,\s*exit:\s*(\d+))?\s*-->$")


@dataclass
class Step:
    kind: str  # file | edit | run | output
    body: str
    line: int  # of the fence, for failure messages
    name: str | None = None
    exit: int = 0


def parse_tutorial(text: str) -> list[Step]:
    steps, marker, lines = [], None, text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i].strip()
        if line.startswith("```"):
            lang, start = line[3:].strip(), i
            end = next(j for j in range(i + 1, len(lines)) if lines[j].strip() == "```")
            body = "\n".join(lines[i + 1:end]) + "\n"
            if lang == "sh" and (marker is None or marker.group(1) != "run"):
                raise AssertionError(f"tutorial.md:{start + 1}: a ```sh block without `<!-- run -->`: "
                                     "every command in the tutorial is run by this test")
            if marker is not None:
                kind, name, status = marker.groups()
                steps.append(Step(kind, body, start + 1, name, int(status or 0)))
            marker, i = None, end + 1
            continue
        if line:
            marker = MARKER.match(line)
        i += 1
    return steps


def output_pattern(shown: str) -> re.Pattern:
    parts = []
    for line in shown.splitlines():
        line = _squeeze(line)
        if line == "...":
            parts.append(r"(?:[^\n]*\n)*?")
        else:
            parts.append(re.escape(line).replace(re.escape("..."), ".*?") + r"\n")
    return re.compile("".join(parts))


def _squeeze(line: str) -> str:
    return re.sub(r"[ \t]+", " ", line.rstrip())


def _normalized(output: str) -> str:
    return "".join(_squeeze(line) + "\n" for line in output.rstrip("\n").splitlines())


def _apply_edit(path: str, diff: str, where: str) -> None:
    old, new = [], []
    for line in diff.splitlines():
        if line.startswith("-"):
            old.append(line[1:])
        elif line.startswith("+"):
            new.append(line[1:])
        else:
            old.append(line[1:])
            new.append(line[1:])
    with open(path) as handle:
        text = handle.read()
    before, after = "\n".join(old) + "\n", "\n".join(new) + "\n"
    assert text.count(before) == 1, f"{where}: the edit's `-` lines are not in {os.path.basename(path)} once"
    with open(path, "w") as handle:
        handle.write(text.replace(before, after))


def _environment(bin_dir: str) -> dict:
    """`specc` and `python` run this checkout with this interpreter, outside CI mode."""
    for name, command in (("specc", f'exec "{sys.executable}" -m specc "$@"'),
                          ("python", f'exec "{sys.executable}" "$@"')):
        path = os.path.join(bin_dir, name)
        with open(path, "w") as handle:
            handle.write(f"#!/bin/sh\n{command}\n")
        os.chmod(path, 0o755)
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "SPECC_TRUSTED", "SPECC_DEBUG")}
    env["PATH"] = bin_dir + os.pathsep + env.get("PATH", "")
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    return env


def graph_command_exists(env: dict) -> bool:
    return subprocess.run(["specc", "graph", "--help"], env=env, capture_output=True, timeout=60).returncode == 0


@dataclass
class Walkthrough:
    work: str
    failure: str | None  # the first step that did not do what the tutorial says
    graph_ran: bool
    runs: int


@pytest.fixture(scope="module")
def walkthrough(tmp_path_factory) -> Walkthrough:
    with open(TUTORIAL) as handle:
        steps = parse_tutorial(handle.read())
    root = tmp_path_factory.mktemp("tutorial")
    work, bin_dir = root / "work", root / "bin"
    work.mkdir()
    bin_dir.mkdir()
    env = _environment(str(bin_dir))
    has_graph = graph_command_exists(env)
    last_output, skipped_run, runs, graph_ran = None, False, 0, False
    for step in steps:
        where = f"docs/tutorial.md:{step.line}"
        if step.kind == "file":
            (work / step.name).write_text(step.body)
        elif step.kind == "edit":
            _apply_edit(str(work / step.name), step.body, where)
        elif step.kind == "run":
            skipped_run = "specc graph" in step.body and not has_graph
            if skipped_run:
                continue
            done = subprocess.run(["bash", "-e", "-c", step.body], cwd=work, env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True, timeout=300)
            runs += 1
            graph_ran |= "specc graph" in step.body
            last_output = done.stdout
            if done.returncode != step.exit:
                return Walkthrough(str(work), f"{where}: exit status {done.returncode}, the tutorial says "
                                   f"{step.exit}; it printed:\n{done.stdout}", graph_ran, runs)
        elif step.kind == "output" and not skipped_run:
            if not output_pattern(step.body).fullmatch(_normalized(last_output or "")):
                return Walkthrough(str(work), f"{where}: the tutorial shows\n{step.body}\nbut the command "
                                   f"printed\n{last_output}", graph_ran, runs)
    return Walkthrough(str(work), None, graph_ran, runs)


def test_tutorial_runs_as_written(walkthrough):
    if walkthrough.failure:
        pytest.fail(walkthrough.failure, pytrace=False)
    assert walkthrough.runs >= 8
    assert os.path.isfile(os.path.join(walkthrough.work, "build", "model.onnx"))


def test_tutorial_graph_step(walkthrough):
    if not walkthrough.graph_ran:
        pytest.skip("`specc graph --help` fails: this version of specc has no graph command, so the "
                    "tutorial's graph step was not run")
    with open(os.path.join(walkthrough.work, "my_model.svg"), encoding="utf-8") as handle:
        assert "<svg" in handle.read(4096)


def test_markup_conventions():
    steps = parse_tutorial(
        "<!-- file: a.yaml -->\n```yaml\nx: 1\n```\n\ntext\n<!-- run, exit: 1 -->\n```sh\nfalse\n```\n"
        "<!-- output -->\n```text\nlayer  op\n...\nbuilt .../model.onnx (3 params)\n```\n")
    assert [(s.kind, s.name, s.exit) for s in steps] == [("file", "a.yaml", 0), ("run", None, 1),
                                                         ("output", None, 0)]
    pattern = output_pattern(steps[2].body)
    assert pattern.fullmatch(_normalized("layer    op\nrow 1\nrow 2\nbuilt /tmp/x/model.onnx (3 params)\n"))
    assert not pattern.fullmatch(_normalized("layer op\nbuilt /tmp/x/model.onnx (4 params)\n"))
    with pytest.raises(AssertionError, match="without `<!-- run -->`"):
        parse_tutorial("```sh\nrm -rf /\n```\n")
