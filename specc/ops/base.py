"""The op registry: the single source of truth for what an op is.

Each op declares its arguments (from which validation and the JSON Schema
come), its shape inference, its parameters, its MACs, its weight
initialization and its two lowerings (PyTorch and ONNX). Lowering code imports
torch/onnx lazily so that `validate` and `inspect` never load them.
"""

from __future__ import annotations

import math
from typing import ClassVar

from specc.ir.types import TensorType, dim_product, is_static, shape_str
from specc.lang.argtypes import Enum, Field, Float, OneKey, Record, Union

REGISTRY: dict[str, "OpDef"] = {}


class ShapeError(Exception):
    """Raised by shape inference; the IR builder adds the layer, its span and input shapes."""

    def __init__(self, message: str, hint: str | None = None, code: str = "E060", arg: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.code = code
        self.arg = arg  # the argument at fault, when there is one: the diagnostic then points at its value


class NotLowerable(Exception):
    """An op that validates and infers shapes but has no lowering in this version."""


def register(cls):
    op = cls()
    key = (op.category, op.name)
    assert key not in _SEEN, f"op {key} registered twice"
    _SEEN.add(key)
    if op.category == "layer":
        REGISTRY[op.name] = op
    else:
        STEPS.setdefault(op.category, {})[op.name] = op
    return cls


_SEEN: set = set()
STEPS: dict[str, dict[str, "OpDef"]] = {}  # category ("preprocess" / "augment") -> name -> op


class OpDef:
    name: ClassVar[str]
    category: ClassVar[str] = "layer"
    doc: ClassVar[str] = ""
    fields: ClassVar[dict] = {}
    primary: ClassVar[str | None] = None
    arity: ClassVar[tuple] = (1, 1)  # (min, max) inputs; max None = unbounded
    lowered: ClassVar[bool] = True   # False: validates and infers, has no lowering in this version
    resolved_from: ClassVar[tuple] = ()  # spec arguments that `resolve` turns into node attributes

    @property
    def args(self) -> Record:
        return Record(self.fields, f"the arguments of `{self.name}`", self.primary)

    # --- analysis (pure Python: no torch, no onnx) ---
    def infer(self, attrs: dict, inputs: list[TensorType]):
        """The output type, or a tuple of types for an op with several outputs."""
        return inputs[0]

    def resolve(self, attrs: dict, inputs: list[TensorType]) -> dict:
        """Attributes worked out once from the spec's arguments and the input types (pads, strides,
        kernel), stored in the node so that passes and lowerings never recompute them."""
        return {}

    def param_shapes(self, attrs: dict, inputs: list[TensorType]) -> dict:
        """Trainable tensors: name -> shape."""
        return {}

    def buffer_shapes(self, attrs: dict, inputs: list[TensorType]) -> dict:
        """Non-trainable state that travels with the weights (e.g. running statistics)."""
        return {}

    def macs(self, attrs: dict, inputs: list[TensorType], output: TensorType) -> int:
        return 0

    def init_tensor(self, attrs: dict, pname: str, shape: tuple, rng):
        """Deterministic initial value of one parameter or buffer (numpy)."""
        import numpy as np

        if pname == "weight":
            return init_weight(attrs.get("init", "glorot_uniform"), shape, rng)
        if pname in ("running_var", "gamma"):
            return np.ones(shape, np.float32)
        return np.zeros(shape, np.float32)

    # --- lowerings ---
    def torch_forward(self, attrs: dict, params: dict, xs: list, training: bool):
        raise NotLowerable(self.name)

    def onnx(self, g, attrs: dict, xs: list[str], params: dict, itypes: list[TensorType], otype: TensorType) -> str:
        raise NotLowerable(self.name)


ACTIVATIONS = ("linear", "relu", "leaky_relu", "sigmoid", "tanh", "gelu", "silu", "elu")
INIT_SCHEMES = ("glorot_uniform", "glorot_normal", "he_uniform", "he_normal", "normal", "zeros", "nielsen")
ACTIVATION = Field(Enum(ACTIVATIONS), "linear", "activation applied to the output")
INIT = Field(
    Union((Enum(INIT_SCHEMES),
           OneKey({"normal": Record({"std": Field(Float(0, min_open=True), 0.01)}, "normal init arguments")}))),
    "glorot_uniform",
    "weight initialization: a scheme name, or {normal: {std: 0.05}}",
)


_LAYOUTS = {1: "(N, C, L)", 2: "(N, C, H, W)", 3: "(N, C, D, H, W)"}


def positive_spatial(value, rank: int, what: str) -> tuple:
    """An int or a list of `rank` ints, as a tuple of `rank` ints."""
    if isinstance(value, int):
        return (value,) * rank
    if len(value) != rank:
        raise ShapeError(f"`{what}` has {len(value)} values but the input has {rank} spatial axes",
                         f"give one value or {rank} values")
    return tuple(value)


def spatial_rank(t: TensorType, op: str, ranks=(1, 2, 3)) -> int:
    n = t.rank - 2
    if n not in ranks:
        wanted = " or ".join(_LAYOUTS[r] for r in ranks)
        raise ShapeError(f"`{op}` needs an input of shape {wanted}, got {shape_str(t.shape)}",
                         "add a `reshape` before it, or check the input shape")
    return n


def window_out(size, kernel: int, stride: int, pad_total: int, dilation: int, what: str,
               hint: str = "use a smaller kernel, `padding: same`, or remove a pooling layer before it"):
    """Output length of a sliding window: floor((L + pads - d*(k-1) - 1)/s) + 1."""
    span = dilation * (kernel - 1) + 1
    if not is_static(size):
        if pad_total == span - 1 and stride == 1:
            return size
        return f"({size}+{pad_total}-{span})//{stride}+1"
    if size + pad_total < span:
        raise ShapeError(f"{what} {span} is larger than its input {size}" + (f" (+{pad_total} padding)" if pad_total else ""),
                         hint)
    return (size + pad_total - span) // stride + 1


def same_pads(size, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    """TensorFlow-style `same`: output = ceil(L/s); the extra pad goes at the end."""
    span = dilation * (kernel - 1) + 1
    if stride == 1:
        total = span - 1
    elif not is_static(size):
        raise ShapeError("`padding: same` with stride > 1 needs a static input length",
                         "give the input a fixed size, or use an integer padding")
    else:
        total = max((math.ceil(size / stride) - 1) * stride + span - size, 0)
    return total // 2, total - total // 2


def tensor_rng(seed: int, name: str):
    """The generator of one tensor's initial values, seeded by (training.seed, tensor name): adding a
    layer leaves the others' values unchanged, and every lowering sees the same weights."""
    import zlib

    import numpy as np

    return np.random.default_rng([seed, zlib.crc32(name.encode())])


def fans(shape: tuple) -> tuple[int, int]:
    """(fan_in, fan_out) of a weight laid out (out, in, *kernel) as torch does."""
    receptive = math.prod(shape[2:]) if len(shape) > 2 else 1
    fan_out = shape[0] * receptive
    fan_in = (shape[1] if len(shape) > 1 else shape[0]) * receptive
    return fan_in, fan_out


def init_weight(scheme, shape: tuple, rng):
    import numpy as np

    fan_in, fan_out = fans(shape)
    if isinstance(scheme, tuple):  # ("normal", {"std": ...})
        return _normal_float32(rng, shape, scheme[1]["std"])
    if scheme == "zeros":
        return np.zeros(shape, np.float32)
    if scheme == "normal":
        return _normal_float32(rng, shape, 0.01)
    if scheme == "glorot_uniform":
        bound = math.sqrt(6.0 / (fan_in + fan_out))
    elif scheme == "he_uniform":
        bound = math.sqrt(6.0 / fan_in)
    else:
        std = {"glorot_normal": math.sqrt(2.0 / (fan_in + fan_out)),
               "he_normal": math.sqrt(2.0 / fan_in),
               "nielsen": math.sqrt(1.0 / fan_out)}[scheme]
        return _normal_float32(rng, shape, std)
    return _uniform_float32(rng, shape, bound)


# Weights are drawn in float32 directly and scaled in place: the same distributions as drawing
# float64 and casting, without the float64 temporaries (ResNet-18's 11.7M weights initialize about
# twice as fast). The values differ from a float64 draw, so the seed gives other numbers than before.
def _uniform_float32(rng, shape: tuple, bound: float):
    """U[-bound, bound]: float32 in [0, 1), scaled."""
    import numpy as np

    x = np.asarray(rng.random(shape, dtype=np.float32))
    x *= np.float32(2 * bound)
    x -= np.float32(bound)
    return x


def _normal_float32(rng, shape: tuple, std: float):
    import numpy as np

    x = np.asarray(rng.standard_normal(shape, dtype=np.float32))
    x *= np.float32(std)
    return x


def float_const(g, value, dtype: str, hint: str) -> str:
    """A float constant of an ONNX lowering, in the element type of the tensor it meets: ONNX never
    promotes, so a float16 graph (`precision: fp16`) needs float16 constants where fp32 needs float32."""
    import numpy as np

    return g.const(np.asarray(value, dtype=np.float16 if dtype == "float16" else np.float32), hint)


def elements(t: TensorType) -> int:
    """Elements per example (symbolic axes count as 1)."""
    n = dim_product(t.features)
    return n if is_static(n) else 1
