"""A readable text form of the IR (`specc inspect --ir`), stable enough for golden tests."""

from __future__ import annotations

from specc.ir.graph import Graph


def _attr(value) -> str:
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_attr(v) for v in value) + "]"
    if isinstance(value, str):
        return value
    return str(value)


def print_graph(graph: Graph, spans: bool = True) -> str:
    args = ", ".join(f"%{v.name}: {v.type}" for v in graph.inputs)
    lines = [f"graph {graph.name}({args}) {{"]
    for node in graph.nodes:
        fields = node.opdef.fields  # defaults are left out: the IR shows what the spec chose
        attrs = ", ".join(f"{k}={_attr(v)}" for k, v in node.attrs.items()
                          if v is not None and not (k in fields and fields[k].default == v))
        params = graph.node_params(node)
        param_text = ", ".join(f"@{p.name}: {list(p.shape)}" for p in params.values())
        operands = ", ".join(f"%{v.name}" for v in node.inputs)
        if param_text:
            operands += ", " + param_text
        line = f"  %{node.output.name} = {node.op}({operands})"
        if attrs:
            line += f" {{{attrs}}}"
        line += f" : {node.output.type}"
        if spans:
            line += f"  # {node.span.path}:{node.span.line}"
        lines.append(line)
    outputs = ", ".join(f"{k}=%{v.name}" for k, v in graph.outputs.items())
    lines.append(f"  return {outputs}")
    lines.append("}")
    return "\n".join(lines)
