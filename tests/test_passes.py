"""The passes: golden IR text after each pass alone, outputs unchanged (ONNX Runtime before vs after,
fp32 within 1e-4) on the zoo and the cases, and the optimized ONNX free of what the passes remove.

Golden files: tests/golden/passes/<case>.yaml is run through the pass named by the case's file name
(the part before an optional `_suffix` that is not a pass name); <case>.after.ir holds the expected IR.
Regenerate with SPECC_UPDATE_GOLDEN=1 after checking the new text by eye.
"""

import os
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
from conftest import SPECS, zoo_specs

from specc.codegen.onnx_export import to_onnx
from specc.codegen.torch_module import to_torch
from specc.compiler import compile_spec, optimize
from specc.ir.graph import Graph, Node, Value
from specc.ir.printer import print_graph
from specc.ir.tensor import TensorData
from specc.ir.types import TensorType
from specc.ir.verifier import verify
from specc.limits import Limits
from specc.ops import REGISTRY, STEPS
from specc.passes import PASSES, STANDARD_PIPELINE, PipelineError, resolve_pipeline
from specc.passes.rewrite import data

GOLDEN = Path(__file__).parent / "golden" / "passes"
CASES = sorted(GOLDEN.glob("*.yaml"))


def pass_of(case: Path) -> str:
    name = case.stem
    while name not in PASSES:
        assert "_" in name, f"{case.name} names no pass of the standard pipeline"
        name = name.rsplit("_", 1)[0]
    return name


def check_golden(path: Path, text: str) -> None:
    if os.environ.get("SPECC_UPDATE_GOLDEN") == "1":
        path.write_text(text)
    assert path.exists(), f"no golden file {path.name}; run with SPECC_UPDATE_GOLDEN=1"
    assert text == path.read_text(), f"{path.name} differs"


def random_feeds(graph, batch=3, seed=0):
    rng = np.random.default_rng(seed)
    feeds = {}
    for v in graph.inputs:
        shape = [batch] + [d if isinstance(d, int) else 7 for d in v.type.shape[1:]]
        high = 255 if v.type.dtype == "uint8" else 1
        feeds[v.name] = rng.uniform(0, high, shape).astype(v.type.dtype)
    return feeds


def run_onnx(graph, feeds):
    session = ort.InferenceSession(to_onnx(graph).SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, feeds), session


def randomize_data(graph, seed=1):
    """Non-trivial weights and statistics (running_var > 0), so that a fold has something to fold."""
    rng = np.random.default_rng(seed)
    for value in graph.params.values():
        shape = value.shape
        array = rng.standard_normal(shape).astype(np.float32) * 0.5
        if value.local == "running_var":
            array = rng.uniform(0.5, 2.0, shape).astype(np.float32)
        value.data = TensorData.of(array, source="file")


