"""`specc ops`: the op list, one op in full, JSON and Markdown, unknown names; no torch or onnx loaded."""

import json
import subprocess
import sys

from conftest import ROOT, run_cli
from specc.cli import main
from specc.reference import public_ops


def test_list_groups_every_op_with_its_doc(capsys):
    assert main(["ops"]) == 0
    out = capsys.readouterr().out
    layers, preprocess, augment = (out.index(t) for t in ("Layers", "Preprocess steps", "Augment steps"))
    assert layers < preprocess < augment
    for category, ops in public_ops().items():
        for name in ops:
            assert f"\n  {name} " in out, name
    conv_line = next(line for line in out.splitlines() if line.startswith("  conv "))
    assert "convolution" in conv_line
    rnn_line = next(line for line in out.splitlines() if line.startswith("  rnn "))
    assert "not lowered yet" not in rnn_line  # the mark is for ops without a lowering; rnn has both
    assert "cast" not in out.split() and "to_channels_first" not in out  # internal ops are not the language's


def test_one_op_in_full(capsys):
    assert main(["ops", "conv"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("conv (layer)")
    assert "may be written alone: conv: <filters>" in out
    assert "filters     integer; >= 1; required" in out
    assert "padding     choice, integer or list of 1 to 3 integers; valid, same; >= 0; each >= 0; default" in out
    assert "- conv: 16" in out and "# gives (N, 16, 30, 30)" in out


def test_a_name_in_both_step_lists_shows_both_unless_qualified(capsys):
    assert main(["ops", "scale"]) == 0
    out = capsys.readouterr().out
    assert "scale (preprocess step)" in out and "scale (augment step)" in out
    assert main(["ops", "augment.scale"]) == 0
    out = capsys.readouterr().out
    assert "scale (augment step)" in out and "preprocess step" not in out


def test_unknown_name_exits_1_with_did_you_mean():
    done = run_cli("ops", "desne")
    assert done.returncode == 1
    assert "specc ops: error: no op or step named `desne`" in done.stderr
    assert "hint: did you mean `dense`?" in done.stderr
    assert done.stdout == ""
    far = run_cli("ops", "zzzzzz")
    assert far.returncode == 1 and "`specc ops` lists every op and step" in far.stderr


def test_json_is_machine_readable(capsys):
    assert main(["ops", "--format", "json"]) == 0
    entries = json.loads(capsys.readouterr().out)
    assert {(e["category"], e["name"]) for e in entries} == \
        {(c, n) for c, ops in public_ops().items() for n in ops}
    conv = next(e for e in entries if e["name"] == "conv")
    assert conv["primary"] == "filters" and conv["lowered"] is True
    assert conv["arity"] == {"min": 1, "max": 1}
    filters = conv["arguments"][0]
    assert filters["name"] == "filters" and filters["required"] and filters["primary"]
    assert filters["schema"]["anyOf"][0] == {"type": "integer", "minimum": 1}
    kernel = next(a for a in conv["arguments"] if a["name"] == "kernel")
    assert kernel["default"] == 3 and not kernel["required"]
    assert conv["example"]["forms"][0] == {"kind": "shorthand", "yaml": "- conv: 16",
                                           "output_shape": ["N", 16, 30, 30]}
    add = next(e for e in entries if e["name"] == "add")
    assert add["arity"] == {"min": 2, "max": None}
    assert main(["ops", "dense", "--format", "json"]) == 0
    assert [e["name"] for e in json.loads(capsys.readouterr().out)] == ["dense"]


def test_markdown_of_one_op_and_of_all(capsys):
    assert main(["ops", "maxpool", "--format", "markdown"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("### `maxpool`") and "| **`size`** |" in out and "```yaml" in out
    assert main(["ops", "--format", "markdown"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("# specc language reference") and "## training" in out and "## build" in out


def test_ops_loads_neither_torch_nor_onnx():
    code = ("import sys\n"
            "from specc.cli import main\n"
            "for argv in (['ops'], ['ops', 'conv'], ['ops', '--format', 'json'], ['ops', '--format', 'markdown']):\n"
            "    assert main(argv) == 0\n"
            "heavy = sorted(m for m in sys.modules if m.split('.')[0] in "
            "('torch', 'onnx', 'onnxruntime', 'matplotlib'))\n"
            "assert not heavy, heavy\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
