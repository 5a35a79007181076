"""What a new user met on a first day with specc, each fixed and kept fixed.

The YAML depth limit whatever the PyYAML build, build errors at the line that asks
for the build, every section's mistakes in one run, `predict --output` saving every
output where it says, input-file errors without a made-up line, `normalize` with one
number, docs and hints that say what exists, YAML syntax hints, float64 inputs, and
`dense` on an image. (Golden cases for the validate output are in tests/invalid/.)
"""

from __future__ import annotations

import ast
import re
import textwrap
import zipfile
from pathlib import Path

import numpy as np
import pytest
import yaml

from specc.build import build
from specc.cli import main
from specc.compiler import check_spec, compile_spec
from specc.diagnostics import Diagnostic, Span, SpeccError, format_diagnostics
from specc.limits import DEFAULT_LIMITS
from specc.parser import yaml_loader

ROOT = Path(__file__).resolve().parent.parent


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return str(path)


def codes_and_lines(diags) -> list:
    return [(d.code, d.span.line) for d in diags]


# ---------------------------------------------------------------- 1. depth limit, whatever the PyYAML build

DEEP_FLOW = "specc: 1\nname: deep\ninputs:\n  x: {shape: [4]}\nnetwork:\n  - dense: 4\ndescription: " \
            + "[" * 100_000 + "]" * 100_000 + "\n"


class _Libyaml026Loader(yaml_loader._NoImplicitPureLoader):
    """Behaves as libyaml 0.2.6 (PyYAML 6.0.4) does: its scanner gives up on deep flow nesting while
    scanning ahead, before the parser has delivered the levels our own check counts (here at 100
    levels instead of 1000, to keep the test fast)."""

    def fetch_flow_collection_start(self, token_class):
        if self.flow_level >= 100:
            raise yaml.scanner.ScannerError("while increasing flow level", self.get_mark(),
                                            "exceeded maximum nesting depth", self.get_mark())
        super().fetch_flow_collection_start(token_class)


def _load_error(text: str) -> Diagnostic:
    with pytest.raises(SpeccError) as caught:
        yaml_loader.load_yaml_text(text, "deep.yaml", DEFAULT_LIMITS)
    (diag,) = caught.value.diagnostics
    return diag


def test_deep_flow_nesting_is_the_depth_limit(monkeypatch):
    expected = _load_error(DEEP_FLOW)
    assert (expected.code, expected.span.line, expected.span.column) == ("E003", 7, 77)
    assert "deeper than 64" in expected.message
    monkeypatch.setattr(yaml_loader, "_NoImplicitLoader", _Libyaml026Loader)
    got = _load_error(DEEP_FLOW)
    assert got == expected  # the same diagnostic, not "E001 exceeded maximum nesting depth"


def test_other_syntax_errors_are_not_retried(monkeypatch):
    monkeypatch.setattr(yaml_loader, "_NoImplicitLoader", _Libyaml026Loader)
    diag = _load_error("specc: 1\nname: [unclosed\n")
    assert diag.code == "E001"


# ---------------------------------------------------------------- 2. build errors at the build line

BUILD_SPEC = """
specc: 1
name: targets
inputs:
  image: {shape: [1, 8, 8]}
network:
  - flatten
  - dense: 10
build:
  opset: 17
  precision: PRECISION
  targets: [TARGET]
"""


def test_build_errors_point_at_the_line_that_asks(tmp_path):
    from specc.build import check_targets

    spec = compile_spec(write(tmp_path, "s.yaml", BUILD_SPEC.replace("TARGET", "onnx").replace("PRECISION", "fp32")),
                        DEFAULT_LIMITS).spec
    with pytest.raises(SpeccError) as caught:  # a precision this version does not build
        check_targets({**spec.build, "precision": "fp8"}, lambda key: spec.span_of("build", key))
    (diag,) = caught.value.diagnostics
    assert (diag.code, diag.span.line, diag.span.column) == ("E099", 10, 14)  # `precision:`, not the network
    assert "issue" not in diag.hint and "for now" not in diag.hint


