"""Preprocess steps (compiled into the model graph) and the input adapters.

The formulas are SPEC.md's; `tests/test_preprocess_reference.py` checks both
lowerings against a NumPy transcription of them.
"""

from __future__ import annotations

import math

from specc.ir.types import TensorType, is_static, shape_str
from specc.ops.base import OpDef, ShapeError, elements, float_const, register
from specc.lang.argtypes import REQUIRED, Enum, Field, Float, Int, ListOf, Union

SIZE_HW = ListOf(Int(1), 2, 2)


class _Step(OpDef):
    category = "preprocess"


def _static_image(x: TensorType, op: str) -> tuple[int, int, int]:
    if x.rank != 4 or not all(is_static(d) for d in x.features):
        raise ShapeError(f"`{op}` needs images of static shape (N, C, H, W), got {shape_str(x.shape)}")
    return x.shape[1], x.shape[2], x.shape[3]


@register
class Scale(_Step):
    name = "scale"
    doc = "x * factor"
    primary = "factor"
    fields = {"factor": Field(Float(), REQUIRED, "multiplier, e.g. ${1/255}")}

    def macs(self, attrs, inputs, output):
        return elements(output)

    def torch_forward(self, attrs, params, xs, training):
        return xs[0] * attrs["factor"]

    def onnx(self, g, attrs, xs, params, itypes, otype):
        return g.node("Mul", [xs[0], float_const(g, attrs["factor"], itypes[0].dtype, g.label + "_factor")], g.label)


@register
class Normalize(_Step):
    name = "normalize"
    doc = "(x - mean) / std per channel"
    fields = {
        "mean": Field(Union((Float(), ListOf(Float(), 1))), REQUIRED,
                      "per-channel mean, or one number for every channel"),
        "std": Field(Union((Float(0, min_open=True), ListOf(Float(0, min_open=True), 1))), REQUIRED,
                     "per-channel std, or one number for every channel"),
    }

    @staticmethod
    def _values(value) -> list:
        """`mean: 0.5` is `mean: [0.5]`: one value broadcast to every channel."""
        return [value] if isinstance(value, (int, float)) else list(value)

    def infer(self, attrs, inputs):
        x = inputs[0]
        channels = x.shape[1] if x.rank >= 2 else None
        for key in ("mean", "std"):
            n = len(self._values(attrs[key]))
            if n != 1 and n != channels:
                want = "1 value" if channels == 1 else f"1 value or {channels} (one per channel)"
                raise ShapeError(f"`normalize` {key} has {n} values but the input has {channels} "
                                 f"channel{'s' if channels != 1 else ''}", f"give {want}", arg=key)
        return x

    def constants(self, attrs, x_rank):
        import numpy as np

        shape = (-1,) + (1,) * (x_rank - 2)
        mean = np.asarray(self._values(attrs["mean"]), np.float32).reshape(shape)
        std = np.asarray(self._values(attrs["std"]), np.float32).reshape(shape)
        return mean, std

    def macs(self, attrs, inputs, output):
        return 2 * elements(output)

    def torch_forward(self, attrs, params, xs, training):
        import torch

        mean, std = self.constants(attrs, xs[0].dim())
        x = xs[0]
        return (x - torch.from_numpy(mean).to(x.device, x.dtype)) / torch.from_numpy(std).to(x.device, x.dtype)

    def onnx(self, g, attrs, xs, params, itypes, otype):
        mean, std = self.constants(attrs, itypes[0].rank)
        centered = g.node("Sub", [xs[0], float_const(g, mean, itypes[0].dtype, g.label + "_mean")], g.label + "/sub_mean")
        return g.node("Div", [centered, float_const(g, std, itypes[0].dtype, g.label + "_std")], g.label)


