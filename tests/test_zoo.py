"""Every spec in the zoo validates, builds, passes the ONNX checker, and its ONNX Runtime
output matches its PyTorch lowering; parameter counts equal the hand-computed ones."""

import os

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from conftest import SPECS, zoo_specs
from specc.build import build
from specc.codegen.torch_module import to_torch
from specc.codegen.weights import init_weights
from specc.compiler import compile_spec
from specc.inspection import inspect_json
from specc.ir.verifier import verify
from specc.limits import Limits
from zoo_expected import EXPECTED_OUTPUT_SHAPES, EXPECTED_PARAMS


def random_inputs(graph, batch, seed=0):
    rng = np.random.default_rng(seed)
    feeds = {}
    for v in graph.inputs:
        shape = [batch if d == "N" else d for d in v.type.shape]
        if v.type.dtype == "uint8":
            feeds[v.name] = rng.integers(0, 256, shape).astype(np.uint8)
        elif v.type.dtype == "int64":
            feeds[v.name] = rng.integers(0, 10, shape).astype(np.int64)
        else:
            feeds[v.name] = rng.standard_normal(shape).astype(np.float32)
    return feeds


def test_every_zoo_spec_has_expectations():
    assert set(zoo_specs()) == set(EXPECTED_PARAMS) == set(EXPECTED_OUTPUT_SHAPES)
    assert len(zoo_specs()) >= 10


@pytest.mark.parametrize("name", zoo_specs())
def test_inspect_counts_match_hand_computed(name):
    graph = compile_spec(os.path.join(SPECS, name), Limits()).graph
    verify(graph)
    info = inspect_json(graph)
    assert info["total_params"] == EXPECTED_PARAMS[name]
    shapes = {k: v["shape"][1:] for k, v in info["outputs"].items()}
    assert shapes == EXPECTED_OUTPUT_SHAPES[name]


def test_contract_counts():
    assert EXPECTED_PARAMS["lenet5.yaml"] == 61_706
    assert EXPECTED_PARAMS["nielsen_final.yaml"] == 1_672_570


@pytest.mark.parametrize("name", zoo_specs())
def test_build_and_onnxruntime_matches_torch(name, tmp_path):
    spec_path = os.path.join(SPECS, name)
    result = build(spec_path, str(tmp_path / "out"))
    onnx.checker.check_model(result.model_path, full_check=True)
    graph = compile_spec(spec_path, Limits()).graph
    module = to_torch(graph, init_weights(graph)).eval()
    session = ort.InferenceSession(result.model_path, providers=["CPUExecutionProvider"])
    out_names = [o.name for o in session.get_outputs()]
    assert out_names == list(graph.outputs)
    for batch in (1, 3):
        feeds = random_inputs(graph, batch, seed=batch)
        ort_out = session.run(out_names, feeds)
        with torch.no_grad():
            torch_out = module(*[torch.from_numpy(feeds[v.name]) for v in graph.inputs])
        for name_out, got in zip(out_names, ort_out):
            want = torch_out[name_out].numpy()
            assert got.shape == want.shape and got.shape[0] == batch
            assert np.abs(got - want).max() <= 1e-4, f"{name}:{name_out} batch {batch}"


@pytest.mark.parametrize("opset", [13, 16, 18, 20])
def test_other_opsets_build_and_agree(opset):
    """The opset is a build option: lowerings that changed across opsets (ReduceMean's axes,
    LayerNormalization) are emitted for the one asked for."""
    from specc.codegen.onnx_export import to_onnx

    for name in ("conv1d_signal.yaml", "mlp_gcn.yaml", "lcn_convnet.yaml", "preprocess_zoo.yaml"):
        graph = compile_spec(os.path.join(SPECS, name), Limits()).graph
        weights = init_weights(graph)
        model = to_onnx(graph, weights, opset)
        onnx.checker.check_model(model, full_check=True)
        session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        feeds = random_inputs(graph, 2)
        module = to_torch(graph, weights).eval()
        with torch.no_grad():
            want = module(*[torch.from_numpy(feeds[v.name]) for v in graph.inputs])
        for out_name, got in zip(graph.outputs, session.run(list(graph.outputs), feeds)):
            assert np.abs(got - want[out_name].numpy()).max() <= 1e-4, f"{name} opset {opset}"
