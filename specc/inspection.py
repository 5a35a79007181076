"""`specc inspect`: the layer table and totals, from shapes alone (no torch, no allocation)."""

from __future__ import annotations

from specc.ir.analysis import activation_bytes, human_bytes, layer_costs, weight_bytes
from specc.ir.graph import Graph
from specc.ir.types import shape_str


def inspect_json(graph: Graph) -> dict:
    costs = layer_costs(graph)
    return {
        "name": graph.name,
        "inputs": {v.name: {"dtype": v.type.dtype, "shape": list(v.type.shape)} for v in graph.inputs},
        "outputs": {k: {"dtype": v.type.dtype, "shape": list(v.type.shape), "layer": v.name}
                    for k, v in graph.outputs.items()},
        "layers": [
            {"name": c.name, "op": c.op, "kind": c.category, "output_shape": list(c.shape),
             "params": c.params, "buffers": c.buffers, "macs": c.macs,
             "line": c.span.line}
            for c in costs
        ],
        "total_params": sum(c.params for c in costs),
        "total_buffers": sum(c.buffers for c in costs),
        "total_macs": sum(c.macs for c in costs),
        "weight_bytes": weight_bytes(graph),
        "activation_bytes_per_example": activation_bytes(graph),
    }


def inspect_text(graph: Graph) -> str:
    info = inspect_json(graph)
    rows = [("layer", "op", "output shape", "params", "MACs")]
    for layer in info["layers"]:
        rows.append((layer["name"], layer["op"], shape_str(layer["output_shape"]), f"{layer['params']:,}",
                     f"{layer['macs']:,}"))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    lines = [f"{graph.name}: " + ", ".join(f"{k} {shape_str(v['shape'])} {v['dtype']}"
                                          for k, v in info["inputs"].items())]
    for i, row in enumerate(rows):
        lines.append("  ".join(cell.ljust(w) if j < 3 else cell.rjust(w) for j, (cell, w) in enumerate(zip(row, widths))))
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    lines.append("")
    lines.append(f"total params (trainable): {info['total_params']:,}"
                 + (f"   buffers: {info['total_buffers']:,}" if info["total_buffers"] else ""))
    lines.append(f"total MACs per example:   {info['total_macs']:,}")
    lines.append(f"weights: {human_bytes(info['weight_bytes'])}   activations per example: "
                 f"{human_bytes(info['activation_bytes_per_example'])}")
    lines.append("outputs: " + ", ".join(f"{k} {shape_str(v['shape'])}" for k, v in info["outputs"].items()))
    return "\n".join(lines)
