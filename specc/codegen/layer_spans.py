"""Where each layer of a built model comes from in the spec, for findings about the built model."""

from __future__ import annotations


def layer_spans(graph, spec=None) -> dict:
    """Layer (and input) name -> Span, for `format_findings`: every IR node under its own name and its layer's."""
    spans = {decl.name: decl.span for decl in spec.inputs} if spec is not None else {}
    for node in graph.nodes:
        spans.setdefault(node.name, node.span)
        if node.layer:
            spans.setdefault(node.layer, node.span)
    return spans
