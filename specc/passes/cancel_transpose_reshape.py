"""Layout moves that undo or repeat each other collapse.

    permute(p2) . permute(p1)  ->  permute(p1 then p2), or nothing when that is the identity
    reshape/flatten . reshape/flatten  ->  one reshape to the last shape
    reshape/flatten to the shape it already has  ->  nothing
"""

from __future__ import annotations

from dataclasses import dataclass

from specc.ir.types import is_static
from specc.ops import REGISTRY
from specc.passes.manager import Pass, PassResult
from specc.passes.rewrite import clone, only_user

TRANSPOSES = ("permute", "to_channels_first")
RESHAPES = ("reshape", "flatten")


def full_perm(node) -> list:
    rank = node.inputs[0].type.rank
    if node.op == "permute":
        return list(node.opdef.full_perm(node.attrs["dims"], rank))
    return list(node.opdef.perm(rank))


@dataclass(frozen=True)
class CancelTransposeReshape(Pass):
    name = "cancel_transpose_reshape"
    summary = "merge or remove permute/reshape pairs that cancel or repeat"

    def run(self, graph):
        stats: dict = {}
        for node in list(graph.nodes):
            if node not in graph.nodes:
                continue  # removed earlier in this sweep
            if node.op in RESHAPES and node.inputs[0].type == node.output.type:
                graph.replace_all_uses(node.output, node.inputs[0])
                graph.erase(node)
                stats["removed"] = stats.get("removed", 0) + 1
                continue
            second = only_user(node.output, graph)
            if second is None:
                continue
            if node.op in TRANSPOSES and second.op == "permute":
                self.merge_permutes(graph, node, second, stats)
            elif node.op in RESHAPES and second.op in RESHAPES:
                self.merge_reshapes(graph, node, second, stats)
        return PassResult(graph, bool(stats), stats)

    @staticmethod
    def merge_permutes(graph, first, second, stats):
        p1, p2 = full_perm(first), full_perm(second)
        composed = [p1[i] for i in p2]
        if composed == list(range(len(composed))):
            graph.replace_all_uses(second.output, first.inputs[0])
            graph.erase(second)
            graph.erase(first)
            stats["cancelled"] = stats.get("cancelled", 0) + 1
            return
        dims = [d - 1 for d in composed[1:]]  # 0-based over the non-batch axes
        merged = clone(second, attrs={"dims": dims}, inputs=[first.inputs[0]])
        graph.replace_node(second, merged)
        graph.erase(first)
        stats["merged"] = stats.get("merged", 0) + 1

    @staticmethod
    def merge_reshapes(graph, first, second, stats):
        target = list(second.output.type.features)
        if not all(is_static(d) for d in target):
            return
        reshape = REGISTRY["reshape"]
        merged = clone(second, attrs={"shape": target}, inputs=[first.inputs[0]], opdef=reshape)
        graph.replace_node(second, merged)
        graph.erase(first)
        stats["merged"] = stats.get("merged", 0) + 1
