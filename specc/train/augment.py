"""The `augment` steps as batched tensor operations, seeded and reproducible.

The augmenter sees the raw input (before the model's preprocessing, which is
inside the model) as floats: uint8 data arrives as 0..255, so `shift`'s
`fill` and `noise`'s `std` are in those units. Every step draws its random
numbers for the whole batch from the given generator whether or not `p`
selects an image, so one generator state gives one output.

Resampling steps (`shift`, `rotate`, `scale`, `elastic`) are composed into a
single `grid_sample` per batch (bilinear, or nearest when a step says so),
placed where the first of them is listed: shift/rotate/scale become one
affine matrix per image (composed in list order), the elastic displacement
is added to its sampling grid. `flip`, `crop`, `noise` and `color` apply in
list order around it. `expand` is static: see `expand_static`, done once on
the training set before training.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch
import torch.nn.functional as F

from specc.frontend.augment_rules import RESAMPLED, channels_first, check_augment, interpolation

STATIC = ("expand",)


class Augmenter:
    """`augmenter(x, generator)` for a float batch (N, C, H, W) or, without geometric steps, (N, C, L).

    `layout="NHWC"` takes and returns (N, H, W, C) batches. `input_shape` (no batch axis, in that
    layout), when given, lets the constructor refuse steps that cannot apply to the input."""

    def __init__(self, steps: list, seed: int, layout: str = "NCHW", input_shape: tuple | None = None):
        self.steps = [s for s in steps if s.op not in STATIC]
        self.layout = layout
        self.seed = seed
        self._generator: torch.Generator | None = None
        self.stages = _stages(self.steps)
        if input_shape is not None:
            shape = tuple(input_shape)
            if layout == "NHWC" and len(shape) == 3:
                shape = (shape[2], shape[0], shape[1])
            self._check((None,) + shape)

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        if not self.stages:
            return x
        if generator is None:
            generator = self._own_generator()
        channels_last = self.layout == "NHWC" and x.dim() == 4
        if channels_last:
            x = x.permute(0, 3, 1, 2)
        self._check(tuple(x.shape))
        if not x.is_floating_point():
            raise TypeError("the augmenter takes float batches; convert uint8 data with x.float()")
        for stage in self.stages:
            x = stage(x, generator)
        return x.permute(0, 2, 3, 1).contiguous() if channels_last else x

    def _own_generator(self) -> torch.Generator:
        if self._generator is None:
            self._generator = torch.Generator().manual_seed(self.seed)
        return self._generator  # one stream across calls: successive batches differ

    def _check(self, shape: tuple) -> None:
        """Refuse steps that cannot apply to a batch of this (N, C, ...) shape."""
        check_augment(self.steps, tuple(shape[1:]))


def _stages(steps: list) -> list:
    stages, resampled = [], [s for s in steps if s.op in RESAMPLED]
    for step in steps:
        if step.op in RESAMPLED:
            if step is resampled[0]:
                stages.append(lambda x, g, group=resampled: resample(x, group, g))
        else:
            stages.append(lambda x, g, step=step: _PER_STEP[step.op](x, step.attrs, g))
    return stages


# --- random draws: always the whole batch, on the generator's device ---------

def _uniform(g: torch.Generator, n: int, device, lo=0.0, hi=1.0) -> torch.Tensor:
    return (torch.rand(n, generator=g, device=g.device) * (hi - lo) + lo).to(device)


def _chosen(g: torch.Generator, n: int, p: float, device) -> torch.Tensor:
    return _uniform(g, n, device) < p


def _integers(g: torch.Generator, n: int, lo: int, hi: int, device) -> torch.Tensor:
    """Uniform integers in [lo, hi]."""
    return torch.randint(lo, hi + 1, (n,), generator=g, device=g.device).to(device)


# --- resampling: one affine grid (+ elastic field), one grid_sample ----------

def resample(x: torch.Tensor, steps: list, g: torch.Generator) -> torch.Tensor:
    """out(p) = x(A p + d(p)), p in pixels from the image centre: A composes the affine steps in list
    order (each maps output to input coordinates), d is the elastic displacement."""
    n, _, h, w = x.shape
    dev = x.device
    eye = torch.eye(3, device=dev).expand(n, 3, 3)
    matrix, displacement = eye.clone(), None
    active = torch.zeros(n, dtype=torch.bool, device=dev)
    fill = 0.0
    for step in steps:
        a = step.attrs
        mask = _chosen(g, n, a["p"], dev)
        if step.op == "elastic":
            field = elastic_field(n, h, w, a["alpha"], a["sigma"], g).to(dev) * mask[:, None, None, None]
            displacement = field if displacement is None else displacement + field
        else:
            m = _AFFINE[step.op](a, g, n, dev)
            matrix = matrix @ torch.where(mask[:, None, None], m, eye)
            fill = a["fill"] if step.op == "shift" else fill
        active |= mask
    index = active.nonzero().squeeze(1)
    if len(index) == 0:
        return x
    # Pixel coordinates from the centre -> grid_sample's [-1, 1] (align_corners=False): u = x_n * size / 2.
    to_pixels = torch.diag(torch.tensor([w / 2.0, h / 2.0, 1.0], device=dev))
    to_unit = torch.diag(torch.tensor([2.0 / w, 2.0 / h, 1.0], device=dev))
    every = len(index) == n
    theta = to_unit @ (matrix if every else matrix[index]) @ to_pixels
    grid = affine_grid(theta, h, w)
    if displacement is not None:
        scale = torch.tensor([2.0 / w, 2.0 / h], device=dev)
        grid = grid + (displacement if every else displacement[index]).permute(0, 2, 3, 1) * scale
    grid = grid.to(x.dtype)
    # grid_sample pads with zeros; sampling (x - fill) and adding fill back pads with `fill`.
    source = x if every else x[index]
    sampled = F.grid_sample(source - fill if fill else source, grid, mode=interpolation(steps), padding_mode="zeros",
                            align_corners=False)
    sampled = sampled + fill if fill else sampled
    return sampled if every else x.index_copy(0, index, sampled)


def affine_grid(theta: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """F.affine_grid(theta[:, :2], align_corners=False) as (N, H, W, 2): grid[n, i, j] = theta[n, :2] @ (x_j, y_i, 1),
    one matmul of the shared (H*W, 3) pixel-centre table (measured faster than affine_grid on CPU)."""
    xs = (torch.arange(w, device=theta.device, dtype=theta.dtype) * 2 + 1) / w - 1
    ys = (torch.arange(h, device=theta.device, dtype=theta.dtype) * 2 + 1) / h - 1
    centres = torch.stack(torch.broadcast_tensors(xs.view(1, w), ys.view(h, 1)) +
                          (torch.ones(h, w, device=theta.device, dtype=theta.dtype),), dim=-1).view(h * w, 3)
    return torch.matmul(centres, theta[:, :2].transpose(1, 2)).view(len(theta), h, w, 2)


def _shift(a: dict, g, n: int, dev) -> torch.Tensor:
    """Whole-pixel translations in [-pixels, pixels]: sampling at p - t moves the content by +t."""
    k = a["pixels"]
    tx, ty = _integers(g, n, -k, k, dev).float(), _integers(g, n, -k, k, dev).float()
    m = torch.eye(3, device=dev).repeat(n, 1, 1)
    m[:, 0, 2], m[:, 1, 2] = -tx, -ty
    return m


def _rotate(a: dict, g, n: int, dev) -> torch.Tensor:
    """Rotation by an angle uniform in [-degrees, degrees] about the centre."""
    angle = _uniform(g, n, dev, -a["degrees"], a["degrees"]) * (math.pi / 180.0)
    cos, sin = torch.cos(angle), torch.sin(angle)
    m = torch.eye(3, device=dev).repeat(n, 1, 1)
    m[:, 0, 0], m[:, 0, 1], m[:, 1, 0], m[:, 1, 1] = cos, -sin, sin, cos
    return m


def _scale(a: dict, g, n: int, dev) -> torch.Tensor:
    """Zoom by a factor uniform in [lo, hi] about the centre (> 1 enlarges the content)."""
    lo, hi = a["range"]
    factor = _uniform(g, n, dev, lo, hi)
    m = torch.eye(3, device=dev).repeat(n, 1, 1)
    m[:, 0, 0], m[:, 1, 1] = 1.0 / factor, 1.0 / factor
    return m


_AFFINE = {"shift": _shift, "rotate": _rotate, "scale": _scale}


def elastic_field(n: int, h: int, w: int, alpha: float, sigma: float, g: torch.Generator) -> torch.Tensor:
    """Simard et al. (2003): uniform(-1, 1) displacements per pixel, Gaussian-smoothed (sigma), times alpha.
    (N, 2, H, W) in pixels. The separable blur, reflecting at the borders, is one (H, H) and one (W, W)
    matrix applied to the whole batch: two small matrix products, where depthwise convolutions with a
    kernel of 6 sigma cost a tenth of a training step on a CPU."""
    raw = torch.rand(n, 2, h, w, generator=g, device=g.device) * 2 - 1
    radius = max(1, min(math.ceil(3 * sigma), h - 1, w - 1))
    rows, cols = _blur_matrix(h, radius, sigma, raw.device), _blur_matrix(w, radius, sigma, raw.device)
    return torch.matmul(torch.matmul(rows, raw), cols.T) * alpha


@functools.lru_cache(maxsize=16)  # the same few shapes every step
def _blur_matrix(size: int, radius: int, sigma: float, device) -> torch.Tensor:
    """M with (M @ v)[i] = sum_k g[k] v[reflect(i + k)], |k| <= radius: a normalized Gaussian, the border
    reflected without repeating the edge (torch's `reflect` padding); radius < size."""
    r = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-(r * r) / (2 * sigma * sigma))
    kernel = kernel / kernel.sum()
    source = torch.arange(size)[:, None] + torch.arange(-radius, radius + 1)[None, :]    # (size, taps)
    source = source.abs()                                          # reflect at 0
    source = torch.where(source > size - 1, 2 * (size - 1) - source, source)   # and at size - 1
    matrix = torch.zeros(size, size)
    matrix.index_put_((torch.arange(size)[:, None].expand_as(source), source), kernel.expand_as(source),
                      accumulate=True)
    return matrix.to(device)


