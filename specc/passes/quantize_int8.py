"""Post-training int8: weights become int8 data, activations get symmetric QuantizeLinear/DequantizeLinear pairs.

Placement (docs/precision.md says why):
- each int8 layer (`precision_policy.int8_compute`: conv, dense/gemm on (N, K)) becomes `conv_qdq`/`gemm_qdq`
  reading its weight from a `dequantize_linear` of int8 data (symmetric, per output channel on axis 0:
  scale = max|w| / 63, see WEIGHT_QMAX) and its activation input through a Q/DQ pair;
- its output gets a Q/DQ pair right after it (what lets ONNX Runtime fuse DQ -> Conv -> Q into QLinearConv);
- a pair on a value carries on through the ops that only move values (max pooling, flatten, reshape,
  permute) and through ReLU, with the same scale: those are exact on int8 (ONNX Runtime drops the pairs
  around pooling and reshapes and runs them on int8);
- an `add` whose inputs are all quantized gets a pair on its output (a residual connection stays int8).
Activation scales are amax / 127 with zero point 0 (what TensorRT requires), amax from `ranges`
(calibration: value name -> amax). A value whose every path reaches a ReLU through such moves takes the
ReLU output's range: the negative values it loses are the ones the ReLU zeroes anyway. A value that
reaches a model output with no int8 layer after it takes its largest magnitude (`maxima`) whatever the
calibration method: clipping the largest logits would change which class wins.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from specc.ir.graph import Node, Value
from specc.ir.tensor import TensorData
from specc.ir.types import TensorType
from specc.ops import STEPS
from specc.passes.manager import Pass, PassResult
from specc.passes.precision_policy import INT8_PASSTHROUGH, int8_compute

QMAX = 127  # activations: symmetric [-127, 127]; they saturate at -128 as QuantizeLinear does
# Weights use 7 bits of int8, [-63, 63] (ONNX Runtime's `reduce_range`). On x86 CPUs without VNNI (AVX2, and
# AVX-512 without VNNI) ONNX Runtime multiplies activations shifted to uint8 by int8 weights with VPMADDUBSW,
# which adds two products into int16 and saturates: 2 x 255 x 127 overflows, 2 x 255 x 63 = 32,130 does not.
# With 8-bit weights, tiny_mlp's int8 build lost 2.8 points of top-1 agreement on an AVX2-only AMD EPYC, and its
# outputs left torch's run of the same graph by up to 11%; with 7 bits both match, as they did with 8 bits on a
# VNNI Xeon. The cost is one bit of weight resolution wherever the model runs.
WEIGHT_QMAX = 63
QDQ_OPS = {"conv": "conv_qdq", "dense": "gemm_qdq", "gemm": "gemm_qdq"}


def _const(name: str, shape: tuple, dtype: str, make, span) -> Value:
    return Value(name, TensorType(dtype, tuple(shape)), "const", TensorData(tuple(shape), dtype, recipe=make,
                                                                             source="pass"), span)


def weight_scale(weight: TensorData, per_channel: bool):
    """max|w| / 63 per output channel (axis 0) or for the whole tensor; 1 where the weights are all zero."""
    import numpy as np

    w = weight.numpy()
    amax = np.abs(w).reshape(w.shape[0], -1).max(axis=1) if per_channel else np.abs(w).max()
    return np.where(amax > 0, amax / WEIGHT_QMAX, 1.0).astype(np.float32)


def quantized_weight(weight: TensorData, per_channel: bool):
    import numpy as np

    w = weight.numpy()
    scale = weight_scale(weight, per_channel)
    scale = scale.reshape((-1,) + (1,) * (w.ndim - 1)) if per_channel else scale
    return np.clip(np.round(w / scale), -WEIGHT_QMAX, WEIGHT_QMAX).astype(np.int8)


@dataclass(frozen=True)
class QuantizeInt8(Pass):
    name = "quantize_int8"
    summary = "int8 weights and symmetric Q/DQ pairs on the activations of conv and gemm layers"
    ranges: dict = field(default_factory=dict)  # activation value name -> amax (from calibration)
    per_channel: bool = True
    keep_fp32: tuple = ()
    maxima: dict | None = None  # value name -> largest |x| seen (for values that reach an output)

    def run(self, graph):
        # split_activations has made these linear; a layer that still applies an activation is left float
        layers = [n for n in graph.nodes if int8_compute(n, self.keep_fp32)
                  and n.attrs.get("activation", "linear") == "linear"]
        if not layers:
            return PassResult(graph, False, {})
        classes = self._plan(graph, set(layers))
        scales: dict = {}  # decided before any rewrite: a range follows the readers a value has now
        for head in classes.values():
            if head not in scales:
                amax = self._amax(graph, head, set(layers))
                scales[head] = amax / QMAX if amax > 0 else 1.0
        for value, head in classes.items():
            self._pair(graph, value, scales[head])
        for node in layers:
            self._weight_input(graph, node)
        return PassResult(graph, True, {"layers": len(layers), "pairs": len(classes)})

    # --- placement ------------------------------------------------------
    def _plan(self, graph, layers: set) -> dict:
        """Quantized value -> the value whose range (and scale) it shares, in definition order."""
        share: dict = {}
        for node in graph.nodes:
            if node in layers:
                share.setdefault(node.inputs[0], node.inputs[0])
                share[node.output] = node.output
            elif node.inputs and node.inputs[0] in share and self._moves(node, graph, layers):
                share[node.output] = share[node.inputs[0]]
            elif node.op == "add" and node.inputs and all(v in share for v in node.inputs):
                share[node.output] = node.output
        ordered = [v for v in graph.inputs if v in share]
        ordered += [v for n in graph.nodes for v in n.outputs if v in share]
        return {v: share[v] for v in ordered}

    def _moves(self, node, graph, layers) -> bool:
        """A pair carries on through `node` when it only moves values and something after it wants int8."""
        if node.op not in INT8_PASSTHROUGH and node.op != "relu":
            return False
        return self._wanted(node.output, graph, layers, 0)

    def _wanted(self, value, graph, layers, depth) -> bool:
        for user in value.users():
            if user in layers or user.op == "add":
                return True
            if (user.op in INT8_PASSTHROUGH or user.op == "relu") and depth < 64 \
                    and self._wanted(user.output, graph, layers, depth + 1):
                return True
        return False

    def _amax(self, graph, head: Value, layers: set) -> float:
        """The range of `head`, or of the ReLU every path from it reaches through moves (see the module)."""
        table = self.maxima if self.maxima is not None and self._reaches_output(graph, head, layers) else self.ranges
        value = head
        while len(value.users()) == 1 and not graph.is_output(value):
            user = value.users()[0]
            if user.op == "relu":
                return min(self._range(head, table), self._range(user.output, table))
            if user.op not in INT8_PASSTHROUGH:
                break
            value = user.output
        return self._range(head, table)

    @staticmethod
    def _reaches_output(graph, value: Value, layers: set) -> bool:
        """Whether some path from `value` reaches a model output without passing an int8 layer."""
        seen, todo = set(), [value]
        while todo:
            current = todo.pop()
            if graph.is_output(current):
                return True
            for user in current.users():
                if user not in layers and user not in seen:
                    seen.add(user)
                    todo.extend(user.outputs)
        return False

    @staticmethod
    def _range(value: Value, table: dict) -> float:
        if value.name not in table:
            raise KeyError(f"quantize_int8: no calibrated range for `{value.name}`")
        return float(table[value.name])

    # --- rewriting ------------------------------------------------------
    def _pair(self, graph, value: Value, scale: float) -> None:
        """value -> QuantizeLinear -> DequantizeLinear, read instead of value: one pair per reader (a graph
        output counts as one), each holding its own scale and zero point. ONNX Runtime uses its x86 int8
        kernels only where a QuantizeLinear feeds a single DequantizeLinear, and it merges QuantizeLinear
        nodes that read the same value with the same initializers: shared ones would leave convs unfused."""
        position = {node: i for i, node in enumerate(graph.nodes)}
        readers = sorted(value.users(), key=position.get) + ([None] if graph.is_output(value) else [])
        after = value.producer
        for reader in readers:
            dq = self._new_pair(graph, value, scale, after)
            after = dq.producer
            if reader is None:
                for name, out in list(graph.outputs.items()):
                    if out is value:
                        graph.set_output(name, dq)
            else:
                for slot, operand in enumerate(reader.inputs):
                    if operand is value:
                        graph.set_input(reader, slot, dq)

    def _new_pair(self, graph, value: Value, scale: float, after) -> Value:
        """A Q/DQ pair reading `value`, placed after the node `after` (first of all when None)."""
        import numpy as np

        where = value.producer
        span, layer = (where.span, where.layer) if where is not None else (value.span, value.name)
        qname = graph.unique_name(f"{value.name}.quantize")
        params = {"scale": _const(f"{qname}.scale", (), "float32", lambda: np.array(scale, np.float32), span),
                  "zero_point": _const(f"{qname}.zero_point", (), "int8", lambda: np.array(0, np.int8), span)}
        attrs = {"axis": None, "dtype": "int8"}
        q = Node(qname, STEPS["internal"]["quantize_linear"], "internal", attrs, [value],
                 [Value(qname, TensorType("int8", value.type.shape))], span, layer, params=params)
        dqname = graph.unique_name(f"{value.name}.dequantize")
        dq = Node(dqname, STEPS["internal"]["dequantize_linear"], "internal", {**attrs, "shape": None}, [q.output],
                  [Value(dqname, value.type)], span, layer, params=params)
        if after is not None:
            graph.insert_after(after, q)
        else:
            graph.insert_before(graph.nodes[0], q)
        graph.insert_after(q, dq)
        return dq.output

    def _weight_input(self, graph, node) -> None:
        """node -> conv_qdq/gemm_qdq reading its weight from a dequantize_linear of int8 data."""
        weight = node.params["weight"]
        data, per_channel, shape = weight.data, self.per_channel, tuple(weight.shape)
        channels = (shape[0],) if per_channel else ()
        params = {
            "q": _const(f"{weight.name}.int8", shape, "int8", lambda: quantized_weight(data, per_channel), weight.span),
            "scale": _const(f"{weight.name}.scale", channels, "float32", lambda: weight_scale(data, per_channel),
                            weight.span),
            "zero_point": _const(f"{weight.name}.zero_point", channels, "int8",
                                 lambda: __import__("numpy").zeros(channels, "int8"), weight.span)}
        dq = Node(weight.name, STEPS["internal"]["dequantize_linear"], "internal",
                  {"axis": 0 if per_channel else None, "dtype": "int8", "shape": list(shape)}, [],
                  [Value(weight.name, TensorType("float32", shape))], node.span, node.layer, params=params)
        opdef = STEPS["internal"][QDQ_OPS[node.op]]
        attrs = dict(node.attrs) if node.op == "conv" else \
            {"units": node.attrs["units"], "bias": node.attrs["bias"], "activation": "linear"}
        bias = {"bias": node.params["bias"]} if "bias" in node.params else {}
        layer = Node(node.name, opdef, node.category, attrs, [node.inputs[0], dq.output],
                     [Value(node.output.name, node.output.type)], node.span, node.layer, params=bias, meta=node.meta)
        graph.replace_node(node, layer)  # the float weight leaves the graph here, freeing its name
        graph.insert_before(layer, dq)
