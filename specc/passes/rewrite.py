"""Small helpers the passes share: making nodes and data values, and asking about uses."""

from __future__ import annotations

from specc.ir.graph import Graph, Node, Value, data_value
from specc.ir.tensor import TensorData


def only_user(value: Value, graph: Graph) -> Node | None:
    """The one node reading `value`, when exactly one does and it is no graph output."""
    users = value.users()
    if len(users) != 1 or graph.is_output(value) or len(value.uses()) != 1:
        return None
    return users[0]


def data(name: str, array, kind: str = "param", span=None) -> Value:
    """A data value holding `array` (made by a pass)."""
    return data_value(name, tuple(array.shape), kind, TensorData.of(array, source="pass"), span)


def lazy_data(name: str, shape: tuple, make, kind: str = "param", span=None) -> Value:
    """A data value whose array `make()` computes when first asked for: a pass that rewrites weights
    stays free on a model whose weights nobody materializes (`inspect --ir` of a huge spec)."""
    return data_value(name, tuple(shape), kind, TensorData(tuple(shape), "float32", recipe=make, source="pass"), span)


def clone(node: Node, attrs: dict | None = None, params: dict | None = None, inputs=None, opdef=None,
          name: str | None = None) -> Node:
    """A copy of `node` with some parts replaced; outputs are new values of the same names and types.
    With another `opdef`, the attributes are `attrs` alone (the old op's mean nothing to the new one)."""
    outputs = [Value(v.name, v.type) for v in node.outputs]
    kept = node.attrs if opdef is None or opdef is node.opdef else {}
    return Node(name or node.name, opdef or node.opdef, node.category, {**kept, **(attrs or {})},
                node.inputs if inputs is None else inputs, outputs, node.span, node.layer,
                params=dict(node.params) if params is None else params, meta=node.meta)


def new_node(graph: Graph, hint: str, opdef, attrs: dict, inputs: list, like: Node, out_type,
             params: dict | None = None, category: str | None = None) -> Node:
    """A node of a pass's own, named after `hint`, located where `like` is."""
    name = graph.unique_name(hint)
    return Node(name, opdef, category or like.category, attrs, inputs, [Value(name, out_type)], like.span,
                like.layer, params=params)
