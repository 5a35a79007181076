"""Structural checks of an IR graph, run after building and after every pass (in tests).

They catch what a broken rewrite leaves behind: a value read before it is
defined, use lists that disagree with the operands, an output type its op
would not infer, parameters of the wrong shape, data without values.
"""

from __future__ import annotations


class VerificationError(Exception):
    pass


def verify(graph) -> None:
    defined = set(graph.inputs)
    in_graph = set(graph.nodes)
    names = {v.name for v in graph.inputs}
    for node in graph.nodes:
        for slot, value in node.operands():
            if isinstance(slot, int) and value not in defined:
                raise VerificationError(f"node `{node.name}` uses `{value.name}` before it is defined")
            if (node, slot) not in value._uses:
                raise VerificationError(f"node `{node.name}` reads `{value.name}`, which does not list that use")
            if not isinstance(slot, int):
                if not value.is_data or value.data is None:
                    raise VerificationError(f"node `{node.name}`: param `{slot}` (`{value.name}`) carries no data")
                if graph.params.get(value.name) is not value:
                    raise VerificationError(f"node `{node.name}`: param `{value.name}` is not in the graph's params")
        itypes = [v.type for v in node.inputs]
        inferred = node.opdef.infer(dict(node.attrs), itypes)
        inferred = tuple(inferred) if isinstance(inferred, (tuple, list)) else (inferred,)
        got = tuple(v.type for v in node.outputs)
        if inferred != got:
            shown = ", ".join(map(str, got))
            raise VerificationError(f"node `{node.name}`: output type {shown} but its op infers "
                                    f"{', '.join(map(str, inferred))}")
        expected = {**node.opdef.param_shapes(dict(node.attrs), itypes),
                    **node.opdef.buffer_shapes(dict(node.attrs), itypes)}
        have = {local: tuple(p.shape) for local, p in node.params.items()}
        if {k: tuple(v) for k, v in expected.items()} != have:
            raise VerificationError(f"node `{node.name}`: parameters {have} but its op needs {expected}")
        for value in node.outputs:
            if value.name in names:
                raise VerificationError(f"value `{value.name}` is defined twice")
            if value.producer is not node:
                raise VerificationError(f"value `{value.name}` does not name `{node.name}` as its producer")
            names.add(value.name)
            defined.add(value)
        for value in node.outputs:
            for user, slot in value.uses():
                if user not in in_graph or (user.inputs[slot] if isinstance(slot, int) else None) is not value:
                    raise VerificationError(f"`{value.name}` lists a use by `{user.name}` that does not read it")
    for name, value in graph.outputs.items():
        if value not in defined:
            raise VerificationError(f"output `{name}` refers to undefined `{value.name}`")
    for name, param in graph.params.items():
        if not param.has_uses:
            raise VerificationError(f"data value `{name}` is used by no node")
        if param.name != name:
            raise VerificationError(f"data value `{param.name}` is registered as `{name}`")
        if param.data is not None and tuple(param.data.shape) != tuple(param.shape):
            raise VerificationError(f"data value `{name}` holds shape {list(param.data.shape)}, "
                                    f"typed {list(param.shape)}")
