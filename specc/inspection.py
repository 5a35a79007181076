"""`specc inspect`: the layer table and totals, from shapes alone (no torch, no allocation).

Rows are grouped by block use: a use is one row with its totals (its output is
its last layer's), and `expand` lists its layers under it. A `conv` or `dense`
with a fused activation shows as `conv+relu`.
"""

from __future__ import annotations

from dataclasses import dataclass

from specc.grouping import Group, group_nodes, use_path
from specc.ir.analysis import activation_bytes, human_bytes, layer_costs, weight_bytes
from specc.ir.graph import Graph
from specc.ir.types import shape_str


def inspect_json(graph: Graph, spec=None) -> dict:
    costs = layer_costs(graph)
    by_name = {n.name: n for n in graph.nodes}
    by_cost = {c.name: c for c in costs}
    return {
        "name": graph.name,
        "inputs": {v.name: {"dtype": v.type.dtype, "shape": list(v.type.shape)} for v in graph.inputs},
        "outputs": {k: {"dtype": v.type.dtype, "shape": list(v.type.shape), "layer": v.name}
                    for k, v in graph.outputs.items()},
        "layers": [
            {"name": c.name, "op": c.op, "kind": c.category, "output_shape": list(c.shape),
             "params": c.params, "buffers": c.buffers, "macs": c.macs,
             "line": c.span.line, "activation": fused_activation(by_name[c.name]),
             "block": innermost_use(by_name[c.name])}
            for c in costs
        ],
        "blocks": [_use_json(group, by_cost) for group in _all_uses(group_nodes(graph, spec))],
        "total_params": sum(c.params for c in costs),
        "total_buffers": sum(c.buffers for c in costs),
        "total_macs": sum(c.macs for c in costs),
        "weight_bytes": weight_bytes(graph),
        "activation_bytes_per_example": activation_bytes(graph),
        "tta": _tta_json(spec),
    }


def _tta_json(spec) -> dict | None:
    """`build.tta`: how many times the built model runs the network (the input, then each view)."""
    from specc.tta_build import tta_views

    tta = (spec.build.get("tta") if spec is not None and spec.build else None) or {}
    if not tta.get("transforms"):
        return None
    return {"views": 1 + len(tta_views(tta["transforms"])), "combine": tta["combine"],
            "transforms": [step.op for step in tta["transforms"]]}


def _all_uses(group: Group) -> list:
    found = []
    for item in group.items:
        if isinstance(item, Group):
            found += [item] + _all_uses(item)
    return found


def _use_json(group: Group, costs: dict) -> dict:
    total = _totals(group, costs)
    return {"name": group.name, "block": group.kind or None, "layers": [n.name for n in group.nodes()],
            "output_shape": list(total.shape), "params": total.params, "buffers": total.buffers,
            "macs": total.macs}


def innermost_use(node) -> str | None:
    """The block use a node sits in directly (None outside blocks)."""
    path = use_path(node)
    return path[-1] if path else None


def fused_activation(node) -> str | None:
    """The activation a `conv`/`dense` applies to its own output, when it is not `linear`."""
    activation = node.attrs.get("activation")
    return activation if isinstance(activation, str) and activation != "linear" else None


# --- rows shared by the text and Markdown tables ------------------------------------

@dataclass(frozen=True)
class Row:
    name: str
    op: str
    shape: tuple
    params: int
    buffers: int
    macs: int
    depth: int = 0        # nesting under expanded block uses
    is_use: bool = False  # a block use's totals


def table_rows(graph: Graph, spec=None, expand: bool = False) -> list[Row]:
    costs = {c.name: c for c in layer_costs(graph)}
    rows: list[Row] = []

    def visit(group: Group, depth: int) -> None:
        for item in group.items:
            if isinstance(item, Group):
                total = _totals(item, costs)
                layers = len(item.nodes())
                kind = item.kind or "block"
                rows.append(Row(_relative(item.name, group.name) if expand else item.name,
                                f"{kind} ({layers} layer{'s' * (layers != 1)})", total.shape, total.params,
                                total.buffers, total.macs, depth, True))
                if expand:
                    visit(item, depth + 1)
            else:
                c = costs[item.name]
                activation = fused_activation(item)
                rows.append(Row(_relative(item.name, group.name) if expand else item.name,
                                c.op + (f"+{activation}" if activation else ""), c.shape, c.params, c.buffers,
                                c.macs, depth))

    visit(group_nodes(graph, spec), 0)
    return rows


def _relative(name: str, parent: str) -> str:
    """A name inside an expanded use without the use's prefix: `stage1.1.conv_1` under `stage1.1` is `conv_1`."""
    return name[len(parent) + 1:] if parent and name.startswith(parent + ".") else name


@dataclass(frozen=True)
class _Total:
    shape: tuple
    params: int
    buffers: int
    macs: int


def _totals(group: Group, costs: dict) -> _Total:
    members = [costs[n.name] for n in group.nodes()]
    return _Total(members[-1].shape, sum(c.params for c in members), sum(c.buffers for c in members),
                  sum(c.macs for c in members))


# --- text -----------------------------------------------------------------------

def inspect_text(graph: Graph, spec=None, expand: bool = False) -> str:
    info = inspect_json(graph, spec)
    header = ("layer", "op", "output shape", "params", "MACs")
    cells = [header] + [("  " * r.depth + r.name, r.op, shape_str(r.shape), f"{r.params:,}", f"{r.macs:,}")
                        for r in table_rows(graph, spec, expand)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = [f"{graph.name}: " + ", ".join(f"{k} {shape_str(v['shape'])} {v['dtype']}"
                                          for k, v in info["inputs"].items())]
    for i, row in enumerate(cells):
        lines.append("  ".join(cell.ljust(w) if j < 3 else cell.rjust(w)
                               for j, (cell, w) in enumerate(zip(row, widths))).rstrip())
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines + [""] + _summary(info))


def _summary(info: dict) -> list[str]:
    return [
        f"total params (trainable): {info['total_params']:,}"
        + (f"   buffers: {info['total_buffers']:,}" if info["total_buffers"] else ""),
        f"total MACs per example:   {info['total_macs']:,}",
        f"weights: {human_bytes(info['weight_bytes'])}   activations per example: "
        f"{human_bytes(info['activation_bytes_per_example'])}",
        "outputs: " + ", ".join(f"{k} {shape_str(v['shape'])}" for k, v in info["outputs"].items()),
    ] + ([] if info["tta"] is None else [
        f"built with test-time views (build.tta): the network runs {info['tta']['views']} times per example, "
        f"on the input and its {', '.join(info['tta']['transforms'])} views, combined by {info['tta']['combine']}"])


# --- Markdown ---------------------------------------------------------------------

def inspect_markdown(graph: Graph, spec=None, expand: bool = False) -> str:
    """A Markdown table for a README: block uses in bold, their layers (with --expand) under them."""
    info = inspect_json(graph, spec)
    inputs = ", ".join(f"`{k}` {shape_str(v['shape'])} {v['dtype']}" for k, v in info["inputs"].items())
    lines = [f"**{graph.name}**: {inputs}", "", "| layer | op | output shape | params | MACs |",
             "|---|---|---|---:|---:|"]
    for r in table_rows(graph, spec, expand):
        name = "&nbsp;&nbsp;" * (2 * r.depth) + f"`{r.name}`"
        if r.is_use:
            name = f"**{name}**"
        lines.append(f"| {name} | {r.op} | {shape_str(r.shape)} | {r.params:,} | {r.macs:,} |")
    lines.append("")
    lines += [f"- {line}" for line in _summary(info)]
    return "\n".join(lines)
