"""The generated language reference: current on disk, complete, and every example in it validates."""

import os

import pytest

from conftest import ROOT
from specc.compiler import compile_spec
from specc.diagnostics import SpeccError
from specc.limits import DEFAULT_LIMITS
from specc.op_examples import ExampleForm, example_for, example_spec
from specc.reference import REGENERATE, public_ops, reference_markdown

REFERENCE = os.path.join(ROOT, "docs", "reference.md")
ALL_OPS = [op for ops in public_ops().values() for op in ops.values()]


def test_reference_on_disk_is_current():
    with open(REFERENCE, encoding="utf-8") as f:
        on_disk = f.read()
    assert on_disk == reference_markdown(), (
        f"docs/reference.md is out of date with the op registry; regenerate it with `{REGENERATE}`")


def test_every_public_op_is_documented_and_no_internal_one():
    from specc.ops import REGISTRY, STEPS

    text = reference_markdown()
    for op in ALL_OPS:
        assert f"### `{op.name}`" in text
    internal = [op for op in STEPS.get("internal", {}).values()] + \
               [op for op in REGISTRY.values() if getattr(op, "internal", False)]
    assert internal, "the registry has internal ops (the entry's cast and transpose at least)"
    for op in internal:
        if not any(p.name == op.name for p in ALL_OPS):
            assert f"### `{op.name}`" not in text


def _example_cases():
    for op in ALL_OPS:
        for form in example_for(op).forms:
            yield pytest.param(op, form, id=f"{op.category}.{op.name}.{form.kind}")


@pytest.mark.parametrize("op,form", list(_example_cases()))  # a list: pytest deprecates generators here
def test_every_example_validates_and_has_the_shape_shown(op, form, tmp_path):
    path = tmp_path / "example.yaml"
    path.write_text(example_spec(op, form, example_for(op)))
    try:
        graph = compile_spec(str(path), DEFAULT_LIMITS).graph
    except SpeccError as exc:
        pytest.fail(f"the reference's example of `{op.name}` does not validate:\n{path.read_text()}\n"
                    f"{exc}\nfix its value in specc/op_examples.py")
    if op.category == "augment":
        return  # training only: nothing in the graph
    node = next(n for n in graph.nodes if n.op == op.name and n.category == op.category)
    assert tuple(node.output.type.shape) == form.output_shape


def test_a_wrong_example_is_caught(tmp_path):
    """The check above can fail: an out-of-range value in an example is refused by the compiler."""
    from specc.ops import STEPS

    rotate = STEPS["augment"]["rotate"]
    broken = ExampleForm("shorthand", ("- rotate: 400",), None)
    path = tmp_path / "example.yaml"
    path.write_text(example_spec(rotate, broken, example_for(rotate)))
    with pytest.raises(SpeccError):
        compile_spec(str(path), DEFAULT_LIMITS)


def test_arguments_are_described_in_words():
    text = reference_markdown()
    assert ("| **`filters`** | integer | required | >= 1 | output channels |" in text)
    assert "| `kernel` | integer or list of 1 to 3 integers | `3` | >= 1; each >= 1 |" in text
    assert "| `padding` | choice, integer or list of 1 to 3 integers | `valid` | `valid`, `same`; >= 0; each >= 0 |" in text
    assert "| `training.optimizer` | choice | `sgd` |" in text
    assert "| `sgd` | `lr` (0.01), `momentum` (0.0), `nesterov` (false) |" in text
    assert "| `build.opset` | integer | `17` | >= 13 and <= 23 | ONNX opset |" in text


def test_examples_show_the_shorthand_and_the_mapping_form():
    text = reference_markdown()
    assert "- conv: 16" in text and "- conv: {filters: 16, kernel: 3, padding: same, activation: relu}" in text
    assert "# gives (N, 16, 30, 30)" in text
    assert "- scale: ${1/255}" in text  # an expression is shown as people write it
    assert "- add: {}" in text and "  from: [a, b]" in text
