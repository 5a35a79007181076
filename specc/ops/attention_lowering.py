"""The lowerings of `attention`, `multihead_attention` and `positional_encoding`.

ONNX uses standard operators only (MatMul, Softmax, Transpose, Reshape, Slice, Range, Where, ...), never
ONNX Runtime's contrib attention ops, so TensorRT's parser takes the same model. Sequence lengths are
read from the tensors (Shape, Range), so one model serves any length.
"""

from __future__ import annotations

import functools
import math

from specc.diagnostics import NOWHERE, error
from specc.ops.base import float_const

SINUSOID_BASE = 10000.0  # Vaswani et al. 2017


# --- attention (one query over keys that double as values) -------------------------------------------

def torch_attention(kind: str, params: dict, query, keys):
    """query (N, Dq) or (N, Lq, Dq), keys (N, L, Dk) -> (N, Dk) or (N, Lq, Dk)."""
    import torch

    q = query.unsqueeze(1) if query.dim() == 2 else query          # (N, Lq, Dq)
    if kind == "additive":
        # Bahdanau: e_ij = v . tanh(W_q q_i + W_k k_j)
        hidden = torch.tanh((q @ params["query_weight"].T).unsqueeze(2) + (keys @ params["key_weight"].T).unsqueeze(1))
        scores = (hidden @ params["score_weight"].T).squeeze(-1)    # (N, Lq, L)
    else:
        scores = (q @ keys.transpose(1, 2)) / math.sqrt(keys.shape[-1])
    context = torch.softmax(scores, dim=-1) @ keys                  # (N, Lq, Dk)
    return context.squeeze(1) if query.dim() == 2 else context


def onnx_attention(g, kind: str, query: str, keys: str, params: dict, query_rank: int, dk: int, dtype: str) -> str:
    label = g.label
    q = g.node("Unsqueeze", [query, _axes(g, [1])], f"{label}/query_as_sequence") if query_rank == 2 else query
    if kind == "additive":
        wq = g.node("Transpose", [params["query_weight"]], f"{label}/query_weight_T", perm=[1, 0])
        wk = g.node("Transpose", [params["key_weight"]], f"{label}/key_weight_T", perm=[1, 0])
        projected_q = g.node("Unsqueeze", [g.node("MatMul", [q, wq], f"{label}/project_query"), _axes(g, [2])],
                             f"{label}/query_per_key")                              # (N, Lq, 1, dk)
        projected_k = g.node("Unsqueeze", [g.node("MatMul", [keys, wk], f"{label}/project_keys"), _axes(g, [1])],
                             f"{label}/keys_per_query")                             # (N, 1, L, dk)
        hidden = g.node("Tanh", [g.node("Add", [projected_q, projected_k], f"{label}/f_att_sum")], f"{label}/f_att")
        v = g.node("Transpose", [params["score_weight"]], f"{label}/score_weight_T", perm=[1, 0])
        scores = g.node("Squeeze", [g.node("MatMul", [hidden, v], f"{label}/score"), _axes(g, [-1])],
                        f"{label}/scores")                                          # (N, Lq, L)
    else:
        keys_t = g.node("Transpose", [keys], f"{label}/keys_T", perm=[0, 2, 1])
        raw = g.node("MatMul", [q, keys_t], f"{label}/dot")
        scores = g.node("Mul", [raw, float_const(g, 1.0 / math.sqrt(dk), dtype, f"{label}/inv_sqrt_d")],
                        f"{label}/scores")
    weights = g.node("Softmax", [scores], f"{label}/weights", axis=-1)
    if query_rank == 2:
        context = g.node("MatMul", [weights, keys], f"{label}/context")
        return g.node("Squeeze", [context, _axes(g, [1])], label)
    return g.node("MatMul", [weights, keys], label)


# --- multi-head attention -----------------------------------------------------------------------------