@register
class GlobalContrastNorm(_Step):
    name = "gcn"
    doc = "global contrast normalization per example: s (X - mean) / max(eps, sqrt(lambda + var(X)))"
    fields = {
        "scale": Field(Float(0, min_open=True), 1.0, "s"),
        "lambda": Field(Float(0), 0.0, "regularizes the variance"),
        "eps": Field(Float(0, min_open=True), 1e-8, "floor of the divisor"),
    }

    def macs(self, attrs, inputs, output):
        return 4 * elements(output)

    def torch_forward(self, attrs, params, xs, training):
        import torch

        x = xs[0]
        axes = tuple(range(1, x.dim()))
        centered = x - x.mean(dim=axes, keepdim=True)
        contrast = torch.sqrt(attrs["lambda"] + (centered * centered).mean(dim=axes, keepdim=True))
        return attrs["scale"] * centered / torch.clamp(contrast, min=attrs["eps"])

    def onnx(self, g, attrs, xs, params, itypes, otype):
        label, axes = g.label, list(range(1, itypes[0].rank))
        mean = g.reduce_mean(xs[0], axes, label + "/mean")
        centered = g.node("Sub", [xs[0], mean], label + "/centered")
        var = g.reduce_mean(g.node("Mul", [centered, centered], label + "/sq"), axes, label + "/var")
        reg = g.node("Add", [var, float_const(g, attrs["lambda"], itypes[0].dtype, label + "_lambda")], label + "/var_lambda")
        contrast = g.node("Max", [g.node("Sqrt", [reg], label + "/sqrt"),
                                  float_const(g, attrs["eps"], itypes[0].dtype, label + "_eps")], label + "/contrast")
        scaled = g.node("Mul", [centered, float_const(g, attrs["scale"], itypes[0].dtype, label + "_scale")], label + "/scaled")
        return g.node("Div", [scaled, contrast], label)


def lcn_kernel(size: int, sigma, channels: int):
    """Weights over (channel, window) summing to 1: a Gaussian (or box) window shared by all channels."""
    import numpy as np

    if sigma == "box":
        window = np.ones((size, size), np.float64)
    else:
        sigma = size / 4.0 if sigma is None else sigma
        r = np.arange(size) - size // 2
        g1 = np.exp(-(r ** 2) / (2.0 * sigma ** 2))
        window = np.outer(g1, g1)
    window /= window.sum() * channels
    return np.broadcast_to(window, (1, channels, size, size)).astype(np.float32).copy()


def lcn_coverage(kernel, height: int, width: int):
    """Per-pixel sum of the window weights inside the image: divides zero-padded sums into true means."""
    import numpy as np

    k = kernel.shape[-1]
    plane = kernel[0].sum(axis=0).astype(np.float64)  # weights per window offset, over channels
    pad = k // 2
    ones = np.pad(np.ones((height, width)), pad)
    cover = np.zeros((height, width))
    for dy in range(k):
        for dx in range(k):
            cover += plane[dy, dx] * ones[dy:dy + height, dx:dx + width]
    return cover.reshape(1, 1, height, width).astype(np.float32)


@register
class LocalContrastNorm(_Step):
    name = "lcn"
    doc = ("local contrast normalization (Jarrett et al. 2009): subtract the weighted local mean over the "
           "window and all channels; divide by max(eps, mean local std over the image, local std)")
    fields = {
        "size": Field(Int(1, 63), 9, "odd window size"),
        "sigma": Field(Union((Float(0, min_open=True), Enum(("box",)))), None,
                       "Gaussian sigma (default size/4), or `box` for uniform weights"),
        "eps": Field(Float(0, min_open=True), 1e-4, "floor of the divisor"),
    }

    def infer(self, attrs, inputs):
        _, h, w = _static_image(inputs[0], "lcn")
        if attrs["size"] % 2 == 0:
            raise ShapeError(f"`lcn` size must be odd, got {attrs['size']}",
                             f"use {attrs['size'] - 1} or {attrs['size'] + 1}", code="E013", arg="size")
        return inputs[0]

    def macs(self, attrs, inputs, output):
        return 2 * attrs["size"] ** 2 * elements(output) + 4 * elements(output)

    def tensors(self, attrs, x: TensorType):
        c, h, w = _static_image(x, "lcn")
        kernel = lcn_kernel(attrs["size"], attrs["sigma"], c)
        return kernel, lcn_coverage(kernel, h, w)

    def torch_forward(self, attrs, params, xs, training):
        import torch
        import torch.nn.functional as F

        x = xs[0]
        kernel, cover = (torch.from_numpy(t).to(x.device, x.dtype) for t in
                         self.tensors(attrs, TensorType("float32", tuple(x.shape))))
        pad = attrs["size"] // 2
        centered = x - F.conv2d(x, kernel, padding=pad) / cover
        local_std = torch.sqrt(F.conv2d(centered * centered, kernel, padding=pad) / cover)
        mean_std = local_std.mean(dim=(1, 2, 3), keepdim=True)
        return centered / torch.clamp(torch.maximum(local_std, mean_std), min=attrs["eps"])

    def onnx(self, g, attrs, xs, params, itypes, otype):
        label, pad = g.label, attrs["size"] // 2
        kernel, cover = self.tensors(attrs, itypes[0])
        dtype = itypes[0].dtype
        k, cov = float_const(g, kernel, dtype, label + "_window"), float_const(g, cover, dtype, label + "_coverage")

        def local_mean(t, name):
            summed = g.node("Conv", [t, k], f"{label}/{name}_sum", pads=[pad] * 4,
                            kernel_shape=[attrs["size"]] * 2)
            return g.node("Div", [summed, cov], f"{label}/{name}")

        centered = g.node("Sub", [xs[0], local_mean(xs[0], "local_mean")], label + "/centered")
        sq = g.node("Mul", [centered, centered], label + "/sq")
        local_std = g.node("Sqrt", [local_mean(sq, "local_var")], label + "/local_std")
        mean_std = g.reduce_mean(local_std, [1, 2, 3], label + "/mean_std")
        divisor = g.node("Max", [local_std, mean_std, float_const(g, attrs["eps"], dtype, label + "_eps")],
                         label + "/divisor")
        return g.node("Div", [centered, divisor], label)


