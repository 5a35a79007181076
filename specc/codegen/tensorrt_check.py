"""Will TensorRT's ONNX parser take this model? A static check that needs no GPU.

`check_tensorrt_compat` walks an ONNX model against the support table of a
TensorRT major version (`tensorrt_support`): the opset range, operators and
their domains, each operator's data types and restrictions, symmetric int8
quantization, values the parser must fit in int32, and dynamic input axes
(only the batch axis, unless a profile gives a range for the others). Each
problem is a `Finding` naming the ONNX node and the spec layer it came from;
`format_findings` turns them into located diagnostics (E096, warnings W096).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import numpy as np
import onnx
from onnx import GraphProto, ModelProto, TensorProto

from specc.codegen.tensorrt_support import (VERSIONS, GraphFacts, SupportTable, constant_values, io_only_outputs,
                                            node_problems, support_table, type_name)
from specc.codegen.layer_spans import layer_spans  # noqa: F401 (re-exported: findings use it)
from specc.diagnostics import Diagnostic, Span

BATCH_AXIS = 0
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
FLOAT32_MAX = float(np.finfo(np.float32).max)
CONTRIB_DOMAINS = {"com.microsoft": "an ONNX Runtime contrib op", "com.microsoft.nchwc": "an ONNX Runtime contrib op",
                   "ai.onnx.ml": "an ONNX-ML op"}


@dataclass(frozen=True)
class Finding:
    node: str  # the ONNX node (or graph input) at fault; "" for the model as a whole
    op_type: str
    reason: str
    layer: str | None  # the spec layer the node came from, where known
    severity: str = "error"  # "warning": TensorRT takes it, but not quite as written
    hint: str | None = None


def layer_of(node_name: str, layers: Iterable[str] | None = None) -> str | None:
    """The spec layer an ONNX node name comes from. specc names nodes `<layer>/<OpType>`, `<layer>_<part>` or
    just `<layer>`; with the spec's layer names the longest one the node name starts with wins, without them
    the part before the first '/' is the layer."""
    if not node_name:
        return None
    if layers is None:
        return node_name.split("/", 1)[0]
    best = None
    for layer in layers:
        if node_name == layer or (node_name.startswith(layer) and node_name[len(layer)] in "/_.:"):
            if best is None or len(layer) > len(best):
                best = layer
    return best


def check_tensorrt_compat(model: ModelProto, version: int = 10, profiles: dict | None = None,
                          layers: Iterable[str] | None = None) -> list[Finding]:
    """Problems TensorRT `version` (10 or 11) would have with `model`; an empty list means none were found.

    `profiles` maps a symbolic dimension name (a `dim_param` of a graph input) to its range
    `{"min", "opt", "max"}`; the batch axis is always covered by `build.batch`. `layers` (the spec's layer
    names) lets each finding name its layer exactly."""
    table = support_table(version)
    graph = model.graph
    facts = _graph_facts(model, table)
    findings = _check_opset(model, table)
    findings += _check_inputs(graph, profiles or {}, table)
    findings += _check_nodes(graph, facts, table)
    findings += _check_stored_doubles(graph, facts, table)
    known = list(layers) if layers is not None else None
    unique, seen = [], set()
    for finding in findings:
        key = (finding.node, finding.reason)
        if key not in seen:
            seen.add(key)
            layer = layer_of(finding.node, known) if finding.op_type != "input" else finding.node
            unique.append(Finding(finding.node, finding.op_type, finding.reason, layer, finding.severity,
                                  finding.hint))
    return unique


def format_findings(findings: list[Finding], spans: dict, model_span: Span | None = None) -> list[Diagnostic]:
    """Located diagnostics: each finding at its spec layer's span (`spans`: layer or input name -> Span),
    or at `model_span` when no layer matches (an output node, the opset)."""
    fallback = model_span or Span("model.onnx")
    diagnostics = []
    for finding in findings:
        layer = finding.layer if finding.layer in spans else layer_of(finding.node, spans)
        span = spans.get(layer, fallback) if layer else fallback
        if finding.op_type == "input":
            where = f"input `{finding.node}`"
        elif finding.node:
            where = (f"layer `{layer}`: " if layer else "") + f"ONNX node `{finding.node}` ({finding.op_type})"
        else:
            where = "the ONNX model"
        code = "E096" if finding.severity == "error" else "W096"
        diagnostics.append(Diagnostic(code, f"TensorRT: {where}: {finding.reason}", span, finding.hint,
                                      severity=finding.severity))
    return diagnostics


def has_errors(findings: list[Finding]) -> bool:
    return any(f.severity == "error" for f in findings)


def check_version(option: str) -> int:
    """The TensorRT major version of `--check tensorrt[=10|11]`: as given, else the installed TensorRT's,
    else 10."""
    name, _, version = option.partition("=")
    if name != "tensorrt" or (version and version not in {str(v) for v in VERSIONS}):
        raise ValueError(f"--check takes tensorrt, tensorrt=10 or tensorrt=11, not `{option}`")
    if version:
        return int(version)
    from specc.codegen.tensorrt_engine import installed_major

    return installed_major() or VERSIONS[0]


def check_onnx_file(onnx_path: str, version: int, spans: dict, profiles: dict | None = None,
                    model_span: Span | None = None) -> list[Diagnostic]:
    """`specc build --check tensorrt`: the located findings for a built model.onnx (weights are not loaded)."""
    model = onnx.load(onnx_path, load_external_data=False)
    findings = check_tensorrt_compat(model, version, profiles, layers=spans)
    return format_findings(findings, spans, model_span or Span(onnx_path))


def _graph_facts(model: ModelProto, table: SupportTable) -> GraphFacts:
    try:
        # Types of intermediate tensors come from shape inference; a model it cannot handle is still checked
        # with what the graph declares.
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False).graph
    except Exception:  # noqa: BLE001 - shape inference failing is not the model's TensorRT problem
        inferred = model.graph
    types, ranks = {}, {}
    for info in list(inferred.input) + list(inferred.value_info) + list(inferred.output):
        tensor_type = info.type.tensor_type
        if tensor_type.elem_type:
            types[info.name] = tensor_type.elem_type
        if tensor_type.HasField("shape"):
            ranks[info.name] = len(tensor_type.shape.dim)
    for tensor in model.graph.initializer:
        types[tensor.name] = tensor.data_type
        ranks[tensor.name] = len(tensor.dims)
    stored = {t.name for t in model.graph.initializer}
    stored |= {n.output[0] for n in model.graph.node if n.op_type == "Constant" and n.output}
    return GraphFacts(table, types, ranks, constant_values(model.graph.initializer, model.graph.node), stored)


def _check_opset(model: ModelProto, table: SupportTable) -> list[Finding]:
    low, high = table.opset
    for entry in model.opset_import:
        if entry.domain in table.standard_domains and not low <= entry.version <= high:
            return [Finding("", "opset", f"opset {entry.version} is outside TensorRT {table.version}'s range "
                            f"{low}..{high} (TensorRT {table.release})", None,
                            hint=f"set `build.opset` to a value from {max(low, 13)} to {high}")]
    return []


def _check_inputs(graph: GraphProto, profiles: dict, table: SupportTable) -> list[Finding]:
    findings = []
    for name, spec in profiles.items():
        if not (isinstance(spec, dict) and all(isinstance(spec.get(k), int) for k in ("min", "opt", "max"))
                and 1 <= spec["min"] <= spec["opt"] <= spec["max"]):
            findings.append(Finding("", "profile", f"the profile for dimension `{name}` must be "
                                    f"{{min, opt, max}} with 1 <= min <= opt <= max, got {spec}", None))
    stored = {t.name for t in graph.initializer}
    for value in graph.input:
        if value.name in stored:
            continue  # an initializer listed among the inputs (IR < 4 style): a constant, not a network input
        tensor_type = value.type.tensor_type
        if type_name(tensor_type.elem_type) in table.cast_down:
            findings.append(Finding(value.name, "input", f"type {type_name(tensor_type.elem_type)} is computed as "
                                    f"{table.cast_down[type_name(tensor_type.elem_type)]} by TensorRT", None,
                                    "warning"))
        if not tensor_type.HasField("shape"):
            findings.append(Finding(value.name, "input", "has no declared shape; TensorRT needs the rank of every "
                                    "network input", None))
            continue
        for axis, dim in enumerate(tensor_type.shape.dim):
            if axis == BATCH_AXIS or (dim.HasField("dim_value") and dim.dim_value > 0):
                continue
            if dim.HasField("dim_param") and dim.dim_param in profiles:
                continue
            label = f"`{dim.dim_param}`" if dim.HasField("dim_param") else "unknown"
            findings.append(Finding(
                value.name, "input", f"axis {axis} is dynamic ({label}) and no optimization profile covers it: "
                "TensorRT needs a min/opt/max range for every dynamic axis, and specc gives one for the batch "
                "axis only",
                None, hint="give this axis a fixed size in `inputs`, or pass a profile for it"))
    return findings


def _walk(graph: GraphProto):
    """Every node, including those inside If/Loop/Scan bodies."""
    for node in graph.node:
        yield node
        for attribute in node.attribute:
            for body in ([attribute.g] if attribute.type == onnx.AttributeProto.GRAPH else list(attribute.graphs)):
                yield from _walk(body)


def _check_nodes(graph: GraphProto, facts: GraphFacts, table: SupportTable) -> list[Finding]:
    graph_outputs = {o.name for o in graph.output}
    findings = []
    for node in _walk(graph):
        name = node.name or (node.output[0] if node.output else node.op_type)
        if node.domain not in table.standard_domains:
            kind = CONTRIB_DOMAINS.get(node.domain, f"a custom op of domain `{node.domain}`")
            findings.append(Finding(name, f"{node.domain}::{node.op_type}", f"{kind}, not a standard ONNX op; "
                                    "TensorRT's ONNX parser has no importer for it", None,
                                    hint="export with standard ONNX ops only (a custom op needs a TensorRT plugin)"))
            continue
        support = table.op(node.op_type)
        if support is None or not support.supported:
            verb = "is not in" if support is None else "is marked unsupported in"
            findings.append(Finding(name, node.op_type, f"`{node.op_type}` {verb} TensorRT {table.version}'s ONNX "
                                    f"operator table (TensorRT {table.release})", None))
            continue
        problems = node_problems(support, node, facts)
        if not problems:  # one reason per node is enough: a UINT8 input already explains a UINT8 output
            problems = io_only_outputs(node, facts, graph_outputs)
        for severity, reason, hint in problems:
            findings.append(Finding(name, node.op_type, reason, None, severity, hint))
        findings += _shape_operand_findings(node, name, facts, table)
    return findings


def _shape_operand_findings(node, name: str, facts: GraphFacts, table: SupportTable) -> list[Finding]:
    findings = []
    for index in table.shape_operands.get(node.op_type, ()):
        operand = node.input[index] if index < len(node.input) else ""
        value = facts.constants.get(operand)
        if value is None or value.dtype != np.int64 or value.size == 0:
            continue
        outside = value[(value < INT32_MIN) | (value > INT32_MAX)]
        if outside.size:
            findings.append(Finding(name, node.op_type, f"int64 constant `{operand}` holds {outside[0]}, outside "
                                    f"the int32 range: {table.shape_operands_why}", None))
    return findings


def _check_stored_doubles(graph: GraphProto, facts: GraphFacts, table: SupportTable) -> list[Finding]:
    """TensorRT stores DOUBLE weights as FP32, clamping values beyond FP32's range: say so, at the consumer."""
    consumers = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, node)
    findings = []
    for tensor in graph.initializer:
        if tensor.data_type != TensorProto.DOUBLE or tensor.name not in consumers:
            continue
        node = consumers[tensor.name]
        value = facts.constants.get(tensor.name)
        clamped = int(np.count_nonzero(np.abs(value) > FLOAT32_MAX)) if value is not None else 0
        detail = f"; {clamped} values beyond FP32's range are clamped" if clamped else ""
        findings.append(Finding(node.name or node.output[0], node.op_type,
                                f"DOUBLE initializer `{tensor.name}` is cast to FP32 by TensorRT{detail}", None,
                                "error" if clamped else "warning"))
    return findings
