"""A node whose every input is a constant is computed at compile time and becomes a constant.

Only ops whose meaning does not involve the batch axis are folded (constants have none):
elementwise arithmetic and casts. Dequantization of weights is left alone on purpose: the
Quantize/DequantizeLinear pairs are how int8 precision is written into the graph.
"""

from __future__ import annotations

from dataclasses import dataclass

from specc.ir.graph import Node, Value
from specc.ir.types import TensorType
from specc.ops import STEPS
from specc.passes.manager import Pass, PassResult
from specc.passes.rewrite import data


def _cast(attrs, xs):
    return xs[0].astype(attrs["to"])


def _sum(attrs, xs):
    out = xs[0]
    for x in xs[1:]:
        out = out + x
    return out


def _product(attrs, xs):
    out = xs[0]
    for x in xs[1:]:
        out = out * x
    return out


FOLDERS = {
    "cast": _cast,
    "add": _sum,
    "mul": _product,
    "scale": lambda attrs, xs: xs[0] * attrs["factor"],
}


@dataclass(frozen=True)
class FoldConstants(Pass):
    name = "fold_constants"
    summary = "compute nodes whose inputs are all constants at compile time"

    def run(self, graph):
        import numpy as np

        folded = 0
        constant = STEPS["internal"]["constant"]
        for node in list(graph.nodes):
            fold = FOLDERS.get(node.op)
            producers = [v.producer for v in node.inputs]
            if fold is None or not producers or any(p is None or p.op != "constant" for p in producers):
                continue
            arrays = [p.params["value"].numpy() for p in producers]
            value = np.asarray(fold(dict(node.attrs), arrays)).astype(node.output.type.dtype)
            name = graph.unique_name(f"{node.name}.folded")
            if tuple(value.shape) != tuple(node.output.type.shape):
                continue  # broadcast against the batch axis: the result is not batch-free
            out = Value(node.output.name, TensorType(node.output.type.dtype, tuple(value.shape)))
            replacement = Node(node.name, constant, "internal", {"shape": list(value.shape), "dtype": str(value.dtype)},
                               [], [out], node.span, node.layer,
                               params={"value": data(name, value, kind="const", span=node.span)})
            graph.replace_node(node, replacement)
            folded += 1
        return PassResult(graph, bool(folded), {"folded": folded} if folded else {})
