"""`specc inspect` on real networks: rows grouped by block use, --expand, fused activations, Markdown."""

import json
import os

import pytest

from conftest import SPECS
from specc.cli import main
from specc.compiler import compile_spec
from specc.inspection import inspect_json, inspect_markdown, inspect_text, table_rows
from specc.limits import DEFAULT_LIMITS

NESTED = """\
specc: 1
name: nested
inputs:
  image: {shape: [3, 16, 16]}
blocks:
  conv_bn:
    params: {c: null}
    network:
      - conv: {filters: "${c}", kernel: 3, padding: same, bias: false}
      - batchnorm
  stage:
    params: {c: null}
    network:
      - conv_bn: {c: "${c}"}
      - relu
network:
  - {name: s, stage: {c: 8}, repeat: 2}
  - {name: c, conv: {filters: 8, kernel: 3, padding: same, activation: relu}, repeat: 2}
  - flatten
  - dense: 10
"""


def compiled(name):
    return compile_spec(os.path.join(SPECS, name), DEFAULT_LIMITS)


@pytest.fixture
def nested(tmp_path):
    path = tmp_path / "nested.yaml"
    path.write_text(NESTED)
    return compile_spec(str(path), DEFAULT_LIMITS)


def table(text: str) -> list[list[str]]:
    """The rows of the text table, split on runs of two or more spaces."""
    import re

    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("layer "))
    end = lines.index("", start)
    return [re.split(r"\s{2,}", line.strip()) for line in lines[start + 2:end]]


def test_one_row_per_block_use_with_its_totals():
    c = compiled("resnet_small.yaml")
    rows = {r[0]: r for r in table(inspect_text(c.graph, c.spec))}
    assert rows["stage1.1"] == ["stage1.1", "residual (7 layers)", "(N, 16, 32, 32)", "4,672", "4,800,512"]
    assert rows["down2"][1:3] == ["projection (2 layers)", "(N, 32, 16, 16)"]
    assert rows["stage3.2"][2] == "(N, 64, 8, 8)"  # its last layer's output
    assert "stage1.1.conv_1" not in rows and "stem" in rows and "dense_10" in rows
    info = inspect_json(c.graph)
    uses = [r for r in table_rows(c.graph, c.spec) if r.is_use]
    assert len(uses) == 8
    # The grouped rows still add up to the network's totals.
    assert sum(r.params for r in table_rows(c.graph, c.spec)) == info["total_params"] == 198_298
    assert sum(r.macs for r in table_rows(c.graph, c.spec)) == info["total_macs"]


def test_expand_lists_the_layers_indented_under_their_use():
    c = compiled("resnet_small.yaml")
    lines = inspect_text(c.graph, c.spec, expand=True).splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("stage1.1 "))
    inner = lines[at + 1:at + 8]
    assert [line.split()[0] for line in inner] == ["conv_1", "batchnorm_2", "relu_3", "conv_4", "bn2", "sum",
                                                   "relu_7"]
    assert all(line.startswith("  ") for line in inner) and lines[at + 8].startswith("stage1.2 ")
    assert "2,304" in inner[0] and "add" in inner[5]


def test_nested_uses_and_repeated_layers(nested):
    text = inspect_text(nested.graph, nested.spec, expand=True)
    names = [line[:line.index(line.strip()) + len(line.strip().split()[0])] for line in text.splitlines()[3:7]]
    assert names == ["s.1", "  conv_bn_1", "    conv_1", "    batchnorm_2"]
    assert "stage (3 layers)" in text and "conv_bn (2 layers)" in text
    collapsed = {r[0] for r in table(inspect_text(nested.graph, nested.spec))}
    # A repeated plain layer is its copies, each a layer of its own, not a block use.
    assert {"s.1", "s.2", "c.1", "c.2"} <= collapsed and "conv_bn_1" not in collapsed


def test_fused_activations_show_on_the_op():
    c = compiled("lenet5.yaml")
    rows = {r[0]: r for r in table(inspect_text(c.graph, c.spec))}
    assert rows["conv_1"][1] == "conv+tanh" and rows["dense_6"][1] == "dense+tanh"
    assert rows["logits"][1] == "dense" and rows["avgpool_2"][1] == "avgpool"


def test_markdown_table():
    c = compiled("resnet_small.yaml")
    md = inspect_markdown(c.graph, c.spec)
    lines = md.splitlines()
    assert lines[0] == "**resnet_small**: `image` (N, 32, 32, 3) uint8"
    assert lines[2] == "| layer | op | output shape | params | MACs |" and lines[3] == "|---|---|---|---:|---:|"
    assert "| **`stage1.1`** | residual (7 layers) | (N, 16, 32, 32) | 4,672 | 4,800,512 |" in lines
    assert "| `stem` | conv | (N, 16, 32, 32) | 432 | 442,368 |" in lines
    assert "- total params (trainable): 198,298   buffers: 1,120" in lines
    expanded = inspect_markdown(c.graph, c.spec, expand=True)
    assert "| &nbsp;&nbsp;&nbsp;&nbsp;`conv_1` | conv | (N, 16, 32, 32) | 2,304 | 2,359,296 |" in expanded
    table_lines = [line for line in lines if line.startswith("|")]
    assert all(line.count("|") == 6 for line in table_lines)


def test_json_keeps_its_keys_and_adds_blocks(capsys):
    assert main(["inspect", os.path.join(SPECS, "resnet_small.yaml"), "--format", "json"]) == 0
    info = json.loads(capsys.readouterr().out)
    for key in ("name", "inputs", "outputs", "layers", "total_params", "total_buffers", "total_macs",
                "weight_bytes", "activation_bytes_per_example"):
        assert key in info
    layer = next(x for x in info["layers"] if x["name"] == "stage1.1.conv_1")
    assert {"name", "op", "kind", "output_shape", "params", "buffers", "macs", "line"} <= set(layer)
    assert layer["block"] == "stage1.1" and layer["op"] == "conv"
    assert next(x for x in info["layers"] if x["name"] == "stem")["block"] is None
    use = next(b for b in info["blocks"] if b["name"] == "stage1.1")
    assert use["block"] == "residual" and use["params"] == 4_672 and len(use["layers"]) == 7
    assert use["output_shape"] == ["N", 16, 32, 32]


def test_cli_flags(capsys):
    spec = os.path.join(SPECS, "vgg_small_bn.yaml")
    assert main(["inspect", spec, "--format", "markdown", "--expand"]) == 0
    out = capsys.readouterr().out
    assert "| **`stage1.1`** | conv_bn_relu (3 layers) |" in out and "`batchnorm_2`" in out
    assert main(["inspect", spec, "--expand"]) == 0
    out = capsys.readouterr().out
    assert "stage1.1" in out and "\n  conv_1 " in out
