"""Each op's two lowerings agree on random arguments and inputs (ONNX Runtime vs PyTorch)."""

import numpy as np
import onnxruntime as ort
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from specc.codegen.onnx_export import to_onnx
from specc.codegen.torch_module import to_torch
from specc.codegen.weights import init_weights
from specc.compiler import compile_spec
from specc.diagnostics import SpeccError
from specc.limits import Limits


def run_both(tmp_path, shape, layers, batch=2):
    body = "\n".join(f"  - {layer}" for layer in layers)
    path = tmp_path / "eq.yaml"
    path.write_text(f"specc: 1\nname: eq\ninputs:\n  x: {{shape: {list(shape)}}}\nnetwork:\n{body}\n")
    try:
        graph = compile_spec(str(path), Limits()).graph
    except SpeccError as exc:  # a shape the op refuses: fine, as long as it is a located diagnostic
        assert all(d.code.startswith("E0") and d.span.line >= 1 for d in exc.diagnostics)
        return None
    weights = init_weights(graph)
    model = to_onnx(graph, weights)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).standard_normal((batch, *shape)).astype(np.float32)
    got = session.run(None, {"x": x})[0]
    with torch.no_grad():
        want = to_torch(graph, weights).eval()(torch.from_numpy(x))["output"].numpy()
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=1e-4)
    return got.shape


SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@SETTINGS
@given(rank=st.sampled_from([1, 2, 3]), size=st.integers(5, 11), groups=st.sampled_from([1, 2]),
       kernel=st.integers(1, 4), stride=st.integers(1, 3), dilation=st.integers(1, 2),
       padding=st.sampled_from(["valid", "same", 0, 1, 2]), act=st.sampled_from(["linear", "relu", "gelu", "silu", "elu"]))
def test_conv(tmp_path, rank, size, groups, kernel, stride, dilation, padding, act):
    shape = (4,) + (size,) * rank
    run_both(tmp_path, shape, [f"conv: {{filters: 6, kernel: {kernel}, stride: {stride}, dilation: {dilation}, "
                               f"padding: {padding}, groups: {groups}, activation: {act}}}"])


@SETTINGS
@given(op=st.sampled_from(["maxpool", "avgpool"]), rank=st.sampled_from([1, 2, 3]), size=st.integers(4, 9),
       window=st.integers(1, 3), stride=st.integers(1, 3), padding=st.integers(0, 1))
def test_pools(tmp_path, op, rank, size, window, stride, padding):
    shape = (3,) + (size,) * rank
    run_both(tmp_path, shape, [f"{op}: {{size: {window}, stride: {stride}, padding: {padding}}}"])


@SETTINGS
@given(layers=st.lists(st.sampled_from([
    "relu", "sigmoid", "tanh", "gelu", "silu", "elu", "leaky_relu: 0.2", "softmax", "log_softmax: {axis: 1}",
    "batchnorm", "layernorm", "dropout: 0.3", "identity", "lrn: {size: 3}", "stochastic_depth: 0.2",
    "global_avgpool", "global_maxpool", "flatten", "dense: {units: 5, activation: tanh}",
]), min_size=1, max_size=4))
def test_layer_chains(tmp_path, layers):
    run_both(tmp_path, (4, 6, 5), layers)
