"""The pass infrastructure: a pass is a named unit whose `run(graph)` returns PassResult.

The manager runs a pipeline to a fixed point and, when asked, verifies the
graph after every pass, so a broken rewrite is reported by the pass's name.
What each pass changed (counts such as `{"folded": 3}`) is summed into a
report for `--print-after-all` and the build manifest.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, ClassVar

from specc.ir.graph import Graph
from specc.ir.verifier import VerificationError, verify


@dataclass(frozen=True)
class PassResult:
    graph: Graph
    changed: bool
    stats: dict = field(default_factory=dict)  # what changed, by kind: {"folded": 2}


@dataclass(frozen=True)
class Pass:
    name: ClassVar[str] = "pass"
    summary: ClassVar[str] = ""

    def run(self, graph: Graph) -> PassResult:
        raise NotImplementedError


@dataclass
class PassManager:
    passes: tuple = ()
    verify_each: bool = False
    max_iterations: int = 10
    after_each: Callable | None = None  # called (pass, result) after every run, e.g. to print the IR

    def run(self, graph: Graph) -> Graph:
        graph, _ = self.run_with_report(graph)
        return graph

    def run_with_report(self, graph: Graph) -> tuple[Graph, dict]:
        """The optimized graph, and per pass the summed counts of what it changed."""
        report: dict = {p.name: {} for p in self.passes}
        for _ in range(self.max_iterations):
            changed = False
            for p in self.passes:
                result = p.run(graph)
                graph, changed = result.graph, changed or result.changed
                for key, count in result.stats.items():
                    report[p.name][key] = report[p.name].get(key, 0) + count
                if self.verify_each:
                    try:
                        verify(graph)
                    except VerificationError as exc:
                        raise VerificationError(f"after pass `{p.name}`: {exc}") from None
                if self.after_each is not None:
                    self.after_each(p, result)
            if not changed:
                break
        return graph, report
