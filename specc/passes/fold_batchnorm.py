"""Batchnorm at inference is an affine map per channel; folded into the conv or dense before it.

    bn(y) = gamma * (y - mean) / sqrt(var + eps) + beta = s * y + (beta - s * mean),  s = gamma / sqrt(var + eps)
    y = W x + b  =>  bn(y) = (s W) x + (s (b - mean) + beta)        (s scales output channel o of W)

Only when the producer's output feeds nothing else (another reader would see the folded values)
and it applies no activation of its own (bn(relu(y)) is not affine in y).
"""

from __future__ import annotations

from dataclasses import dataclass

from specc.passes.manager import Pass, PassResult
from specc.passes.rewrite import clone, lazy_data, only_user

FOLDS_INTO = ("conv", "dense", "gemm")


@dataclass(frozen=True)
class FoldBatchnorm(Pass):
    name = "fold_batchnorm"
    summary = "fold inference batchnorm into the preceding conv or dense"

    def run(self, graph):
        folded = 0
        for bn in [n for n in graph.nodes if n.op == "batchnorm"]:
            producer = bn.inputs[0].producer
            if self.why_not(graph, bn, producer) is None:
                self.fold(graph, bn, producer)
                folded += 1
        return PassResult(graph, bool(folded), {"folded": folded} if folded else {})

    @staticmethod
    def why_not(graph, bn, producer) -> str | None:
        if producer is None or producer.op not in FOLDS_INTO:
            return "not after a conv or dense"
        if only_user(producer.output, graph) is not bn:
            return "the conv/dense output has other readers"
        if producer.attrs.get("activation", "linear") != "linear":
            return "the conv/dense applies an activation first"
        if producer.op != "conv" and producer.output.type.rank != 2:
            return "dense on a sequence: batchnorm's channel axis is not the units axis"
        return None

    @staticmethod
    def fold(graph, bn, producer):
        w, b = folded_recipes(producer.params["weight"].data, producer.params.get("bias"),
                              {k: v.data for k, v in bn.params.items()}, bn.attrs["eps"])
        shape = producer.params["weight"].shape
        params = {"weight": lazy_data(f"{producer.name}.weight", shape, w, span=producer.span),
                  "bias": lazy_data(f"{producer.name}.bias", shape[:1], b, span=producer.span)}
        folded = graph.replace_node(producer, clone(producer, attrs={"bias": True}, params=params))
        graph.replace_all_uses(bn.output, folded.output)
        graph.erase(bn)


def folded_recipes(weight, bias, bn: dict, eps: float):
    """Recipes of (s W, s (b - mean) + beta); the arrays are read only when asked for."""
    import numpy as np

    bias = bias.data if bias is not None else None

    def scale():  # in float32: weights are float32, and float64 copies of a large model cost seconds
        var = bn["running_var"].numpy().astype(np.float32)
        return bn["weight"].numpy() / np.sqrt(var + np.float32(eps))

    def new_weight():
        w = weight.numpy()
        return w * scale().reshape((-1,) + (1,) * (w.ndim - 1))

    def new_bias():
        b = bias.numpy() if bias is not None else np.float32(0)
        return ((b - bn["running_mean"].numpy()) * scale() + bn["bias"].numpy()).astype(np.float32)

    return new_weight, new_bias
