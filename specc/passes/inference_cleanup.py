"""Ops that do nothing at inference leave the graph: dropout and identity vanish, stochastic
depth becomes the scale it is at inference (x * (1 - p))."""

from __future__ import annotations

from dataclasses import dataclass

from specc.ops import STEPS
from specc.passes.manager import Pass, PassResult
from specc.passes.rewrite import clone

VANISH = ("dropout", "identity")


@dataclass(frozen=True)
class InferenceCleanup(Pass):
    name = "inference_cleanup"
    summary = "remove dropout and identity; stochastic depth becomes its inference scale"

    def run(self, graph):
        removed = scaled = 0
        for node in list(graph.nodes):
            if node.category != "layer":
                continue
            if node.op in VANISH:
                graph.replace_all_uses(node.output, node.inputs[0])
                graph.erase(node)
                removed += 1
            elif node.op == "stochastic_depth":
                scale = STEPS["preprocess"]["scale"]
                graph.replace_node(node, clone(node, attrs={"factor": 1.0 - node.attrs["p"]}, opdef=scale))
                scaled += 1
        stats = {k: v for k, v in (("removed", removed), ("stochastic_depth_scaled", scaled)) if v}
        return PassResult(graph, bool(stats), stats)
