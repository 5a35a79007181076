"""`build.tta` compiled into the model: the network runs on the input as given and on deterministic views
of it, and the outputs are combined as an ensemble's members are (`ensemble_combine`: mean of probabilities,
or votes).

A view is a `tta_view` node where training's augmenter works: on the first input as the front end hands it
to `preprocess` (cast to float32, channels first), so `preprocess` and the network see a view as they see
an augmented training image. Each view runs its own copy of the network (weights included); the copies are
made before the passes, which then optimize every copy.
"""

from __future__ import annotations

from specc.ensemble_build import combine_outputs, copy_nodes, output_kind
from specc.ir.graph import Graph, Node, Value
from specc.ops import STEPS

ENTRY_OPS = ("cast", "to_channels_first")  # what the front end puts between an input and `preprocess`


def tta_views(steps: list) -> list[tuple]:
    """(the `tta_view` attributes, the transform) of each view, in the order the transforms are listed."""
    return [(attrs, step) for step in steps for attrs in _views_of(step)]


def _views_of(step) -> list[dict]:
    a = step.attrs
    mode = a.get("interpolation") or "bilinear"  # each view is its own resampling
    if step.op == "flip":
        return [{"view": "flip_horizontal"}] * a["horizontal"] + [{"view": "flip_vertical"}] * a["vertical"]
    if step.op == "shift":  # up, down, left, right
        k = a["pixels"]
        return [{"view": "translate", "dy": dy, "dx": dx, "fill": a["fill"]}
                for dy, dx in ((-k, 0), (k, 0), (0, -k), (0, k))]
    if step.op == "crop":  # the four corner windows of the zero-padded image
        p = a["padding"]
        return [{"view": "translate", "dy": dy, "dx": dx} for dy, dx in ((p, p), (p, -p), (-p, p), (-p, -p))]
    if step.op == "rotate":
        return [{"view": "rotate", "degrees": sign * a["degrees"], "mode": mode} for sign in (-1, 1)]
    if step.op == "scale":
        return [{"view": "scale", "factor": factor, "mode": mode} for factor in a["range"]]
    raise ValueError(f"`{step.op}` makes no test-time view")  # the parser refuses it (E014): a defect here


def entry_value(graph: Graph) -> Value:
    """The first input as `preprocess` reads it: past the front end's Cast and NHWC Transpose, if any."""
    first = graph.inputs[0]
    value = first
    while True:
        users = value.users()
        if not (len(users) == 1 and users[0].op in ENTRY_OPS and users[0].layer == first.name):
            return value
        value = users[0].output


def with_views(graph: Graph, steps: list, combine: str) -> Graph:
    """One graph running `graph` on its inputs and on every view of the first input, combined per output."""
    merged = Graph(graph.name, graph.seed, graph.source)
    inputs = {v.name: merged.add_input(Value(v.name, v.type, "input", span=v.span)) for v in graph.inputs}
    entry = entry_value(graph)
    viewer = STEPS["internal"]["tta_view"]
    results: dict = {name: [] for name in graph.outputs}
    for index, (attrs, step) in enumerate([(None, None)] + tta_views(steps)):
        prefix = f"view_{index}."

        def rewire(value, copy, attrs=attrs, step=step, prefix=prefix):
            if attrs is None or value is not entry:
                return copy
            name = f"{prefix}tta_view"
            full = {**{k: f.default for k, f in viewer.fields.items()}, **attrs}
            return merged.append(Node(name, viewer, "internal", full, [copy], [Value(name, copy.type)], step.span,
                                      "tta")).output

        # The copies keep their layers' names: `keep_fp32` and findings about the model name spec layers.
        mapping = copy_nodes(merged, graph, prefix, {v: inputs[v.name] for v in graph.inputs}, rewire, "")
        for name, value in graph.outputs.items():
            results[name].append((mapping[value], output_kind(graph, value)))
    return combine_outputs(merged, results, combine, "tta")
