"""Internal ops: made by the front end and by passes, never written in a spec.

Constant (data folded by a pass), Gemm and MatMul (what fusion produces),
QuantizeLinear/DequantizeLinear (the symmetric int8 pairs precision passes
place), EnsembleCombine and TtaView (what ensembles and `build.tta` build).
Each declares shapes and both lowerings like every other op, so any
graph a pass makes can still be trained, run and exported.
"""

from __future__ import annotations

from specc.ir.types import TensorType, is_static, shape_str
from specc.lang.argtypes import Bool, Enum, Field, Float, Int, ListOf
from specc.ops.activations import onnx_activation, torch_activation
from specc.ops.base import ACTIVATION, NotLowerable, OpDef, ShapeError, elements, float_const, register

ONNX_TYPE_CODES = {"float32": 1, "uint8": 2, "int8": 3, "int32": 6, "int64": 7, "bool": 9, "float16": 10,
                   "bfloat16": 16}
TORCH_DTYPES = ("float32", "float16", "bfloat16", "int8", "uint8", "int32", "int64", "bool")


class _Internal(OpDef):
    category = "internal"
    const_params: tuple = ()  # data this op holds that is made by the compiler (kind `const`)


@register
class Cast(_Internal):
    name = "cast"
    doc = "converts a value to another element type (inputs to float32; precision borders)"
    fields = {"to": Field(Enum(TORCH_DTYPES), "float32", "target type")}

    def infer(self, attrs, inputs):
        return TensorType(attrs["to"], inputs[0].shape)

    def torch_forward(self, attrs, params, xs, training):
        import torch

        return xs[0].to(getattr(torch, attrs["to"]))

    def onnx(self, g, attrs, xs, params, itypes, otype):
        return g.node("Cast", xs, g.label, to=ONNX_TYPE_CODES[attrs["to"]])


@register
class Constant(_Internal):
    name = "constant"
    doc = "a tensor computed at compile time (no batch axis; broadcasts against batched values)"
    arity = (0, 0)
    const_params = ("value",)
    fields = {"shape": Field(ListOf(Int(1)), None, "shape"), "dtype": Field(Enum(TORCH_DTYPES), "float32", "type")}

    def infer(self, attrs, inputs):
        return TensorType(attrs["dtype"], tuple(attrs["shape"]))

    def buffer_shapes(self, attrs, inputs):
        return {"value": tuple(attrs["shape"])}

    def torch_forward(self, attrs, params, xs, training):
        return params["value"]

    def onnx(self, g, attrs, xs, params, itypes, otype):
        return params["value"]


@register
class Gemm(_Internal):
    name = "gemm"
    doc = "y = x W^T + b on (N, K) inputs, W laid out (units, K) as `dense` stores it"
    fields = {"units": Field(Int(1), None, "output features"), "bias": Field(Bool(), True, "add a bias"),
              "activation": ACTIVATION}

    def infer(self, attrs, inputs):
        x = inputs[0]
        if x.rank != 2 or not is_static(x.shape[1]):
            raise ShapeError(f"`gemm` needs a 2-D input with a static feature axis, got {shape_str(x.shape)}")
        return x.with_shape((x.shape[0], attrs["units"]))

    def param_shapes(self, attrs, inputs):
        shapes = {"weight": (attrs["units"], inputs[0].shape[1])}
        if attrs["bias"]:
            shapes["bias"] = (attrs["units"],)
        return shapes

    def macs(self, attrs, inputs, output):
        return attrs["units"] * inputs[0].shape[1]

    def torch_forward(self, attrs, params, xs, training):
        import torch.nn.functional as F

        return torch_activation(attrs["activation"], F.linear(xs[0], params["weight"], params.get("bias")))

    def onnx(self, g, attrs, xs, params, itypes, otype):
        inputs = [xs[0], params["weight"]] + ([params["bias"]] if "bias" in params else [])
        y = g.node("Gemm", inputs, g.label + "/Gemm", transB=1)
        return onnx_activation(g, attrs["activation"], y, g.label + "/" + attrs["activation"], dtype=otype.dtype)


def broadcast(a: tuple, b: tuple, what: str) -> tuple:
    """NumPy broadcasting of two shapes (symbols must match exactly or meet a 1)."""
    out = []
    for i in range(1, max(len(a), len(b)) + 1):
        x = a[-i] if i <= len(a) else 1
        y = b[-i] if i <= len(b) else 1
        if x == y or y == 1:
            out.append(x)
        elif x == 1:
            out.append(y)
        else:
            raise ShapeError(f"`{what}`: shapes {shape_str(a)} and {shape_str(b)} do not broadcast")
    return tuple(reversed(out))