@register
class Resize(_Step):
    name = "resize"
    doc = "bilinear resize of images to size [h, w] (half-pixel centers, no antialiasing)"
    primary = "size"
    fields = {"size": Field(SIZE_HW, REQUIRED, "[height, width]")}

    def infer(self, attrs, inputs):
        x = inputs[0]
        if x.rank != 4:
            raise ShapeError(f"`resize` needs images (N, C, H, W), got {shape_str(x.shape)}")
        return x.with_shape(x.shape[:2] + tuple(attrs["size"]))

    def macs(self, attrs, inputs, output):
        return 4 * elements(output)

    def torch_forward(self, attrs, params, xs, training):
        import torch.nn.functional as F

        return F.interpolate(xs[0], size=tuple(attrs["size"]), mode="bilinear", align_corners=False,
                             antialias=False)

    def onnx(self, g, attrs, xs, params, itypes, otype):
        import numpy as np

        label = g.label
        shape = g.node("Shape", xs, label + "/shape")
        batch_channels = g.node("Slice", [shape, g.const(np.array([0], np.int64), label + "_s0"),
                                          g.const(np.array([2], np.int64), label + "_s2")], label + "/nc")
        sizes = g.node("Concat", [batch_channels, g.const(np.array(attrs["size"], np.int64), label + "_hw")],
                       label + "/sizes", axis=0)
        return g.node("Resize", [xs[0], "", "", sizes], label, mode="linear",
                      coordinate_transformation_mode="half_pixel")


@register
class CenterCrop(_Step):
    name = "center_crop"
    doc = "crop the central [h, w] of each image"
    primary = "size"
    fields = {"size": Field(SIZE_HW, REQUIRED, "[height, width]")}

    def offsets(self, attrs, x):
        _, h, w = _static_image(x, "center_crop")
        ch, cw = attrs["size"]
        if ch > h or cw > w:
            raise ShapeError(f"`center_crop` to {ch}x{cw} is larger than the image {h}x{w}",
                             "crop to at most the image size, or `resize` first")
        return (h - ch) // 2, (w - cw) // 2

    def infer(self, attrs, inputs):
        self.offsets(attrs, inputs[0])
        return inputs[0].with_shape(inputs[0].shape[:2] + tuple(attrs["size"]))

    def torch_forward(self, attrs, params, xs, training):
        x = xs[0]
        top, left = self.offsets(attrs, TensorType("float32", tuple(x.shape)))
        ch, cw = attrs["size"]
        return x[:, :, top:top + ch, left:left + cw]

    def onnx(self, g, attrs, xs, params, itypes, otype):
        import numpy as np

        top, left = self.offsets(attrs, itypes[0])
        ch, cw = attrs["size"]
        label = g.label
        return g.node("Slice", [xs[0], g.const(np.array([top, left], np.int64), label + "_starts"),
                                g.const(np.array([top + ch, left + cw], np.int64), label + "_ends"),
                                g.const(np.array([2, 3], np.int64), label + "_axes")], label)


