"""The parser: YAML 1.2 scalars, extends, params, blocks, repeat and names."""

import textwrap

import pytest

from specc.compiler import compile_spec
from specc.diagnostics import SpeccError
from specc.ir.printer import print_graph
from specc.limits import Limits
from specc.parser.extends import load_with_extends
from specc.parser.yaml_loader import load_yaml_text


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return str(path)


def compile_text(tmp_path, text):
    return compile_spec(write(tmp_path, "s.yaml", text), Limits())


def errors_of(tmp_path, text):
    with pytest.raises(SpeccError) as exc:
        compile_text(tmp_path, text)
    return [(d.code, d.span.line) for d in exc.value.diagnostics]


def test_yaml_12_core_scalars():
    tree = load_yaml_text("a: 1e-8\nb: yes\nc: ~\nd: 0x1F\ne: '5'\nf: .inf\ng: 1_000\n", "t.yaml", Limits())
    assert tree.plain() == {"a": 1e-8, "b": "yes", "c": None, "d": 31, "e": "5", "f": float("inf"), "g": "1_000"}


def test_extends_merges_deeply_replaces_lists_and_deletes_with_null(tmp_path):
    write(tmp_path, "base.yaml", """\
        specc: 1
        name: base
        description: the base
        params: {width: 8, act: relu}
        inputs: {x: {shape: [4]}}
        network: [{dense: 3}]
        build: {opset: 17, targets: [onnx]}
        """)
    child = write(tmp_path, "child.yaml", """\
        specc: 1
        extends: base.yaml
        name: child
        description: null
        params: {width: 16}
        build: {opset: 18}
        """)
    tree = load_with_extends(child, Limits()).plain()
    assert tree["name"] == "child" and "description" not in tree
    assert tree["params"] == {"width": 16, "act": "relu"}
    assert tree["build"] == {"opset": 18, "targets": ["onnx"]}
    assert tree["network"] == [{"dense": 3}]


def test_a_choice_merged_with_the_base_specs_names_the_inherited_key(tmp_path):
    write(tmp_path, "base.yaml", """\
        specc: 1
        name: base
        inputs: {x: {shape: [4]}}
        network: [{dense: 3}]
        training: {data: {dataset: mnist-sample}, optimizer: {adam: {lr: 0.001}}}
        """)
    child = write(tmp_path, "child.yaml", """\
        specc: 1
        extends: base.yaml
        name: child
        training:
          optimizer: {adamw: {lr: 0.001}}
        """)
    with pytest.raises(SpeccError) as exc:
        compile_spec(child, Limits())
    (d,) = exc.value.diagnostics
    assert d.code == "E012" and d.span.path == child and d.span.line == 5
    assert d.hint == "`adam` comes from the spec this one extends (mappings merge key by key): `adam: null` removes it"
    # Two keys written in one file are a plain mistake: no word about extends.
    with pytest.raises(SpeccError) as exc:
        compile_text(tmp_path, """\
            specc: 1
            name: two
            inputs: {x: {shape: [4]}}
            network: [{dense: 3}]
            training: {data: {dataset: mnist-sample}, optimizer: {adam: {lr: 0.1}, sgd: {lr: 0.1}}}
            """)
    assert exc.value.diagnostics[0].code == "E012" and exc.value.diagnostics[0].hint is None
    fixed = write(tmp_path, "fixed.yaml", "specc: 1\nextends: base.yaml\nname: fixed\n"
                  "training:\n  optimizer: {adam: null, adamw: {lr: 0.001}}\n")
    assert compile_spec(fixed, Limits()).spec.training["optimizer"][0] == "adamw"


def test_params_expressions_keep_types(tmp_path):
    compiled = compile_text(tmp_path, """\
        specc: 1
        name: p
        params: {c: 4, scale: 0.5, act: tanh}
        inputs: {x: {shape: [3, 16, 16]}}
        network:
          - conv: {filters: "${c * 2}", kernel: "${c - 1}", activation: "${act}", padding: same}
          - name: "pool_${c}"
            maxpool: 2
        """)
    conv = compiled.graph.nodes[0]
    assert conv.attrs["filters"] == 8 and conv.attrs["kernel"] == 3 and conv.attrs["activation"] == "tanh"
    assert compiled.graph.nodes[1].name == "pool_4"
    assert compiled.graph.outputs["output"].type.shape == ("N", 8, 8, 8)


