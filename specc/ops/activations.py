"""Activation ops, and the activation helpers that `dense` and `conv` share."""

from __future__ import annotations

import math

from specc.ops.base import OpDef, float_const, register
from specc.lang.argtypes import Field, Float, Int


def torch_activation(name: str, x, slope: float = 0.01):
    import torch.nn.functional as F

    if name == "linear":
        return x
    if name == "leaky_relu":
        return F.leaky_relu(x, slope)
    if name == "gelu":
        return F.gelu(x)  # exact (erf) form, as ONNX lowers it
    return {"relu": F.relu, "sigmoid": __import__("torch").sigmoid, "tanh": __import__("torch").tanh,
            "silu": F.silu, "elu": F.elu}[name](x)


def onnx_activation(g, name: str, x: str, label: str, slope: float = 0.01, dtype: str = "float32") -> str:
    if name == "linear":
        return x
    if name == "leaky_relu":
        return g.node("LeakyRelu", [x], label, alpha=float(slope))
    if name == "elu":
        return g.node("Elu", [x], label, alpha=1.0)
    if name == "silu":  # x * sigmoid(x): no Swish op before opset 24
        return g.node("Mul", [x, g.node("Sigmoid", [x], label + "_sigmoid")], label)
    if name == "gelu":  # exact GELU, 0.5 x (1 + erf(x / sqrt 2)); Gelu is an op only from opset 20
        scaled = g.node("Mul", [x, float_const(g, 1.0 / math.sqrt(2.0), dtype, label + "_inv_sqrt2")], label + "_scaled")
        erf = g.node("Erf", [scaled], label + "_erf")
        one_plus = g.node("Add", [erf, float_const(g, 1.0, dtype, label + "_one")], label + "_1p")
        half_x = g.node("Mul", [x, float_const(g, 0.5, dtype, label + "_half")], label + "_halfx")
        return g.node("Mul", [half_x, one_plus], label)
    return g.node({"relu": "Relu", "sigmoid": "Sigmoid", "tanh": "Tanh"}[name], [x], label)


class _Activation(OpDef):
    doc = "elementwise activation"

    def torch_forward(self, attrs, params, xs, training):
        return torch_activation(self.name, xs[0], attrs.get("slope", 0.01))

    def onnx(self, g, attrs, xs, params, itypes, otype):
        return onnx_activation(g, self.name, xs[0], g.label, attrs.get("slope", 0.01), itypes[0].dtype)


def _make(name: str, fields=None, primary=None):
    cls = type(name, (_Activation,), {"name": name, "fields": fields or {}, "primary": primary})
    register(cls)
    return cls


for _name in ("relu", "sigmoid", "tanh", "gelu", "silu", "elu"):
    _make(_name)
_make("leaky_relu", {"slope": Field(Float(0), 0.01, "negative slope")}, "slope")


class _Softmax(OpDef):
    fields = {"axis": Field(Int(), -1, "axis to normalize over (batch axis is 0)")}
    primary = "axis"

    def infer(self, attrs, inputs):
        from specc.ops.shape_ops import normalize_axis

        normalize_axis(attrs["axis"], inputs[0].rank, self.name, allow_batch=False)
        return inputs[0]

    def torch_forward(self, attrs, params, xs, training):
        import torch

        fn = torch.softmax if self.name == "softmax" else torch.log_softmax
        return fn(xs[0], dim=attrs["axis"])

    def onnx(self, g, attrs, xs, params, itypes, otype):
        op = "Softmax" if self.name == "softmax" else "LogSoftmax"
        return g.node(op, xs, g.label, axis=attrs["axis"])


@register
class Softmax(_Softmax):
    name = "softmax"
    doc = "softmax over an axis (default the last)"


@register
class LogSoftmax(_Softmax):
    name = "log_softmax"
    doc = "log of softmax over an axis (default the last)"
