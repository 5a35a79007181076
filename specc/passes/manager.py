"""The pass infrastructure: a pass is a named unit returning PassResult(graph, changed).

The manager runs a pipeline to a fixed point and, when asked, verifies the
graph after every pass so a broken rewrite is reported by the pass's name.
The standard pipeline is empty until the folding/fusion/precision issue.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from specc.ir.graph import Graph
from specc.ir.verifier import VerificationError, verify


@dataclass(frozen=True)
class PassResult:
    graph: Graph
    changed: bool


@dataclass(frozen=True)
class Pass:
    name: ClassVar[str] = "pass"

    def run(self, graph: Graph) -> PassResult:
        raise NotImplementedError


STANDARD_PIPELINE: tuple = ()
KNOWN_PASSES: frozenset = frozenset(p.name for p in STANDARD_PIPELINE)


@dataclass
class PassManager:
    passes: tuple = STANDARD_PIPELINE
    verify_each: bool = False
    max_iterations: int = 10

    def run(self, graph: Graph) -> Graph:
        for _ in range(self.max_iterations):
            changed = False
            for p in self.passes:
                result = p.run(graph)
                graph, changed = result.graph, changed or result.changed
                if self.verify_each:
                    try:
                        verify(graph)
                    except VerificationError as exc:
                        raise VerificationError(f"after pass `{p.name}`: {exc}") from None
            if not changed:
                break
        return graph
