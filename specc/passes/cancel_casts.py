"""Casts that change nothing leave the graph.

    cast(x, T)            ->  x              when x is already T
    cast(cast(x, A), B)   ->  cast(x, B)     when every value of x's type is exact in A (uint8 -> float16,
                                             float16 -> float32): the inner Cast loses nothing, so skipping
                                             it gives the same result; cast(cast(x16, f32), f16) is x16

Never the other way: cast(cast(x, float16), float32) rounds x to float16, which is the point of it.
"""

from __future__ import annotations

from dataclasses import dataclass

from specc.passes.manager import Pass, PassResult
from specc.passes.rewrite import clone

# (from, to): every value of `from` is exactly representable in `to`.
EXACT = {("uint8", "float16"), ("uint8", "float32"), ("int8", "float16"), ("int8", "float32"),
         ("float16", "float32"), ("bfloat16", "float32"), ("uint8", "int32"), ("int8", "int32"),
         ("uint8", "int64"), ("int8", "int64"), ("int32", "int64")}


def exact(source: str, target: str) -> bool:
    return source == target or (source, target) in EXACT


@dataclass(frozen=True)
class CancelCasts(Pass):
    name = "cancel_casts"
    summary = "remove casts to a value's own type and exact cast-of-cast pairs"

    def run(self, graph):
        removed = shortened = 0
        for node in [n for n in graph.nodes if n.op == "cast"]:
            x = node.inputs[0]
            inner = x.producer
            if inner is not None and inner.op == "cast" and exact(inner.inputs[0].type.dtype, x.type.dtype):
                node = graph.replace_node(node, clone(node, inputs=[inner.inputs[0]]))
                x, shortened = inner.inputs[0], shortened + 1
                if not inner.output.has_uses and not graph.is_output(inner.output):
                    graph.erase(inner)
            if x.type.dtype == node.attrs["to"]:
                graph.replace_all_uses(node.output, x)
                graph.erase(node)
                removed += 1
        stats = {k: v for k, v in (("removed", removed), ("shortened", shortened)) if v}
        return PassResult(graph, bool(stats), stats)