@register
class MatMul(_Internal):
    name = "matmul"
    doc = "matrix product with NumPy broadcasting of the leading axes"
    arity = (2, 2)

    def infer(self, attrs, inputs):
        a, b = inputs
        if a.rank < 2 or b.rank < 2:
            raise ShapeError("`matmul` needs inputs of rank >= 2")
        if a.shape[-1] != b.shape[-2]:
            raise ShapeError(f"`matmul`: {shape_str(a.shape)} @ {shape_str(b.shape)} do not match")
        lead = broadcast(a.shape[:-2], b.shape[:-2], "matmul")
        return TensorType(a.dtype, lead + (a.shape[-2], b.shape[-1]))

    def macs(self, attrs, inputs, output):
        k = inputs[0].shape[-1]
        return elements(output) * (k if is_static(k) else 1)

    def torch_forward(self, attrs, params, xs, training):
        import torch

        return torch.matmul(xs[0], xs[1])

    def onnx(self, g, attrs, xs, params, itypes, otype):
        return g.node("MatMul", xs, g.label + "/MatMul")


def _quant_shape(x: TensorType, axis):
    if axis is None:
        return ()
    if not -x.rank <= axis < x.rank or not is_static(x.shape[axis]):
        raise ShapeError(f"quantization axis {axis} is not a static axis of {shape_str(x.shape)}")
    return (x.shape[axis],)


def _torch_scale(attrs, scale, rank):
    """Per-channel scales reshaped to broadcast along `axis`."""
    axis = attrs["axis"]
    if axis is None:
        return scale
    shape = [1] * rank
    shape[axis] = -1
    return scale.reshape(shape)


QUANT_FIELDS = {"axis": Field(Int(), None, "per-channel axis (none: per tensor)"),
                "dtype": Field(Enum(("int8", "uint8")), "int8", "quantized type")}


@register
class QuantizeLinear(_Internal):
    name = "quantize_linear"
    doc = "q = saturate(round(x / scale) + zero_point); specc places symmetric pairs (zero_point 0)"
    fields = QUANT_FIELDS
    const_params = ("scale", "zero_point")

    def infer(self, attrs, inputs):
        _quant_shape(inputs[0], attrs["axis"])
        return TensorType(attrs["dtype"], inputs[0].shape)

    def buffer_shapes(self, attrs, inputs):
        shape = _quant_shape(inputs[0], attrs["axis"])
        return {"scale": shape, "zero_point": shape}

    def torch_forward(self, attrs, params, xs, training):
        import torch

        lo, hi = (-128, 127) if attrs["dtype"] == "int8" else (0, 255)
        scale = _torch_scale(attrs, params["scale"], xs[0].dim())
        zero = _torch_scale(attrs, params["zero_point"].to(torch.float32), xs[0].dim())
        q = torch.clamp(torch.round(xs[0] / scale) + zero, lo, hi)
        return q.to(torch.int8 if attrs["dtype"] == "int8" else torch.uint8)

    def onnx(self, g, attrs, xs, params, itypes, otype):
        extra = {} if attrs["axis"] is None else {"axis": attrs["axis"]}
        return g.node("QuantizeLinear", [xs[0], params["scale"], params["zero_point"]], g.label, **extra)


@register
class DequantizeLinear(_Internal):
    name = "dequantize_linear"
    doc = "x = (q - zero_point) * scale; the quantized operand is an input, or held data (`q`) for weights"
    fields = {**QUANT_FIELDS, "shape": Field(ListOf(Int(1)), None, "shape of held data")}
    arity = (0, 1)
    const_params = ("q", "scale", "zero_point")

    def infer(self, attrs, inputs):
        if inputs:
            _quant_shape(inputs[0], attrs["axis"])
            return TensorType("float32", inputs[0].shape)
        return TensorType("float32", tuple(attrs["shape"]))

    def buffer_shapes(self, attrs, inputs):
        shape = _quant_shape(inputs[0] if inputs else TensorType("int8", tuple(attrs["shape"])), attrs["axis"])
        held = {} if inputs else {"q": tuple(attrs["shape"])}
        return {**held, "scale": shape, "zero_point": shape}

    def torch_forward(self, attrs, params, xs, training):
        import torch

        q = xs[0] if xs else params["q"]
        scale = _torch_scale(attrs, params["scale"], q.dim())
        zero = _torch_scale(attrs, params["zero_point"].to(torch.float32), q.dim())
        return (q.to(torch.float32) - zero) * scale

    def onnx(self, g, attrs, xs, params, itypes, otype):
        extra = {} if attrs["axis"] is None else {"axis": attrs["axis"]}
        q = xs[0] if xs else params["q"]
        return g.node("DequantizeLinear", [q, params["scale"], params["zero_point"]], g.label, **extra)


