"""Sequence and attention ops on (N, L, D) sequences: embedding, rnn/lstm/gru, attention,
multihead_attention, positional_encoding, and stochastic_depth for residual branches.

The recurrent and attention lowerings live in `recurrent_lowering.py` and `attention_lowering.py`;
docs/sequence.md says how weights are laid out and why the ONNX takes the form it does."""

from __future__ import annotations

from specc.ir.types import TensorType, is_static, shape_str
from specc.ops import attention_lowering, recurrent_lowering
from specc.ops.base import OpDef, ShapeError, elements, float_const, init_weight, register
from specc.lang.argtypes import REQUIRED, Bool, Enum, Field, Float, Int


def _sequence(x: TensorType, op: str):
    if x.rank != 3 or not is_static(x.shape[2]):
        raise ShapeError(f"`{op}` needs a sequence (N, L, D) with a static D, got {shape_str(x.shape)}",
                         "an `embedding` or a `permute` of a (N, C, L) tensor gives one")
    return x.shape[1], x.shape[2]


@register
class Embedding(OpDef):
    name = "embedding"
    doc = "token ids (N, L) int64 -> vectors (N, L, dim)"
    primary = "vocab"
    fields = {"vocab": Field(Int(1), REQUIRED, "vocabulary size"), "dim": Field(Int(1), 128, "vector size")}

    def infer(self, attrs, inputs):
        x = inputs[0]
        if x.dtype != "int64":
            raise ShapeError(f"`embedding` needs int64 token ids, got {x.dtype}", "declare the input `dtype: int64`",
                             code="E061")
        return TensorType("float32", x.shape + (attrs["dim"],))

    def param_shapes(self, attrs, inputs):
        return {"weight": (attrs["vocab"], attrs["dim"])}

    def init_tensor(self, attrs, pname, shape, rng):
        import numpy as np

        return rng.standard_normal(shape).astype(np.float32)  # torch's N(0, 1)

    def torch_forward(self, attrs, params, xs, training):
        import torch.nn.functional as F

        return F.embedding(xs[0], params["weight"])

    def onnx(self, g, attrs, xs, params, itypes, otype):
        return g.node("Gather", [params["weight"], xs[0]], g.label, axis=0)


_GATES = {"rnn": 1, "lstm": 4, "gru": 3}


class _Recurrent(OpDef):
    primary = "hidden"
    fields = {
        "hidden": Field(Int(1), REQUIRED, "hidden size"),
        "layers": Field(Int(1), 1, "stacked layers"),
        "bidirectional": Field(Bool(), False, "run both directions and concatenate them (2*hidden features)"),
        "return_sequences": Field(Bool(), True, "output every step (N, L, H), or (N, H): the last layer's final "
                                  "state of each direction"),
    }

    def infer(self, attrs, inputs):
        length, _ = _sequence(inputs[0], self.name)
        width = attrs["hidden"] * (2 if attrs["bidirectional"] else 1)
        shape = (inputs[0].shape[0], length, width) if attrs["return_sequences"] else (inputs[0].shape[0], width)
        return inputs[0].with_shape(shape)

    def param_shapes(self, attrs, inputs):
        _, d = _sequence(inputs[0], self.name)
        h, gates = attrs["hidden"], _GATES[self.name]
        dirs = 2 if attrs["bidirectional"] else 1
        shapes = {}
        for layer in range(attrs["layers"]):
            width = d if layer == 0 else h * dirs
            for direction in range(dirs):
                suffix = f"l{layer}" + ("_reverse" if direction else "")
                shapes[f"weight_ih_{suffix}"] = (gates * h, width)
                shapes[f"weight_hh_{suffix}"] = (gates * h, h)
                shapes[f"bias_ih_{suffix}"] = (gates * h,)
                shapes[f"bias_hh_{suffix}"] = (gates * h,)
        return shapes

    def macs(self, attrs, inputs, output):
        length = inputs[0].shape[1] if is_static(inputs[0].shape[1]) else 1
        weights = sum(s[0] * s[1] for k, s in self.param_shapes(attrs, inputs).items() if k.startswith("weight"))
        return length * weights

    def init_tensor(self, attrs, pname, shape, rng):
        import numpy as np

        bound = 1.0 / np.sqrt(attrs["hidden"])  # PyTorch's: every weight and bias U(-1/sqrt(H), 1/sqrt(H))
        return rng.uniform(-bound, bound, shape).astype(np.float32)

    def torch_forward(self, attrs, params, xs, training):
        return recurrent_lowering.torch_recurrent(self.name, attrs, params, xs[0], training)

    def onnx(self, g, attrs, xs, params, itypes, otype):
        return recurrent_lowering.onnx_recurrent(self.name, g, attrs, xs[0], params)


