"""Make specc's bundled MNIST sample: a class-balanced, seeded subset of the real MNIST files.

    python tools/make_mnist_sample.py --mnist DIR [--out specc/train/mnist_sample/mnist_sample.npz]

DIR holds the four MNIST IDX files (gzipped or not); SPECC_MNIST_DIR is the
default. The same files and seed always give the same sample.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from specc.diagnostics import Span  # noqa: E402
from specc.train.idx import IMAGES_MAGIC, LABELS_MAGIC, read_idx  # noqa: E402
from specc.train.sources import find_file  # noqa: E402

SEED = 20240601
TRAIN_PER_CLASS, TEST_PER_CLASS = 200, 50
DEFAULT_OUT = os.path.join(ROOT, "specc", "train", "mnist_sample", "mnist_sample.npz")


def read_pair(directory: str, prefix: str):
    arrays = []
    for stem, magic in ((f"{prefix}-images-idx3-ubyte", IMAGES_MAGIC), (f"{prefix}-labels-idx1-ubyte", LABELS_MAGIC)):
        path = find_file(directory, stem)
        if path is None:
            sys.exit(f"{stem}[.gz] not found in {directory}")
        arrays.append(read_idx(path, path, Span(path), 1 << 30, magic))
    return arrays


def balanced(labels: np.ndarray, per_class: int, rng) -> np.ndarray:
    """`per_class` indices of each class, drawn without replacement, in the files' original order."""
    chosen = [rng.choice(np.flatnonzero(labels == c), per_class, replace=False) for c in range(10)]
    return np.sort(np.concatenate(chosen))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mnist", default=os.environ.get("SPECC_MNIST_DIR"), help="directory of the MNIST files")
    parser.add_argument("--out", default=DEFAULT_OUT)
    args = parser.parse_args()
    if not args.mnist:
        sys.exit("pass --mnist DIR or set SPECC_MNIST_DIR")
    rng = np.random.default_rng(SEED)
    x_train, y_train = read_pair(args.mnist, "train")
    x_test, y_test = read_pair(args.mnist, "t10k")
    train_idx, test_idx = balanced(y_train, TRAIN_PER_CLASS, rng), balanced(y_test, TEST_PER_CLASS, rng)
    np.savez_compressed(args.out, x_train=x_train[train_idx], y_train=y_train[train_idx],
                        x_test=x_test[test_idx], y_test=y_test[test_idx],
                        train_index=train_idx.astype(np.int32), test_index=test_idx.astype(np.int32))
    print(f"wrote {args.out}: {len(train_idx)} training and {len(test_idx)} test images, "
          f"{os.path.getsize(args.out) / 1e3:.0f} kB")


if __name__ == "__main__":
    main()
