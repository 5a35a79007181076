"""IR -> ONNX, emitted directly from the graph (no tracing).

Node names carry the spec layer name (`conv_1/Conv`), the batch axis is
dynamic (`batch`), preprocessing is part of the graph, and parameters are
initializers under their spec names (`conv_1.weight`).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from specc import __version__
from specc.codegen import onnx_wire as wire
from specc.codegen.lowerable import check_lowerable
from specc.ir.graph import Graph
from specc.ir.types import BATCH

ONNX_DTYPES = wire.DTYPES  # IR dtype -> TensorProto.DataType
DEFAULT_OPSET = 17


class OnnxGraphBuilder:
    """What an op's `onnx` lowering writes into: nodes, constants, unique names."""

    def __init__(self, opset: int):
        self.opset = opset
        self.nodes: list = []
        self.initializers: list = []
        self.names: set[str] = set()
        self.label = ""  # the IR node being lowered; ops prefix their node names with it

    def unique(self, hint: str) -> str:
        name, i = hint, 1
        while name in self.names:
            i += 1
            name = f"{hint}_{i}"
        self.names.add(name)
        return name

    def node(self, op_type: str, inputs: list, name: str, **attrs) -> str:
        node_name = self.unique(name)
        output = node_name  # one output per node: its name doubles as the tensor name
        self.nodes.append(wire.Node(op_type, list(inputs), [output], node_name, attrs))
        return output

    def multi_node(self, op_type: str, inputs: list, outputs: list, name: str, **attrs) -> list:
        """A node with several outputs (`node` makes one-output nodes); the caller names the node and its
        outputs, through `unique`."""
        self.nodes.append(wire.Node(op_type, list(inputs), list(outputs), name, attrs))
        return list(outputs)

    def initializer(self, name: str, array) -> str:
        self.names.add(name)
        self.initializers.append(wire.Initializer(name, array if wire.is_lazy(array) else np.asarray(array)))
        return name

    def const(self, value, hint: str) -> str:
        array = np.asarray(value, dtype=np.float32) if not isinstance(value, np.ndarray) else value
        return self.initializer(self.unique(hint), array)

    def reduce_mean(self, x: str, axes: list, name: str) -> str:
        # Opset 18 moved ReduceMean's axes from an attribute to an input.
        if self.opset >= 18:
            return self.node("ReduceMean", [x, self.const(np.array(axes, np.int64), name + "_axes")], name,
                             keepdims=1)
        return self.node("ReduceMean", [x], name, axes=list(axes), keepdims=1)


def _rename_tensors(nodes: list, renamed: dict) -> None:
    if not renamed:
        return
    for node in nodes:
        for field in (node.input, node.output):
            for i, name in enumerate(field):
                if name in renamed:
                    field[i] = renamed[name]


def _value_info(name: str, tensor_type, batch_name: str = "batch") -> wire.ValueInfo:
    dims = [batch_name if d == BATCH else d for d in tensor_type.shape]
    return wire.ValueInfo(name, ONNX_DTYPES[tensor_type.dtype], dims)


def to_onnx(graph: Graph, weights: dict | None = None, opset: int = DEFAULT_OPSET,
            metadata: dict | None = None):
    """The graph as an `onnx.ModelProto`; its data values become initializers (`weights`, name -> array,
    overrides the graph's own data)."""
    return as_proto(lower(graph, weights, opset, metadata))


def as_proto(model: wire.Model):
    """ONNX records as an `onnx.ModelProto` (weights added as TensorProtos, so models past protobuf's
    2 GiB serialization limit still load, to be saved with external data)."""
    import onnx
    from onnx import numpy_helper

    proto = onnx.ModelProto.FromString(wire.encode(dataclasses.replace(model, initializers=[])))
    proto.graph.initializer.extend(numpy_helper.from_array(np.asarray(wire.array_of(init)), name=init.name)
                                   for init in model.initializers)
    return proto


def lower(graph: Graph, weights: dict | None = None, opset: int = DEFAULT_OPSET,
          metadata: dict | None = None) -> wire.Model:
    """The graph as ONNX records (see onnx_wire.py): `wire.write` streams them to a file."""
    check_lowerable(graph, "ONNX")
    g = OnnxGraphBuilder(opset)
    names: dict = {}
    for value in graph.inputs:
        g.names.add(value.name)
        names[value] = value.name
    for name in graph.outputs:
        g.names.add(name)  # reserve: outputs are named as the spec names them
    for name, value in graph.params.items():
        array = weights[name] if weights is not None and name in weights else value.data  # drawn when written
        g.initializer(name, array)
    for node in graph.nodes:
        g.label = node.name
        xs = [names[v] for v in node.inputs]
        params = {local: p.name for local, p in node.params.items()}
        result = node.opdef.onnx(g, dict(node.attrs), xs, params, [v.type for v in node.inputs],
                                 node.output.type)
        results = [result] if isinstance(result, str) else list(result)
        names.update(zip(node.outputs, results))
    outputs = []
    produced = {o for n in g.nodes for o in n.output}
    renamed: dict = {}
    for out_name, value in graph.outputs.items():
        tensor = names[value]
        if tensor in produced and tensor not in renamed:
            renamed[tensor] = out_name  # the producing node writes the output itself: no Identity node
        else:  # an input, an initializer, or a tensor that is already another output
            g.nodes.append(wire.Node("Identity", [tensor], [out_name], f"output/{out_name}"))
        outputs.append(_value_info(out_name, value.type))
    _rename_tensors(g.nodes, renamed)
    return wire.Model(graph.name, g.nodes, g.initializers, [_value_info(v.name, v.type) for v in graph.inputs],
                      outputs, opset, producer_name="specc", producer_version=__version__,
                      doc_string=f"{graph.name}, compiled by specc {__version__} from {graph.source}",
                      metadata={key: str(value) for key, value in (metadata or {}).items()})
