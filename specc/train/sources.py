"""Readers for each `training.data.dataset`: files on disk -> raw (images, labels) arrays.

Each reader returns arrays as stored (MNIST: (n, 28, 28) uint8); fitting them
to the spec's input shape and dtype is `data.py`'s job. Every problem is a
located SpeccError: the span is the `training.data` key at fault.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from specc.diagnostics import Span, error
from specc.limits import Limits
from specc.parser.extends import display_path, is_inside, resolve_spec_path
from specc.train.idx import IMAGES_MAGIC, LABELS_MAGIC, read_idx


@dataclass
class Raw:
    """One data set as read: splits are (x, y) pairs or None."""

    train: tuple
    test: tuple | None = None
    val: tuple | None = None
    classes: list | None = None  # class names, when the source names them (`folder`)
    origin: dict = field(default_factory=dict)  # split -> where it was read, for messages


@dataclass
class SourceContext:
    spec_path: str
    spans: dict       # `training.data` key -> Span where the spec writes it ("data" for the section)
    limits: Limits
    channels: int = 1  # what decoded images become: 1 grayscale, 3 RGB, 4 RGBA

    def span(self, *keys: str) -> Span:
        for key in keys + ("data",):
            if self.spans.get(key) is not None:
                return self.spans[key]
        return Span(display_path(self.spec_path))

    @property
    def root(self) -> str:
        return os.path.dirname(os.path.realpath(self.spec_path))

    def resolve(self, value: str, key: str) -> str:
        """A path written in the spec: relative to it, and inside its tree in CI mode."""
        return resolve_spec_path(value, self.spec_path, self.span(key), self.limits, self.root,
                                 f"`training.data.{key}`")

    def confine(self, path: str, key: str) -> str:
        """A file found inside a spec-named directory must not lead out of the tree (a symlink) in CI mode."""
        if not self.limits.allow_outside and not is_inside(path, self.root):
            raise error("E040", f"{display_path(path)} (under `training.data.{key}`) resolves outside the spec's "
                        "directory tree", self.span(key), "pass --allow-outside if you trust this spec")
        return path

    @property
    def read_limit(self) -> int:
        return self.limits.memory_budget


# --- IDX directories (`idx`, `mnist`) ----------------------------------------

IDX_PAIRS = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
             "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


def find_file(directory: str, stem: str) -> str | None:
    for name in (stem, stem + ".gz"):
        path = os.path.join(directory, name)
        if os.path.isfile(path):
            return path
    return None


def has_idx_pair(directory: str, split: str) -> bool:
    return all(find_file(directory, stem) for stem in IDX_PAIRS[split])


def read_idx_pair(directory: str, split: str, ctx: SourceContext, key: str, from_spec: bool = True) -> tuple:
    images_stem, labels_stem = IDX_PAIRS[split]
    paths = []
    for stem in (images_stem, labels_stem):
        path = find_file(directory, stem)
        if path is None:
            raise error("E071", f"{stem} (or {stem}.gz) not found in {display_path(directory)}", ctx.span(key),
                        "an IDX data set is a directory with MNIST's file names")
        paths.append(ctx.confine(path, key) if from_spec else path)
    x = read_idx(paths[0], display_path(paths[0]), ctx.span(key), ctx.read_limit, IMAGES_MAGIC)
    y = read_idx(paths[1], display_path(paths[1]), ctx.span(key), ctx.read_limit, LABELS_MAGIC)
    if len(x) != len(y):
        raise error("E073", f"{display_path(paths[0])} holds {len(x):,} images but {display_path(paths[1])} "
                    f"holds {len(y):,} labels", ctx.span(key), "the two files of a split must match")
    return x, y


def read_idx_dir(directory: str, ctx: SourceContext, key: str = "path", need_test: bool = False,
                 from_spec: bool = True) -> Raw:
    """`from_spec`: the directory is named in the spec, so CI mode confines the files in it."""
    _need_dir(directory, ctx, key)
    test = None
    if need_test or has_idx_pair(directory, "test"):
        test = read_idx_pair(directory, "test", ctx, key, from_spec)
    return Raw(read_idx_pair(directory, "train", ctx, key, from_spec), test, origin={"train": directory})


def read_idx_split(directory: str, ctx: SourceContext, key: str) -> tuple:
    """One split (a separate validation set): the training pair if present, else the t10k pair."""
    _need_dir(directory, ctx, key)
    return read_idx_pair(directory, "test" if not has_idx_pair(directory, "train") and
                         has_idx_pair(directory, "test") else "train", ctx, key)


def _need_dir(directory: str, ctx: SourceContext, key: str) -> None:
    if not os.path.isdir(directory):
        raise error("E071", f"data directory not found: {display_path(directory)}", ctx.span(key),
                    "the path is relative to the spec's directory")


# --- .npz archives -----------------------------------------------------------

def _need_file(path: str, ctx: SourceContext, key: str) -> None:
    """A data file must be a regular file: a device or pipe could hang or flood the read (checked by
    stat, before anything opens it)."""
    if os.path.isfile(path):
        return
    shown = display_path(path)
    if os.path.exists(path):
        what = "a directory" if os.path.isdir(path) else "not a regular file (a device, pipe or socket)"
        raise error("E003", f"{shown} is {what}", ctx.span(key), "give the path of a .npz file")
    raise error("E071", f"data file not found: {shown}", ctx.span(key), "the path is relative to the spec")


def _check_unpacked_size(path: str, ctx: SourceContext, key: str) -> None:
    """The archive's arrays, unpacked, must fit the read limit (a small compressed .npz can unpack to
    gigabytes): the zip directory states each member's size before anything is inflated."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            unpacked = sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, OSError, EOFError):
        return  # np.load reports what is wrong with the file
    if unpacked > ctx.read_limit:
        raise error("E072", f"{display_path(path)} holds more than {ctx.read_limit:,} bytes once decompressed "
                    f"({unpacked:,})", ctx.span(key), "this is more than the memory budget allows")


