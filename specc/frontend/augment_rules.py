"""Which `augment` steps an input can take (E076). Needs only the spec, so `specc validate` refuses what
`specc train` would: a geometric step on an input that is not an image, a `crop` that changes the size,
`color` saturation without 3 channels, `expand` twice or by as much as the image."""

from __future__ import annotations

from specc.diagnostics import Diagnostic, SpeccError
from specc.parser.spec import RESAMPLED_VIEWS

RESAMPLED = ("shift", "rotate", "scale", "elastic")  # one affine/elastic resampling per batch
GEOMETRIC = RESAMPLED + ("flip", "crop", "expand")   # these move pixels: they need (C, H, W) images


def channels_first(shape: tuple, layout: str) -> tuple:
    """An input's per-example shape as written in the spec (its layout's order), as (C, H, W)."""
    shape = tuple(shape)
    return (shape[2], shape[0], shape[1]) if layout == "NHWC" and len(shape) == 3 else shape


def augment_errors(steps: list, example: tuple, resampled_views: bool = False) -> list[Diagnostic]:
    """E076 for each step that cannot apply to examples of shape `example` (no batch axis, (C, H, W) for
    images); empty when every step can. `resampled_views`: the steps are `build.tta` transforms (and are
    called so), whose rotations and zooms are built as constant sampling grids (training resamples any size)."""
    found = []
    what = "`build.tta` transform" if resampled_views else "augment step"

    def refuse(step, message: str, hint: str) -> None:
        found.append(Diagnostic("E076", message, step.span, hint))

    image = len(example) == 3
    sized = image and all(isinstance(d, int) for d in example)  # symbolic sizes are checked when known
    for step in steps:
        if step.op in GEOMETRIC and not image:
            refuse(step, f"{what} `{step.op}` needs images (N, C, H, W), but the input has shape "
                   f"{list(example)}", "declare the input as an image, e.g. `shape: [1, 28, 28]`, and `flatten` "
                   "in the network")
        elif step.op == "crop" and sized and tuple(step.attrs["size"]) != tuple(example[1:]):
            refuse(step, f"{what} `crop` to {step.attrs['size']} would change the input's size "
                   f"{list(example[1:])}; the model takes one size",
                   f"crop to the input's size after padding: `crop: {{size: {list(example[1:])}, padding: 4}}`")
        elif step.op == "color" and step.attrs["saturation"] and example[:1] != (3,):
            refuse(step, f"{what} `color` saturation needs 3 (RGB) channels, but the input has "
                   f"{example[0] if image else list(example)}", "remove `saturation`")
        elif step.op == "expand" and sized and step.attrs["shift"] >= min(example[1:]):
            refuse(step, f"{what} `expand` shifts by {step.attrs['shift']} pixels, as much as the image's "
                   "size", "use `shift: 1`")
        elif step.op in RESAMPLED_VIEWS and image and not sized and resampled_views:
            refuse(step, f"{what} `{step.op}` needs a fixed image size (its sampling grid is a "
                   f"constant), but the input has shape [{', '.join(map(str, example))}]",
                   "give the input numeric sizes")
    stated = _stating_interpolation(steps)
    for step in stated[1:] if not resampled_views else ():  # views resample one by one: each its own
        if step.attrs["interpolation"] != stated[0].attrs["interpolation"]:
            refuse(step, f"augment step `{step.op}` asks for `{step.attrs['interpolation']}` interpolation, but "
                   f"`{stated[0].op}` asked for `{stated[0].attrs['interpolation']}`; shift, rotate, scale and "
                   "elastic are done as one resampling, which has one interpolation",
                   "state it on one of them (it applies to all), or give them the same")
    expands = [step for step in steps if step.op == "expand"]
    for extra in expands[1:]:
        refuse(extra, f"{what} `expand` is given twice", "keep one")
    return found


def interpolation(steps: list) -> str:
    """The interpolation of the one resampling that `shift`, `rotate`, `scale` and `elastic` make: the one
    any of them states (E076 refuses two different ones), else bilinear."""
    stated = _stating_interpolation(steps)
    return stated[0].attrs["interpolation"] if stated else "bilinear"


def _stating_interpolation(steps: list) -> list:
    return [step for step in steps if step.op in RESAMPLED and step.attrs.get("interpolation")]


def check_augment(steps: list, example: tuple) -> None:
    """Raise the first of `augment_errors` (for callers that stop at one)."""
    found = augment_errors(steps, example)
    if found:
        raise SpeccError(found[0])
