"""A YAML tree whose every node remembers where it was written.

The parser never works on plain dicts: each value keeps its `Span`, so a
diagnostic about a value, a key or a whole layer points at the right text
even after `extends` merged several files together.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from specc.diagnostics import Span


@dataclass(frozen=True)
class Scalar:
    value: object  # None, bool, int, float or str
    span: Span
    quoted: bool = False  # written in quotes: expression offsets start one column later

    def plain(self):
        return self.value


@dataclass(frozen=True)
class Seq:
    items: tuple
    span: Span

    def plain(self):
        return [item.plain() for item in self.items]


@dataclass(frozen=True)
class Entry:
    key: str
    key_span: Span
    value: object  # Scalar | Seq | Map


@dataclass(frozen=True)
class Map:
    entries: dict = field(default_factory=dict)  # key -> Entry, in written order
    span: Span = Span("<none>")

    def __contains__(self, key: str) -> bool:
        return key in self.entries

    def get(self, key: str, default=None):
        entry = self.entries.get(key)
        return entry.value if entry is not None else default

    def key_span(self, key: str) -> Span:
        return self.entries[key].key_span

    def keys(self):
        return self.entries.keys()

    def items(self):
        return ((k, e.value) for k, e in self.entries.items())

    def plain(self):
        return {k: e.value.plain() for k, e in self.entries.items()}


Node = Scalar | Seq | Map


def single_entry(key: str, node) -> Map:
    """`{key: node}` located where `node` is: the mapping form of a scalar shorthand (`- flatten`)."""
    return Map({key: Entry(key, node.span, node)}, node.span)


def kind_name(node) -> str:
    """How a node's type is called in diagnostics."""
    if isinstance(node, Map):
        return "mapping"
    if isinstance(node, Seq):
        return "list"
    value = node.value
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    return "string"


def short(value, limit: int = 40) -> str:
    """A value as diagnostics quote it: truncated, so hostile text is never echoed at length."""
    text = str(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class _Failed:
    """Marks a value whose expression already failed, so no second error is reported for it."""

    def __repr__(self) -> str:
        return "<failed expression>"


FAILED = _Failed()


def is_failed(node) -> bool:
    return isinstance(node, Scalar) and node.value is FAILED
