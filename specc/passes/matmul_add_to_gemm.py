"""A MatMul by a constant matrix followed by the addition of a constant vector is one Gemm.

    add(matmul(x, K), b)  ->  gemm(x) with weight = K^T (units, K layout, as dense stores it), bias = b

For 2-D x only (Gemm's domain), and when the product feeds nothing but the add.
"""

from __future__ import annotations

from dataclasses import dataclass

from specc.ops import STEPS
from specc.passes.manager import Pass, PassResult
from specc.passes.rewrite import data, new_node, only_user


def _constant(value):
    node = value.producer
    return node.params["value"].numpy() if node is not None and node.op == "constant" else None


@dataclass(frozen=True)
class MatMulAddToGemm(Pass):
    name = "matmul_add_to_gemm"
    summary = "fuse MatMul by a constant and Add of a constant into Gemm"

    def run(self, graph):
        import numpy as np

        fused = 0
        gemm = STEPS["internal"]["gemm"]
        for matmul in [n for n in graph.nodes if n.op == "matmul"]:
            x, k = matmul.inputs
            kernel = _constant(k)
            add = only_user(matmul.output, graph)
            if kernel is None or x.type.rank != 2 or add is None or add.op != "add" or len(add.inputs) != 2:
                continue
            other = add.inputs[1] if add.inputs[0] is matmul.output else add.inputs[0]
            bias = _constant(other)
            units = kernel.shape[1]
            if bias is None or bias.size != units or bias.shape[-1] != units:
                continue
            params = {"weight": data(f"{matmul.name}.weight", np.ascontiguousarray(kernel.T), span=matmul.span),
                      "bias": data(f"{matmul.name}.bias", bias.reshape(units).astype(np.float32), span=matmul.span)}
            node = new_node(graph, matmul.name, gemm, {"units": units, "bias": True, "activation": "linear"}, [x],
                            matmul, add.output.type, params=params, category="internal")
            graph.insert_before(add, node)
            graph.replace_all_uses(add.output, node.output)
            graph.erase(add)
            graph.erase(matmul)
            fused += 1
        return PassResult(graph, bool(fused), {"fused": fused} if fused else {})