def read_npz(path: str, ctx: SourceContext, key: str, splits=("train", "test")) -> dict:
    """The named splits' (x, y) pairs; `val` is optional."""
    import zipfile

    shown = display_path(path)
    _need_file(path, ctx, key)
    ctx.confine(path, key)
    _check_unpacked_size(path, ctx, key)
    try:
        with np.load(path, allow_pickle=False) as archive:
            present = set(archive.files)
            wanted = [f"{a}_{s}" for s in splits for a in ("x", "y")]
            missing = [k for k in wanted if k not in present]
            if missing:
                raise error("E072", f"{shown} has no array{'s' if len(missing) > 1 else ''} "
                            f"{', '.join(missing)} (it has: {', '.join(sorted(present)) or 'nothing'})",
                            ctx.span(key), "an npz data set holds x_train, y_train, x_test, y_test "
                            "(and optionally x_val, y_val)")
            keys = wanted + [k for k in ("x_val", "y_val") if k in present and "val" not in splits]
            arrays = {k: archive[k] for k in keys}
        stray = [k for k, v in arrays.items() if not isinstance(v, np.ndarray)]  # numpy hands those over as bytes
        if stray:
            raise error("E072", f"{shown}: its member {stray[0]}.npy is not a .npy array", ctx.span(key),
                        "write it with numpy.savez or numpy.savez_compressed")
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:
        raise error("E072", f"{shown} is not a readable .npz archive of plain arrays ({type(exc).__name__})",
                    ctx.span(key), "write it with numpy.savez or numpy.savez_compressed, without Python "
                    "objects") from None
    if ("x_val" in arrays) != ("y_val" in arrays):
        raise error("E072", f"{shown} has only one of x_val and y_val", ctx.span(key), "give both or neither")
    result = {}
    for split in ("train", "test", "val"):
        if f"x_{split}" in arrays:
            result[split] = (arrays[f"x_{split}"], arrays[f"y_{split}"])
            if len(result[split][0]) != len(result[split][1]):
                raise error("E073", f"{shown}: x_{split} holds {len(result[split][0]):,} examples but y_{split} "
                            f"holds {len(result[split][1]):,} labels", ctx.span(key))
    return result


def read_npz_split(path: str, ctx: SourceContext, key: str) -> tuple:
    """A separate validation archive: x_val/y_val if present, else x_train/y_train."""
    import zipfile

    _need_file(path, ctx, key)
    ctx.confine(path, key)
    try:
        with np.load(path, allow_pickle=False) as archive:
            split = "val" if "x_val" in archive.files else "train"
    except (ValueError, OSError, zipfile.BadZipFile, EOFError):
        split = "val"  # read_npz reports what is wrong with the file
    return read_npz(path, ctx, key, (split,))[split]


