"""Augment steps: training-time only, so here they are validated, not lowered.

`specc train` applies them to the training data; the built model never contains them.
"""

from __future__ import annotations

from specc.ops.base import OpDef, register
from specc.lang.argtypes import REQUIRED, Bool, Enum, Field, Float, Int, ListOf

P = Field(Float(0, 1), 1.0, "probability of applying the step")
# shift, rotate, scale and elastic are one resampling per batch: one of them stating this sets it for all.
INTERPOLATION = Field(Enum(("bilinear", "nearest")), None,
                      "how the resampling reads between pixels: `bilinear` (the default) or `nearest` "
                      "(no blur: every output pixel is an input pixel)")


def _augment(name: str, doc: str, fields: dict, primary: str | None = None):
    cls = type(name, (OpDef,), {"name": name, "category": "augment", "doc": doc, "lowered": False,
                                "fields": {**fields, "p": P}, "primary": primary})
    register(cls)


_augment("shift", "random translation", {"pixels": Field(Int(0), 1, "max translation"),
                                         "fill": Field(Float(), 0.0, "fill value"),
                                         "interpolation": INTERPOLATION}, "pixels")
_augment("rotate", "random rotation", {"degrees": Field(Float(0, 360), REQUIRED, "max rotation"),
                                       "interpolation": INTERPOLATION}, "degrees")
_augment("scale", "random zoom", {"range": Field(ListOf(Float(0, min_open=True), 2, 2), REQUIRED, "[lo, hi]"),
                                  "interpolation": INTERPOLATION}, "range")
_augment("flip", "random flips", {"horizontal": Field(Bool(), False, "flip left-right"),
                                  "vertical": Field(Bool(), False, "flip up-down")})
_augment("crop", "random crop after padding", {"size": Field(ListOf(Int(1), 2, 2), REQUIRED, "[h, w]"),
                                               "padding": Field(Int(0), 0, "zero padding first")})
_augment("elastic", "elastic distortion (Simard et al. 2003)",
         {"alpha": Field(Float(0), 34.0, "displacement scale"), "sigma": Field(Float(0, min_open=True), 4.0, "smoothing"),
          "interpolation": INTERPOLATION})
_augment("noise", "additive Gaussian noise", {"std": Field(Float(0), REQUIRED, "noise std")}, "std")
_augment("color", "colour jitter", {"brightness": Field(Float(0), 0.0, ""), "contrast": Field(Float(0), 0.0, ""),
                                    "saturation": Field(Float(0), 0.0, "")})
_augment("expand", "Nielsen-style static expansion by one-pixel shifts (5x data)",
         {"shift": Field(Int(1, 8), 1, "pixels shifted")})
