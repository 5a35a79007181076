"""A conv or dense layer's activation becomes a node of its own: conv(x, act) -> act(conv(x)).

ONNX Runtime fuses a quantized Conv/Gemm only when a QuantizeLinear reads its output directly (and
TensorRT fuses the activation back into the int8 kernel), so `quantize_int8` needs the linear output as
a value of the graph, and calibration needs its range. Float layers of an int8 graph are split too:
their ReLU can then move below a max pooling (`sink_relu`), which keeps the Q/DQ pair that follows
after the ReLU (a pair ONNX Runtime would otherwise hoist above the pooling, into its slow int8 NCHW
MaxPool). Both runtimes fuse a float conv and its activation again. Layers in `keep_fp32` stay whole;
the layer keeps its name, the activation is `<layer>.<act>`.
"""

from __future__ import annotations

from dataclasses import dataclass

from specc.ir.graph import Node, Value
from specc.ops import REGISTRY
from specc.passes.manager import Pass, PassResult
from specc.passes.precision_policy import INT8_COMPUTE, keeps_fp32
from specc.passes.rewrite import clone


@dataclass(frozen=True)
class SplitActivations(Pass):
    name = "split_activations"
    summary = "give the activation of each conv/dense its own node (int8 graphs)"
    keep_fp32: tuple = ()

    def run(self, graph):
        split = 0
        for node in list(graph.nodes):
            act = node.attrs.get("activation", "linear")
            if act == "linear" or node.op not in INT8_COMPUTE or keeps_fp32(node, self.keep_fp32):
                continue
            linear = graph.replace_node(node, clone(node, attrs={"activation": "linear"}))
            linear.meta["activation"] = act  # what the layer's output was: the accuracy guard compares it
            name = graph.unique_name(f"{node.name}.{act}")
            opdef = REGISTRY[act]
            attrs = {k: f.default for k, f in opdef.fields.items()}  # leaky_relu: the slope conv/dense use
            activation = Node(name, opdef, "layer", attrs, [linear.output], [Value(name, linear.output.type)],
                              node.span, node.layer)
            graph.insert_after(linear, activation)
            graph.replace_all_uses(linear.output, activation.output)
            graph.set_input(activation, 0, linear.output)
            split += 1
        return PassResult(graph, bool(split), {"split": split} if split else {})
