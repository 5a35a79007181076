"""Internal ops of int8 graphs: a conv and a gemm whose weight is an input, not held data.

`quantize_int8` stores each weight as int8 data of a `dequantize_linear` node and feeds that node's
output to the layer as its second input. ONNX then reads `Conv(x_dq, W_dq, bias)` and
`Gemm(x_dq, W_dq, bias)`: the DequantizeLinear -> Conv/Gemm -> QuantizeLinear groups that ONNX Runtime
fuses into QLinearConv/QGemm and TensorRT into int8 kernels. In torch the weight arrives dequantized
(float), so the graph still runs as it computes. The bias stays float: both runtimes quantize it
themselves (to int32, with the input scale times the weight scale).
"""

from __future__ import annotations

from specc.ir.types import TensorType, shape_str
from specc.ops.activations import onnx_activation, torch_activation
from specc.ops.base import ShapeError, register
from specc.ops.conv import Conv, conv_forward, conv_onnx
from specc.ops.internal import Gemm


def _check_weight(op: str, weight: TensorType, want: tuple) -> None:
    if tuple(weight.shape) != tuple(want):
        raise ShapeError(f"`{op}`: weight input of shape {shape_str(weight.shape)}, expected {shape_str(want)}")


@register
class ConvQDQ(Conv):
    name = "conv_qdq"
    category = "internal"
    doc = "conv whose weight is its second input (a dequantize_linear output); made by `quantize_int8`"
    arity = (2, 2)

    def infer(self, attrs, inputs):
        x, weight = inputs
        _check_weight(self.name, weight, super().param_shapes(attrs, [x])["weight"])
        return super().infer(attrs, [x])

    def param_shapes(self, attrs, inputs):
        return {k: v for k, v in super().param_shapes(attrs, inputs[:1]).items() if k != "weight"}

    def macs(self, attrs, inputs, output):
        return super().macs(attrs, inputs[:1], output)

    def torch_forward(self, attrs, params, xs, training):
        return torch_activation(attrs["activation"], conv_forward(attrs, xs[0], xs[1], params.get("bias")))

    def onnx(self, g, attrs, xs, params, itypes, otype):
        return conv_onnx(g, attrs, xs[0], xs[1], params.get("bias"), otype.dtype)


@register
class GemmQDQ(Gemm):
    name = "gemm_qdq"
    doc = "gemm whose weight (units, K) is its second input (a dequantize_linear output); made by `quantize_int8`"
    arity = (2, 2)

    def infer(self, attrs, inputs):
        x, weight = inputs
        out = super().infer(attrs, [x])
        _check_weight(self.name, weight, (attrs["units"], x.shape[1]))
        return out

    def param_shapes(self, attrs, inputs):
        return {k: v for k, v in super().param_shapes(attrs, inputs[:1]).items() if k != "weight"}

    def macs(self, attrs, inputs, output):
        return super().macs(attrs, inputs[:1], output)

    def torch_forward(self, attrs, params, xs, training):
        import torch.nn.functional as F

        return torch_activation(attrs["activation"], F.linear(xs[0], xs[1], params.get("bias")))

    def onnx(self, g, attrs, xs, params, itypes, otype):
        inputs = [xs[0], xs[1]] + ([params["bias"]] if "bias" in params else [])
        y = g.node("Gemm", inputs, g.label + "/Gemm", transB=1)
        return onnx_activation(g, attrs["activation"], y, g.label + "/" + attrs["activation"], dtype=otype.dtype)