@register
class EnsembleCombine(_Internal):
    name = "ensemble_combine"
    doc = ("combine the members of an ensemble: each member's output as class probabilities, then their mean, "
           "or each class's fraction of the members' votes (ties ordered by the mean probability)")
    arity = (1, None)
    fields = {"combine": Field(Enum(("mean", "vote")), "mean", "how the members are combined"),
              "kind": Field(Enum(("probs", "log_probs", "scores")), "scores",
                            "what the members output: probabilities, log-probabilities, or scores (softmaxed)")}
    TIE_BREAK = 1e-3  # under one vote's 1/members: it only orders classes with equal votes

    def infer(self, attrs, inputs):
        if len({t for t in inputs}) != 1:
            raise ShapeError("the members of an ensemble must give outputs of one type: "
                             + ", ".join(str(t) for t in inputs))
        return inputs[0]

    def torch_forward(self, attrs, params, xs, training):
        import torch

        kind = attrs["kind"]
        probs = torch.stack([x if kind == "probs" else x.exp() if kind == "log_probs" else torch.softmax(x, -1)
                             for x in xs])
        mean = probs.mean(dim=0)
        if attrs["combine"] == "mean":
            return mean
        votes = torch.nn.functional.one_hot(probs.argmax(dim=-1), probs.shape[-1]).to(probs.dtype).mean(dim=0)
        return (votes + self.TIE_BREAK * mean) / (1.0 + self.TIE_BREAK)

    def onnx(self, g, attrs, xs, params, itypes, otype):
        import numpy as np

        label, kind, n = g.label, attrs["kind"], len(xs)
        probs = []
        for i, x in enumerate(xs):
            if kind == "log_probs":
                x = g.node("Exp", [x], f"{label}/exp_{i}")
            elif kind == "scores":
                x = g.node("Softmax", [x], f"{label}/softmax_{i}", axis=-1)
            probs.append(x)
        mean = probs[0] if n == 1 else g.node("Mean", probs, f"{label}/mean")
        if attrs["combine"] == "mean":
            return mean
        classes = itypes[0].shape[-1]
        depth = g.const(np.array(classes, np.int64), f"{label}/classes")
        dtype = itypes[0].dtype  # float16 under `precision: fp16`: ONNX never promotes, so the constants follow
        on_off = float_const(g, [0.0, 1.0], dtype, f"{label}/on_off")
        votes = [g.node("OneHot", [g.node("ArgMax", [p], f"{label}/argmax_{i}", axis=-1, keepdims=0), depth, on_off],
                        f"{label}/vote_{i}", axis=-1) for i, p in enumerate(probs)]
        share = votes[0] if n == 1 else g.node("Mean", votes, f"{label}/votes")
        tie = g.node("Mul", [mean, float_const(g, self.TIE_BREAK, dtype, f"{label}/tie_break")], f"{label}/tie")
        total = g.node("Add", [share, tie], f"{label}/ordered")
        return g.node("Div", [total, float_const(g, 1.0 + self.TIE_BREAK, dtype, f"{label}/norm")], label)


def sampling_grid(attrs, h: int, w: int):
    """The (1, H, W, 2) grid_sample grid (align_corners=False) of a `rotate` or `scale` view: output pixel p,
    in pixels from the image centre, reads the input at A p, as training's `resample` does (A maps output
    to input coordinates: a rotation by `degrees`, or a zoom by `factor`, > 1 enlarging the content)."""
    import numpy as np

    if attrs["view"] == "rotate":
        angle = np.deg2rad(attrs["degrees"])
        a = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    else:
        a = np.eye(2) / attrs["factor"]
    px = (np.arange(w) * 2 + 1) / w - 1  # pixel centres in [-1, 1], times size / 2: pixels from the centre
    py = (np.arange(h) * 2 + 1) / h - 1
    x, y = np.broadcast_arrays(px[None, :] * (w / 2), py[:, None] * (h / 2))
    sx, sy = a[0, 0] * x + a[0, 1] * y, a[1, 0] * x + a[1, 1] * y
    return np.stack([sx * (2 / w), sy * (2 / h)], axis=-1)[None].astype(np.float32)


INT64_MAX = 2**63 - 1


