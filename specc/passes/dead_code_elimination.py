"""Nodes whose results nobody reads leave the graph, with the data only they held."""

from __future__ import annotations

from dataclasses import dataclass

from specc.passes.manager import Pass, PassResult


@dataclass(frozen=True)
class DeadCodeElimination(Pass):
    name = "dead_code_elimination"
    summary = "remove nodes whose outputs are unused"

    def run(self, graph):
        outputs = set(graph.outputs.values())
        removed = 0
        for node in reversed(list(graph.nodes)):  # consumers first: a chain of dead nodes goes in one sweep
            if not any(v.has_uses or v in outputs for v in node.outputs):
                graph.erase(node)
                removed += 1
        return PassResult(graph, bool(removed), {"removed": removed} if removed else {})