# --- image folders -----------------------------------------------------------

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm")
PIL_MODES = {1: "L", 3: "RGB", 4: "RGBA"}


def read_folder(directory: str, ctx: SourceContext, key: str = "path") -> Raw:
    _need_dir(directory, ctx, key)
    train_dir = os.path.join(directory, "train")
    if not os.path.isdir(train_dir):
        raise error("E071", f"{display_path(directory)} has no `train` directory", ctx.span(key),
                    "a folder data set is train/<class>/*.png (and test/<class>/...)")
    classes = _class_names(train_dir, ctx, key)
    raw = Raw(read_image_split(train_dir, classes, ctx, key, training=True), classes=classes,
              origin={"train": train_dir})
    test_dir = os.path.join(directory, "test")
    if os.path.isdir(test_dir):
        raw.test = read_image_split(test_dir, classes, ctx, key)
    return raw


def _class_names(directory: str, ctx: SourceContext, key: str) -> list:
    classes = sorted(e.name for e in os.scandir(directory) if e.is_dir() and not e.name.startswith("."))
    if not classes:
        raise error("E073", f"{display_path(directory)} has no class directories", ctx.span(key),
                    "put each class's images in a directory named after the class: train/cat/1.png")
    return classes


def read_image_split(directory: str, classes: list, ctx: SourceContext, key: str, training: bool = False) -> tuple:
    """Images under directory/<class>/, labelled by the class's index in `classes` (sorted names).
    Every training class needs images; a test or validation set may lack some classes."""
    Image = _pillow(ctx, key)
    found = _class_names(directory, ctx, key)
    unknown = [c for c in found if c not in classes]
    if unknown:
        raise error("E073", f"{display_path(directory)} has class {', '.join(unknown)}, which the training set "
                    f"does not have (it has {', '.join(classes)})", ctx.span(key))
    files, labels = [], []
    for label, name in enumerate(classes):
        class_dir = os.path.join(directory, name)
        if not os.path.isdir(class_dir):
            continue
        images = sorted(e.path for e in os.scandir(class_dir)
                        if e.is_file() and e.name.lower().endswith(IMAGE_SUFFIXES) and not e.name.startswith("."))
        if not images and training:
            raise error("E073", f"class directory {display_path(class_dir)} holds no images", ctx.span(key),
                        f"image files end in {', '.join(IMAGE_SUFFIXES)}")
        files += images
        labels += [label] * len(images)
    mode = PIL_MODES.get(ctx.channels)
    if mode is None:
        raise error("E074", f"images are decoded as grayscale, RGB or RGBA, but the input has {ctx.channels} "
                    "channels", ctx.span(key), "declare 1, 3 or 4 channels for image folders")
    pixels, first_size = [], None
    for path in files:  # decoding is per image by nature; everything after it is vectorized
        ctx.confine(path, key)
        try:
            with Image.open(path) as image:
                array = np.asarray(image.convert(mode))
        except (OSError, ValueError, Image.DecompressionBombError) as exc:
            raise error("E072", f"cannot decode image {display_path(path)} ({type(exc).__name__})",
                        ctx.span(key)) from None
        if first_size is None:
            first_size = (array.shape, path)
        elif array.shape != first_size[0]:
            raise error("E073", f"image {display_path(path)} is {_hw(array.shape)} but "
                        f"{display_path(first_size[1])} is {_hw(first_size[0])}", ctx.span(key),
                        "all images of a folder data set must have one size")
        pixels.append(array if array.ndim == 3 else array[:, :, None])
    if not pixels:
        raise error("E073", f"{display_path(directory)} holds no images", ctx.span(key))
    return np.stack(pixels), np.asarray(labels, np.int64)


def _hw(shape) -> str:
    return f"{shape[1]}x{shape[0]}"


def _pillow(ctx: SourceContext, key: str):
    try:
        from PIL import Image
    except ImportError:
        raise error("E098", "the `folder` data set decodes images with Pillow, which is not installed",
                    ctx.span("dataset", key), "pip install pillow") from None
    return Image
