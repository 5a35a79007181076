"""Normalization and regularization layers: batchnorm, layernorm, lrn, dropout."""

from __future__ import annotations

from specc.ir.types import is_static, shape_str
from specc.ops.base import OpDef, ShapeError, elements, float_const, register
from specc.lang.argtypes import REQUIRED, Field, Float, Int


@register
class BatchNorm(OpDef):
    name = "batchnorm"
    doc = "batch normalization over the channel axis 1"
    fields = {
        "momentum": Field(Float(0, 1), 0.1, "running-statistics momentum (torch convention)"),
        "eps": Field(Float(0, min_open=True), 1e-5, "added to the variance"),
    }

    def channels(self, x):
        if x.rank < 2 or not is_static(x.shape[1]):
            raise ShapeError(f"`batchnorm` needs a static channel axis 1, got {shape_str(x.shape)}")
        return x.shape[1]

    def infer(self, attrs, inputs):
        self.channels(inputs[0])
        return inputs[0]

    def param_shapes(self, attrs, inputs):
        c = self.channels(inputs[0])
        return {"weight": (c,), "bias": (c,)}

    def buffer_shapes(self, attrs, inputs):
        c = self.channels(inputs[0])
        return {"running_mean": (c,), "running_var": (c,)}

    def init_tensor(self, attrs, pname, shape, rng):
        import numpy as np

        return np.ones(shape, np.float32) if pname in ("weight", "running_var") else np.zeros(shape, np.float32)

    def macs(self, attrs, inputs, output):
        return 2 * elements(output)

    def torch_forward(self, attrs, params, xs, training):
        import torch.nn.functional as F

        return F.batch_norm(xs[0], params["running_mean"], params["running_var"], params["weight"],
                            params["bias"], training, attrs["momentum"], attrs["eps"])

    def onnx(self, g, attrs, xs, params, itypes, otype):
        inputs = [xs[0]] + [params[k] for k in ("weight", "bias", "running_mean", "running_var")]
        return g.node("BatchNormalization", inputs, g.label, epsilon=float(attrs["eps"]),
                      momentum=float(1 - attrs["momentum"]))


@register
class LayerNorm(OpDef):
    name = "layernorm"
    doc = "layer normalization over the last axis"
    fields = {"eps": Field(Float(0, min_open=True), 1e-5, "added to the variance")}

    def features(self, x):
        if not is_static(x.shape[-1]) or x.rank < 2:
            raise ShapeError(f"`layernorm` needs a static last axis, got {shape_str(x.shape)}")
        return x.shape[-1]

    def infer(self, attrs, inputs):
        self.features(inputs[0])
        return inputs[0]

    def param_shapes(self, attrs, inputs):
        d = self.features(inputs[0])
        return {"weight": (d,), "bias": (d,)}

    def init_tensor(self, attrs, pname, shape, rng):
        import numpy as np

        return np.ones(shape, np.float32) if pname == "weight" else np.zeros(shape, np.float32)

    def macs(self, attrs, inputs, output):
        return 2 * elements(output)

    def torch_forward(self, attrs, params, xs, training):
        import torch.nn.functional as F

        return F.layer_norm(xs[0], (xs[0].shape[-1],), params["weight"], params["bias"], attrs["eps"])

    def onnx(self, g, attrs, xs, params, itypes, otype):
        if g.opset >= 17:
            return g.node("LayerNormalization", [xs[0], params["weight"], params["bias"]], g.label,
                          axis=-1, epsilon=float(attrs["eps"]))
        # Before opset 17 there is no LayerNormalization: (x - mean) / sqrt(var + eps) * weight + bias.
        label = g.label
        centered = g.node("Sub", [xs[0], g.reduce_mean(xs[0], [-1], label + "/mean")], label + "/centered")
        var = g.reduce_mean(g.node("Mul", [centered, centered], label + "/sq"), [-1], label + "/var")
        std = g.node("Sqrt", [g.node("Add", [var, float_const(g, attrs["eps"], itypes[0].dtype, label + "_eps")], label + "/var_eps")],
                     label + "/std")
        normed = g.node("Div", [centered, std], label + "/normed")
        return g.node("Add", [g.node("Mul", [normed, params["weight"]], label + "/scaled"), params["bias"]], label)


@register
class LocalResponseNorm(OpDef):
    name = "lrn"
    doc = "AlexNet local response normalization across channels"
    primary = "size"
    fields = {
        "size": Field(Int(1), 5, "channels in the window"),
        "alpha": Field(Float(0), 1e-4, "scale"),
        "beta": Field(Float(0), 0.75, "exponent"),
        "k": Field(Float(0), 2.0, "additive constant"),
    }

    def infer(self, attrs, inputs):
        if inputs[0].rank < 3:
            raise ShapeError(f"`lrn` needs (N, C, ...), got {shape_str(inputs[0].shape)}")
        return inputs[0]

    def macs(self, attrs, inputs, output):
        return attrs["size"] * elements(output)

    def torch_forward(self, attrs, params, xs, training):
        import torch.nn.functional as F

        return F.local_response_norm(xs[0], attrs["size"], attrs["alpha"], attrs["beta"], attrs["k"])

    def onnx(self, g, attrs, xs, params, itypes, otype):
        return g.node("LRN", xs, g.label, size=attrs["size"], alpha=float(attrs["alpha"]),
                      beta=float(attrs["beta"]), bias=float(attrs["k"]))


@register
class Dropout(OpDef):
    name = "dropout"
    doc = "zero activations with probability p in training; identity in inference"
    primary = "p"
    fields = {"p": Field(Float(0, 1, max_open=True), REQUIRED, "drop probability")}

    def torch_forward(self, attrs, params, xs, training):
        import torch.nn.functional as F

        return F.dropout(xs[0], attrs["p"], training)

    def onnx(self, g, attrs, xs, params, itypes, otype):
        return xs[0]  # inference graph: dropout is the identity