for _name in _GATES:
    _doc = f"{_name.upper()} over (N, L, D), PyTorch's nn.{_name.upper()} (weights in its layout)"
    register(type(_name, (_Recurrent,), {"name": _name, "doc": _doc}))


@register
class Attention(OpDef):
    name = "attention"
    doc = ("attention of a query (N, Dq) or (N, Lq, Dq) over keys (N, L, Dk), which double as the values: "
           "additive (Bahdanau) or scaled dot")
    arity = (2, 2)
    fields = {"kind": Field(Enum(("additive", "dot")), "dot", "scoring function")}

    def infer(self, attrs, inputs):
        query, keys = inputs
        _, dk = _sequence(keys, "attention")
        if query.rank not in (2, 3) or not is_static(query.shape[-1]):
            raise ShapeError(f"the query of `attention` must be (N, D) or (N, Lq, D) with a static D, got "
                             f"{shape_str(query.shape)}", "name the query first in `from: [query, keys]`")
        dq = query.shape[-1]
        if attrs["kind"] == "dot" and dq != dk:
            raise ShapeError(f"dot attention needs equal query and key sizes, got {shape_str(query.shape)} "
                             f"and {shape_str(keys.shape)}", "use `kind: additive` or project one side",
                             arg="kind")
        return query.with_shape(query.shape[:-1] + (dk,))

    def param_shapes(self, attrs, inputs):
        if attrs["kind"] == "dot":
            return {}
        dq, dk = inputs[0].shape[-1], inputs[1].shape[-1]
        # f_att's hidden layer has dk units: W_q (dk, dq), W_k (dk, dk), v (1, dk); no biases
        return {"query_weight": (dk, dq), "key_weight": (dk, dk), "score_weight": (1, dk)}

    def init_tensor(self, attrs, pname, shape, rng):
        return init_weight("glorot_uniform", shape, rng)

    def macs(self, attrs, inputs, output):
        query, keys = inputs
        lq = query.shape[1] if query.rank == 3 and is_static(query.shape[1]) else 1
        lk = keys.shape[1] if is_static(keys.shape[1]) else 1
        dq, dk = query.shape[-1], keys.shape[-1]
        if attrs["kind"] == "dot":
            return 2 * lq * lk * dk
        return lq * dq * dk + lk * dk * dk + lq * lk * dk + lq * lk * dk

    def torch_forward(self, attrs, params, xs, training):
        return attention_lowering.torch_attention(attrs["kind"], params, xs[0], xs[1])

    def onnx(self, g, attrs, xs, params, itypes, otype):
        return attention_lowering.onnx_attention(g, attrs["kind"], xs[0], xs[1], params, itypes[0].rank,
                                                 itypes[1].shape[-1], itypes[0].dtype)


