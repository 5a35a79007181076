"""ReLU moves below the max pooling it feeds: maxpool(relu(y)) -> relu(maxpool(y)).

Exact: ReLU is monotonic, so the window's largest value is the same before or after it. In an int8
graph the ReLU is the float step between two quantized ops (ONNX Runtime cannot absorb a ReLU into a
symmetric QuantizeLinear), and after the pooling it touches a quarter (2x2) of the values. Only when
the pooling is the ReLU's one reader and the ReLU is its input's one reader.
"""

from __future__ import annotations

from dataclasses import dataclass

from specc.ir.graph import Node, Value
from specc.passes.manager import Pass, PassResult
from specc.passes.rewrite import only_user


@dataclass(frozen=True)
class SinkRelu(Pass):
    name = "sink_relu"
    summary = "move ReLU below the max pooling it feeds"

    def run(self, graph):
        moved = 0
        for relu in [n for n in graph.nodes if n.op == "relu"]:
            pool = only_user(relu.output, graph)
            if pool is None or pool.op != "maxpool" or only_user(relu.inputs[0], graph) is not relu:
                continue
            graph.set_input(pool, 0, relu.inputs[0])
            graph.erase(relu)
            after = Node(relu.name, relu.opdef, relu.category, relu.attrs, [pool.output],
                         [Value(relu.name, pool.output.type)], relu.span, relu.layer, meta=relu.meta)
            graph.insert_after(pool, after)
            graph.replace_all_uses(pool.output, after.output)
            graph.set_input(after, 0, pool.output)
            moved += 1
        return PassResult(graph, bool(moved), {"moved": moved} if moved else {})
