"""The IR core: values, nodes and the graph, with use lists and a small rewriter API.

A `Value` is an edge: a model input, a node output, or data (a parameter,
buffer or constant, whose `data` is a lazily made `TensorData`). A `Node`
applies an op to input values and named data values (`params`, e.g.
`weight`, `bias`) and defines one or more output values. Nodes and values
compare by identity and are hashable; a value knows its uses.

Types, attributes and names never change. What changes - a node's inputs,
its params, the node list - changes only through `Graph` methods, which keep
every use list consistent. The IR knows nothing above it: a node holds its op
definition as an object (anything with `name`, `infer`, `param_shapes`, ...),
never looks it up in a registry.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Iterable

from specc.diagnostics import Span
from specc.ir.tensor import TensorData
from specc.ir.types import TensorType

# What a value is. Data kinds carry `data`; `param` is trained, `buffer` is state that travels with
# the weights (running statistics, fitted preprocessing), `const` is a value the compiler made.
KINDS = ("input", "activation", "param", "buffer", "const")
DATA_KINDS = ("param", "buffer", "const")


class Value:
    __slots__ = ("name", "type", "kind", "data", "producer", "index", "owner", "local", "span", "_uses",
                 "__weakref__")

    def __init__(self, name: str, type: TensorType, kind: str = "activation", data: TensorData | None = None,
                 span: Span | None = None):
        assert kind in KINDS, kind
        self.name = name
        self.type = type
        self.kind = kind
        self.data = data
        self.producer: Node | None = None   # the node that defines it (activations)
        self.index = 0                      # which output of the producer
        self.owner: str = ""                # data values: the name of the node that holds it
        self.local: str = ""                # data values: its name in that node (`weight`)
        self.span = span
        self._uses: dict = {}               # (node, slot) -> None: an ordered set

    # --- uses -----------------------------------------------------------
    def uses(self) -> list:
        """(node, slot) pairs: slot is an input index, or a param's local name."""
        return list(self._uses)

    def users(self) -> list:
        seen: dict = {}
        for node, _ in self._uses:
            seen[node] = None
        return list(seen)

    @property
    def has_uses(self) -> bool:
        return bool(self._uses)

    # --- data values ----------------------------------------------------
    @property
    def trainable(self) -> bool:
        return self.kind == "param"

    @property
    def is_data(self) -> bool:
        return self.kind in DATA_KINDS

    @property
    def shape(self) -> tuple:
        return self.type.shape

    @property
    def size(self) -> int:
        count = 1
        for d in self.type.shape:
            count *= d
        return count

    @property
    def node(self) -> str:
        """The owning node's name (data values): where a weight belongs in reports."""
        return self.owner

    def numpy(self):
        return self.data.numpy()

    def __repr__(self) -> str:
        return f"%{self.name}: {self.type}"


class Node:
    __slots__ = ("name", "opdef", "category", "attrs", "_inputs", "_params", "outputs", "span", "layer", "meta")

    def __init__(self, name: str, opdef, category: str, attrs, inputs: Iterable[Value], outputs: Iterable[Value],
                 span: Span, layer: str = "", params: dict | None = None, meta: dict | None = None):
        self.name = name
        self.opdef = opdef
        self.category = category
        self.attrs = attrs if isinstance(attrs, MappingProxyType) else MappingProxyType(dict(attrs))
        self._inputs = tuple(inputs)
        self._params = dict(params or {})
        self.outputs = tuple(outputs)
        self.span = span
        self.layer = layer or name
        self.meta = dict(meta or {})
        for i, value in enumerate(self.outputs):
            value.producer, value.index = self, i

    @property
    def op(self) -> str:
        return self.opdef.name

    @property
    def inputs(self) -> tuple:
        return self._inputs

    @property
    def params(self) -> MappingProxyType:
        return MappingProxyType(self._params)

    @property
    def output(self) -> Value:
        return self.outputs[0]

    def operands(self):
        """(slot, value) for every value the node reads."""
        yield from enumerate(self._inputs)
        yield from self._params.items()

    def __repr__(self) -> str:
        return f"Node({self.name}: {self.op})"


