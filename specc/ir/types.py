"""Tensor types. A dimension is an int or a symbol (a str such as `N` or `seq`).

The batch axis is always the symbol `N`. Arithmetic on symbols builds a
readable expression string; it never needs to be solved, only printed and
compared, because ops that need a concrete size say so with a shape error.
"""

from __future__ import annotations

from dataclasses import dataclass

# Element types of IR values. Inputs of a spec take the first four; the others appear inside the
# graph (int8/int32 for quantization, bool for masks, bfloat16 for mixed precision).
INPUT_DTYPES = ("float32", "float16", "uint8", "int64")
DTYPES = ("float32", "float16", "bfloat16", "int8", "uint8", "int32", "int64", "bool")
DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2, "int8": 1, "uint8": 1, "int32": 4, "int64": 8, "bool": 1}
FLOAT_DTYPES = ("float32", "float16", "bfloat16")
BATCH = "N"

Dim = int | str


@dataclass(frozen=True)
class TensorType:
    dtype: str
    shape: tuple  # of Dim; shape[0] is the batch symbol

    @property
    def rank(self) -> int:
        return len(self.shape)

    @property
    def features(self) -> tuple:
        """The shape without the batch axis."""
        return self.shape[1:]

    def with_shape(self, shape) -> "TensorType":
        return TensorType(self.dtype, tuple(shape))

    def __str__(self) -> str:
        return f"{self.dtype}{shape_str(self.shape)}"


def is_static(dim: Dim) -> bool:
    return isinstance(dim, int)


def shape_str(shape) -> str:
    return "(" + ", ".join(str(d) for d in shape) + ")"


def dim_mul(a: Dim, b: Dim) -> Dim:
    if is_static(a) and is_static(b):
        return a * b
    if a == 1:
        return b
    if b == 1:
        return a
    return f"{_paren(a)}*{_paren(b)}"


def dim_product(dims) -> Dim:
    result: Dim = 1
    for d in dims:
        result = dim_mul(result, d)
    return result


def _paren(d: Dim) -> str:
    text = str(d)
    return text if text.isidentifier() or text.isdigit() else f"({text})"


def static_elements(shape) -> int:
    """Element count of the non-symbolic part of a shape (symbols count as 1)."""
    count = 1
    for d in shape:
        if is_static(d):
            count *= d
    return count
