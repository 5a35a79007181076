"""A located error for ops that validate but have no lowering yet."""

from __future__ import annotations

from specc.diagnostics import Diagnostics
from specc.ir.graph import Graph


def check_lowerable(graph: Graph, target: str) -> None:
    diags = Diagnostics()
    for node in graph.nodes:
        if not node.opdef.lowered:
            kind = "preprocess step" if node.category == "preprocess" else "op"
            reason = ("is fitted on training data by `specc train`, which is not available yet"
                      if node.op in ("mean_image", "zca") else f"has no {target} lowering in this version")
            diags.error("E099", f"layer `{node.layer or node.name}`: {kind} `{node.op}` {reason}", node.span,
                        "validate and inspect work; build it once the sequence/training issues land")
    diags.raise_if_errors()
