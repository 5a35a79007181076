"""What TensorRT's ONNX parser accepts, read from `tensorrt_ops.json`.

The JSON holds the onnx-tensorrt operator support matrix (types per op and
the restriction text) and the restrictions specc checks, as data: updating
to a new TensorRT release means editing the table, not this code. This
module answers "is this node acceptable?" one node at a time; the graph-wide
checks (opset, domains, inputs, initializers) live in `tensorrt_check`.
"""

from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass

import numpy as np
from onnx import NodeProto, TensorProto, helper, numpy_helper

TABLE_PATH = os.path.join(os.path.dirname(__file__), "tensorrt_ops.json")
VERSIONS = (10, 11)

# ONNX element types under the names the support matrix uses.
TYPE_NAMES = {TensorProto.FLOAT: "FP32", TensorProto.FLOAT16: "FP16", TensorProto.BFLOAT16: "BF16",
              TensorProto.DOUBLE: "DOUBLE", TensorProto.INT32: "INT32", TensorProto.INT64: "INT64",
              TensorProto.INT8: "INT8", TensorProto.UINT8: "UINT8", TensorProto.BOOL: "BOOL",
              TensorProto.FLOAT8E4M3FN: "FP8", TensorProto.INT4: "INT4", TensorProto.FLOAT4E2M1: "FP4"}


def type_name(elem_type: int) -> str:
    return TYPE_NAMES.get(elem_type) or TensorProto.DataType.Name(elem_type)


@dataclass(frozen=True)
class OpSupport:
    name: str
    supported: bool
    types: tuple[str, ...]
    matrix: str  # the restriction text of the support matrix, verbatim ("" when it has none)
    rules: tuple[dict, ...]


@dataclass(frozen=True)
class SupportTable:
    version: int
    release: str
    opset: tuple[int, int]
    strongly_typed_only: bool
    precision_flags: tuple[str, ...]
    ops: dict
    standard_domains: tuple[str, ...]
    quantized_types: tuple[str, ...]
    io_only_types: tuple[str, ...]
    cast_down: dict
    shape_operands: dict
    shape_operands_why: str
    source: str

    def op(self, name: str) -> OpSupport | None:
        return self.ops.get(name)


@functools.lru_cache(maxsize=None)
def support_table(version: int) -> SupportTable:
    """The table for a TensorRT major version (10 or 11)."""
    if version not in VERSIONS:
        raise ValueError(f"TensorRT {version} is not covered: specc knows TensorRT {' and '.join(map(str, VERSIONS))}")
    with open(TABLE_PATH, encoding="utf-8") as handle:
        data = json.load(handle)
    release = data["versions"][str(version)]
    entries = dict(data["ops"], **release["added_ops"])
    ops = {name: OpSupport(name, entry["supported"], tuple(entry.get("types", ())), entry.get("matrix", ""),
                           tuple(entry.get("rules", ())))
           for name, entry in entries.items()}
    return SupportTable(version=version, release=release["release"], opset=tuple(release["opset"]),
                        strongly_typed_only=release["strongly_typed_only"],
                        precision_flags=tuple(release["precision_flags"]), ops=ops,
                        standard_domains=tuple(data["standard_domains"]),
                        quantized_types=tuple(data["quantized_types"]), io_only_types=tuple(data["io_only_types"]),
                        cast_down=dict(data["cast_down_initializers"]),
                        shape_operands={k: tuple(v) for k, v in data["shape_operands"]["inputs"].items()},
                        shape_operands_why=data["shape_operands"]["why"], source=data["sources"]["matrix"])


@dataclass
class GraphFacts:
    """What a rule may ask about the graph around a node."""

    table: SupportTable
    types: dict  # tensor name -> ONNX element type
    ranks: dict  # tensor name -> rank, where known
    constants: dict  # tensor name -> np.ndarray, for initializers and Constant outputs whose data is loaded
    stored: set  # names of every initializer and Constant output, loaded or not (external data)


def _attr(node: NodeProto, name: str, default=None):
    for attribute in node.attribute:
        if attribute.name == name:
            value = helper.get_attribute_value(attribute)
            return value.decode() if isinstance(value, bytes) else value
    return default