# --- the other steps ---------------------------------------------------------

def flip(x: torch.Tensor, a: dict, g) -> torch.Tensor:
    n = x.shape[0]
    horizontal, vertical = _chosen(g, n, a["p"], x.device), _chosen(g, n, a["p"], x.device)
    if a["horizontal"]:
        x = torch.where(horizontal[:, None, None, None], x.flip(3), x)
    if a["vertical"]:
        x = torch.where(vertical[:, None, None, None], x.flip(2), x)
    return x


def crop(x: torch.Tensor, a: dict, g) -> torch.Tensor:
    """Zero-pad by `padding`, then take an (H, W) window at a random offset per image (gather by index)."""
    n, _, h, w = x.shape
    pad = a["padding"]
    mask = _chosen(g, n, a["p"], x.device)
    top, left = _integers(g, n, 0, 2 * pad, x.device), _integers(g, n, 0, 2 * pad, x.device)
    if pad == 0:
        return x
    top, left = torch.where(mask, top, pad), torch.where(mask, left, pad)  # unchosen: the original window
    padded = F.pad(x, (pad, pad, pad, pad))
    rows = (top[:, None] + torch.arange(h, device=x.device))[:, :, None]      # (N, H, 1)
    cols = (left[:, None] + torch.arange(w, device=x.device))[:, None, :]     # (N, 1, W)
    batch = torch.arange(n, device=x.device)[:, None, None]
    return padded.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2)  # (N, H, W, C) -> (N, C, H, W)


