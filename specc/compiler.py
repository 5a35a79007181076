"""The front half of the pipeline: spec file -> Spec AST -> verified IR graph."""

from __future__ import annotations

from dataclasses import dataclass, field

from specc.diagnostics import Diagnostic, Diagnostics, SpeccError, did_you_mean
from specc.frontend.augment_rules import augment_errors, channels_first
from specc.frontend.elaborate import build_graph
from specc.ir.graph import Graph
from specc.limits import Limits
from specc.lang.located import Map, Scalar, Seq, short
from specc.parser.spec import Spec, parse_spec


@dataclass
class Compiled:
    spec: Spec
    graph: Graph
    warnings: list = field(default_factory=list)


def compile_spec(path: str, limits: Limits) -> Compiled:
    """Parse, expand and shape-check a spec, raising SpeccError with every diagnostic found.

    Independent mistakes are reported together: a mistake in `training` or `build` does not stop the
    network from being checked. Only what depends on a failed part is skipped (the network, when an
    input, a preprocess step or a block could not be read; name checks, when the network failed)."""
    diags = Diagnostics()
    spec = parse_spec(path, limits, diags)
    if spec.incomplete:
        diags.raise_if_errors()
    spec_errors = _error_count(diags)
    graph = build_graph(spec, limits, diags)
    if _error_count(diags) == spec_errors:
        check_layer_references(spec, graph, diags)
        tta = (spec.build.get("tta") or {}).get("transforms") or []
        for steps, views in ((spec.augment, False), (tta, True)):  # what `train` and `build.tta` would refuse
            if steps and spec.inputs:
                first = spec.inputs[0]
                diags.extend(augment_errors(steps, channels_first(first.shape, first.layout), views))
    diags.raise_if_errors()
    return Compiled(spec, graph, [d for d in diags.sorted() if d.severity != "error"])


def _error_count(diags: Diagnostics) -> int:
    return sum(d.severity == "error" for d in diags.items) + diags.dropped


def check_spec(path: str, limits: Limits) -> list:
    """All diagnostics for one spec file: errors, or warnings when it is valid."""
    try:
        return compile_spec(path, limits).warnings
    except SpeccError as exc:
        return exc.diagnostics


def _layer_names(graph: Graph) -> set:
    """Every name a spec can use for a layer: node names, layer names, block uses and their copies."""
    names = set()
    for node in graph.nodes:
        parts = node.name.split(".")
        names.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
        names.add(node.layer)
    return names


def _entries(tree: Map, *keys):
    node = tree
    for key in keys:
        node = node.get(key) if isinstance(node, Map) else None
    if isinstance(node, Seq):
        return [(item.value, item.span) for item in node.items if isinstance(item, Scalar)]
    if isinstance(node, Map):
        return [(key, node.key_span(key)) for key in node.keys()]
    return []


def check_layer_references(spec: Spec, graph: Graph, diags: Diagnostics) -> None:
    """Names in `training` and `build` that must be layers (or op names) of the built graph."""
    from specc.ops import REGISTRY
    from specc.passes import KNOWN_PASSES

    layers = _layer_names(graph)
    checks = [(("build", "keep_fp32"), layers | set(REGISTRY), "a layer or op name"),
              (("training", "init", "freeze"), layers, "a layer name"),
              (("training", "init", "reinit"), layers, "a layer name"),
              (("training", "lr_mult"), layers, "a layer name")]
    for keys, valid, what in checks:
        for name, span in _entries(spec.tree, *keys):
            if isinstance(name, str) and name not in valid:
                diags.error("E023", f"`{'.'.join(keys)}` names `{short(name)}`, which is not {what} of this spec",
                            span, did_you_mean(name, valid))
    for name, span in _entries(spec.tree, "build", "passes"):
        bare = name.lstrip("-") if isinstance(name, str) else name
        if isinstance(bare, str) and bare not in KNOWN_PASSES:
            diags.add(Diagnostic("W001", f"pass `{short(bare)}` is not in this version's pipeline; it is ignored",
                                 span, did_you_mean(bare, KNOWN_PASSES) or "the passes: " + ", ".join(sorted(KNOWN_PASSES)),
                                 severity="warning"))


def spec_pass_choice(spec: Spec):
    """`build.passes` without names this version does not know (validate warns about those: W001)."""
    from specc.passes import KNOWN_PASSES

    choice = spec.build.get("passes", "standard")
    if isinstance(choice, list):
        choice = [n for n in choice if n.lstrip("-") in KNOWN_PASSES] or "standard"
    return choice


def optimize(graph: Graph, choice, verify_each: bool | None = None, after_each=None):
    """Run the pass pipeline `choice` (see `specc.passes.resolve_pipeline`) on the graph.
    Returns (graph, passes run, per-pass counts of what changed). SPECC_VERIFY_PASSES=1 verifies the
    IR after every pass (the tests set it)."""
    import os

    from specc.passes import PassManager, resolve_pipeline

    passes = resolve_pipeline(choice)
    if verify_each is None:
        verify_each = os.environ.get("SPECC_VERIFY_PASSES") == "1"
    graph, report = PassManager(passes, verify_each=verify_each, after_each=after_each).run_with_report(graph)
    return graph, [p.name for p in passes], report
