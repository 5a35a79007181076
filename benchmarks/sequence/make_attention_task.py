"""The synthetic "digit after the marker" task that specs/attention_task.yaml (and the LSTM and transformer
examples) train on: a task a model can only solve by finding one position in the sequence.

    python benchmarks/sequence/make_attention_task.py [--out specs/data/attention_task.npz] [--seed 0]

Each example is a sequence of LENGTH token ids: digits 0..9 written as tokens 1..10, and exactly one MARKER
token (11) at a random position p < LENGTH - 1. The label is the digit right after the marker, at p + 1.
Every other position holds a random digit, so the digits a model sees elsewhere say nothing about the
answer: averaging over the sequence gives chance (10%); the model must attend to p + 1. Token 0 is
never used (kept for padding).

The archive holds x_train (TRAIN, LENGTH) and x_test (TEST, LENGTH) as uint8 token ids (the loader
casts them to the spec's int64), y_train and y_test as uint8 labels 0..9; `training.data` reads it as
`{dataset: npz, path: data/attention_task.npz}`. The same seed gives the same file, byte for byte.
"""

from __future__ import annotations

import argparse
import io
import os
import zipfile

import numpy as np

LENGTH = 24
MARKER = 11
VOCAB = 12  # ids 0..11
TRAIN, TEST = 20_000, 2_000
DEFAULT_OUT = os.path.join(os.path.dirname(__file__), "..", "..", "specs", "data", "attention_task.npz")


def make_split(rng: np.random.Generator, count: int) -> tuple[np.ndarray, np.ndarray]:
    x = rng.integers(1, 11, size=(count, LENGTH), dtype=np.uint8)      # digits 0..9 as tokens 1..10
    marker = rng.integers(0, LENGTH - 1, size=count)                   # the answer sits at marker + 1
    rows = np.arange(count)
    x[rows, marker] = MARKER
    y = (x[rows, marker + 1] - 1).astype(np.uint8)
    return x, y


def write_npz(path: str, arrays: dict) -> None:
    """numpy.savez_compressed without its timestamps: the same arrays give the same bytes."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, array in arrays.items():
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.ascontiguousarray(array), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, buffer.getvalue())


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=DEFAULT_OUT, help="the .npz to write (default: specs/data/attention_task.npz)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    x_train, y_train = make_split(rng, TRAIN)
    x_test, y_test = make_split(rng, TEST)
    write_npz(args.out, {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test})
    print(f"{os.path.relpath(args.out)}: {TRAIN:,} training and {TEST:,} test sequences of {LENGTH} tokens "
          f"(vocabulary {VOCAB}, 10 classes, seed {args.seed})")


if __name__ == "__main__":
    main()
