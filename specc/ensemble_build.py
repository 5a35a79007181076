"""An ensemble's weights file (`member_<i>.<tensor>`, written by `specc train` for `training.ensemble`)
built into one model: every member's optimized graph side by side on the shared inputs, and for each
output an `ensemble_combine` node (mean of probabilities, or votes)."""

from __future__ import annotations

import json
import re

from specc.diagnostics import Span, error
from specc.ir.graph import Graph, Node, Value, data_value
from specc.ir.tensor import TensorData
from specc.ops import STEPS

MEMBER = re.compile(r"^member_(\d+)\.(.+)$")


def read_ensemble(path: str):
    """(the members' {tensor name: array} in order, checked metadata) when `path` is an ensemble file, else None."""
    from safetensors import safe_open

    try:
        with safe_open(path, framework="numpy") as handle:
            keys = list(handle.keys())
            if not keys or not all(MEMBER.match(k) for k in keys):
                return None
            metadata = handle.metadata() or {}
            members: dict = {}
            for key in keys:
                index, name = MEMBER.match(key).groups()
                members.setdefault(int(index), {})[name] = handle.get_tensor(key)
    except Exception:  # not readable here: load_weights reports it properly
        return None
    return [members[i] for i in sorted(members)], ensemble_metadata(metadata, path, list(members))


def ensemble_metadata(metadata: dict, path: str, indices: list) -> dict:
    """The metadata `specc train` writes with an ensemble ({"members", "combine", "seeds"}), checked against
    the member indices the file holds: a damaged file is refused here, never read as something else."""
    def refuse(detail: str):
        return error("E080", f"ensemble weights file {path}: {detail}", Span(path),
                     "use the model.safetensors that `specc train` wrote for the ensemble")

    combine = metadata.get("specc.ensemble.combine", "mean")
    if combine not in ("mean", "vote"):
        raise refuse(f"unknown combine `{combine}` in its metadata (mean or vote)")
    if sorted(indices) != list(range(len(indices))):
        missing = sorted(set(range(max(indices) + 1)) - set(indices))
        raise refuse(f"member {missing[0]} is missing (the file holds members {sorted(indices)})")
    stated = metadata.get("specc.ensemble.members", str(len(indices)))
    if stated != str(len(indices)):
        raise refuse(f"its metadata says {stated!r} members, the file holds {len(indices)}")
    try:
        seeds = json.loads(metadata.get("specc.ensemble.seeds", "[]"))
    except ValueError:
        seeds = None
    if not isinstance(seeds, list) or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
        raise refuse("its `specc.ensemble.seeds` metadata is not a JSON list of whole numbers")
    return {"members": len(indices), "combine": combine, "seeds": seeds}


def output_kind(graph: Graph, value: Value) -> str:
    node = value.producer
    if node is None:
        return "scores"
    if node.op == "softmax" or node.op == "sigmoid" or node.attrs.get("activation") == "sigmoid":
        return "probs"
    if node.op == "ensemble_combine":  # a model with `build.tta`: its views' mean, or votes summing to 1
        return "probs"
    return "log_probs" if node.op == "log_softmax" else "scores"


def check_member(weights: dict, graph: Graph, index: int, path: str) -> None:
    expected = {n: v.shape for n, v in graph.params.items() if v.kind != "const"}
    missing = sorted(set(expected) - set(weights))
    extra = sorted(set(weights) - set(expected))
    wrong = sorted(n for n in set(expected) & set(weights) if tuple(weights[n].shape) != tuple(expected[n]))
    if missing or extra or wrong:
        detail = (f"it has no `{missing[0]}`" if missing else f"its `{extra[0]}` is no tensor of the spec" if extra
                  else f"its `{wrong[0]}` has shape {list(weights[wrong[0]].shape)}, the spec needs {list(expected[wrong[0]])}")
        raise error("E080", f"member {index} of the ensemble in {path} does not fit the spec: {detail}", Span(path),
                    "was the file saved from another spec?")


def copy_nodes(merged: Graph, graph: Graph, prefix: str, mapping: dict, rewire=None, layer_prefix=None) -> dict:
    """Copy `graph`'s nodes into `merged`, every name prefixed (layer names by `layer_prefix`, default the
    same). `mapping` holds the copies of the graph's inputs and is returned with the copy of every value.
    `rewire(value, copy)`, when given, is asked for each input and node output and returns what its readers
    read instead of the plain copy."""
    layer_prefix = prefix if layer_prefix is None else layer_prefix
    rewire = rewire or (lambda value, copy: copy)
    for value in graph.inputs:
        mapping[value] = rewire(value, mapping[value])
    for node in graph.nodes:
        outputs = [Value(prefix + v.name, v.type) for v in node.outputs]
        params = {local: data_value(prefix + p.name, p.shape, p.kind, p.data, p.span, p.type.dtype)
                  for local, p in node.params.items()}
        merged.append(Node(prefix + node.name, node.opdef, node.category, node.attrs,
                           [mapping[v] for v in node.inputs], outputs, node.span, layer_prefix + node.layer,
                           params=params))
        mapping.update((v, rewire(v, copy)) for v, copy in zip(node.outputs, outputs))
    return mapping


def combine_outputs(merged: Graph, results: dict, combine: str, label: str = "ensemble") -> Graph:
    """For each output name, an `ensemble_combine` node over the (value, kind)s that `results` lists."""
    combiner = STEPS["internal"]["ensemble_combine"]
    for name, members in results.items():
        values = [v for v, _ in members]
        attrs = {"combine": combine, "kind": members[0][1]}
        node = merged.append(Node(f"{label}.{name}", combiner, "internal", attrs, values,
                                  [Value(f"{label}.{name}", values[0].type)], values[0].producer.span
                                  if values[0].producer else None, label))
        merged.set_output(name, node.output)
    return merged


def merge_members(graphs: list, combine: str) -> Graph:
    """One graph running every member on the same inputs, combined per output."""
    first = graphs[0]
    merged = Graph(first.name, first.seed, first.source)
    inputs = {v.name: merged.add_input(Value(v.name, v.type, "input", span=v.span)) for v in first.inputs}
    results: dict = {name: [] for name in first.outputs}
    for index, graph in enumerate(graphs):
        mapping = copy_nodes(merged, graph, f"member_{index}.", {v: inputs[v.name] for v in graph.inputs})
        for name, value in graph.outputs.items():
            results[name].append((mapping[value], output_kind(graph, value)))
    return combine_outputs(merged, results, combine)


def ensemble_graph(spec_path: str, limits, weights_path: str, compile_spec, optimize, choice, prepare=None):
    """(merged graph, passes run, their counts, provenance) for an ensemble weights file, or None.
    `prepare(graph)`, when given, rewrites each member with its weights before the passes (`build.tta`)."""
    found = read_ensemble(weights_path)
    if found is None:
        return None
    members, metadata = found
    combine = metadata["combine"]
    graphs, applied, changes = [], [], {}
    for index, tensors in enumerate(members):
        graph = compile_spec(spec_path, limits).graph
        check_member(tensors, graph, index, weights_path)
        for name, value in graph.params.items():
            if name in tensors:
                value.data = TensorData(value.shape, value.type.dtype, array=tensors[name].astype(value.type.dtype),
                                        source="file")
        if prepare is not None:
            graph = prepare(graph)
        graph, applied, counts = optimize(graph, choice)
        for name, stats in counts.items():
            for key, count in stats.items():
                changes.setdefault(name, {})[key] = changes.get(name, {}).get(key, 0) + count
        graphs.append(graph)
    info = {"source": "file", "ensemble": metadata}
    return merge_members(graphs, combine), applied, changes, info
