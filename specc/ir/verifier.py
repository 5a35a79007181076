"""Structural checks of an IR graph, run after building and after every pass (in tests)."""

from __future__ import annotations


class VerificationError(Exception):
    pass


def verify(graph) -> None:
    defined = {v.name: v for v in graph.inputs}
    for node in graph.nodes:
        for value in node.inputs:
            if defined.get(value.name) != value:
                raise VerificationError(f"node `{node.name}` uses `{value.name}` before it is defined")
        if node.output.name in defined:
            raise VerificationError(f"value `{node.output.name}` is defined twice")
        itypes = [v.type for v in node.inputs]
        inferred = node.opdef.infer(dict(node.attrs), itypes)
        if inferred != node.output.type:
            raise VerificationError(f"node `{node.name}`: output type {node.output.type} but its op infers {inferred}")
        expected = {**node.opdef.param_shapes(dict(node.attrs), itypes),
                    **node.opdef.buffer_shapes(dict(node.attrs), itypes)}
        have = {local: p.shape for local, p in graph.node_params(node).items()}
        if {k: tuple(v) for k, v in expected.items()} != have:
            raise VerificationError(f"node `{node.name}`: parameters {have} but its op needs {expected}")
        defined[node.output.name] = node.output
    for name, value in graph.outputs.items():
        if defined.get(value.name) != value:
            raise VerificationError(f"output `{name}` refers to undefined `{value.name}`")
    nodes = {n.name for n in graph.nodes}
    for param in graph.params.values():
        if param.node not in nodes:
            raise VerificationError(f"parameter `{param.name}` belongs to no node")
