"""The data a value of the graph may carry: parameters, buffers and constants.

Data is held lazily: a recipe (a function that makes the array, e.g. an
initializer seeded by the tensor's name) or an array. Nothing is allocated
until someone asks for `numpy()`, so `validate` and `inspect` of a huge spec
stay free, while a pass can read and rewrite weights (BN folding,
quantization scales) by asking for them.
"""

from __future__ import annotations

from typing import Callable


class TensorData:
    __slots__ = ("shape", "dtype", "_array", "_recipe", "source")

    def __init__(self, shape: tuple, dtype: str = "float32", array=None, recipe: Callable | None = None,
                 source: str = "init"):
        if (array is None) == (recipe is None):
            raise ValueError("TensorData needs exactly one of an array or a recipe")
        self.shape = tuple(shape)
        self.dtype = dtype
        self._array = array
        self._recipe = recipe
        self.source = source  # init | file | pass | fitted: where the values come from (for reports)

    @classmethod
    def of(cls, array, source: str = "pass") -> "TensorData":
        import numpy as np

        array = np.ascontiguousarray(array)
        return cls(array.shape, _dtype_name(array.dtype), array=array, source=source)

    @property
    def materialized(self) -> bool:
        return self._array is not None

    def numpy(self):
        """The values as a NumPy array (made on first use, then kept)."""
        if self._array is None:
            self._array = self._recipe()
            self._recipe = None
            if tuple(self._array.shape) != self.shape:
                raise ValueError(f"initializer made shape {self._array.shape}, expected {self.shape}")
        return self._array

    def __repr__(self) -> str:
        state = "array" if self.materialized else "lazy"
        return f"TensorData({self.dtype}{list(self.shape)}, {state}, {self.source})"


def _dtype_name(dtype) -> str:
    return "bool" if str(dtype) == "bool" else str(dtype)
