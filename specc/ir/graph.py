"""The IR graph: values, nodes, parameters. Nodes are immutable; the graph changes only
through `Graph.replace` so that uses stay consistent (the passes' rewriter API)."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType

from specc.diagnostics import Span
from specc.ir.types import TensorType


@dataclass(frozen=True)
class Value:
    name: str
    type: TensorType


@dataclass(frozen=True)
class Node:
    name: str            # unique: the spec layer's name, `<block use>.<inner>` inside blocks
    op: str              # registry name
    category: str        # layer | preprocess | internal
    attrs: MappingProxyType
    inputs: tuple        # of Value
    output: Value
    span: Span
    layer: str = ""      # the spec layer this node came from (for grouping in `inspect`)

    @property
    def opdef(self):
        from specc.ops import REGISTRY, STEPS

        return REGISTRY[self.op] if self.category == "layer" else STEPS[self.category][self.op]


@dataclass(frozen=True)
class ParamInfo:
    name: str            # `<node>.<local>`, e.g. `conv_1.weight`
    node: str
    local: str           # `weight`, `bias`, `running_mean`, ...
    shape: tuple
    trainable: bool
    span: Span

    @property
    def size(self) -> int:
        count = 1
        for d in self.shape:
            count *= d
        return count


@dataclass
class Graph:
    name: str
    inputs: list = field(default_factory=list)     # of Value (as the model receives them)
    nodes: list = field(default_factory=list)      # of Node, in topological order
    outputs: dict = field(default_factory=dict)    # output name -> Value
    params: dict = field(default_factory=dict)     # param name -> ParamInfo
    seed: int = 0
    source: str = ""

    def node_params(self, node: Node) -> dict:
        """local name -> ParamInfo for one node."""
        return {p.local: p for p in self.params.values() if p.node == node.name}

    def replace(self, old: Node, new_nodes: list, new_output: Value) -> None:
        """Replace `old` by `new_nodes`, rewiring every use of old's output to `new_output`."""
        index = self.nodes.index(old)
        self.nodes[index:index + 1] = new_nodes
        self._rewire(old.output, new_output)

    def _rewire(self, old: Value, new: Value) -> None:
        if old == new:
            return
        for i, node in enumerate(self.nodes):
            if old in node.inputs:
                inputs = tuple(new if v == old else v for v in node.inputs)
                self.nodes[i] = Node(node.name, node.op, node.category, node.attrs, inputs, node.output,
                                     node.span, node.layer)
        for key, value in self.outputs.items():
            if value == old:
                self.outputs[key] = new

    @property
    def trainable_params(self) -> int:
        return sum(p.size for p in self.params.values() if p.trainable)


def freeze(attrs: dict) -> MappingProxyType:
    return MappingProxyType(dict(attrs))