class Graph:
    """Nodes in topological order, model inputs and named outputs, and every data value by name."""

    def __init__(self, name: str, seed: int = 0, source: str = ""):
        self.name = name
        self.seed = seed
        self.source = source
        self.inputs: list[Value] = []
        self.nodes: list[Node] = []
        self.outputs: dict[str, Value] = {}
        self.params: dict[str, Value] = {}   # every data value (params, buffers, constants) by name
        self._output_uses: dict = {}         # value -> output names using it

    # --- reading --------------------------------------------------------
    def node_params(self, node: Node) -> dict:
        """local name -> data value, for one node."""
        return dict(node.params)

    def node(self, name: str) -> Node | None:
        for node in self.nodes:
            if node.name == name:
                return node
        return None

    def is_output(self, value: Value) -> bool:
        return value in set(self.outputs.values())

    @property
    def trainable_params(self) -> int:
        return sum(p.size for p in self.params.values() if p.trainable)

    def unique_name(self, hint: str) -> str:
        taken = {n.name for n in self.nodes} | set(self.params) | {v.name for v in self.inputs}
        name, i = hint, 1
        while name in taken:
            i += 1
            name = f"{hint}_{i}"
        return name

    # --- building -------------------------------------------------------
    def add_input(self, value: Value) -> Value:
        value.kind = "input"
        self.inputs.append(value)
        return value

    def append(self, node: Node) -> Node:
        self.nodes.append(node)
        self._attach(node)
        return node

    def insert_before(self, anchor: Node, node: Node) -> Node:
        self.nodes.insert(self.nodes.index(anchor), node)
        self._attach(node)
        return node

    def insert_after(self, anchor: Node, node: Node) -> Node:
        self.nodes.insert(self.nodes.index(anchor) + 1, node)
        self._attach(node)
        return node

    def set_output(self, name: str, value: Value) -> None:
        self.outputs[name] = value

    # --- rewriting ------------------------------------------------------
    def set_input(self, node: Node, index: int, value: Value) -> None:
        old = node._inputs[index]
        old._uses.pop((node, index), None)
        node._inputs = node._inputs[:index] + (value,) + node._inputs[index + 1:]
        value._uses[(node, index)] = None

    def set_param(self, node: Node, local: str, value: Value | None) -> None:
        """Give `node` a new data value under `local` (None removes it); unused old data leaves the graph."""
        old = node._params.pop(local, None)
        if old is not None:
            old._uses.pop((node, local), None)
            self._drop_if_unused(old)
        if value is not None:
            node._params[local] = value
            self._register_data(node, local, value)

    def replace_all_uses(self, old: Value, new: Value) -> int:
        """Every node input and graph output reading `old` reads `new` instead; returns how many."""
        if old is new:
            return 0
        count = 0
        for node, slot in old.uses():
            if isinstance(slot, int):
                self.set_input(node, slot, new)
            else:
                self.set_param(node, slot, new)
            count += 1
        for key, value in list(self.outputs.items()):
            if value is old:
                self.outputs[key] = new
                count += 1
        return count

    def erase(self, node: Node) -> None:
        """Remove a node whose outputs are unused; its data values leave the graph unless shared."""
        for value in node.outputs:
            if value.has_uses or self.is_output(value):
                users = ", ".join(n.name for n in value.users()) or "a graph output"
                raise ValueError(f"cannot erase `{node.name}`: `{value.name}` is still used by {users}")
        self.nodes.remove(node)
        for slot, value in list(node.operands()):
            value._uses.pop((node, slot), None)
            if value.is_data:
                self._drop_if_unused(value)
        node._inputs, node._params = (), {}

    def replace_node(self, old: Node, new: Node) -> Node:
        """Put `new` where `old` stands: its outputs take over every use of old's outputs, old leaves
        with its data, and new's data is registered after, so it may reuse old's tensor names."""
        if len(old.outputs) != len(new.outputs):
            raise ValueError(f"`{new.name}` has {len(new.outputs)} outputs, `{old.name}` has {len(old.outputs)}")
        index = self.nodes.index(old)
        for before, after in zip(old.outputs, new.outputs):
            self.replace_all_uses(before, after)
        self.erase(old)
        self.nodes.insert(index, new)
        self._attach(new)
        return new

    def replace(self, old: Node, new_nodes: list, new_output: Value) -> None:
        """Insert `new_nodes` where `old` stands, route old's (single) output to `new_output`, erase old."""
        for node in new_nodes:
            self.insert_before(old, node)
        self.replace_all_uses(old.output, new_output)
        self.erase(old)

    # --- internals ------------------------------------------------------
    def _attach(self, node: Node) -> None:
        for slot, value in enumerate(node._inputs):
            value._uses[(node, slot)] = None
        for local, value in node._params.items():
            self._register_data(node, local, value)

    def _register_data(self, node: Node, local: str, value: Value) -> None:
        held = self.params.get(value.name)
        if held is not None and held is not value:
            raise ValueError(f"data value `{value.name}` is already in the graph (held by `{held.owner}`)")
        value._uses[(node, local)] = None
        if not value.owner:
            value.owner, value.local = node.name, local
        self.params[value.name] = value

    def _drop_if_unused(self, value: Value) -> None:
        if not value.has_uses and self.params.get(value.name) is value:
            del self.params[value.name]


def freeze(attrs: dict) -> MappingProxyType:
    return MappingProxyType(dict(attrs))


def data_value(name: str, shape: tuple, kind: str, data: TensorData, span: Span | None = None,
               dtype: str | None = None) -> Value:
    """A parameter, buffer or constant value carrying `data`."""
    return Value(name, TensorType(dtype or data.dtype, tuple(shape)), kind, data, span)
