"""A readable text form of the IR (`specc inspect --ir`), stable enough for golden tests."""

from __future__ import annotations

from specc.ir.graph import Graph, Node


def _attr(value) -> str:
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_attr(v) for v in value) + "]"
    if isinstance(value, str):
        return value
    return str(value)


def _trivial(key: str, value) -> bool:
    """Resolved geometry that says nothing: unit strides and dilations, zero pads."""
    return key in ("strides", "dilations") and set(value) == {1} or key == "pads" and not any(value)


def node_attrs(node: Node) -> str:
    # Defaults are left out: the IR shows what was chosen. Spec arguments that the front end resolved
    # (kernel, padding: same) are shown in their resolved form only.
    fields = getattr(node.opdef, "fields", {})
    hidden = getattr(node.opdef, "resolved_from", ())
    return ", ".join(f"{k}={_attr(v)}" for k, v in node.attrs.items()
                     if v is not None and k not in hidden and not (k in fields and fields[k].default == v)
                     and not _trivial(k, v))


def print_node(node: Node, spans: bool = True) -> str:
    operands = [f"%{v.name}" for v in node.inputs]
    operands += [f"@{p.name}: {list(p.shape)}" + ("" if p.type.dtype == "float32" else f" {p.type.dtype}")
                 for p in node.params.values()]
    results = ", ".join(f"%{v.name}" for v in node.outputs)
    line = f"  {results} = {node.op}({', '.join(operands)})"
    attrs = node_attrs(node)
    if attrs:
        line += f" {{{attrs}}}"
    line += " : " + ", ".join(str(v.type) for v in node.outputs)
    if spans and node.span is not None and node.span.line:
        line += f"  # {node.span.path}:{node.span.line}"
    return line


def print_graph(graph: Graph, spans: bool = True) -> str:
    args = ", ".join(f"%{v.name}: {v.type}" for v in graph.inputs)
    lines = [f"graph {graph.name}({args}) {{"]
    lines += [print_node(node, spans) for node in graph.nodes]
    outputs = ", ".join(f"{k}=%{v.name}" for k, v in graph.outputs.items())
    lines.append(f"  return {outputs}")
    lines.append("}")
    return "\n".join(lines)
