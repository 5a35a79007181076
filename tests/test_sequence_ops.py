"""Sequence and attention ops (rnn, lstm, gru, attention, multihead_attention, positional_encoding),
fractional_maxpool and DropConnect: ONNX Runtime equals PyTorch at batch 1 and 3 and at sequence lengths
the spec leaves open; the torch lowerings equal PyTorch's own modules given the same weights; parameter
counts equal hand-computed ones; shape errors point at the line."""

import math

import numpy as np
import onnxruntime as ort
import pytest
import torch
import torch.nn.functional as F

from specc.codegen.onnx_export import to_onnx
from specc.codegen.torch_module import to_torch
from specc.compiler import compile_spec
from specc.diagnostics import SpeccError
from specc.inspection import inspect_json
from specc.limits import Limits
from specc.ops.attention_lowering import sinusoid_table
from specc.ops.pool import fractional_regions

LENGTHS = (1, 7, 13)  # none of them written in any spec below: the `seq` axis is dynamic


def compile_text(tmp_path, text: str):
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    return compile_spec(str(path), Limits()).graph


def spec(inputs: str, network: str) -> str:
    return f"specc: 1\nname: t\ninputs:\n{inputs}\nnetwork:\n{network}\n"


def run_both(graph, feeds: dict):
    session = ort.InferenceSession(to_onnx(graph).SerializeToString(), providers=["CPUExecutionProvider"])
    got = session.run(None, feeds)
    module = to_torch(graph).eval()
    with torch.no_grad():
        want = module(*[torch.from_numpy(feeds[v.name]) for v in graph.inputs])
    return got, [w.numpy() for w in want.values()], module


def assert_agree(graph, feeds):
    got, want, _ = run_both(graph, feeds)
    for a, b in zip(got, want):
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, atol=1e-4, rtol=1e-4)


def sequence_feed(batch, length, d, seed=0):
    return np.random.default_rng(seed).standard_normal((batch, length, d)).astype(np.float32)


# --- recurrent ----------------------------------------------------------------------------------------

RECURRENT = [(op, layers, bidirectional, sequences) for op in ("rnn", "lstm", "gru")
             for layers, bidirectional, sequences in ((1, False, True), (2, True, False), (2, False, True),
                                                       (1, True, True))]


def recurrent_spec(op, layers, bidirectional, sequences, hidden=8):
    return spec("  x: {shape: [seq, 6]}",
                f"  - {op}: {{hidden: {hidden}, layers: {layers}, bidirectional: {str(bidirectional).lower()}, "
                f"return_sequences: {str(sequences).lower()}}}")


@pytest.mark.parametrize("op,layers,bidirectional,sequences", RECURRENT,
                         ids=[f"{o}-l{n}-{'bi' if b else 'uni'}-{'seq' if s else 'last'}" for o, n, b, s in RECURRENT])