def test_blocks_repeat_and_names(tmp_path):
    compiled = compile_text(tmp_path, """\
        specc: 1
        name: b
        blocks:
          res:
            params: {c: null, k: 3}
            network:
              - conv: {filters: "${c}", kernel: "${k}", padding: same}
              - name: sum
                add: {}
                from: [conv_1, input]
        inputs: {x: {shape: [8, 6, 6]}}
        network:
          - name: stage
            res: {c: 8}
            repeat: 3
          - flatten
        outputs: {mid: stage.2.sum, last: stage, flat: flatten_2}
        """)
    names = [n.name for n in compiled.graph.nodes]
    assert names == ["stage.1.conv_1", "stage.1.sum", "stage.2.conv_1", "stage.2.sum",
                     "stage.3.conv_1", "stage.3.sum", "flatten_2"]
    outs = compiled.graph.outputs
    assert outs["mid"].name == "stage.2.sum" and outs["last"].name == "stage.3.sum"
    assert outs["flat"].type.shape == ("N", 288)
    assert compiled.graph.nodes[2].inputs[0].name == "stage.1.sum"  # copies chain


def test_several_errors_are_all_reported(tmp_path):
    found = errors_of(tmp_path, """\
        specc: 1
        name: many
        inputs: {x: {shape: [4]}}
        network:
          - dense: {units: 0}
          - dropout: 2
          - relux
          - dense: {unit: 3}
        """)
    assert found == [("E013", 5), ("E013", 6), ("E020", 7), ("E010", 8)]


def test_shape_errors_name_the_layer_and_shapes(tmp_path):
    with pytest.raises(SpeccError) as exc:
        compile_text(tmp_path, """\
            specc: 1
            name: s
            inputs: {x: {shape: [3, 4, 4]}}
            network:
              - conv: {filters: 8, kernel: 5}
            """)
    (diag,) = exc.value.diagnostics
    assert diag.code == "E060" and diag.span.line == 5
    assert "layer `conv_1` (conv): kernel 5 is larger than its input 4" in diag.message
    assert "(N, 3, 4, 4)" in diag.message and diag.hint


def test_add_mismatch(tmp_path):
    with pytest.raises(SpeccError) as exc:
        compile_text(tmp_path, """\
            specc: 1
            name: s
            inputs: {x: {shape: [3, 4, 4]}}
            network:
              - conv: {filters: 8, kernel: 1}
              - add: {}
                from: [conv_1, x]
            """)
    (diag,) = exc.value.diagnostics
    assert diag.span.line == 6 and "(N, 8, 4, 4) vs (N, 3, 4, 4)" in diag.message


def test_ir_printer_golden():
    import os

    from conftest import ROOT, SPECS

    for name in ("lenet5", "resnet_small"):
        compiled = compile_spec(os.path.join(SPECS, f"{name}.yaml"), Limits())
        golden = os.path.join(ROOT, "tests", "golden", f"{name}.ir")
        text = print_graph(compiled.graph, spans=False) + "\n"
        if os.environ.get("SPECC_UPDATE_GOLDEN") == "1":
            with open(golden, "w") as handle:
                handle.write(text)
        with open(golden) as handle:
            assert text == handle.read()


def test_pass_manager_verifies_and_names_the_broken_pass():
    import os
    from dataclasses import dataclass

    from conftest import SPECS
    from specc.ir.verifier import VerificationError
    from specc.passes import Pass, PassManager, PassResult

    @dataclass(frozen=True)
    class DropFirstNode(Pass):
        name = "drop_first_node"

        def run(self, graph):
            graph.nodes.pop(0)  # behind the rewriter's back: its readers now read an undefined value
            return PassResult(graph, True)

    graph = compile_spec(os.path.join(SPECS, "lenet5.yaml"), Limits()).graph
    assert PassManager(verify_each=True).run(graph) is graph
    with pytest.raises(VerificationError, match="after pass `drop_first_node`"):
        PassManager((DropFirstNode(),), verify_each=True).run(graph)


def test_block_activation_applies_to_the_block_output(tmp_path):
    compiled = compile_text(tmp_path, """\
        specc: 1
        name: b
        blocks:
          cb:
            params: {c: null}
            network:
              - conv: {filters: "${c}", kernel: 3, padding: same}
              - batchnorm
        inputs: {x: {shape: [3, 8, 8]}}
        network:
          - cb: {c: 4, activation: relu}
          - global_avgpool
        """)
    assert [n.op for n in compiled.graph.nodes] == ["conv", "batchnorm", "relu", "global_avgpool"]
    assert compiled.graph.nodes[3].inputs[0].name == "cb_1.relu"


def test_fractional_maxpool_accepts_both_ratio_conventions(tmp_path):
    for ratio, size in (("0.5", 5), ("1.414", 7)):
        compiled = compile_text(tmp_path, f"""\
            specc: 1
            name: f
            inputs: {{x: {{shape: [3, 10, 10]}}}}
            network:
              - fractional_maxpool: {ratio}
            """)
        assert compiled.graph.outputs["output"].type.shape == ("N", 3, size, size)
