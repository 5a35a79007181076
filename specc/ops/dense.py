"""`dense`: a fully connected layer on the last axis."""

from __future__ import annotations

from specc.ir.types import is_static, shape_str
from specc.ops.activations import onnx_activation, torch_activation
from specc.ops.base import ACTIVATION, INIT, OpDef, ShapeError, elements, register
from specc.lang.argtypes import REQUIRED, Bool, Field, Float, Int


@register
class Dense(OpDef):
    name = "dense"
    doc = "fully connected layer on the last axis: (..., D) -> (..., units)"
    primary = "units"
    fields = {
        "units": Field(Int(1), REQUIRED,
                       "output features"),
        "bias": Field(Bool(), True, "add a bias"),
        "activation": ACTIVATION,
        "init": INIT,
        "dropconnect": Field(Float(0, 1, max_open=True), 0.0,
                             "DropConnect probability: weights dropped in training (the rest scaled by 1/(1-p)); "
                             "inference uses them all"),
    }

    def infer(self, attrs, inputs):
        x = inputs[0]
        if x.rank < 2:
            raise ShapeError(f"`dense` needs an input with a feature axis, got {shape_str(x.shape)}")
        if not is_static(x.shape[-1]):
            raise ShapeError(f"`dense` needs a static last axis, got `{x.shape[-1]}` in {shape_str(x.shape)}",
                             "add a `flatten` or `global_avgpool` before it")
        return x.with_shape(x.shape[:-1] + (attrs["units"],))

    def param_shapes(self, attrs, inputs):
        shapes = {"weight": (attrs["units"], inputs[0].shape[-1])}
        if attrs["bias"]:
            shapes["bias"] = (attrs["units"],)
        return shapes

    def macs(self, attrs, inputs, output):
        return elements(output) * inputs[0].shape[-1]

    def torch_forward(self, attrs, params, xs, training):
        import torch.nn.functional as F

        weight = params["weight"]
        if training and attrs["dropconnect"] > 0:
            # DropConnect (Wan et al. 2013): each weight kept with probability 1-p, one mask per forward pass.
            # Kept weights are scaled by 1/(1-p), so the expected weight is W: inference (and ONNX) use W as is.
            weight = F.dropout(weight, attrs["dropconnect"], training=True)
        return torch_activation(attrs["activation"], F.linear(xs[0], weight, params.get("bias")))

    def onnx(self, g, attrs, xs, params, itypes, otype):
        label = g.label
        if itypes[0].rank == 2:
            inputs = [xs[0], params["weight"]] + ([params["bias"]] if "bias" in params else [])
            y = g.node("Gemm", inputs, label + "/Gemm", transB=1)
        else:
            w_t = g.node("Transpose", [params["weight"]], label + "/weight_T", perm=[1, 0])
            y = g.node("MatMul", [xs[0], w_t], label + "/MatMul")
            if "bias" in params:
                y = g.node("Add", [y, params["bias"]], label + "/bias")
        return onnx_activation(g, attrs["activation"], y, label + "/" + attrs["activation"], dtype=otype.dtype)
