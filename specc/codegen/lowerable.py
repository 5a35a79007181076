"""A located error for ops that validate but have no lowering yet."""

from __future__ import annotations

from specc.diagnostics import Diagnostics
from specc.ir.graph import Graph


def check_lowerable(graph: Graph, target: str) -> None:
    diags = Diagnostics()
    for node in graph.nodes:
        if not node.opdef.lowered:
            kind = "preprocess step" if node.category == "preprocess" else "op"
            diags.error("E099", f"layer `{node.layer or node.name}`: {kind} `{node.op}` has no {target} lowering "
                        "in this version", node.span, "`specc validate` and `specc inspect` accept it; "
                        "this version of specc cannot build a model with it")
    diags.raise_if_errors()
