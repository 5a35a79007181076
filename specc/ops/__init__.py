"""The op registry. Importing this package registers every op."""

from specc.ops import (activations, augment, conv, dense, internal, norm, pool, preprocess, quantized,  # noqa: F401
                       sequence, shape_ops)
from specc.ops.base import REGISTRY, STEPS, NotLowerable, OpDef, ShapeError

__all__ = ["REGISTRY", "STEPS", "OpDef", "ShapeError", "NotLowerable"]