def test_test_time_augmentation_is_built_not_dropped(tmp_path):
    """`build.tta` is compiled into the model: a model built without the views it asks for would answer
    other than the spec says. tests/test_tta.py checks what the views compute."""
    import onnx

    text = (BUILD_SPEC.replace("TARGET", "onnx").replace("PRECISION", "fp32")
            + "  tta: {transforms: [{flip: {horizontal: true}}]}\n")
    path = write(tmp_path, "s.yaml", text)
    result = build(path, str(tmp_path / "out"), limits=DEFAULT_LIMITS)
    assert result.manifest["tta"] == {"transforms": ["flip"], "views": 2, "combine": "mean"}
    nodes = onnx.load(result.model_path).graph.node
    assert [n.name for n in nodes if n.op_type == "Slice"] == ["view_1.tta_view"]
    assert sum(n.op_type == "Gemm" for n in nodes) == 2 and nodes[-1].op_type == "Mean"


def test_span_of_finds_values_keys_and_files(tmp_path):
    write(tmp_path, "base.yaml", BUILD_SPEC.replace("TARGET", "onnx").replace("PRECISION", "fp32"))
    derived = write(tmp_path, "derived.yaml", """
        specc: 1
        extends: base.yaml
        name: derived
        training:
          epochs: 3
        """)
    spec = compile_spec(derived, DEFAULT_LIMITS).spec
    assert spec.span_of("build", "targets") == Span(str(tmp_path / "base.yaml"), 11, 12)  # from the base
    assert spec.span_of("build", "targets", 0).column == 13                           # a list item
    assert spec.span_of("training", "epochs") == Span(derived, 5, 11)
    assert spec.span_of("training", "seed") == Span(derived, 4, 1)   # not written: the section's key
    assert spec.span_of("outputs").line == 1                          # no such section: the top


# ---------------------------------------------------------------- 3. every section's mistakes together

def test_independent_mistakes_in_three_sections_are_reported_together(tmp_path):
    spec = write(tmp_path, "s.yaml", """
        specc: 1
        name: three
        inputs:
          image: {shape: [1, 28, 28]}
        network:
          - conv: {filters: 8, kernel: 31}
          - desne: 10
        training:
          epoch: 3
        """)
    assert codes_and_lines(check_spec(spec, DEFAULT_LIMITS)) == [("E060", 6), ("E020", 7), ("E010", 9)]


def test_what_depends_on_a_failed_input_is_not_checked(tmp_path):
    # The network reads an input that could not be read: checking it would only report consequences,
    # but the independent `build` mistake is still reported.
    spec = write(tmp_path, "s.yaml", """
        specc: 1
        name: failed_input
        inputs:
          image: {shape: [1, 28, 28], dtype: float64}
        network:
          - flatten
          - dense: 10
            from: image
        build:
          opset: 5
        """)
    assert codes_and_lines(check_spec(spec, DEFAULT_LIMITS)) == [("E014", 4), ("E013", 10)]


def test_a_spec_for_another_format_version_is_not_elaborated(tmp_path):
    spec = write(tmp_path, "s.yaml", """
        specc: 2
        name: future
        inputs:
          image: {shape: [1, 28, 28]}
        network:
          - newop: 3
        """)
    assert codes_and_lines(check_spec(spec, DEFAULT_LIMITS)) == [("E070", 1)]


# ---------------------------------------------------------------- 4. predict --output and --input

TWO_OUTPUTS = """
specc: 1
name: two_outputs
inputs:
  x: {shape: [6]}
network:
  - dense: 4
  - softmax
outputs: {file: dense_1, probs: softmax_2}
"""


@pytest.fixture
def two_outputs(tmp_path):
    spec = write(tmp_path, "two.yaml", TWO_OUTPUTS)
    np.save(tmp_path / "x.npy", np.random.default_rng(0).standard_normal((3, 6)).astype(np.float32))
    return spec, str(tmp_path / "x.npy")