def _input(node: NodeProto, index: int) -> str:
    """The name of an optional input, or "" when it is absent."""
    return node.input[index] if index < len(node.input) else ""


# Each rule kind: (rule, node, facts) -> the reason it fails, or None. Severity "warning" is set by the rule
# itself where TensorRT may still manage (a value it has to fold to a constant at build time).
def _spatial_rank(rule, node, facts):
    rank = facts.ranks.get(_input(node, 0))
    if rank is None:
        kernel = _attr(node, "kernel_shape")
        spatial = len(kernel) if kernel else None
    else:
        spatial = rank - 2
    if spatial is not None and not rule["min"] <= spatial <= rule["max"]:
        return f"{spatial}-D {node.op_type} is not supported ({rule['why']})"
    return None


def _attr_ints_all(rule, node, facts):
    values = _attr(node, rule["attr"])
    if values and any(v != rule["value"] for v in values):
        return f"`{rule['attr']}` must be empty or all {rule['value']}, got {list(values)}"
    return None


def _attr_in(rule, node, facts):
    value = _attr(node, rule["attr"], rule.get("default"))
    if value is not None and value not in rule["values"]:
        return f"`{rule['attr']}` = `{value}` is not supported; TensorRT takes {', '.join(rule['values'])}"
    return None


def _attr_equals(rule, node, facts):
    value = _attr(node, rule["attr"], rule.get("default"))
    if value is not None and value != rule["value"]:
        return f"`{rule['attr']}` must be {rule['value']}, got {value}"
    return None


def _attrs_absent(rule, node, facts):
    present = [a.name for a in node.attribute if a.name in rule["attrs"]]
    return f"attribute `{present[0]}` is not supported" if present else None


def _max_outputs(rule, node, facts):
    used = [name for name in node.output[rule["count"]:] if name]
    return f"{rule['what']} is not supported (remove the extra outputs)" if used else None


def _const_input(rule, node, facts):
    name = _input(node, rule["index"])
    if not name or name in facts.stored:
        return None
    if rule["strict"]:
        return f"input `{rule['name']}` must be an initializer (a constant), but it is computed by the graph"
    return ("warning", f"input `{rule['name']}` is computed by the graph; TensorRT must be able to fold it to a "
                       "constant at build time")


def _const_input_equals(rule, node, facts):
    name = _input(node, rule["index"])
    if not name:
        return None
    if name not in facts.stored:
        return f"input `{rule['name']}` must be an initializer"
    value = facts.constants.get(name)
    if value is not None and np.any(value != rule["value"]):
        return f"input `{rule['name']}` must be {rule['value']}, got {value.tolist()}"
    return None


def _const_input_below(rule, node, facts):
    name = _input(node, rule["index"])
    value = facts.constants.get(name)
    if value is not None and np.any(value >= rule["limit"]):
        return f"input `{rule['name']}` must be less than {rule['limit']}, got {value.tolist()}"
    return None


def _input_rank(rule, node, facts):
    rank = facts.ranks.get(_input(node, rule["index"]))
    if rank is not None and not rule["min"] <= rank <= rule["max"]:
        wanted = rule["min"] if rule["min"] == rule["max"] else f"{rule['min']}..{rule['max']}"
        return f"input rank must be {wanted}, got {rank}"
    return None


def _zero_point_zero(rule, node, facts):
    name = _input(node, rule["index"])
    if not name:
        return None
    if name not in facts.stored:
        return f"`{rule['name']}` must be a constant zero (TensorRT quantization is symmetric)"
    value = facts.constants.get(name)
    if value is not None and np.any(value != 0):
        nonzero = np.unique(value[value != 0])[:4].tolist()
        return (f"`{rule['name']}` must be all zeros: TensorRT quantization is symmetric, got zero points "
                f"{nonzero}{' ...' if np.count_nonzero(value) > len(nonzero) else ''}")
    return None