@pytest.mark.parametrize("case", CASES, ids=lambda p: p.stem)
def test_pass_golden_and_numeric(case):
    pass_name = pass_of(case)
    graph = compile_spec(str(case), Limits()).graph
    randomize_data(graph)
    feeds = random_feeds(graph)
    before, _ = run_onnx(graph, feeds)
    graph, applied, report = optimize(graph, [pass_name], verify_each=True)
    assert applied == [pass_name]
    assert report[pass_name], f"{pass_name} changed nothing on {case.name}"
    check_golden(case.with_suffix(".after.ir"), print_graph(graph, spans=False) + "\n")
    after, _ = run_onnx(graph, feeds)
    for a, b in zip(before, after):
        np.testing.assert_allclose(a, b, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("spec", zoo_specs() + [c.name for c in CASES])
def test_standard_pipeline_keeps_outputs(spec):
    path = os.path.join(SPECS, spec) if os.path.exists(os.path.join(SPECS, spec)) else str(GOLDEN / spec)
    plain = compile_spec(path, Limits()).graph
    randomize_data(plain)
    feeds = random_feeds(plain)
    before, session_before = run_onnx(plain, feeds)
    optimized = compile_spec(path, Limits()).graph
    for name, value in optimized.params.items():
        value.data = plain.params[name].data
    optimized, _, _ = optimize(optimized, "standard", verify_each=True)
    after, session_after = run_onnx(optimized, feeds)
    for a, b in zip(before, after):
        np.testing.assert_allclose(a, b, atol=1e-4, rtol=1e-4)
    # torch runs the optimized graph too, and agrees
    with torch.no_grad():
        got = to_torch(optimized).eval()(*[torch.from_numpy(feeds[v.name]) for v in optimized.inputs])
    for a, b in zip(after, got.values()):
        np.testing.assert_allclose(a, b.numpy(), atol=1e-4, rtol=1e-4)
    model = to_onnx(optimized)
    ops = [n.op_type for n in model.graph.node]
    assert "Dropout" not in ops and "Identity" not in ops
    producers = {o: n.op_type for n in model.graph.node for o in n.output}
    readers: dict = {}
    for node in model.graph.node:
        for name in node.input:
            readers[name] = readers.get(name, 0) + 1
    for node in model.graph.node:
        if node.op_type == "BatchNormalization" and readers[node.input[0]] == 1:  # a shared conv output stays
            assert producers.get(node.input[0]) not in ("Conv", "Gemm"), f"{spec}: batchnorm left after a conv"
    assert len(model.graph.node) <= len(to_onnx(plain).graph.node)


def test_pipeline_choice():
    names = [p.name for p in STANDARD_PIPELINE]
    assert [p.name for p in resolve_pipeline("standard")] == names
    assert resolve_pipeline("none") == ()
    assert [p.name for p in resolve_pipeline(["-fold_batchnorm"])] == [n for n in names if n != "fold_batchnorm"]
    assert [p.name for p in resolve_pipeline(["dead_code_elimination", "fold_batchnorm"])] == \
        ["fold_batchnorm", "dead_code_elimination"]  # standard order, whatever the list's order
    with pytest.raises(PipelineError):
        resolve_pipeline(["fold_everything"])


def _internal(name):
    return STEPS["internal"][name]


def _constant(graph, name, array):
    out = Value(name, TensorType("float32", array.shape))
    return graph.append(Node(name, _internal("constant"), "internal", {"shape": list(array.shape), "dtype": "float32"},
                             [], [out], None, params={"value": data(f"{name}.value", array, kind="const")}))


def _hand_graph():
    """x -> matmul(x, K) + b -> (add constant + constant folded) ; built without a spec."""
    rng = np.random.default_rng(0)
    graph = Graph("hand")
    x = graph.add_input(Value("x", TensorType("float32", ("N", 4)), "input"))
    k = _constant(graph, "k", rng.standard_normal((4, 3)).astype(np.float32)).output
    b1 = _constant(graph, "b1", rng.standard_normal((3,)).astype(np.float32)).output
    b2 = _constant(graph, "b2", rng.standard_normal((3,)).astype(np.float32)).output
    bsum = graph.append(Node("bsum", REGISTRY["add"], "layer", {}, [b1, b2],
                             [Value("bsum", TensorType("float32", (3,)))], None))
    mm = graph.append(Node("mm", _internal("matmul"), "internal", {}, [x, k],
                           [Value("mm", TensorType("float32", ("N", 3)))], None))
    out = graph.append(Node("out", REGISTRY["add"], "layer", {}, [mm.output, bsum.output],
                            [Value("out", TensorType("float32", ("N", 3)))], None))
    graph.set_output("y", out.output)
    verify(graph)
    return graph


@pytest.mark.parametrize("pass_name", ["fold_constants", "matmul_add_to_gemm"])
def test_hand_built_pass_golden(pass_name):
    graph = _hand_graph()
    feeds = {"x": np.random.default_rng(1).standard_normal((5, 4)).astype(np.float32)}
    before, _ = run_onnx(graph, feeds)
    choice = ["fold_constants", "matmul_add_to_gemm"] if pass_name == "matmul_add_to_gemm" else [pass_name]
    graph, _, report = optimize(graph, choice, verify_each=True)
    assert report[pass_name]
    check_golden(GOLDEN / f"hand_{pass_name}.after.ir", print_graph(graph, spans=False) + "\n")
    after, _ = run_onnx(graph, feeds)
    np.testing.assert_allclose(before[0], after[0], atol=1e-5)


def test_passes_stay_lazy_on_a_huge_model(tmp_path):
    """Folding rewrites weights as recipes: `inspect --ir` of a huge conv+bn net allocates nothing."""
    spec = tmp_path / "huge.yaml"
    spec.write_text("specc: 1\nname: huge\ninputs: {x: {shape: [4096, 8, 8]}}\nnetwork:\n"
                    "  - conv: {filters: 65536, kernel: 3}\n  - batchnorm\n  - conv: {filters: 65536, kernel: 3}\n"
                    "  - batchnorm\n")
    graph = compile_spec(str(spec), Limits()).graph
    graph, _, report = optimize(graph, "standard", verify_each=True)
    assert report["fold_batchnorm"] == {"folded": 2}
    assert not any(v.data.materialized for v in graph.params.values())