def test_predict_saves_every_output_to_the_npz_it_names(tmp_path, capsys, two_outputs):
    spec, x = two_outputs
    target = tmp_path / "y.npz"
    assert main(["predict", spec, "--input", x, "--output", str(target)]) == 0
    out = capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("y.")) == ["y.npz"]
    assert f"to {target}" in out and "`file` (3, 4)" in out and "`probs` (3, 4)" in out
    with np.load(target) as saved:
        assert sorted(saved.files) == ["file", "probs"]  # `file` is also numpy.savez's own parameter name
        logits, probs = saved["file"], saved["probs"]
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    np.testing.assert_allclose(probs, e / e.sum(axis=1, keepdims=True), rtol=1e-5)


def test_predict_npy_needs_exactly_one_output(tmp_path, capsys, two_outputs):
    spec, x = two_outputs
    assert main(["predict", spec, "--input", x, "--output", str(tmp_path / "y.npy")]) == 2
    err = capsys.readouterr().err
    assert "2 outputs (file, probs)" in err and f"--output {tmp_path / 'y'}.npz" in err
    assert not list(tmp_path.glob("y.*"))
    assert main(["predict", spec, "--input", x, "--output", str(tmp_path / "y.txt")]) == 2
    assert ".npz" in capsys.readouterr().err


def test_predict_single_output_npy_is_written_where_named(tmp_path, capsys):
    spec = write(tmp_path, "one.yaml", TWO_OUTPUTS.replace("outputs: {file: dense_1, probs: softmax_2}\n", ""))
    np.save(tmp_path / "x.npy", np.ones((2, 6), np.float32))
    assert main(["predict", spec, "--input", str(tmp_path / "x.npy"), "--output", str(tmp_path / "y.npy")]) == 0
    assert f"to {tmp_path / 'y.npy'}" in capsys.readouterr().out
    assert np.load(tmp_path / "y.npy").shape == (2, 4)


@pytest.mark.parametrize("option", ["--input", "--output"])
def test_predict_refuses_an_option_given_twice(capsys, option):
    argv = ["predict", "m.yaml", "--input", "a.npz", "--output", "y.npz", option, "b.npz"]
    with pytest.raises(SystemExit) as caught:
        main(argv)
    assert caught.value.code == 2
    assert f"argument {option}: given more than once" in capsys.readouterr().err


def test_input_file_errors_have_their_code_and_no_made_up_line(tmp_path, capsys, two_outputs):
    spec, _ = two_outputs
    np.savez(tmp_path / "x.npz", y=np.zeros((1, 6), np.float32))
    (tmp_path / "bad.npy").write_bytes(b"not an array")
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with zipfile.ZipFile(tmp_path / "bytes.npz", "w") as archive:
        archive.writestr("x.npy", b"not an array")
    cases = {str(tmp_path / "missing.npy"): "input file not found",
             str(tmp_path / "bad.npy"): "not a readable .npy/.npz array file (it does not begin as one: b'not an'",
             str(tmp_path / "objects.npy"): "not a readable .npy/.npz array file (it holds Python objects",
             str(tmp_path / "bytes.npz"): "not a readable .npy/.npz array file (its member x.npy is not a .npy",
             str(tmp_path / "x.npz"): "no array named x in the file"}
    for path, message in cases.items():
        assert main(["predict", spec, "--input", path]) == 1
        err = capsys.readouterr().err
        assert err.startswith(f"{path}: error[E081]: {message}"), err
    assert "| E081 |" in (ROOT / "docs" / "diagnostics.md").read_text()


def test_a_span_without_a_position_prints_the_path_alone():
    diag = Diagnostic("E081", "input file not found", Span.whole_file("x.npy"))
    assert format_diagnostics([diag], "text") == "x.npy: error[E081]: input file not found"
    assert format_diagnostics([diag], "github").startswith("::error file=x.npy,title=specc E081::")
    assert '"line": null' in format_diagnostics([diag], "json")
    assert str(Span("s.yaml")) == "s.yaml:1:1"  # spans of spec files keep their line and column


# ---------------------------------------------------------------- 5. normalize with one number, list grammar