def noise(x: torch.Tensor, a: dict, g) -> torch.Tensor:
    mask = _chosen(g, x.shape[0], a["p"], x.device)
    gauss = torch.randn(x.shape, generator=g, device=g.device).to(x.device)
    return x + gauss * (a["std"] * mask.view(-1, *([1] * (x.dim() - 1))))


def color(x: torch.Tensor, a: dict, g) -> torch.Tensor:
    """Brightness x*b, contrast m + c(x - m) about the mean grey level m, saturation s + k(x - s) about each
    pixel's grey s; factors uniform in [1 - v, 1 + v] (not below 0). No clamping: the value range is the data's."""
    n = x.shape[0]
    mask = _chosen(g, n, a["p"], x.device)
    shape = (-1,) + (1,) * (x.dim() - 1)
    factors = {}
    for key in ("brightness", "contrast", "saturation"):
        f = _uniform(g, n, x.device, -a[key], a[key]).add(1.0).clamp(min=0.0)
        factors[key] = torch.where(mask, f, torch.ones_like(f)).view(shape)
    out = x * factors["brightness"]
    mean_grey = _grey(out).mean(dim=tuple(range(1, x.dim())), keepdim=True)
    out = mean_grey + factors["contrast"] * (out - mean_grey)
    if a["saturation"]:
        grey = _grey(out)
        out = grey + factors["saturation"] * (out - grey)
    return torch.where(mask.view(shape), out, x)  # unchosen images exactly as they were


