"""Pooling: windowed max/average, global max/average, fractional max."""

from __future__ import annotations

import math

from specc.ops.base import OpDef, ShapeError, elements, positive_spatial, register, spatial_rank, window_out
from specc.ops.conv import SIZES
from specc.lang.argtypes import REQUIRED, Field, Float, Int, ListOf, Union


class _WindowPool(OpDef):
    primary = "size"
    resolved_from = ("size", "stride", "padding")  # kept in attrs as kernel_shape/strides/pads
    fields = {
        "size": Field(SIZES, REQUIRED, "window size: an int or one per spatial axis"),
        "stride": Field(Union((SIZES, )), None, "stride (default: the window size)"),
        "padding": Field(Union((Int(0), ListOf(Int(0), 1, 3))), 0, "padding on each side"),
    }

    def geometry(self, attrs, rank):
        size = positive_spatial(attrs["size"], rank, "size")
        stride = positive_spatial(attrs["stride"] if attrs["stride"] is not None else attrs["size"], rank, "stride")
        padding = positive_spatial(attrs["padding"], rank, "padding")
        for k, p in zip(size, padding):
            if p > k // 2:  # torch and ONNX Runtime both refuse pads over half the window
                raise ShapeError(f"padding {p} is more than half the window {k}", f"use padding <= {k // 2}")
        return size, stride, padding

    def resolve(self, attrs, inputs):
        size, stride, padding = self.geometry(attrs, spatial_rank(inputs[0], self.name))
        return {"kernel_shape": list(size), "strides": list(stride), "pads": list(padding) * 2}

    def infer(self, attrs, inputs):
        x = inputs[0]
        size, stride, padding = self.geometry(attrs, spatial_rank(x, self.name))
        spatial = tuple(window_out(x.shape[2 + i], size[i], stride[i], 2 * padding[i], 1, "pooling window",
                                   "use a smaller window, or remove a pooling layer before it")
                        for i in range(len(size)))
        return x.with_shape(x.shape[:2] + spatial)

    def macs(self, attrs, inputs, output):
        size = positive_spatial(attrs["size"], inputs[0].rank - 2, "size")
        return elements(output) * math.prod(size)

    def torch_forward(self, attrs, params, xs, training):
        import torch.nn.functional as F

        x = xs[0]
        rank = x.dim() - 2
        size, stride, padding = attrs["kernel_shape"], attrs["strides"], attrs["pads"][:rank]
        if self.name == "maxpool":
            return (F.max_pool1d, F.max_pool2d, F.max_pool3d)[rank - 1](x, size, stride, padding)
        return (F.avg_pool1d, F.avg_pool2d, F.avg_pool3d)[rank - 1](x, size, stride, padding)

    def onnx(self, g, attrs, xs, params, itypes, otype):
        extra = {"count_include_pad": 1} if self.name == "avgpool" else {}  # torch's default
        op = "MaxPool" if self.name == "maxpool" else "AveragePool"
        return g.node(op, xs, g.label, kernel_shape=attrs["kernel_shape"], strides=attrs["strides"],
                      pads=attrs["pads"], **extra)


@register
class MaxPool(_WindowPool):
    name = "maxpool"
    doc = "max over sliding windows"


@register
class AvgPool(_WindowPool):
    name = "avgpool"
    doc = "mean over sliding windows (padding counted, as torch does)"


class _GlobalPool(OpDef):
    def infer(self, attrs, inputs):
        x = inputs[0]
        if x.rank < 3:
            raise ShapeError(f"`{self.name}` needs (N, C, ...) with at least one axis after the channels")
        return x.with_shape(x.shape[:2])

    def macs(self, attrs, inputs, output):
        return elements(inputs[0])

    def torch_forward(self, attrs, params, xs, training):
        x = xs[0]
        axes = tuple(range(2, x.dim()))
        return x.mean(dim=axes) if self.name == "global_avgpool" else x.amax(dim=axes)

    def onnx(self, g, attrs, xs, params, itypes, otype):
        op = "GlobalAveragePool" if self.name == "global_avgpool" else "GlobalMaxPool"
        pooled = g.node(op, xs, g.label + "/" + op)
        return g.node("Flatten", [pooled], g.label, axis=1)


@register
class GlobalAvgPool(_GlobalPool):
    name = "global_avgpool"
    doc = "mean over every axis after the channels: (N, C, ...) -> (N, C)"


@register
class GlobalMaxPool(_GlobalPool):
    name = "global_maxpool"
    doc = "max over every axis after the channels: (N, C, ...) -> (N, C)"