def _quantized_output(rule, node, facts):
    # ONNX QuantizeLinear outputs the zero point's type, `output_dtype` (opset 21), or UINT8 when neither
    # is given, and UINT8 is what ONNX Runtime's default (asymmetric) quantization produces.
    output_dtype = _attr(node, "output_dtype", 0)
    zero_point = _input(node, 2)
    elem = output_dtype or facts.types.get(zero_point) or TensorProto.UINT8
    allowed = facts.table.quantized_types
    if type_name(elem) not in allowed:
        return (f"quantizes to {type_name(elem)}; TensorRT quantizes to {', '.join(allowed)} only "
                "(give an int8 zero point of 0)")
    return None


def _bidirectional_same_activations(rule, node, facts):
    activations = _attr(node, "activations")
    if _attr(node, "direction", "forward") != "bidirectional" or not activations:
        return None
    half = len(activations) // 2
    if list(activations[:half]) != list(activations[half:]):
        return "a bidirectional layer needs the same activation functions for both directions"
    return None


RULES = {"spatial_rank": _spatial_rank, "attr_ints_all": _attr_ints_all, "attr_in": _attr_in,
         "attr_equals": _attr_equals, "attrs_absent": _attrs_absent, "max_outputs": _max_outputs,
         "const_input": _const_input, "const_input_equals": _const_input_equals,
         "const_input_below": _const_input_below, "input_rank": _input_rank, "zero_point_zero": _zero_point_zero,
         "quantized_output": _quantized_output, "bidirectional_same_activations": _bidirectional_same_activations}


def node_problems(support: OpSupport, node: NodeProto, facts: GraphFacts) -> list[tuple[str, str, str | None]]:
    """(severity, reason, hint) for every rule of `support` that `node` breaks, and for a data type the op
    lacks."""
    problems = []
    for rule in support.rules:
        result = RULES[rule["kind"]](rule, node, facts)
        if result:
            severity, reason = result if isinstance(result, tuple) else ("error", result)
            problems.append((severity, reason, None))
    return problems + _type_problems(support, node, facts)


IO_ONLY_HINT = "TensorRT takes {type} only at the network's inputs and outputs: Cast it to float first"


def _type_problems(support: OpSupport, node: NodeProto, facts: GraphFacts) -> list:
    """The op's data input (input 0) and a Cast's target must be types the matrix lists for it."""
    if not support.types:
        return []
    checked = []
    if node.input and node.input[0] in facts.types:
        checked.append(("input", facts.types[node.input[0]]))
    if node.op_type == "Cast" and _attr(node, "to") is not None:
        checked.append(("target", _attr(node, "to")))
    problems = []
    for what, elem in checked:
        name = type_name(elem)
        if name in facts.table.cast_down:
            name = facts.table.cast_down[name]  # DOUBLE is computed as FP32 (and reported where it is stored)
        if name not in support.types:
            hint = IO_ONLY_HINT.format(type=name) if name in facts.table.io_only_types else None
            problems.append(("error", f"{what} type {name} is not supported by TensorRT's {node.op_type} "
                                      f"(it takes {', '.join(support.types)})", hint))
    return problems


def io_only_outputs(node: NodeProto, facts: GraphFacts, graph_outputs: set) -> list[tuple[str, str, str]]:
    """A tensor of an I/O-only type (UINT8) made between layers: the parser refuses it."""
    problems = []
    for output in node.output:
        name = type_name(facts.types.get(output, 0)) if output in facts.types else None
        if name in facts.table.io_only_types and output not in graph_outputs:
            problems.append(("error", f"produces the {name} tensor `{output}` between layers",
                             IO_ONLY_HINT.format(type=name)))
    return problems


def constant_values(initializers, nodes) -> dict:
    """Initializers and Constant-node outputs as arrays (external data that is not loaded is skipped)."""
    constants = {}
    for tensor in initializers:
        if tensor.data_location == TensorProto.EXTERNAL and not tensor.raw_data:
            continue
        constants[tensor.name] = numpy_helper.to_array(tensor)
    for node in nodes:
        if node.op_type == "Constant" and node.output:
            value = _attr(node, "value")
            if value is not None and hasattr(value, "dims"):
                constants[node.output[0]] = numpy_helper.to_array(value)
    return constants
