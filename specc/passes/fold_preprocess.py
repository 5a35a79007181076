"""Preprocessing `scale` and `normalize` are affine per channel; folded into the first conv or
dense that reads them (through a `flatten`, for dense), the model does one multiply-add less per
input element.

    x' = a x + c            (scale: a = k, c = 0;  normalize: a = 1/std, c = -mean/std, per channel)
    W x' + b = (W a) x + (b + W c)

A conv sees its zero padding after the affine map: with c != 0 the padded border would read c
instead of 0, so normalize is folded into a conv only when the conv has no padding. Scale (c = 0)
is exact either way. Consecutive steps are first merged into one (a2 (a1 x + c1) + c2), so a scale
before a normalize that cannot fold still costs nothing of its own.
"""

from __future__ import annotations

from dataclasses import dataclass

from specc.ir.types import is_static
from specc.ops import STEPS
from specc.passes.manager import Pass, PassResult
from specc.passes.rewrite import clone, lazy_data, only_user

AFFINE_STEPS = ("scale", "normalize")


@dataclass(frozen=True)
class FoldPreprocess(Pass):
    name = "fold_preprocess"
    summary = "fold preprocessing scale/normalize into the first conv or dense where exact"

    def run(self, graph):
        merged = self.merge_steps(graph)
        folded = 0
        for step in [n for n in graph.nodes if n.category == "preprocess" and n.op in AFFINE_STEPS]:
            reader = only_user(step.output, graph)
            flatten = None
            if reader is not None and reader.op == "flatten":
                flatten, reader = reader, only_user(reader.output, graph)
            if reader is None or reader.op not in ("conv", "dense", "gemm") or reader.inputs[0].producer \
                    is not (flatten or step):
                continue
            a, c = self.affine(step)
            per_feature = self.feature_map(reader, step.output.type.shape, a, c, flatten is not None)
            if per_feature is None:
                continue
            w, b = folded_recipes(reader, per_feature)
            shape = reader.params["weight"].shape
            params = {"weight": lazy_data(f"{reader.name}.weight", shape, w, span=reader.span),
                      "bias": lazy_data(f"{reader.name}.bias", shape[:1], b, span=reader.span)}
            graph.replace_node(reader, clone(reader, attrs={"bias": True}, params=params))
            graph.replace_all_uses(step.output, step.inputs[0])
            graph.erase(step)
            folded += 1
        stats = {k: v for k, v in (("merged", merged), ("folded", folded)) if v}
        return PassResult(graph, bool(stats), stats)

    def merge_steps(self, graph) -> int:
        """Each affine step read only by another affine step joins it: one `normalize` remains."""
        import numpy as np

        merged = 0
        for step in [n for n in graph.nodes if n.category == "preprocess" and n.op in AFFINE_STEPS]:
            reader = only_user(step.output, graph)
            if reader is None or reader.category != "preprocess" or reader.op not in AFFINE_STEPS:
                continue
            (a1, c1), (a2, c2) = self.affine(step), self.affine(reader)
            a, c = a2 * a1, a2 * c1 + c2
            if np.any(a <= 0):
                continue  # normalize keeps std > 0
            attrs = {"mean": [float(v) for v in -c / a], "std": [float(v) for v in 1.0 / a]}
            graph.replace_node(reader, clone(reader, attrs=attrs, opdef=STEPS["preprocess"]["normalize"]))
            graph.replace_all_uses(step.output, step.inputs[0])
            graph.erase(step)
            merged += 1
        return merged

    @staticmethod
    def affine(step):
        """(a, c) as float64 arrays over channels (length 1 when one value serves all)."""
        import numpy as np

        if step.op == "scale":
            return np.array([step.attrs["factor"]], np.float64), np.zeros(1)
        mean = np.atleast_1d(np.asarray(step.attrs["mean"], np.float64))
        std = np.atleast_1d(np.asarray(step.attrs["std"], np.float64))
        return 1.0 / std * np.ones(max(len(mean), len(std))), -mean / std

    @staticmethod
    def feature_map(reader, shape, a, c, through_flatten):
        """(a, c) over the reader's input features (conv: input channels), or None when the fold
        would not be exact or the layout does not allow it."""
        import numpy as np

        channels = shape[1] if len(shape) > 1 else None
        uniform = len(a) == 1 and len(c) == 1
        features = reader.params["weight"].shape[1]
        if reader.op == "conv":
            if through_flatten or (np.any(c) and any(reader.attrs["pads"])):
                return None
            if reader.attrs["groups"] != 1 and not uniform:
                return None
            return np.broadcast_to(a, (features,)), np.broadcast_to(c, (features,))
        if through_flatten:
            if not all(is_static(d) for d in shape[1:]) or channels is None:
                return None
            inner = features // channels
            return (np.repeat(np.broadcast_to(a, (channels,)), inner),
                    np.repeat(np.broadcast_to(c, (channels,)), inner))
        if len(shape) == 2 or uniform:  # dense reads the channel axis itself, or one value serves all
            return np.broadcast_to(a, (features,)), np.broadcast_to(c, (features,))
        return None


def folded_recipes(reader, per_feature):
    """Recipes of W' = W a (per input feature) and b' = b + sum over inputs of W c."""
    import numpy as np

    a, c = per_feature
    weight = reader.params["weight"].data
    bias = reader.params["bias"].data if "bias" in reader.params else None

    def broadcast(v, w):
        return v.reshape((1, -1) + (1,) * (w.ndim - 2))

    def new_weight():
        w = weight.numpy().astype(np.float64)
        return (w * broadcast(a, w)).astype(np.float32)

    def new_bias():
        w = weight.numpy().astype(np.float64)
        b = bias.numpy().astype(np.float64) if bias is not None else np.zeros(w.shape[0])
        return (b + (w * broadcast(c, w)).sum(axis=tuple(range(1, w.ndim)))).astype(np.float32)

    return new_weight, new_bias