@register
class TtaView(_Internal):
    name = "tta_view"
    doc = ("one deterministic view of an image batch (N, C, H, W) for test-time augmentation: mirrored along W "
           "or H, translated by whole pixels (vacated pixels = fill), or rotated or zoomed about the centre "
           "(bilinear or nearest, zero fill)")
    fields = {"view": Field(Enum(("flip_horizontal", "flip_vertical", "translate", "rotate", "scale")), None,
                            "which view"),
              "dy": Field(Int(), 0, "translate: rows the content moves down (negative: up)"),
              "dx": Field(Int(), 0, "translate: columns the content moves right (negative: left)"),
              "fill": Field(Float(), 0.0, "translate: value of the vacated pixels"),
              "degrees": Field(Float(), 0.0, "rotate: the angle"),
              "factor": Field(Float(0, min_open=True), 1.0, "scale: the zoom factor"),
              "mode": Field(Enum(("bilinear", "nearest")), "bilinear", "rotate, scale: the interpolation")}

    def infer(self, attrs, inputs):
        x = inputs[0]
        if x.rank != 4:
            raise ShapeError(f"`tta_view` needs images (N, C, H, W), got {shape_str(x.shape)}")
        if attrs["view"] in ("rotate", "scale") and not all(is_static(d) for d in x.shape[2:]):
            raise ShapeError(f"a `{attrs['view']}` view needs a static image size, got {shape_str(x.shape)}")
        return x

    def torch_forward(self, attrs, params, xs, training):
        import torch
        import torch.nn.functional as F

        x, view = xs[0], attrs["view"]
        if view == "flip_horizontal":
            return x.flip(3)
        if view == "flip_vertical":
            return x.flip(2)
        h, w = x.shape[2:]
        if view == "translate":  # out[i, j] = x[i - dy, j - dx]: pad on the side the content moves to, cut the other
            dy, dx = attrs["dy"], attrs["dx"]
            padded = F.pad(x, (max(dx, 0), max(-dx, 0), max(dy, 0), max(-dy, 0)), value=attrs["fill"])
            top, left = max(-dy, 0), max(-dx, 0)
            return padded[:, :, top:top + h, left:left + w]
        grid = torch.from_numpy(sampling_grid(attrs, h, w)).to(x.device, x.dtype).expand(x.shape[0], h, w, 2)
        return F.grid_sample(x, grid, mode=attrs["mode"], padding_mode="zeros", align_corners=False)

    def onnx(self, g, attrs, xs, params, itypes, otype):
        import numpy as np

        label, view, dtype = g.label, attrs["view"], itypes[0].dtype

        def ints(values, hint):
            return g.const(np.array(values, np.int64), f"{label}/{hint}")

        if view.startswith("flip_"):  # Slice with step -1 reads the axis backwards
            axis = 3 if view == "flip_horizontal" else 2
            return g.node("Slice", [xs[0], ints([-1], "starts"), ints([-INT64_MAX], "ends"), ints([axis], "axes"),
                                    ints([-1], "steps")], label)
        if view == "translate":
            dy, dx = attrs["dy"], attrs["dx"]
            pads = [0, 0, max(dy, 0), max(dx, 0), 0, 0, max(-dy, 0), max(-dx, 0)]
            padded = g.node("Pad", [xs[0], ints(pads, "pads"), float_const(g, attrs["fill"], dtype, f"{label}/fill")],
                            f"{label}/pad", mode="constant")
            cuts = [(axis, [0, -d] if d > 0 else [-d, INT64_MAX]) for axis, d in ((2, dy), (3, dx)) if d]
            if not cuts:
                return g.node("Identity", [padded], label)
            return g.node("Slice", [padded, ints([c[1][0] for c in cuts], "starts"),
                                    ints([c[1][1] for c in cuts], "ends"), ints([c[0] for c in cuts], "axes")], label)
        if g.opset < 16:
            raise NotLowerable(f"a `{view}` view needs ONNX GridSample (opset 16 or later), the opset is {g.opset}")
        h, w = itypes[0].shape[2:]
        grid = sampling_grid(attrs, h, w).astype(np.float16 if dtype == "float16" else np.float32)
        batch = g.node("Shape", [xs[0]], f"{label}/batch", start=0, end=1)
        size = g.node("Concat", [batch, ints([h, w, 2], "grid_size")], f"{label}/grid_shape", axis=0)
        grids = g.node("Expand", [g.const(grid, f"{label}/grid"), size], f"{label}/grids")
        mode = attrs["mode"] if attrs["mode"] == "nearest" else "linear" if g.opset >= 20 else "bilinear"
        return g.node("GridSample", [xs[0], grids], label, align_corners=0, padding_mode="zeros", mode=mode)
