"""Where MNIST comes from: the directories a user points at, the cache, the download, the bundled sample."""

from __future__ import annotations

import os

import numpy as np

from specc.diagnostics import error
from specc.parser.extends import display_path
from specc.train.download import download_mnist, mnist_cache_dir
from specc.train.sources import IDX_PAIRS, Raw, SourceContext, find_file, read_idx_dir

SAMPLE_FILE = "mnist_sample.npz"


def mnist_places(ctx: SourceContext, path: str | None, data_dir: str | None) -> list:
    """(directory, why it is looked at), in order: `path`, --data, SPECC_DATA_DIR, the cache."""
    places = []
    if path:
        places.append((ctx.resolve(path, "path"), "training.data.path"))
    if data_dir:
        places.append((os.path.abspath(data_dir), "--data"))
    if os.environ.get("SPECC_DATA_DIR"):
        places.append((os.path.abspath(os.environ["SPECC_DATA_DIR"]), "SPECC_DATA_DIR"))
    return places + [(mnist_cache_dir(), "cache")]


def _candidates(directory: str, why: str) -> list:
    # A data root may hold several data sets: MNIST is then in its mnist/ subdirectory.
    return [directory] if why == "cache" else [directory, os.path.join(directory, "mnist")]


def _complete(directory: str) -> bool:
    return all(find_file(directory, stem) for pair in IDX_PAIRS.values() for stem in pair)


def load_mnist(ctx: SourceContext, path: str | None, data_dir: str | None) -> Raw:
    """The full MNIST (60,000 training and 10,000 test images), downloading it into the cache if need be."""
    places = mnist_places(ctx, path, data_dir)
    for directory, why in places:
        for candidate in _candidates(directory, why):
            if _complete(candidate):
                return read_idx_dir(candidate, ctx, "path" if why == "training.data.path" else "dataset",
                                    need_test=True, from_spec=why == "training.data.path")
    looked = ", ".join(f"{display_path(d)} ({why})" for d, why in places)
    if os.environ.get("SPECC_OFFLINE", "") not in ("", "0"):
        raise error("E071", "MNIST not found: looked for train-images-idx3-ubyte[.gz] and the three other files "
                    f"in {looked} (and mnist/ below each but the cache); downloading is off (SPECC_OFFLINE)",
                    ctx.span("dataset"), "pass --data DIR or set SPECC_DATA_DIR to a directory with the four "
                    "MNIST files, or unset SPECC_OFFLINE to download them")
    cache = download_mnist(mnist_cache_dir(), span=ctx.span("dataset"), looked=looked)
    return read_idx_dir(cache, ctx, "dataset", need_test=True, from_spec=False)


def sample_path() -> str:
    from importlib import resources

    return str(resources.files("specc.train").joinpath("mnist_sample", SAMPLE_FILE))


def load_mnist_sample(ctx: SourceContext) -> Raw:
    """The small class-balanced MNIST subset shipped in the package (see mnist_sample/README.md)."""
    path = sample_path()
    if not os.path.isfile(path):
        raise error("E071", f"the bundled MNIST sample is missing from this installation ({path})",
                    ctx.span("dataset"), "reinstall specc, or use `dataset: mnist`")
    with np.load(path, allow_pickle=False) as archive:
        return Raw((archive["x_train"], archive["y_train"]), (archive["x_test"], archive["y_test"]),
                   origin={"train": "the bundled MNIST sample"})
