"""Ops that move data without learning: flatten, reshape, permute, identity, add, mul, concat."""

from __future__ import annotations

from specc.ir.types import dim_product, is_static, shape_str
from specc.ops.base import OpDef, ShapeError, elements, register
from specc.lang.argtypes import REQUIRED, Field, Int, ListOf


def normalize_axis(axis: int, rank: int, op: str, allow_batch: bool = False) -> int:
    norm = axis + rank if axis < 0 else axis
    if not 0 <= norm < rank:
        raise ShapeError(f"`{op}` axis {axis} is out of range for a rank-{rank} input",
                         f"valid axes: {-rank} .. {rank - 1} (axis 0 is the batch)")
    if norm == 0 and not allow_batch:
        raise ShapeError(f"`{op}` cannot work on the batch axis 0", "use an axis >= 1")
    return norm


@register
class Flatten(OpDef):
    name = "flatten"
    doc = "all axes after the batch into one: (N, ...) -> (N, prod(...))"

    def infer(self, attrs, inputs):
        x = inputs[0]
        return x.with_shape((x.shape[0], dim_product(x.features)))

    def torch_forward(self, attrs, params, xs, training):
        return xs[0].flatten(1)

    def onnx(self, g, attrs, xs, params, itypes, otype):
        return g.node("Flatten", xs, g.label, axis=1)


@register
class Reshape(OpDef):
    name = "reshape"
    doc = "a new shape for the axes after the batch (one entry may be -1)"
    primary = "shape"
    fields = {"shape": Field(ListOf(Int(-1), 1, 8), REQUIRED, "target shape without the batch axis")}

    def infer(self, attrs, inputs):
        x, target = inputs[0], list(attrs["shape"])
        if target.count(-1) > 1 or 0 in target:
            raise ShapeError(f"`reshape` target {target} may hold one -1 and no 0")
        total = dim_product(x.features)
        known = dim_product(d for d in target if d != -1)
        if not is_static(total):
            if -1 in target:
                raise ShapeError("`reshape` with -1 needs a static input size",
                                 f"the input {shape_str(x.shape)} has symbolic axes")
            return x.with_shape((x.shape[0],) + tuple(target))
        if -1 in target:
            if total % known:
                raise ShapeError(f"cannot reshape {total} elements into {target}",
                                 f"{total} is not divisible by {known}")
            target[target.index(-1)] = total // known
        elif known != total:
            raise ShapeError(f"cannot reshape {shape_str(x.shape)} ({total} elements per example) "
                             f"into {shape_str(tuple(target))} ({known} elements)",
                             "the product of the new shape must equal the input's")
        return x.with_shape((x.shape[0],) + tuple(target))

    def torch_forward(self, attrs, params, xs, training):
        return xs[0].reshape(xs[0].shape[0], *attrs["shape"])

    def onnx(self, g, attrs, xs, params, itypes, otype):
        import numpy as np

        # 0 copies the batch dimension from the input (allowzero = 0).
        shape = g.const(np.array([0] + list(attrs["shape"]), np.int64), g.label + "_shape")
        return g.node("Reshape", [xs[0], shape], g.label)


@register
class Permute(OpDef):
    name = "permute"
    doc = ("reorder the axes after the batch; `dims` is 0-based over those axes ([1, 0]) "
           "or 1-based as in Keras ([2, 1])")
    primary = "dims"
    fields = {"dims": Field(ListOf(Int(0), 1, 8), REQUIRED, "permutation of the non-batch axes")}

    def full_perm(self, dims, rank) -> list[int]:
        n = rank - 1
        if sorted(dims) == list(range(n)):
            return [0] + [d + 1 for d in dims]
        if sorted(dims) == list(range(1, n + 1)):
            return [0] + list(dims)
        raise ShapeError(f"`permute` dims {list(dims)} are not a permutation of the {n} non-batch axes",
                         f"use each of 0..{n - 1} once (or 1..{n}, Keras style)")

    def infer(self, attrs, inputs):
        x = inputs[0]
        perm = self.full_perm(attrs["dims"], x.rank)
        return x.with_shape(tuple(x.shape[p] for p in perm))

    def torch_forward(self, attrs, params, xs, training):
        return xs[0].permute(*self.full_perm(attrs["dims"], xs[0].dim()))

    def onnx(self, g, attrs, xs, params, itypes, otype):
        return g.node("Transpose", xs, g.label, perm=self.full_perm(attrs["dims"], itypes[0].rank))


