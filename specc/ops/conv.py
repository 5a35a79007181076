"""`conv`: 1-D, 2-D or 3-D convolution, following the input's rank."""

from __future__ import annotations

import math

from specc.ir.types import is_static
from specc.ops.activations import onnx_activation, torch_activation
from specc.ops.base import (ACTIVATION, INIT, OpDef, ShapeError, elements, positive_spatial, register,
                            same_pads, spatial_rank, window_out)
from specc.lang.argtypes import REQUIRED, Bool, Enum, Field, Int, ListOf, Union

SIZES = Union((Int(1), ListOf(Int(1), 1, 3)))
PADDING = Union((Enum(("valid", "same")), Int(0), ListOf(Int(0), 1, 3)))


def resolve_padding(padding, x, kernel, stride, dilation) -> list[tuple[int, int]]:
    """(begin, end) pads per spatial axis."""
    rank = len(kernel)
    if padding == "valid":
        return [(0, 0)] * rank
    if padding == "same":
        return [same_pads(x.shape[2 + i], kernel[i], stride[i], dilation[i]) for i in range(rank)]
    return [(p, p) for p in positive_spatial(padding, rank, "padding")]


@register
class Conv(OpDef):
    name = "conv"
    doc = "convolution over 1, 2 or 3 spatial axes: (N, C, *S) -> (N, filters, *S')"
    primary = "filters"
    resolved_from = ("kernel", "stride", "padding", "dilation")  # kept in attrs as kernel_shape/strides/pads
    fields = {
        "filters": Field(Int(1), REQUIRED, "output channels"),
        "kernel": Field(SIZES, 3, "kernel size: an int or one per spatial axis"),
        "stride": Field(SIZES, 1, "stride"),
        "padding": Field(PADDING, "valid", "`valid`, `same`, or an int per side"),
        "dilation": Field(SIZES, 1, "dilation"),
        "groups": Field(Int(1), 1, "grouped convolution (depthwise when groups = channels)"),
        "bias": Field(Bool(), True, "add a bias"),
        "activation": ACTIVATION,
        "init": INIT,
    }

    def geometry(self, attrs, x):
        rank = spatial_rank(x, "conv")
        kernel = positive_spatial(attrs["kernel"], rank, "kernel")
        stride = positive_spatial(attrs["stride"], rank, "stride")
        dilation = positive_spatial(attrs["dilation"], rank, "dilation")
        pads = resolve_padding(attrs["padding"], x, kernel, stride, dilation)
        return kernel, stride, dilation, pads

    def resolve(self, attrs, inputs):
        kernel, stride, dilation, pads = self.geometry(attrs, inputs[0])
        return {"kernel_shape": list(kernel), "strides": list(stride), "dilations": list(dilation),
                "pads": [b for b, _ in pads] + [e for _, e in pads]}  # ONNX order: all begins, then all ends

    def infer(self, attrs, inputs):
        x = inputs[0]
        kernel, stride, dilation, pads = self.geometry(attrs, x)
        channels, groups = x.shape[1], attrs["groups"]
        if not is_static(channels):
            raise ShapeError(f"`conv` needs a static channel count, got `{channels}`")
        for what, count in (("input channels", channels), ("filters", attrs["filters"])):
            if count % groups:
                raise ShapeError(f"{what} ({count}) are not divisible by groups ({groups})",
                                 "groups must divide both the input channels and the filters")
        spatial = tuple(
            window_out(x.shape[2 + i], kernel[i], stride[i], sum(pads[i]), dilation[i], "kernel")
            for i in range(len(kernel)))
        return x.with_shape((x.shape[0], attrs["filters"]) + spatial)

    def param_shapes(self, attrs, inputs):
        x = inputs[0]
        kernel = positive_spatial(attrs["kernel"], spatial_rank(x, "conv"), "kernel")
        shapes = {"weight": (attrs["filters"], x.shape[1] // attrs["groups"]) + kernel}
        if attrs["bias"]:
            shapes["bias"] = (attrs["filters"],)
        return shapes

    def macs(self, attrs, inputs, output):
        weight = self.param_shapes(attrs, inputs)["weight"]
        return elements(output) * math.prod(weight[1:])

    def torch_forward(self, attrs, params, xs, training):
        return torch_activation(attrs["activation"], conv_forward(attrs, xs[0], params["weight"], params.get("bias")))

    def onnx(self, g, attrs, xs, params, itypes, otype):
        return conv_onnx(g, attrs, xs[0], params["weight"], params.get("bias"), otype.dtype)


def conv_onnx(g, attrs, x: str, weight: str, bias: str | None, dtype: str) -> str:
    """ONNX Conv from the resolved geometry, then the activation; `weight` is an initializer or a tensor."""
    inputs = [x, weight] + ([bias] if bias else [])
    y = g.node("Conv", inputs, g.label + "/Conv", kernel_shape=attrs["kernel_shape"], strides=attrs["strides"],
               dilations=attrs["dilations"], group=attrs["groups"], pads=attrs["pads"])
    return onnx_activation(g, attrs["activation"], y, g.label + "/" + attrs["activation"], dtype=dtype)


def conv_forward(attrs, x, weight, bias):
    """torch convolution from the resolved geometry (`pads` in ONNX order)."""
    import torch.nn.functional as F

    pads = attrs["pads"]
    rank = len(pads) // 2
    begins, ends = pads[:rank], pads[rank:]
    if begins != ends:  # asymmetric `same`: pad explicitly; F.pad lists the last axis first
        x = F.pad(x, [p for i in reversed(range(rank)) for p in (begins[i], ends[i])])
        padding = 0
    else:
        padding = tuple(begins)
    conv = (F.conv1d, F.conv2d, F.conv3d)[rank - 1]
    return conv(x, weight, bias, tuple(attrs["strides"]), padding, tuple(attrs["dilations"]), attrs["groups"])
