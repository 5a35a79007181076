"""The front half of the pipeline: spec file -> Spec AST -> verified IR graph."""

from __future__ import annotations

from dataclasses import dataclass

from specc.diagnostics import Diagnostics, SpeccError
from specc.ir.builder import build_graph
from specc.ir.graph import Graph
from specc.limits import Limits
from specc.parser.spec import Spec, load_spec


@dataclass
class Compiled:
    spec: Spec
    graph: Graph


def compile_spec(path: str, limits: Limits) -> Compiled:
    """Parse, expand and shape-check a spec, raising SpeccError with every diagnostic found."""
    spec = load_spec(path, limits)
    diags = Diagnostics()
    graph = build_graph(spec, limits, diags)
    if not spec.inputs and not diags.has_errors:
        diags.error("E011", "the spec declares no inputs", spec.network_span)
    diags.raise_if_errors()
    return Compiled(spec, graph)


def check_spec(path: str, limits: Limits) -> list:
    """All diagnostics for one spec file (empty when it is valid)."""
    try:
        compile_spec(path, limits)
    except SpeccError as exc:
        return exc.diagnostics
    return []