@register
class Identity(OpDef):
    name = "identity"
    doc = "passes its input through"

    def torch_forward(self, attrs, params, xs, training):
        return xs[0]

    def onnx(self, g, attrs, xs, params, itypes, otype):
        return g.node("Identity", xs, g.label)


def broadcast(shapes: list[tuple], op: str) -> tuple:
    rank = max(len(s) for s in shapes)
    padded = [(1,) * (rank - len(s)) + tuple(s) for s in shapes]
    result = []
    for axis in range(rank):
        dims = {s[axis] for s in padded} - {1}
        if len(dims) > 1:
            raise ShapeError(
                f"`{op}` inputs do not broadcast: " + " vs ".join(shape_str(s) for s in shapes)
                + f" differ at axis {axis}",
                "give the inputs equal shapes (or size 1 on the axes to broadcast); "
                "a projection (`conv` 1x1 or `dense`) can match channel counts")
        result.append(dims.pop() if dims else 1)
    return tuple(result)


class _Elementwise(OpDef):
    arity = (2, None)

    def infer(self, attrs, inputs):
        dtypes = {t.dtype for t in inputs}
        if len(dtypes) > 1:
            raise ShapeError(f"`{self.name}` inputs have different dtypes: {sorted(dtypes)}", code="E061")
        return inputs[0].with_shape(broadcast([t.shape for t in inputs], self.name))

    def macs(self, attrs, inputs, output):
        return (len(inputs) - 1) * elements(output)

    def torch_forward(self, attrs, params, xs, training):
        y = xs[0]
        for x in xs[1:]:
            y = y + x if self.name == "add" else y * x
        return y

    def onnx(self, g, attrs, xs, params, itypes, otype):
        op = "Sum" if self.name == "add" else "Mul"
        if op == "Sum" and len(xs) == 2:  # Add, not Sum: int8 residual fusions (QLinearAdd, TensorRT) match Add
            return g.node("Add", xs, g.label)
        if op == "Mul" and len(xs) > 2:
            y = xs[0]
            for i, x in enumerate(xs[1:]):
                y = g.node("Mul", [y, x], f"{g.label}_{i}")
            return y
        return g.node(op, xs, g.label)


@register
class Add(_Elementwise):
    name = "add"
    doc = "elementwise sum of the `from:` inputs (broadcasting)"


@register
class Mul(_Elementwise):
    name = "mul"
    doc = "elementwise product of the `from:` inputs (broadcasting)"


@register
class Concat(OpDef):
    name = "concat"
    doc = "join the `from:` inputs along an axis (default 1, the channels)"
    primary = "axis"
    arity = (2, None)
    fields = {"axis": Field(Int(), 1, "axis to join along (0 is the batch, not allowed)")}

    def infer(self, attrs, inputs):
        ranks = {t.rank for t in inputs}
        if len(ranks) > 1:
            raise ShapeError("`concat` inputs have different ranks: "
                             + ", ".join(shape_str(t.shape) for t in inputs))
        axis = normalize_axis(attrs["axis"], inputs[0].rank, "concat")
        for t in inputs[1:]:
            for i, (a, b) in enumerate(zip(inputs[0].shape, t.shape)):
                if i != axis and a != b:
                    raise ShapeError("`concat` inputs must match on every axis but the joined one: "
                                     + " vs ".join(shape_str(t.shape) for t in inputs)
                                     + f" differ at axis {i}",
                                     f"they are joined along axis {axis}; pool, crop or reshape one input so that "
                                     "every other axis matches")
        joined = [t.shape[axis] for t in inputs]
        if all(is_static(d) for d in joined):
            total = sum(joined)
        else:
            total = "+".join(str(d) for d in joined)
        shape = list(inputs[0].shape)
        shape[axis] = total
        return inputs[0].with_shape(shape)

    def torch_forward(self, attrs, params, xs, training):
        import torch

        return torch.cat(xs, dim=attrs["axis"])

    def onnx(self, g, attrs, xs, params, itypes, otype):
        return g.node("Concat", xs, g.label, axis=attrs["axis"])