def test_recurrent_onnx_equals_torch_at_any_length(tmp_path, op, layers, bidirectional, sequences):
    graph = compile_text(tmp_path, recurrent_spec(op, layers, bidirectional, sequences))
    for batch in (1, 3):
        for length in LENGTHS:
            got, want, _ = run_both(graph, {"x": sequence_feed(batch, length, 6, seed=length)})
            width = 8 * (2 if bidirectional else 1)
            assert got[0].shape == ((batch, length, width) if sequences else (batch, width))
            np.testing.assert_allclose(got[0], want[0], atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("op", ["rnn", "lstm", "gru"])
def test_recurrent_torch_lowering_equals_pytorch_module(tmp_path, op):
    """The spec's tensors are PyTorch's (same names, same gate order): nn.LSTM/GRU/RNN given them agrees."""
    graph = compile_text(tmp_path, recurrent_spec(op, 2, True, True))
    ours = to_torch(graph).eval()
    reference = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[op](
        6, 8, num_layers=2, bidirectional=True, batch_first=True)
    state = {name.split(".", 1)[1]: torch.from_numpy(a) for name, a in ours.spec_state().items()}
    reference.load_state_dict(state)
    x = torch.from_numpy(sequence_feed(3, 9, 6))
    with torch.no_grad():
        torch.testing.assert_close(ours(x)["output"], reference(x)[0], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("op", ["rnn", "lstm", "gru"])
def test_return_sequences_false_is_the_final_state_of_each_direction(tmp_path, op):
    graph = compile_text(tmp_path, recurrent_spec(op, 1, True, False))
    full = compile_text(tmp_path, recurrent_spec(op, 1, True, True))
    x = torch.from_numpy(sequence_feed(2, 5, 6))
    with torch.no_grad():
        last = to_torch(graph).eval()(x)["output"]
        sequence = to_torch(full).eval()(x)["output"]  # same tensor names and seed: same weights
    torch.testing.assert_close(last, torch.cat([sequence[:, -1, :8], sequence[:, 0, 8:]], dim=1))


def test_recurrent_parameter_counts_are_pytorchs(tmp_path):
    # per direction and layer: G*H*(D_in + H) + 2*G*H (PyTorch's two bias vectors), G = 1, 4, 3
    hand = {
        ("rnn", 1, False): 1 * 8 * (6 + 8) + 2 * 8,                                       # 128
        ("lstm", 2, True): 2 * (4 * 8 * (6 + 8) + 2 * 32) + 2 * (4 * 8 * (16 + 8) + 2 * 32),  # 1,024 + 1,664
        ("gru", 1, False): 3 * 8 * (6 + 8) + 2 * 24,                                      # 384
    }
    assert hand == {("rnn", 1, False): 128, ("lstm", 2, True): 2_688, ("gru", 1, False): 384}
    for (op, layers, bidirectional), count in hand.items():
        graph = compile_text(tmp_path, recurrent_spec(op, layers, bidirectional, True))
        assert inspect_json(graph)["total_params"] == count
        module = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[op](
            6, 8, num_layers=layers, bidirectional=bidirectional)
        assert sum(p.numel() for p in module.parameters()) == count


# --- attention ----------------------------------------------------------------------------------------

ATTENTION = [("additive", 2), ("additive", 3), ("dot", 2), ("dot", 3)]


def attention_spec(kind, query_rank):
    dq = 5 if kind == "additive" else 6
    query = f"[{dq}]" if query_rank == 2 else f"[queries, {dq}]"
    return spec(f"  q: {{shape: {query}}}\n  k: {{shape: [seq, 6]}}",
                f"  - attention: {{kind: {kind}}}\n    from: [q, k]")


@pytest.mark.parametrize("kind,query_rank", ATTENTION, ids=[f"{k}-query{r}d" for k, r in ATTENTION])
def test_attention_onnx_equals_torch_at_any_length(tmp_path, kind, query_rank):
    graph = compile_text(tmp_path, attention_spec(kind, query_rank))
    dq = graph.inputs[0].type.shape[-1]
    for batch in (1, 3):
        for length in LENGTHS:
            rng = np.random.default_rng(length)
            q_shape = (batch, dq) if query_rank == 2 else (batch, 4, dq)
            feeds = {"q": rng.standard_normal(q_shape).astype(np.float32), "k": sequence_feed(batch, length, 6, length)}
            got, want, _ = run_both(graph, feeds)
            assert got[0].shape == q_shape[:-1] + (6,)
            np.testing.assert_allclose(got[0], want[0], atol=1e-4, rtol=1e-4)


def test_additive_attention_is_bahdanaus(tmp_path):
    """e_j = v . tanh(W_q q + W_k k_j); a = softmax(e); context = sum_j a_j k_j (numpy, by hand)."""
    graph = compile_text(tmp_path, attention_spec("additive", 2))
    rng = np.random.default_rng(1)
    q, k = rng.standard_normal((2, 5)).astype(np.float32), sequence_feed(2, 7, 6)
    got, _, module = run_both(graph, {"q": q, "k": k})
    state = module.spec_state()
    wq, wk, v = (state[f"attention_1.{n}"] for n in ("query_weight", "key_weight", "score_weight"))
    scores = np.tanh((q @ wq.T)[:, None, :] + k @ wk.T) @ v[0]          # (N, L)
    weights = np.exp(scores - scores.max(1, keepdims=True))
    weights /= weights.sum(1, keepdims=True)
    np.testing.assert_allclose(got[0], np.einsum("nl,nld->nd", weights, k), atol=1e-5, rtol=1e-5)
    assert inspect_json(graph)["total_params"] == 6 * 5 + 6 * 6 + 6      # W_q, W_k, v: 72


def test_dot_attention_scales_by_root_d(tmp_path):
    graph = compile_text(tmp_path, attention_spec("dot", 2))
    q, k = np.ones((1, 6), np.float32), sequence_feed(1, 4, 6)
    got, _, _ = run_both(graph, {"q": q, "k": k})
    weights = np.exp(k[0] @ q[0] / math.sqrt(6))
    np.testing.assert_allclose(got[0][0], (weights / weights.sum()) @ k[0], atol=1e-5)
    assert inspect_json(graph)["total_params"] == 0


# --- multi-head attention -----------------------------------------------------------------------------

def mha_spec(causal, three_inputs=False, dim=None):
    args = f"{{heads: 2, causal: {str(causal).lower()}" + (f", dim: {dim}" if dim else "") + "}"
    if three_inputs:
        return spec("  q: {shape: [queries, 8]}\n  k: {shape: [seq, 8]}\n  v: {shape: [seq, 8]}",
                    f"  - multihead_attention: {args}\n    from: [q, k, v]")
    return spec("  x: {shape: [seq, 8]}", f"  - multihead_attention: {args}")


@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
@pytest.mark.parametrize("three_inputs", [False, True], ids=["self", "qkv"])
def test_multihead_onnx_equals_torch_at_any_length(tmp_path, causal, three_inputs):
    graph = compile_text(tmp_path, mha_spec(causal, three_inputs))
    for batch in (1, 3):
        for length in LENGTHS:
            if three_inputs:
                feeds = {"q": sequence_feed(batch, length + 2, 8, 1), "k": sequence_feed(batch, length, 8, 2),
                         "v": sequence_feed(batch, length, 8, 3)}
            else:
                feeds = {"x": sequence_feed(batch, length, 8, length)}
            got, want, _ = run_both(graph, feeds)
            np.testing.assert_allclose(got[0], want[0], atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
def test_multihead_equals_pytorch_module(tmp_path, causal):
    graph = compile_text(tmp_path, mha_spec(causal))
    ours = to_torch(graph).eval()
    reference = torch.nn.MultiheadAttention(8, 2, batch_first=True)
    state = {name.split(".", 1)[1].replace("out_proj_", "out_proj."): torch.from_numpy(a)
             for name, a in ours.spec_state().items()}
    reference.load_state_dict(state)
    x = torch.from_numpy(sequence_feed(3, 6, 8))
    mask = torch.triu(torch.ones(6, 6, dtype=torch.bool), 1) if causal else None
    with torch.no_grad():
        torch.testing.assert_close(ours(x)["output"], reference(x, x, x, attn_mask=mask, need_weights=False)[0],
                                   atol=1e-5, rtol=1e-5)


def test_causal_output_ignores_the_future(tmp_path):
    graph = compile_text(tmp_path, mha_spec(True))
    x = sequence_feed(1, 6, 8)
    changed = x.copy()
    changed[:, 4:] += 1.0
    session = ort.InferenceSession(to_onnx(graph).SerializeToString(), providers=["CPUExecutionProvider"])
    before, after = session.run(None, {"x": x})[0], session.run(None, {"x": changed})[0]
    np.testing.assert_allclose(before[:, :4], after[:, :4], atol=1e-6)
    assert np.abs(before[:, 4:] - after[:, 4:]).max() > 1e-3


def test_multihead_parameter_count(tmp_path):
    # in_proj 3*dim*d + 3*dim, out_proj dim*dim + dim; d = 8, dim = 8: 192 + 24 + 64 + 8 = 288 (nn.MultiheadAttention's)
    assert inspect_json(compile_text(tmp_path, mha_spec(False)))["total_params"] == 288
    assert sum(p.numel() for p in torch.nn.MultiheadAttention(8, 2).parameters()) == 288
    # dim 12 on d = 8: in_proj 36*8 + 36, out_proj 144 + 12 = 480
    graph = compile_text(tmp_path, mha_spec(False, dim=12))
    assert inspect_json(graph)["total_params"] == 480
    assert graph.outputs["output"].type.shape == ("N", "seq", 12)


# --- positional encoding ------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["sinusoidal", "learned"])
def test_positional_encoding_onnx_equals_torch_at_any_length(tmp_path, kind):
    graph = compile_text(tmp_path, spec("  x: {shape: [seq, 6]}", f"  - positional_encoding: {{kind: {kind}, "
                                        "max_len: 13}"))
    for batch in (1, 3):
        for length in LENGTHS:
            got, want, _ = run_both(graph, {"x": sequence_feed(batch, length, 6, length)})
            np.testing.assert_allclose(got[0], want[0], atol=1e-5)
    assert inspect_json(graph)["total_params"] == (13 * 6 if kind == "learned" else 0)


def test_sinusoidal_table_is_vaswanis():
    table = sinusoid_table(50, 7)
    for pos in (0, 1, 17, 49):
        for i in range(7):
            angle = pos / 10000 ** (2 * (i // 2) / 7)
            assert table[pos, i] == pytest.approx(math.sin(angle) if i % 2 == 0 else math.cos(angle), abs=1e-6)


def test_positional_encoding_longer_than_max_len_fails_clearly(tmp_path):
    graph = compile_text(tmp_path, spec("  x: {shape: [seq, 6]}", "  - positional_encoding: {max_len: 4}"))
    x = sequence_feed(1, 5, 6)
    with pytest.raises(SpeccError, match="5 positions, more than its max_len 4"):
        to_torch(graph).eval()(torch.from_numpy(x))
    session = ort.InferenceSession(to_onnx(graph).SerializeToString(), providers=["CPUExecutionProvider"])
    with pytest.raises(Exception, match="max_len_4"):  # the failing node's name says which limit was passed
        session.run(None, {"x": x})


# --- fractional max pooling ---------------------------------------------------------------------------

@pytest.mark.parametrize("ratio,out", [(1.414, 22), (0.5, 16), (0.7, 22), (2.0, 16)])
def test_fractional_maxpool_sizes_and_inference_equals_pytorch_at_u_half(tmp_path, ratio, out):
    graph = compile_text(tmp_path, spec("  x: {shape: [3, 32, 32]}", f"  - fractional_maxpool: {ratio}"))
    assert graph.outputs["output"].type.shape == ("N", 3, out, out)
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    got, want, module = run_both(graph, {"x": x})
    samples = torch.full((2, 3, 2), 0.5)
    reference = F.fractional_max_pool2d(torch.from_numpy(x), 2, output_size=(out, out), _random_samples=samples)
    np.testing.assert_array_equal(want[0], reference.numpy())
    np.testing.assert_array_equal(got[0], reference.numpy())


def test_fractional_regions_cover_the_input_in_steps_of_one_or_two():
    regions = fractional_regions(32, 22)
    starts = regions[:, 0]
    assert starts[0] == 0 and starts[-1] == 30 and set(np.diff(starts)) <= {1, 2}
    assert (regions[:, 1] == starts + 1).all()


def test_fractional_maxpool_training_draws_random_regions(tmp_path):
    graph = compile_text(tmp_path, spec("  x: {shape: [1, 32, 32]}", "  - fractional_maxpool: 1.414"))
    module = to_torch(graph).train()
    x = torch.randn(4, 1, 32, 32)
    first, second = module(x)["output"], module(x)["output"]
    assert first.shape == second.shape == (4, 1, 22, 22)
    assert not torch.equal(first, second)
    module.eval()
    assert torch.equal(module(x)["output"], module(x)["output"])


# --- DropConnect --------------------------------------------------------------------------------------

def test_dropconnect_masks_weights_in_training_and_agrees_in_expectation(tmp_path):
    p = 0.25
    layer = f"  - dense: {{units: 32, bias: false, dropconnect: {p}}}"
    graph = compile_text(tmp_path, spec("  x: {shape: [16]}", layer))
    module = to_torch(graph)
    weight = torch.from_numpy(module.spec_state()["dense_1.weight"])
    torch.manual_seed(0)
    # Row j of the identity reads column j of the masked weight: kept entries are W / (1 - p), the others 0.
    module.train()
    with torch.no_grad():
        masked = torch.stack([module(torch.eye(16))["output"].T for _ in range(200)])   # (200, 32, 16)
    kept = masked != 0
    assert abs(kept.float().mean().item() - (1 - p)) < 0.01
    torch.testing.assert_close(masked[kept], (weight / (1 - p)).expand_as(masked)[kept])
    assert not torch.equal(masked[0], masked[1])  # a fresh mask every forward pass
    # In expectation the training output is the inference output, which ONNX Runtime computes.
    x = torch.from_numpy(np.random.default_rng(0).uniform(0.5, 1.0, (1, 16)).astype(np.float32))
    with torch.no_grad():
        samples = torch.stack([module(x)["output"] for _ in range(4000)])
    module.eval()
    got, want, _ = run_both(graph, {"x": x.numpy()})
    np.testing.assert_allclose(got[0], want[0], atol=1e-5)
    # standard error of the mean of 4000 draws: sqrt(p / (1 - p) * sum_i W_ji^2 x_i^2 / 4000)
    stderr = torch.sqrt(p / (1 - p) * (weight ** 2 * x ** 2).sum(1) / len(samples))
    assert (torch.abs(samples.mean(0) - torch.from_numpy(want[0])) < 5 * stderr).all()


# --- shape errors, at the line ------------------------------------------------------------------------

ERRORS = {  # case -> (spec, what the message says); the diagnostic must be on the layer's line
    "dot sizes": (spec("  q: {shape: [5]}\n  k: {shape: [seq, 6]}", "  - attention: {kind: dot}\n    from: [q, k]"),
                  "dot attention needs equal query and key sizes"),
    "query rank": (spec("  q: {shape: [2, 3, 5]}\n  k: {shape: [seq, 6]}",
                        "  - attention: {kind: additive}\n    from: [q, k]"), "the query of `attention` must be"),
    "keys not a sequence": (spec("  q: {shape: [5]}\n  k: {shape: [6]}",
                                 "  - attention: {kind: additive}\n    from: [q, k]"), "needs a sequence (N, L, D)"),
    "heads": (spec("  x: {shape: [seq, 10]}", "  - multihead_attention: {heads: 3}"), "not divisible by heads 3"),
    "two inputs": (spec("  q: {shape: [4, 8]}\n  k: {shape: [4, 8]}", "  - multihead_attention: 2\n    from: [q, k]"),
                   "takes one input (self-attention) or three"),
    "qkv sizes": (spec("  q: {shape: [4, 8]}\n  k: {shape: [4, 6]}\n  v: {shape: [4, 6]}",
                       "  - multihead_attention: 2\n    from: [q, k, v]"), "same last axis, got 8, 6 and 6"),
    "max_len": (spec("  x: {shape: [40, 8]}", "  - positional_encoding: {max_len: 32}"),
                "sequence length 40 exceeds max_len 32"),
    "lstm on an image": (spec("  x: {shape: [3, 8, 8]}", "  - lstm: 16"), "needs a sequence (N, L, D)"),
    "gru dynamic features": (spec("  x: {shape: [8, feat]}", "  - gru: 16"), "with a static D"),
    "fractional ratio": (spec("  x: {shape: [3, 8, 8]}", "  - fractional_maxpool: 1.0"), "2x2 regions fit at most 7"),
}


@pytest.mark.parametrize("case", list(ERRORS))
def test_shape_errors_name_the_layer_line(tmp_path, case):
    text, message = ERRORS[case]
    line = text.splitlines().index(next(t for t in text.splitlines() if t.startswith("  - "))) + 1
    with pytest.raises(SpeccError) as info:
        compile_text(tmp_path, text)
    (diagnostic,) = info.value.diagnostics
    assert diagnostic.code == "E060" and message in diagnostic.message
    assert diagnostic.span.line == line, diagnostic.format_text()


# --- a whole token model at any length, and TensorRT's view of the `seq` axis --------------------------

TOKEN_MODEL = spec("  tokens: {shape: [seq], dtype: int64}", """\
  - embedding: {vocab: 20, dim: 8}
  - positional_encoding: {kind: learned, max_len: 16}
  - multihead_attention: {heads: 2, causal: true}
  - name: keys
    gru: {hidden: 6, bidirectional: true}
  - permute: [1, 0]
  - name: query
    global_avgpool: {}
  - attention: {kind: additive}
    from: [query, keys]
  - dense: 3""")


def test_token_model_onnx_equals_torch_at_any_length(tmp_path):
    graph = compile_text(tmp_path, TOKEN_MODEL)
    for batch in (1, 3):
        for length in (1, 7, 13, 16):
            tokens = np.random.default_rng(length).integers(0, 20, (batch, length)).astype(np.int64)
            assert_agree(graph, {"tokens": tokens})


def test_tensorrt_check_asks_for_a_profile_of_the_seq_axis_only(tmp_path):
    from specc.codegen.tensorrt_check import check_tensorrt_compat, has_errors

    model = to_onnx(compile_text(tmp_path, TOKEN_MODEL))
    for version in (10, 11):
        findings = check_tensorrt_compat(model, version)
        assert [f.node for f in findings if f.severity == "error"] == ["tokens"]
        assert "axis 1 is dynamic (`seq`)" in findings[0].reason
        profile = {"seq": {"min": 1, "opt": 8, "max": 16}}
        assert not has_errors(check_tensorrt_compat(model, version, profiles=profile))