@register
class FractionalMaxPool(OpDef):
    """Graham 2014, "Fractional Max-Pooling": overlapping 2x2 regions whose starts follow a pseudo-random
    sequence, as PyTorch's `fractional_max_pool2d`. Training draws a new sequence per example and channel;
    inference uses the fixed sequence of u = 0.5, the same in both lowerings (a gather of the region
    rows, a max, then the same for the columns)."""

    name = "fractional_maxpool"
    doc = ("fractional max pooling (Graham 2014) with 2x2 regions: a ratio below 1 is output/input (torch's "
           "output_ratio), above 1 the reduction factor alpha (e.g. 1.414); random regions in training, "
           "fixed (u = 0.5) in inference")
    primary = "ratio"
    fields = {"ratio": Field(Float(0, 16, min_open=True), REQUIRED, "size ratio")}

    def infer(self, attrs, inputs):
        x = inputs[0]
        rank = spatial_rank(x, self.name, (2,))
        spatial = []
        for d in x.shape[2:2 + rank]:
            if not isinstance(d, int):
                raise ShapeError("`fractional_maxpool` needs static spatial sizes")
            ratio = attrs["ratio"]
            out = fractional_size(d, ratio)
            if out < 1:
                raise ShapeError(f"input size {d} times ratio {attrs['ratio']} leaves nothing", arg="ratio")
            if out + FRACTIONAL_REGION - 1 > d:
                raise ShapeError(f"input size {d} with ratio {ratio} gives {out} outputs, but {FRACTIONAL_REGION}x"
                                 f"{FRACTIONAL_REGION} regions fit at most {d - FRACTIONAL_REGION + 1}",
                                 "use a ratio below 1 that shrinks the input, or above 1 (e.g. 1.414)", arg="ratio")
            spatial.append(out)
        return x.with_shape(x.shape[:2] + tuple(spatial))

    def macs(self, attrs, inputs, output):
        return elements(output) * FRACTIONAL_REGION * FRACTIONAL_REGION

    def torch_forward(self, attrs, params, xs, training):
        import torch
        import torch.nn.functional as F

        x = xs[0]
        out_h, out_w = (fractional_size(d, attrs["ratio"]) for d in x.shape[2:])
        if training:
            return F.fractional_max_pool2d(x, FRACTIONAL_REGION, output_size=(out_h, out_w))
        for axis, (size, out) in ((2, (x.shape[2], out_h)), (3, (x.shape[3], out_w))):
            rows = torch.from_numpy(fractional_regions(size, out)).to(x.device)    # (out, region)
            x = torch.stack([x.index_select(axis, rows[:, k]) for k in range(FRACTIONAL_REGION)]).amax(dim=0)
        return x

    def onnx(self, g, attrs, xs, params, itypes, otype):
        import numpy as np

        x = xs[0]
        for axis, name in ((2, "rows"), (3, "cols")):
            regions = fractional_regions(itypes[0].shape[axis], otype.shape[axis])
            picks = [g.node("Gather", [x, g.const(np.ascontiguousarray(regions[:, k]), f"{g.label}/{name}_{k}")],
                            f"{g.label}/{name}_{k}", axis=axis) for k in range(FRACTIONAL_REGION)]
            x = g.node("Max", picks, g.label if axis == 3 else f"{g.label}/{name}_max")
        return x


FRACTIONAL_REGION = 2  # Graham's 2x2 regions (PyTorch's kernel_size)
FRACTIONAL_U = 0.5     # the fixed sample of the inference sequence


def fractional_size(size: int, ratio: float) -> int:
    """docs/spec-language.md's convention: below 1 the ratio is output/input, above 1 Graham's alpha."""
    return int(size * ratio) if ratio <= 1 else int(size / ratio)


def fractional_regions(size: int, out: int, u: float = FRACTIONAL_U):
    """(out, region) int64 row indices of each pooling region along one axis: PyTorch's sequence
    start_i = int((i + u) * alpha) - int(u * alpha), alpha = (size - region) / (out - 1), the last region
    ending at the border; computed in float32 as PyTorch does for float32 inputs."""
    import numpy as np

    f32 = np.float32
    alpha = f32(size - FRACTIONAL_REGION) / f32(out - 1) if out > 1 else f32(0)
    starts = [int(f32(f32(i) + f32(u)) * alpha) - int(f32(u) * alpha) for i in range(out - 1)]
    starts.append(size - FRACTIONAL_REGION)
    return (np.asarray(starts, np.int64)[:, None] + np.arange(FRACTIONAL_REGION, dtype=np.int64)[None, :])