FROM_TRAIN = Field(Enum(("train",)), "train", "fitted on the training set by `specc train`")


MAX_ZCA_FEATURES = 4096  # the whitening matrix is D x D floats: 64 MiB at this size


def _static_features(x: TensorType, op: str) -> tuple:
    if not all(is_static(d) for d in x.features):
        raise ShapeError(f"`{op}` is fitted per input value and needs a static input shape, got {shape_str(x.shape)}",
                         "give the input a fixed shape")
    return tuple(x.features)


@register
class MeanImage(_Step):
    """x - mean, with `mean` (the input's feature shape) fitted on the training set by `specc train`
    (specc/train/fitted.py) and stored with the weights; unfitted it is zero, the identity."""

    name = "mean_image"
    doc = "subtract the per-pixel mean of the training set (fitted by `specc train`)"
    fields = {"from": FROM_TRAIN}

    def buffer_shapes(self, attrs, inputs):
        return {"mean": _static_features(inputs[0], "mean_image")}

    def macs(self, attrs, inputs, output):
        return elements(output)

    def torch_forward(self, attrs, params, xs, training):
        return xs[0] - params["mean"]

    def onnx(self, g, attrs, xs, params, itypes, otype):
        return g.node("Sub", [xs[0], params["mean"]], g.label)


@register
class Zca(_Step):
    """ZCA whitening: flatten each example to D values, x' = (x - mean) W with W = U diag(1/sqrt(S + eps)) U^T
    from the eigendecomposition U S U^T of the training set's covariance, then restore the shape. `mean` (D,)
    and `whiten` (D, D) are fitted by `specc train` and stored with the weights; unfitted: zero and identity."""

    name = "zca"
    doc = "ZCA whitening fitted on the training set (fitted by `specc train`)"
    fields = {"eps": Field(Float(0, min_open=True), 1e-2, "regularizer of the covariance"), "from": FROM_TRAIN}

    def features(self, x: TensorType) -> int:
        d = math.prod(_static_features(x, "zca"))
        if d > MAX_ZCA_FEATURES:
            raise ShapeError(f"`zca` whitens the flattened input with a {d}x{d} matrix; at most "
                             f"{MAX_ZCA_FEATURES} values per example are supported",
                             "`resize` or `center_crop` the images first, or use `gcn`/`normalize`")
        return d

    def buffer_shapes(self, attrs, inputs):
        d = self.features(inputs[0])
        return {"mean": (d,), "whiten": (d, d)}

    def init_tensor(self, attrs, pname, shape, rng):
        import numpy as np

        return np.eye(shape[0], dtype=np.float32) if pname == "whiten" else np.zeros(shape, np.float32)

    def macs(self, attrs, inputs, output):
        return elements(output) ** 2 + elements(output)

    def torch_forward(self, attrs, params, xs, training):
        x = xs[0]
        flat = x.reshape(x.shape[0], -1) - params["mean"]
        return (flat @ params["whiten"]).reshape(x.shape)

    def onnx(self, g, attrs, xs, params, itypes, otype):
        import numpy as np

        label, features = g.label, list(itypes[0].features)
        flat = g.node("Reshape", [xs[0], g.const(np.array([-1, math.prod(features)], np.int64), label + "_flat")],
                      label + "/flatten")
        centered = g.node("Sub", [flat, params["mean"]], label + "/centered")
        whitened = g.node("MatMul", [centered, params["whiten"]], label + "/whiten")
        return g.node("Reshape", [whitened, g.const(np.array([-1] + features, np.int64), label + "_shape")], label)


class _Internal(OpDef):
    category = "internal"


@register
class ChannelsLastToFirst(_Internal):
    name = "to_channels_first"
    doc = "NHWC -> NCHW, once, at the model's entry"

    def perm(self, rank):
        return [0, rank - 1] + list(range(1, rank - 1))

    def infer(self, attrs, inputs):
        x = inputs[0]
        return x.with_shape(tuple(x.shape[p] for p in self.perm(x.rank)))

    def torch_forward(self, attrs, params, xs, training):
        return xs[0].permute(*self.perm(xs[0].dim()))

    def onnx(self, g, attrs, xs, params, itypes, otype):
        return g.node("Transpose", xs, g.label, perm=self.perm(itypes[0].rank))


