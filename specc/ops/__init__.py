"""The op registry. Importing this package registers every op."""

from specc.ops import activations, augment, conv, dense, norm, pool, preprocess, sequence, shape_ops  # noqa: F401
from specc.ops.base import REGISTRY, STEPS, NotLowerable, OpDef, ShapeError

__all__ = ["REGISTRY", "STEPS", "OpDef", "ShapeError", "NotLowerable"]
