"""Training data: the spec's `training.data` read into arrays shaped like its first input.

`load_dataset` returns raw values (MNIST pixels 0..255) in the input's declared
layout and dtype: preprocessing is part of the model, so the training loop
feeds exactly what the built model will receive. Data sets:

- `mnist`: the IDX files, found in `path` (if given), `--data DIR`,
  SPECC_DATA_DIR (each directory or its `mnist/` subdirectory), the cache
  ($XDG_CACHE_HOME/specc/mnist), else downloaded there (SPECC_OFFLINE=1 forbids it).
- `mnist-sample`: 2,000 training and 500 test images shipped in the package.
- `npz`: x_train, y_train, x_test, y_test (optionally x_val, y_val).
- `idx`: a directory with MNIST's file names (the t10k pair is optional).
- `folder`: train/<class>/*.png and optionally test/<class>/...; labels are
  the sorted class names' indices.

Validation: a count holds out a seeded random subset of the training set
(`np.random.default_rng(seed).permutation`; both parts keep the original order);
a path reads a separate set in the data set's own format (for `folder`, the
class directories or a folder data set's train/). A count the spec
does not write (the default 10,000) is capped at a sixth of a smaller training
set, so `mnist-sample` works without one; a written count must fit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from specc.diagnostics import Span, error
from specc.limits import DEFAULT_LIMITS, Limits
from specc.train.mnist import load_mnist, load_mnist_sample
from specc.train.sources import (Raw, SourceContext, read_folder, read_idx_dir, read_idx_split, read_image_split,
                                 read_npz, read_npz_split)

DEFAULT_VALIDATION = 10_000
MNIST_CLASSES = 10


@dataclass
class Split:
    x: np.ndarray   # (n, *input feature shape) in the input's layout and dtype, raw values
    y: np.ndarray   # (n,) int64 class labels


@dataclass
class Dataset:
    name: str
    train: Split
    val: Split | None
    test: Split | None
    num_classes: int


def data_spans(spec) -> dict:
    """Where the spec writes `training.data` and each of its keys: pass to `load_dataset(spans=...)`."""
    from specc.lang.located import Map

    node = spec.tree.get("training") if spec.tree is not None else None
    data = node.get("data") if isinstance(node, Map) else None
    if not isinstance(data, Map):
        return {}
    return {"data": data.span, **{key: data.get(key).span for key in data.keys()}}


def load_dataset(data_cfg: dict, *, spec_path: str, input_shape: tuple, input_dtype: str,
                 data_dir: str | None = None, seed: int = 0, limits: Limits = DEFAULT_LIMITS,
                 num_outputs: int | None = None, layout: str = "NCHW", spans: dict | None = None) -> Dataset:
    """Read the data set `data_cfg` (the validated `training.data`) for a model whose first input has
    feature shape `input_shape` (no batch axis), `input_dtype` and `layout`. `num_outputs`, when given,
    is the model's output width: labels must fit it. `spans` (from `data_spans(spec)`) locates the
    diagnostics. Raises SpeccError on any problem: E071-E075, E040 for paths, E098 without Pillow."""
    spans = spans or {}
    input_shape = tuple(input_shape)
    ctx = SourceContext(spec_path, spans, limits, image_channels(input_shape, layout))
    name = data_cfg["dataset"]
    raw = _read(name, data_cfg, ctx, data_dir)
    validation = data_cfg.get("validation", DEFAULT_VALIDATION)
    if isinstance(validation, str):
        raw.val = _read_validation(name, validation, raw, ctx)
    elif raw.val is not None and validation and "validation" in spans:
        raise error("E073", f"the data set has its own validation split (x_val, y_val), and `validation: "
                    f"{validation}` asks to hold out another", ctx.span("validation"),
                    "remove `validation`, or set it to 0")

    fit = _Fitter(input_shape, input_dtype, layout, ctx)
    splits = {key: fit.split(pair, key) for key, pair in
              (("train", raw.train), ("val", raw.val), ("test", raw.test)) if pair is not None}
    top_label = max((int(s.y.max()) for s in splits.values() if len(s.y)), default=-1)
    if name in ("mnist", "mnist-sample") and top_label >= MNIST_CLASSES:  # a damaged or foreign label file
        raise error("E074", f"the MNIST labels include {top_label}; MNIST's classes are 0-{MNIST_CLASSES - 1}",
                    ctx.span("dataset"), "the label files are damaged: fetch them again (delete them from the "
                    "data directory or the cache)")
    num_classes = len(raw.classes) if raw.classes else (
        MNIST_CLASSES if name in ("mnist", "mnist-sample") else 1 + top_label)
    if num_outputs is not None and num_classes > num_outputs:
        top = num_classes - 1
        raise error("E074", f"the data set has {num_classes} classes (labels 0..{top}) but the model's output has "
                    f"{num_outputs} unit{'s' if num_outputs != 1 else ''}", ctx.span("dataset"),
                    f"make the last layer `dense: {num_classes}`")
    train, val = splits["train"], splits.get("val")
    if val is None and isinstance(validation, int) and validation > 0:
        written = "validation" in spans if spans else validation != DEFAULT_VALIDATION
        train, val = hold_out(train, validation, seed, written, ctx.span("validation"))
    return Dataset(name, train, val, splits.get("test"), num_classes)


def hold_out(train: Split, count: int, seed: int, written: bool, span: Span) -> tuple:
    """(rest, held out): `count` examples chosen at random (seeded), both in the original order."""
    n = len(train.y)
    if count >= n:
        if written:
            raise error("E073", f"`validation: {count}` holds out more than the training set's {n:,} examples",
                        span, f"use a smaller count, e.g. {n // 6}, or 0 for no validation set")
        count = n // 6
        if count == 0:
            return train, None
    order = np.random.default_rng(seed).permutation(n)
    val_idx, train_idx = np.sort(order[:count]), np.sort(order[count:])
    return Split(train.x[train_idx], train.y[train_idx]), Split(train.x[val_idx], train.y[val_idx])


def image_channels(input_shape: tuple, layout: str) -> int:
    """Channels decoded images need: the channel axis of an image input, else 1 (grayscale)."""
    if len(input_shape) == 3:
        channels = input_shape[-1] if layout == "NHWC" else input_shape[0]
        return channels if isinstance(channels, int) else 1
    return 1


def _require_path(name: str, data_cfg: dict, ctx: SourceContext) -> str:
    path = data_cfg.get("path")
    if not path:
        raise error("E011", f"`training.data.path` is required for `dataset: {name}`", ctx.span("dataset"),
                    {"npz": "e.g. `path: data/digits.npz`", "idx": "e.g. `path: data/mnist` (a directory)",
                     "folder": "e.g. `path: data/images` (with train/<class>/ inside)"}[name])
    return ctx.resolve(path, "path")


def _read(name: str, data_cfg: dict, ctx: SourceContext, data_dir: str | None) -> Raw:
    if name == "mnist":
        return load_mnist(ctx, data_cfg.get("path"), data_dir)
    if name == "mnist-sample":
        if data_cfg.get("path"):
            raise error("E013", "`training.data.path` has no meaning for `dataset: mnist-sample`, which is "
                        "shipped inside specc", ctx.span("path"), "remove `path`, or use `dataset: idx` with it")
        return load_mnist_sample(ctx)
    path = _require_path(name, data_cfg, ctx)
    if name == "npz":
        arrays = read_npz(path, ctx, "path")
        return Raw(arrays["train"], arrays["test"], arrays.get("val"))
    if name == "idx":
        return read_idx_dir(path, ctx, "path")
    return read_folder(path, ctx, "path")


def _read_validation(name: str, value: str, raw: Raw, ctx: SourceContext) -> tuple:
    path = ctx.resolve(value, "validation")
    if name == "npz":
        return read_npz_split(path, ctx, "validation")
    if name == "folder":
        import os

        if not os.path.isdir(path):
            raise error("E071", f"validation directory not found: {value}", ctx.span("validation"),
                        "the path is relative to the spec's directory")
        # Either the class directories themselves, or a folder data set (its train/<class>/ is read, as
        # an idx or npz validation set gives its training pair).
        classes = raw.classes or []
        nested = os.path.join(path, "train")
        if "train" not in classes and os.path.isdir(nested):
            path = nested
        return read_image_split(path, classes, ctx, "validation")
    return read_idx_split(path, ctx, "validation")


class _Fitter:
    """Raw arrays -> Splits shaped and typed like the spec's first input."""

    def __init__(self, input_shape: tuple, dtype: str, layout: str, ctx: SourceContext):
        self.shape, self.dtype, self.layout, self.ctx = input_shape, np.dtype(dtype), layout, ctx

    def split(self, pair: tuple, key: str) -> Split:
        x, y = (np.asarray(a) for a in pair)
        span = self.ctx.span("path", "dataset") if key != "val" else self.ctx.span("validation", "path", "dataset")
        if len(x) == 0:
            raise error("E073", f"the {_SPLIT_NAMES[key]} set is empty", span)
        if len(x) != len(y):
            raise error("E073", f"the {_SPLIT_NAMES[key]} set has {len(x):,} examples but {len(y):,} labels", span)
        return Split(self.cast(self.reshape(x, key, span), key, span), labels(y, _SPLIT_NAMES[key], span))

    def reshape(self, x: np.ndarray, key: str, span: Span) -> np.ndarray:
        feat, want = tuple(x.shape[1:]), self.shape
        if feat == want:
            return x
        if any(isinstance(d, str) for d in want):
            if len(feat) == len(want) and all(isinstance(w, str) or w == f for f, w in zip(feat, want)):
                return x
        elif math.prod(feat) == math.prod(want):
            if len(feat) == 3 and len(want) == 3:
                # Same values, other layout: a plain reshape would interleave the channels, so transpose.
                c, h, w = (want[0], want[1], want[2]) if self.layout == "NCHW" else (want[2], want[0], want[1])
                if c > 1 and self.layout == "NCHW" and feat == (h, w, c):
                    return x.transpose(0, 3, 1, 2)
                if c > 1 and self.layout == "NHWC" and feat == (c, h, w):
                    return x.transpose(0, 2, 3, 1)
            return x.reshape((len(x),) + want)
        raise error("E074", f"the {_SPLIT_NAMES[key]} examples have shape {list(feat)} ({math.prod(feat):,} values) "
                    f"but the spec's input has shape {list(want)}" +
                    ("" if any(isinstance(d, str) for d in want) else f" ({math.prod(want):,} values)"), span,
                    f"declare the input as `shape: {list(feat)}` (a `reshape` or `flatten` layer can follow it)")

    def cast(self, x: np.ndarray, key: str, span: Span) -> np.ndarray:
        if x.dtype.kind == "f" and not np.isfinite(x).all():  # it would only surface as a diverged loss
            bad = int(np.count_nonzero((~np.isfinite(x)).reshape(len(x), -1).any(axis=1)))
            raise error("E074", f"the {_SPLIT_NAMES[key]} examples hold NaN or infinite values ({bad:,} of "
                        f"{len(x):,} examples)", span, "clean or drop those examples")
        if x.dtype == self.dtype:
            return x
        if self.dtype.kind in "ui":
            if x.dtype.kind == "f" and not np.array_equal(x, np.round(x)):
                raise error("E074", f"the {_SPLIT_NAMES[key]} examples hold fractional values but the input's dtype "
                            f"is {self.dtype}", span, "declare `dtype: float32`, or store whole numbers")
            info = np.iinfo(self.dtype)
            lo, hi = x.min(), x.max()
            if lo < info.min or hi > info.max:
                raise error("E074", f"the {_SPLIT_NAMES[key]} examples range over [{lo}, {hi}], outside the "
                            f"input's dtype {self.dtype} [{info.min}, {info.max}]", span,
                            "declare `dtype: float32`, or rescale the data")
        elif x.dtype.kind not in "uif":
            raise error("E072", f"the {_SPLIT_NAMES[key]} examples have dtype {x.dtype}, not numbers", span)
        return x.astype(self.dtype)


_SPLIT_NAMES = {"train": "training", "val": "validation", "test": "test"}


def labels(y: np.ndarray, what: str, span: Span) -> np.ndarray:
    """One int64 class index per example."""
    if y.ndim != 1:
        raise error("E073", f"the {what} labels have shape {list(y.shape)}; one class index per example is needed",
                    span, "store class indices, e.g. y.argmax(axis=1) for one-hot labels")
    if y.dtype.kind == "f" and not np.array_equal(y, np.round(y)):
        raise error("E073", f"the {what} labels hold fractional values; class indices are whole numbers", span)
    if y.dtype.kind not in "uif":
        raise error("E072", f"the {what} labels have dtype {y.dtype}, not class indices", span)
    if y.min() < 0:
        raise error("E074", f"the {what} labels include {y.min()}; class indices start at 0", span)
    return y.astype(np.int64)