def torch_multihead(attrs: dict, params: dict, xs: list, dim: int):
    import torch.nn.functional as F

    q_in, k_in, v_in = xs if len(xs) == 3 else (xs[0],) * 3
    heads = attrs["heads"]
    w, b = params["in_proj_weight"], params["in_proj_bias"]

    def split_heads(x, index):  # (N, L, D) -> (N, heads, L, dim/heads)
        y = F.linear(x, w[index * dim:(index + 1) * dim], b[index * dim:(index + 1) * dim])
        return y.reshape(y.shape[0], y.shape[1], heads, dim // heads).transpose(1, 2)

    # is_causal masks key j > query i (top-left aligned), as the ONNX lowering does
    out = F.scaled_dot_product_attention(split_heads(q_in, 0), split_heads(k_in, 1), split_heads(v_in, 2),
                                         is_causal=attrs["causal"])
    out = out.transpose(1, 2).reshape(out.shape[0], out.shape[2], dim)
    return F.linear(out, params["out_proj_weight"], params["out_proj_bias"])


def onnx_multihead(g, attrs: dict, xs: list, params: dict, dim: int, dtype: str) -> str:
    import numpy as np

    label, heads = g.label, attrs["heads"]
    q_in, k_in, v_in = xs if len(xs) == 3 else (xs[0],) * 3

    def project(x, index, name, perm):
        rows = (g.const(np.array([index * dim], np.int64), f"{label}/{name}_start"),
                g.const(np.array([(index + 1) * dim], np.int64), f"{label}/{name}_end"), _axes(g, [0]))
        weight = g.node("Slice", [params["in_proj_weight"], *rows], f"{label}/{name}_weight")
        bias = g.node("Slice", [params["in_proj_bias"], *rows], f"{label}/{name}_bias")
        weight_t = g.node("Transpose", [weight], f"{label}/{name}_weight_T", perm=[1, 0])
        y = g.node("Add", [g.node("MatMul", [x, weight_t], f"{label}/{name}_matmul"), bias], f"{label}/{name}")
        shape = g.const(np.array([0, -1, heads, dim // heads], np.int64), f"{label}/{name}_heads_shape")
        split = g.node("Reshape", [y, shape], f"{label}/{name}_heads")         # (N, L, heads, hd)
        return g.node("Transpose", [split], f"{label}/{name}_per_head", perm=perm)

    q = project(q_in, 0, "query", [0, 2, 1, 3])                              # (N, heads, Lq, hd)
    k_t = project(k_in, 1, "key", [0, 2, 3, 1])                              # (N, heads, hd, Lk)
    v = project(v_in, 2, "value", [0, 2, 1, 3])                              # (N, heads, Lk, hd)
    scale = float_const(g, 1.0 / math.sqrt(dim // heads), dtype, f"{label}/inv_sqrt_head_dim")
    scores = g.node("Mul", [g.node("MatMul", [q, k_t], f"{label}/dot"), scale], f"{label}/scores")
    if attrs["causal"]:
        scores = _mask_future(g, scores, q_in, k_in, dtype)
    weights = g.node("Softmax", [scores], f"{label}/weights", axis=-1)
    heads_out = g.node("Transpose", [g.node("MatMul", [weights, v], f"{label}/context")], f"{label}/context_T",
                       perm=[0, 2, 1, 3])                                    # (N, Lq, heads, hd)
    merged = g.node("Reshape", [heads_out, g.const(np.array([0, -1, dim], np.int64), f"{label}/merged_shape")],
                    f"{label}/merge_heads")
    out_t = g.node("Transpose", [params["out_proj_weight"]], f"{label}/out_weight_T", perm=[1, 0])
    return g.node("Add", [g.node("MatMul", [merged, out_t], f"{label}/out_matmul"), params["out_proj_bias"]], label)


def _mask_future(g, scores: str, q_in: str, k_in: str, dtype: str) -> str:
    """Scores of key j > query i set to -inf, for whatever lengths the inputs have at run time."""
    import numpy as np

    label = g.label
    zero = g.const(np.array(0, np.int64), f"{label}/zero")
    one = g.const(np.array(1, np.int64), f"{label}/one")

    def positions(x, name):
        length = g.node("Gather", [g.node("Shape", [x], f"{label}/{name}_shape"),
                                   g.const(np.array(1, np.int64), f"{label}/{name}_length_axis")],
                        f"{label}/{name}_length", axis=0)
        return g.node("Range", [zero, length, one], f"{label}/{name}_positions")

    rows = g.node("Unsqueeze", [positions(q_in, "query"), _axes(g, [1])], f"{label}/query_positions_column")
    cols = g.node("Unsqueeze", [positions(k_in, "key"), _axes(g, [0])], f"{label}/key_positions_row")
    future = g.node("Greater", [cols, rows], f"{label}/future")                  # (Lq, Lk)
    return g.node("Where", [future, float_const(g, -np.inf, dtype, f"{label}/minus_inf"), scores],
                  f"{label}/causal_scores")


# --- positional encoding ------------------------------------------------------------------------------

@functools.lru_cache(maxsize=32)  # training asks for the same table at every step; callers never write to it
def sinusoid_table(max_len: int, d: int):
    """PE[p, 2i] = sin(p / 10000^(2i/d)), PE[p, 2i+1] = cos(p / 10000^(2i/d)) (float32, (max_len, d))."""
    import numpy as np

    positions = np.arange(max_len, dtype=np.float64)[:, None]
    rates = np.exp(-math.log(SINUSOID_BASE) * np.arange(0, d, 2, dtype=np.float64) / d)
    table = np.zeros((max_len, d), np.float64)
    table[:, 0::2] = np.sin(positions * rates)
    table[:, 1::2] = np.cos(positions * rates)[:, :d // 2]
    return table.astype(np.float32)


def torch_positional(attrs: dict, params: dict, x):
    import torch

    length, max_len = x.shape[1], attrs["max_len"]
    if length > max_len:  # ONNX Runtime refuses it too, at the Add named after max_len
        raise error("E060", f"`positional_encoding`: the input has {length} positions, more than its max_len "
                    f"{max_len}", NOWHERE, f"set `max_len` >= {length} in the spec, or feed shorter sequences")
    if attrs["kind"] == "learned":
        return x + params["table"][:length]
    table = torch.from_numpy(sinusoid_table(length, x.shape[2]))  # row p depends on p alone: any length will do
    return x + table.to(dtype=x.dtype, device=x.device)


def onnx_positional(g, attrs: dict, x: str, params: dict, x_type) -> str:
    import numpy as np

    label, max_len, (_, length, d) = g.label, attrs["max_len"], x_type.shape
    static = isinstance(length, int)
    if attrs["kind"] == "learned":
        table = params["table"]
    else:  # a fixed length needs only its own rows, and no Slice
        values = sinusoid_table(length if static else max_len, d)
        table = g.const(values.astype(np.float16) if x_type.dtype == "float16" else values, f"{label}/table")
        if static:
            return g.node("Add", [x, table], label)
    if static:
        end = g.const(np.array([length], np.int64), f"{label}/length")
    else:  # the length of this run; longer than max_len, the Add below cannot broadcast and says so
        end = g.node("Slice", [g.node("Shape", [x], f"{label}/shape"), g.const(np.array([1], np.int64), f"{label}/one"),
                               g.const(np.array([2], np.int64), f"{label}/two")], f"{label}/length")
    rows = g.node("Slice", [table, g.const(np.array([0], np.int64), f"{label}/start"), end, _axes(g, [0])],
                  f"{label}/table_rows")
    return g.node("Add", [x, rows], f"{label}/Add_rows_of_max_len_{max_len}")


def _axes(g, axes: list) -> str:
    import numpy as np

    return g.const(np.array(axes, np.int64), f"{g.label}/axes")
