"""Sizes computed, never allocated: parameters, MACs and memory from shapes alone."""

from __future__ import annotations

from dataclasses import dataclass

from specc.diagnostics import error
from specc.ir.graph import Graph
from specc.ir.types import DTYPE_BYTES, static_elements


@dataclass(frozen=True)
class LayerCost:
    name: str
    op: str
    category: str
    shape: tuple
    params: int        # trainable
    buffers: int       # non-trainable state (running statistics)
    macs: int          # per example
    span: object
    layer: str = ""    # the spec layer (or block use path) the node came from


def layer_costs(graph: Graph) -> list[LayerCost]:
    costs = []
    for node in graph.nodes:
        own = graph.node_params(node)
        itypes = [v.type for v in node.inputs]
        costs.append(LayerCost(
            node.name, node.op, node.category, node.output.type.shape,
            sum(p.size for p in own.values() if p.trainable),
            sum(p.size for p in own.values() if not p.trainable),
            node.opdef.macs(dict(node.attrs), itypes, node.output.type), node.span, node.layer))
    return costs


def weight_bytes(graph: Graph) -> int:
    return sum(p.size * DTYPE_BYTES.get(p.type.dtype, 4) for p in graph.params.values())


def activation_bytes(graph: Graph, batch: int = 1) -> int:
    """Bytes of every intermediate tensor for `batch` examples (an upper bound; runtimes reuse buffers)."""
    total = sum(static_elements(v.type.features) * DTYPE_BYTES[v.type.dtype] for v in graph.inputs)
    for node in graph.nodes:
        for value in node.outputs:
            total += static_elements(value.type.features) * DTYPE_BYTES.get(value.type.dtype, 4)
    return total * batch


def human_bytes(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{n} B"
        n /= 1024
    return f"{n} B"


def check_memory_budget(graph: Graph, budget: int, batch: int = 1, what: str = "build",
                        training: bool = False) -> None:
    """Refuse, before anything is allocated, a model that cannot fit in `budget` bytes. `training` counts
    what a training step holds besides: a gradient and two optimizer moments per weight (Adam's; SGD keeps
    fewer) and the activations kept for the backward pass, so an estimate of 4x the weights and 2x the
    activations."""
    weights = weight_bytes(graph) * (4 if training else 1)
    activations = activation_bytes(graph, batch) * (2 if training else 1)
    if weights + activations > budget:
        from specc.diagnostics import Span

        # Point at the layer that holds the most weights: that is the one to shrink.
        sizes = {}
        for p in graph.params.values():
            sizes[p.node] = sizes.get(p.node, 0) + p.size
        biggest = max(graph.nodes, key=lambda n: sizes.get(n.name, 0), default=None)
        span = biggest.span if biggest else Span(graph.source)
        held = "weights, gradients and optimizer state" if training else "weights"
        raise error("E091", f"`{what}` would need {human_bytes(weights)} of {held} and {human_bytes(activations)} "
                    f"of activations (batch {batch}), over the memory budget of {human_bytes(budget)}",
                    span, "shrink the model, or raise the budget with --memory-budget (e.g. 64G)")