@register
class MultiheadAttention(OpDef):
    name = "multihead_attention"
    doc = "multi-head scaled dot-product attention; `from:` one input (self) or [q, k, v]"
    primary = "heads"
    arity = (1, 3)
    fields = {
        "heads": Field(Int(1), REQUIRED, "number of heads"),
        "dim": Field(Int(1), None, "model size (default: the input's last axis)"),
        "causal": Field(Bool(), False, "mask future positions: query i sees keys 0..i"),
    }

    def infer(self, attrs, inputs):
        if len(inputs) == 2:
            raise ShapeError("`multihead_attention` takes one input (self-attention) or three [q, k, v], got 2",
                             "write `from: [q, k, v]`, naming the keys twice if they are also the values")
        _, d = _sequence(inputs[0], self.name)
        if len(inputs) == 3:
            (_, dk), (_, dv) = _sequence(inputs[1], self.name), _sequence(inputs[2], self.name)
            if dk != d or dv != d:
                raise ShapeError(f"query, keys and values must have the same last axis, got {d}, {dk} and {dv}",
                                 "add a `dense` before the keys or values to bring them to the query's size")
            if inputs[1].shape[1] != inputs[2].shape[1]:
                raise ShapeError(f"keys and values must have the same length, got {shape_str(inputs[1].shape)} "
                                 f"and {shape_str(inputs[2].shape)}")
        dim = self.dim(attrs, inputs)
        if dim % attrs["heads"]:
            raise ShapeError(f"dim {dim} is not divisible by heads {attrs['heads']}",
                             "pick a head count that divides dim", arg="heads")
        return inputs[0].with_shape(inputs[0].shape[:2] + (dim,))

    def dim(self, attrs, inputs) -> int:
        return attrs["dim"] or inputs[0].shape[-1]

    def param_shapes(self, attrs, inputs):
        d, dim = inputs[0].shape[-1], self.dim(attrs, inputs)
        # PyTorch's nn.MultiheadAttention layout: q, k, v projections stacked in in_proj_weight
        return {"in_proj_weight": (3 * dim, d), "in_proj_bias": (3 * dim,),
                "out_proj_weight": (dim, dim), "out_proj_bias": (dim,)}

    def init_tensor(self, attrs, pname, shape, rng):
        import numpy as np

        if pname.endswith("bias"):
            return np.zeros(shape, np.float32)
        return init_weight("glorot_uniform", shape, rng)

    def macs(self, attrs, inputs, output):
        length = inputs[0].shape[1] if is_static(inputs[0].shape[1]) else 1
        d = inputs[0].shape[-1]
        dim = self.dim(attrs, inputs)
        return length * (3 * dim * d + dim * dim) + 2 * length * length * dim

    def torch_forward(self, attrs, params, xs, training):
        return attention_lowering.torch_multihead(attrs, params, xs, params["out_proj_weight"].shape[0])

    def onnx(self, g, attrs, xs, params, itypes, otype):
        return attention_lowering.onnx_multihead(g, attrs, xs, params, otype.shape[-1], itypes[0].dtype)


@register
class PositionalEncoding(OpDef):
    name = "positional_encoding"
    doc = "adds position information to a sequence (N, L, D): fixed sinusoids or a learned table"
    fields = {
        "kind": Field(Enum(("sinusoidal", "learned")), "sinusoidal", "fixed sinusoids or a learned table"),
        "max_len": Field(Int(1), 512, "longest sequence"),
    }

    def infer(self, attrs, inputs):
        length, _ = _sequence(inputs[0], self.name)
        if is_static(length) and length > attrs["max_len"]:
            raise ShapeError(f"sequence length {length} exceeds max_len {attrs['max_len']}",
                             f"set max_len >= {length}", arg="max_len")
        return inputs[0]

    def param_shapes(self, attrs, inputs):
        if attrs["kind"] == "sinusoidal":
            return {}
        return {"table": (attrs["max_len"], inputs[0].shape[2])}

    def init_tensor(self, attrs, pname, shape, rng):
        import numpy as np

        return (rng.standard_normal(shape) * 0.02).astype(np.float32)  # as BERT and ViT initialize theirs

    def macs(self, attrs, inputs, output):
        return elements(output)

    def torch_forward(self, attrs, params, xs, training):
        return attention_lowering.torch_positional(attrs, params, xs[0])

    def onnx(self, g, attrs, xs, params, itypes, otype):
        return attention_lowering.onnx_positional(g, attrs, xs[0], params, itypes[0])


@register
class StochasticDepth(OpDef):
    name = "stochastic_depth"
    doc = "on a residual branch: dropped per example with probability p in training, scaled by 1-p in inference"
    primary = "p"
    fields = {"p": Field(Float(0, 1, max_open=True), REQUIRED, "drop probability")}

    def macs(self, attrs, inputs, output):
        return elements(output)

    def torch_forward(self, attrs, params, xs, training):
        import torch

        x, p = xs[0], attrs["p"]
        if not training:
            return x * (1 - p)
        keep = torch.rand((x.shape[0],) + (1,) * (x.dim() - 1), device=x.device) >= p
        return x * keep.to(x.dtype)

    def onnx(self, g, attrs, xs, params, itypes, otype):
        return g.node("Mul", [xs[0], float_const(g, 1 - attrs["p"], itypes[0].dtype, g.label + "_keep")], g.label)