def _grey(x: torch.Tensor) -> torch.Tensor:
    """ITU-R 601 luma for 3 channels, the channel mean otherwise; keeps the channel axis (size 1)."""
    if x.shape[1] == 3:
        weights = torch.tensor([0.299, 0.587, 0.114], device=x.device, dtype=x.dtype)
        return (x * weights.view(1, 3, *([1] * (x.dim() - 2)))).sum(dim=1, keepdim=True)
    return x.mean(dim=1, keepdim=True)


_PER_STEP = {"flip": flip, "crop": crop, "noise": noise, "color": color}


# --- expand: static, once per training set ------------------------------------

def expand_static(x: np.ndarray, y: np.ndarray, steps: list, layout: str = "NCHW", seed: int = 0) -> tuple:
    """Nielsen's expand_mnist.py: the training set followed by copies shifted `shift` pixels up, down, left
    and right (zero fill), 5x the data; labels follow. With `p` below 1 each shifted copy of each image is
    kept with probability p (drawn from `seed`: the same set every time). Without an `expand` step, (x, y)
    unchanged. Run it after the validation split is held out, so no shifted copy of a validation image is
    trained on."""
    expands = [s for s in steps if s.op == "expand"]
    if not expands:
        return x, y
    step = expands[0]
    check_augment(expands, channels_first(x.shape[1:], layout))
    k = step.attrs["shift"]
    rows, cols = (2, 3) if layout == "NCHW" else (1, 2)
    copies = [(x, y)] + [(_shifted(x, k * sign, axis), y) for axis in (rows, cols) for sign in (-1, 1)]
    p = step.attrs["p"]
    if p < 1:
        keep = np.random.default_rng([seed, 0xE4BA9D]).random((len(copies) - 1, len(x))) < p
        copies = copies[:1] + [(cx[kept], cy[kept]) for (cx, cy), kept in zip(copies[1:], keep)]
    return np.concatenate([cx for cx, _ in copies]), np.concatenate([cy for _, cy in copies])


def _shifted(x: np.ndarray, offset: int, axis: int) -> np.ndarray:
    """x moved by `offset` along `axis` (negative: up/left), the vacated rows or columns zero."""
    out = np.zeros_like(x)
    src = [slice(None)] * x.ndim
    dst = [slice(None)] * x.ndim
    src[axis] = slice(0, -offset) if offset > 0 else slice(-offset, None)
    dst[axis] = slice(offset, None) if offset > 0 else slice(0, offset)
    out[tuple(dst)] = x[tuple(src)]
    return out
