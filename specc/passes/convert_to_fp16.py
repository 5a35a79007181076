"""float32 becomes float16: activations, weights and constants, with the model's inputs and outputs kept.

Each node is rewritten in order. A node that computes in float16 gets float16 data and reads float16
values; a node kept in float32 (`precision_policy.keeps_fp32`, or an op that makes float32 whatever
it reads, such as `embedding`) reads float32 values. Where a value meets a reader of the other type a
Cast is placed once, shared by every reader: so each float32 island has Casts at its borders only.
The input Casts the front end made for uint8/float16 inputs now cast straight to float16, and every
output gets back its declared type. Run `cancel_casts` after it: a float16 input's Cast to float16
is the identity.
"""

from __future__ import annotations

from dataclasses import dataclass

from specc.ir.graph import Node, Value
from specc.ir.tensor import TensorData
from specc.ir.types import TensorType
from specc.ops import STEPS
from specc.passes.manager import Pass, PassResult
from specc.passes.precision_policy import keeps_fp32

HALF, FULL = "float16", "float32"


def half_data(value: Value) -> Value:
    """The data value in float16, made when first asked for (stays lazy like the pass that made it)."""
    source = value.data

    def make():
        return source.numpy().astype("float16")

    data = TensorData(tuple(value.shape), HALF, recipe=make, source=source.source)
    return Value(value.name, TensorType(HALF, value.shape), value.kind, data, value.span)


def _infer(node, attrs, itypes) -> tuple:
    out = node.opdef.infer(attrs, itypes)
    return tuple(out) if isinstance(out, (tuple, list)) else (out,)


@dataclass(frozen=True)
class ConvertToFp16(Pass):
    name = "convert_to_fp16"
    summary = "float32 activations and data become float16; kept layers stay float32 between Casts"
    keep_fp32: tuple = ()

    def run(self, graph):
        declared = {name: value.type.dtype for name, value in graph.outputs.items()}
        casts: dict = {}  # (value, dtype) -> the Cast's output: one Cast per value and type
        stats = {"converted": 0, "kept_fp32": 0}
        for node in list(graph.nodes):
            if self._input_cast(graph, node):
                self._rewrite(graph, node, {"to": HALF}, list(node.inputs), dict(node.params))
                stats["converted"] += 1
                continue
            want = self._computes_in(node)
            if want is None:
                continue
            inputs = [self._as(graph, v, want, node, casts) if v.type.dtype in (HALF, FULL) else v
                      for v in node.inputs]
            params = {k: half_data(p) if want == HALF and p.type.dtype == FULL else p for k, p in node.params.items()}
            attrs = {"dtype": HALF} if node.op == "constant" and want == HALF else {}
            types = _infer(node, {**node.attrs, **attrs}, [v.type for v in inputs])
            retyped = types != tuple(v.type for v in node.outputs)
            if retyped or inputs != list(node.inputs) or params != dict(node.params):
                self._rewrite(graph, node, attrs, inputs, params)
                stats["converted" if want == HALF else "kept_fp32"] += 1
        for name, value in list(graph.outputs.items()):
            if value.type.dtype != declared[name]:
                graph.set_output(name, self._as(graph, value, declared[name], None, casts))
        stats["casts"] = len(casts)
        return PassResult(graph, bool(stats["converted"] + stats["kept_fp32"]), {k: v for k, v in stats.items() if v})

    def _input_cast(self, graph, node) -> bool:
        """The front end's Cast of a uint8/float16 input to float32: it now casts straight to float16."""
        return (node.op == "cast" and node.attrs["to"] == FULL and node.inputs[0] in graph.inputs
                and not keeps_fp32(node, self.keep_fp32))

    def _computes_in(self, node) -> str | None:
        """float16, float32, or None for a node that touches no float32 (int ops, casts)."""
        floats = [v for v in list(node.inputs) + list(node.outputs) + list(node.params.values())
                  if v.type.dtype == FULL]
        if not floats or node.op == "cast":
            return None
        if keeps_fp32(node, self.keep_fp32):
            return FULL
        attrs = {**node.attrs, "dtype": HALF} if node.op == "constant" else dict(node.attrs)
        halved = [v.type if v.type.dtype != FULL else TensorType(HALF, v.type.shape) for v in node.inputs]
        if any(t.dtype == FULL for t in _infer(node, attrs, halved)):
            return FULL  # the op makes float32 whatever it reads: it stays float32, Casts around it
        return HALF

    @staticmethod
    def _rewrite(graph, node, attrs: dict, inputs: list, params: dict) -> Node:
        attrs = {**node.attrs, **attrs}
        types = _infer(node, attrs, [v.type for v in inputs])
        outputs = [Value(v.name, t) for v, t in zip(node.outputs, types)]
        new = Node(node.name, node.opdef, node.category, attrs, inputs, outputs, node.span, node.layer,
                   params=params, meta=node.meta)
        return graph.replace_node(node, new)

    @staticmethod
    def _as(graph, value: Value, dtype: str, reader, casts: dict) -> Value:
        """`value` as `dtype`: itself, or a Cast placed before `reader` (after every node when None)."""
        if value.type.dtype == dtype:
            return value
        if (value, dtype) not in casts:
            name = graph.unique_name(f"{value.name}.to_{dtype}")
            where = reader if reader is not None else (value.producer or graph.nodes[0])
            cast = Node(name, STEPS["internal"]["cast"], "internal", {"to": dtype}, [value],
                        [Value(name, TensorType(dtype, value.type.shape))], where.span, where.layer)
            if reader is not None:
                graph.insert_before(reader, cast)
            else:
                graph.append(cast)
            casts[(value, dtype)] = cast.output
        return casts[(value, dtype)]
