"""Which block use each layer belongs to, for `inspect` and `graph`.

The IR is flat: blocks are expanded when the graph is built. A node inside a
block is named `<use>.<inner>`, a copy of a repeated use `<use>.<k>.<inner>`,
and a layer name never contains a dot, so the name alone tells the uses a
node sits in. A repeated plain layer (`conv.2`) is a copy, not a use. Which
block a use instantiates is found from the spec, when it is given: the spans
of a block's layers are where its nodes' spans point.
"""

from __future__ import annotations

from dataclasses import dataclass, field


def use_path(node) -> tuple[str, ...]:
    """The block uses a node sits in, outermost first: `stage1.1.conv_1` -> ("stage1.1",),
    `a.b.2.relu` -> ("a", "a.b.2"); `conv_1` and `conv.2` (a repeat copy) -> ()."""
    if node.category != "layer":
        return ()
    parts = node.name.split(".")
    uses, current = [], parts[0]
    for part in parts[1:]:
        if part.isdigit():  # the copy index of a repeat belongs to the name before it
            current += "." + part
        else:
            uses.append(current)
            current += "." + part
    return tuple(uses)


@dataclass
class Group:
    """A block use (or, with name "", the whole network) and what it holds, in graph order."""

    name: str
    kind: str = ""                              # the block it uses, when known
    items: list = field(default_factory=list)   # Node or Group

    def nodes(self) -> list:
        """Every node below this group, in graph order."""
        found = []
        for item in self.items:
            found += item.nodes() if isinstance(item, Group) else [item]
        return found


def group_nodes(graph, spec=None) -> Group:
    """The nodes of `graph` as a tree of block uses."""
    kinds = block_kinds(graph, spec) if spec is not None else {}
    root = Group("")
    open_groups = {(): root}
    for node in graph.nodes:
        path = use_path(node)
        for depth in range(1, len(path) + 1):
            if path[:depth] not in open_groups:
                group = Group(path[depth - 1], kinds.get(path[depth - 1], ""))
                open_groups[path[:depth - 1]].items.append(group)
                open_groups[path[:depth]] = group
        open_groups[path].items.append(node)
    return root


def block_kinds(graph, spec) -> dict:
    """use name -> the block it instantiates, found through the spans of the blocks' layers."""
    by_span = {}
    for name, block in (getattr(spec, "blocks", None) or {}).items():
        for layer in getattr(block, "layers", ()):
            for span in _layer_spans(layer):
                by_span[tuple(span)] = name
    kinds = {}
    for node in graph.nodes:
        path = use_path(node)
        if path and path[-1] not in kinds and tuple(node.span) in by_span:
            kinds[path[-1]] = by_span[tuple(node.span)]
    return kinds


def _layer_spans(layer) -> list:
    """Where a block's layer may say its op: the layer itself (`- relu`) or any of its keys."""
    entries = getattr(layer, "entries", None)
    spans = [layer.span]
    if entries:
        spans += [entry.key_span for entry in entries.values()]
    return spans
