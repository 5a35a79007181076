"""`specc graph`: the network as a picture (.dot, .svg, .png), from the IR alone.

A `Picture` is what gets drawn: boxes (inputs, preprocessing steps, layers or
whole block uses, outputs), the edges between them (one per `node.inputs`
entry, so a residual path is an edge that skips layers), and clusters (block
uses, and the preprocessing at the entry). `.dot` is written as text; `.svg`
and `.png` are drawn by Graphviz's `dot` when it is installed, else by
matplotlib with specc's own layered layout (`specc.graph_layout`).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass, field

from specc.grouping import Group, group_nodes
from specc.ir.analysis import layer_costs

FORMATS = (".dot", ".svg", ".png")
DOT_TIMEOUT_S = 120


class RenderError(Exception):
    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.hint = hint


def output_format(path: str) -> str | None:
    """`svg`, `png` or `dot` from a file name; None for anything else."""
    ext = os.path.splitext(path)[1].lower()
    return ext[1:] if ext in FORMATS else None


# --- the picture ------------------------------------------------------------------

@dataclass(frozen=True)
class Box:
    id: str
    kind: str          # input | output | preprocess | layer | block
    title: str
    lines: tuple = ()  # op, shape, parameters
    family: str = ""   # colour family of a layer: conv, dense, pool, norm, activation, merge, other


@dataclass
class Cluster:
    id: str
    label: str
    kind: str                                      # block | preprocess
    boxes: list = field(default_factory=list)      # box ids directly inside
    children: list = field(default_factory=list)   # Cluster

    def all_boxes(self) -> list:
        found = list(self.boxes)
        for child in self.children:
            found += child.all_boxes()
        return found


@dataclass
class Picture:
    name: str
    boxes: dict                   # id -> Box, in graph order (every edge goes forward in it)
    edges: list                   # (from id, to id), no duplicates
    clusters: list                # top-level Cluster


def build_picture(graph, spec=None, expand: bool = False) -> Picture:
    """What to draw. Without `expand` each block use is one box; with it, a cluster of its layers."""
    costs = {c.name: c for c in layer_costs(graph)}
    boxes: dict = {}
    owner: dict = {}   # node name -> the box that shows it
    clusters: list = []

    for value in graph.inputs:
        boxes["in:" + value.name] = Box("in:" + value.name, "input", value.name,
                                        (f"{shape_words(value.type.shape)} {value.type.dtype}",))
    entry = [n for n in graph.nodes if n.category != "layer"]
    if entry:
        prep = Cluster("cluster_preprocess", "preprocessing", "preprocess")
        clusters.append(prep)
        for node in entry:
            box = Box(node.name, "preprocess", node.name.partition(".")[2] or node.name,
                      (node.op, shape_words(node.output.type.shape)))
            boxes[box.id], owner[node.name] = box, box.id
            prep.boxes.append(box.id)

    def add_group(group: Group, parent: Cluster | None) -> None:
        for item in group.items:
            if isinstance(item, Group) and not expand:
                box = _block_box(item, costs)
                boxes[box.id] = box
                for node in item.nodes():
                    owner[node.name] = box.id
            elif isinstance(item, Group):
                shown = item.name[len(group.name) + 1:] if group.name else item.name  # inside its parent's box
                cluster = Cluster("cluster_" + item.name, shown + (f" · {item.kind}" if item.kind else ""), "block")
                (parent.children if parent else clusters).append(cluster)
                add_group(item, cluster)
            elif item.category == "layer":  # the entry's nodes are drawn above, in their own cluster
                box = _layer_box(item, costs[item.name], group.name)
                boxes[box.id], owner[item.name] = box, box.id
                if parent:
                    parent.boxes.append(box.id)

    add_group(group_nodes(graph, spec), None)

    edges: dict = {}
    produced = {v.name: owner[n.name] for n in graph.nodes for v in getattr(n, "outputs", (n.output,))}
    produced.update({v.name: "in:" + v.name for v in graph.inputs})
    for node in graph.nodes:
        for value in node.inputs:
            source = produced.get(value.name)  # constants and weights have no box
            if source is not None and source != owner[node.name]:
                edges[(source, owner[node.name])] = None
    for name, value in graph.outputs.items():
        box = Box("out:" + name, "output", name, (shape_words(value.type.shape),))
        boxes[box.id] = box
        if value.name in produced:
            edges[(produced[value.name], box.id)] = None
    return Picture(graph.name, boxes, list(edges), clusters)


def _layer_box(node, cost, group_name: str) -> Box:
    title = node.name[len(group_name) + 1:] if group_name else node.name
    lines = [op_words(node), shape_words(cost.shape)]
    if cost.params:
        lines.append(f"{cost.params:,} params")
    return Box(node.name, "layer", title, tuple(lines), op_family(node.op))


def _block_box(group: Group, costs: dict) -> Box:
    nodes = group.nodes()
    params = sum(costs[n.name].params for n in nodes)
    lines = [f"{group.kind or 'block'} · {len(nodes)} layer{'s' * (len(nodes) != 1)}",
             shape_words(costs[nodes[-1].name].shape)]
    if params:
        lines.append(f"{params:,} params")
    return Box("use:" + group.name, "block", group.name, tuple(lines), "block")


def shape_words(shape) -> str:
    """`16×32×32`: the shape without the batch axis (every shape here has one)."""
    rest = [str(d) for d in tuple(shape)[1:]]
    return "×".join(rest) if rest else "scalar"


def op_words(node) -> str:
    """`conv 3×3 /2 +relu`: the op with the arguments that tell layers apart at a glance."""
    attrs = node.attrs
    text = node.op
    rank = max(len(node.inputs[0].type.shape) - 2, 1) if node.inputs else 1
    if node.op == "conv":
        text += " " + _window(attrs.get("kernel", 3), rank)
        if _stride(attrs.get("stride", 1)) != "1":
            text += " /" + _stride(attrs["stride"])
    elif node.op in ("maxpool", "avgpool"):
        text += " " + _window(attrs.get("size", 2), rank)
    elif node.op == "dropout":
        text += f" {attrs.get('p')}"
    activation = attrs.get("activation")
    if isinstance(activation, str) and activation != "linear":
        text += f" +{activation}"
    return text


def _window(value, rank: int) -> str:
    """A kernel or window as `3×3` (2-D) or `7` (1-D): one number per spatial axis."""
    values = list(value) if isinstance(value, (list, tuple)) else [value] * rank
    return "×".join(str(v) for v in values)


def _stride(value) -> str:
    values = set(value) if isinstance(value, (list, tuple)) else {value}
    return str(values.pop()) if len(values) == 1 else "×".join(str(v) for v in value)


_FAMILIES = {
    "conv": ("conv",), "dense": ("dense", "embedding", "gemm", "matmul"),
    "pool": ("maxpool", "avgpool", "global_avgpool", "global_maxpool", "fractional_maxpool"),
    "norm": ("batchnorm", "layernorm", "lrn", "dropout", "stochastic_depth"),
    "merge": ("add", "mul", "concat"),
    "sequence": ("rnn", "lstm", "gru", "attention", "multihead_attention", "positional_encoding"),
    "activation": ("relu", "sigmoid", "tanh", "gelu", "silu", "elu", "leaky_relu", "softmax", "log_softmax"),
}


def op_family(op: str) -> str:
    for family, ops in _FAMILIES.items():
        if op in ops:
            return family
    return "other"


# Fill colours, shared by the DOT and matplotlib pictures.
FILL = {
    "input": "#cfe3fa", "output": "#d3f2dc", "preprocess": "#fdf0c8", "block": "#dcecfb",
    "conv": "#dfe4fb", "dense": "#ebe2fb", "pool": "#fbe3ef", "norm": "#eef1f4", "merge": "#fde7d5",
    "sequence": "#e1f4f1", "activation": "#f8f9fa", "other": "#f8f9fa",
}
CLUSTER_FILL = {"block": "#f3f7fc", "preprocess": "#fffbef"}
BORDER = "#5b6675"


def fill_of(box: Box) -> str:
    return FILL[box.family] if box.kind == "layer" else FILL[box.kind]


# --- DOT ---------------------------------------------------------------------------

def to_dot(picture: Picture) -> str:
    lines = [f"digraph {_quote(picture.name)} {{",
             '  graph [rankdir=TB, fontname="Helvetica", fontsize=10, nodesep=0.3, ranksep=0.35, '
             'newrank=true, compound=true];',
             '  node [fontname="Helvetica", fontsize=9, style="rounded,filled", shape=box, '
             f'color="{BORDER}", penwidth=1];',
             f'  edge [color="{BORDER}", arrowsize=0.6];']
    in_cluster = set()
    for cluster in picture.clusters:
        lines += _dot_cluster(cluster, picture, "  ")
        in_cluster.update(cluster.all_boxes())
    lines += ["  " + _dot_node(box) for box in picture.boxes.values() if box.id not in in_cluster]
    lines += [f"  {_quote(a)} -> {_quote(b)};" for a, b in picture.edges]
    lines.append("}")
    return "\n".join(lines) + "\n"


def _dot_cluster(cluster: Cluster, picture: Picture, indent: str) -> list:
    lines = [f"{indent}subgraph {_quote(cluster.id)} {{",
             f'{indent}  label={_quote(cluster.label)}; labeljust=l; style="rounded,filled"; '
             f'fillcolor="{CLUSTER_FILL[cluster.kind]}"; color="#9aa7b6";']
    lines += [indent + "  " + _dot_node(picture.boxes[b]) for b in cluster.boxes]
    for child in cluster.children:
        lines += _dot_cluster(child, picture, indent + "  ")
    lines.append(indent + "}")
    return lines


def _dot_node(box: Box) -> str:
    label = f"<<b>{_html(box.title)}</b>" + "".join(f"<br/>{_html(line)}" for line in box.lines) + ">"
    shape = {"input": "invhouse", "output": "oval"}.get(box.kind, "box")
    extra = ", peripheries=2" if box.kind == "block" else ""
    return f'{_quote(box.id)} [label={label}, shape={shape}, fillcolor="{fill_of(box)}"{extra}];'


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _html(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


# --- writing -------------------------------------------------------------------------

def write_graph(graph, path: str, spec=None, expand: bool = False, engine: str = "auto") -> str:
    """Write the picture to `path` (.dot, .svg or .png); returns how it was drawn."""
    fmt = output_format(path)
    if fmt is None:
        raise RenderError(f"cannot tell the picture format from {path!r}", "name a .svg, .png or .dot file")
    picture = build_picture(graph, spec, expand)
    if fmt == "dot":
        _write_text(path, to_dot(picture))
        return "Graphviz DOT text"
    if engine == "graphviz" or (engine == "auto" and shutil.which("dot")):
        _run_dot(to_dot(picture), path, fmt)
        return "drawn by Graphviz"
    from specc.graph_draw import draw

    draw(picture, path, fmt)
    return "drawn by matplotlib"


def _write_text(path: str, text: str) -> None:
    try:
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
    except OSError as exc:
        raise RenderError(f"cannot write {path}: {exc.strerror}") from None


def _run_dot(dot_text: str, path: str, fmt: str) -> None:
    program = shutil.which("dot")
    if program is None:
        raise RenderError("Graphviz's `dot` program is not installed",
                          "install Graphviz, or use `--engine matplotlib` (pip install matplotlib)")
    try:
        sharp = ["-Gdpi=144"] if fmt == "png" else []  # as the matplotlib drawing: crisp text on high-DPI screens
        done = subprocess.run([program, f"-T{fmt}", *sharp, "-o", path], input=dot_text, capture_output=True,
                              text=True, timeout=DOT_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise RenderError(f"Graphviz took more than {DOT_TIMEOUT_S} s",
                          "write a .dot file, or draw without --expand") from None
    if done.returncode != 0:
        raise RenderError(f"Graphviz failed: {done.stderr.strip()[:300]}", "write a .dot file to look at the input")