def test_normalize_accepts_one_number_for_every_channel(tmp_path):
    import torch

    from specc.codegen.torch_module import to_torch
    from specc.codegen.weights import init_weights

    spec = write(tmp_path, "n.yaml", """
        specc: 1
        name: norm
        inputs:
          image: {shape: [3, 4, 4]}
        preprocess:
          - normalize: {mean: 0.5, std: [0.5, 0.25, 2.0]}
        network:
          - identity
        """)
    graph = compile_spec(spec, DEFAULT_LIMITS).graph
    x = np.random.default_rng(1).random((2, 3, 4, 4)).astype(np.float32)
    with torch.no_grad():
        (y,) = to_torch(graph, init_weights(graph))(torch.from_numpy(x)).values()
    std = np.array([0.5, 0.25, 2.0], np.float32).reshape(1, 3, 1, 1)
    np.testing.assert_allclose(y.numpy(), (x - 0.5) / std, rtol=1e-6)


def test_list_types_read_as_english():
    from specc.lang.argtypes import Float, Int, ListOf
    from specc.ops import STEPS

    assert ListOf(Float(0, min_open=True), 1).describe() == "a list of numbers > 0"
    assert ListOf(Int(1), 2, 2).describe() == "a list of 2 integers >= 1"
    assert STEPS["preprocess"]["normalize"].fields["std"].type.describe() == \
        "a number > 0 or a list of numbers > 0"


def test_readme_test_commands_use_declared_markers():
    readme = (ROOT / "README.md").read_text()
    pyproject = (ROOT / "pyproject.toml").read_text()
    declared = {m.split(":")[0] for m in re.findall(r'"(\w+: [^"]*)"', pyproject)}
    used = {m for line in readme.splitlines() if "pytest" in line
            for m in re.findall(r"[\s`]-m\s+['\"]?(?:not\s+)?(\w+)", line)} - {"pytest"}
    for marker in used:
        assert marker in declared, f"README uses `-m {marker}`, which pyproject.toml does not declare"
    if "-m slow" in readme:
        assert any("pytest.mark.slow" in p.read_text() for p in (ROOT / "tests").glob("test_*.py")
                   if p.name != Path(__file__).name), "README mentions `-m slow` but no test is marked slow"


# ---------------------------------------------------------------- 6. text that promises what does not exist

# Work items ("the TensorRT issue") and promises ("for now", "not supported yet") mean nothing to a user.
# (A "public issue" in SECURITY.md is the bug tracker's, and stays.)
PROMISES = re.compile(r"(?<!public )\bissues?\b|\bcomes? with (the|its)\b|not available yet|\bfor now\b|"
                      r"not supported yet", re.IGNORECASE)


def _user_texts():
    for folder, pattern in (("specs", "*.yaml"), ("docs", "*.md")):
        for path in sorted((ROOT / folder).glob(pattern)):
            yield path, path.read_text()
    for name in ("README.md", "SECURITY.md"):
        yield ROOT / name, (ROOT / name).read_text()
    for path in sorted((ROOT / "specc").rglob("*.py")):  # message and hint strings, not docstrings
        tree = ast.parse(path.read_text())
        docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                      if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef)) and node.body
                      and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
                yield path, node.value


def test_no_text_promises_what_this_version_does_not_have():
    found = [f"{path.relative_to(ROOT)}: {m.group(0)!r}" for path, text in _user_texts()
             for m in PROMISES.finditer(text)]
    assert not found, found


# ---------------------------------------------------------------- 7. dense on an image

def test_dense_on_an_image_is_valid_with_a_warning(tmp_path, capsys):
    spec = write(tmp_path, "d.yaml", """
        specc: 1
        name: dense_image
        inputs:
          image: {shape: [1, 8, 8]}
        network:
          - conv: {filters: 4, kernel: 3}
          - dense: 10
        """)
    assert main(["validate", spec]) == 0
    out = capsys.readouterr().out
    assert f"{spec}:7:5: warning[W002]: layer `dense_2` (dense) on a (N, 4, 6, 6) input" in out
    assert "(N, 4, 6, 10)" in out and "add `flatten` before it" in out and f"{spec}: ok" in out
    flat = write(tmp_path, "f.yaml", Path(spec).read_text().replace("  - dense: 10", "  - flatten\n  - dense: 10"))
    assert check_spec(flat, DEFAULT_LIMITS) == []
