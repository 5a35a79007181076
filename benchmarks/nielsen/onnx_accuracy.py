"""Test accuracy of built models (`specc build` directories) on the MNIST test set, with ONNX Runtime: what a
built model, `build.tta` views included, gets right.

    python benchmarks/nielsen/onnx_accuracy.py BUILD_DIR ... --data DIR [--threads 1] [--json FILE]

DIR holds the MNIST IDX files (t10k-images-idx3-ubyte[.gz], t10k-labels-idx1-ubyte[.gz]). Prints one line per
model: accuracy, errors and seconds; `--json` writes the same as a list.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

from specc.diagnostics import Span  # noqa: E402
from specc.train.idx import read_idx  # noqa: E402


def test_split(data_dir: str) -> tuple:
    def read(stem: str) -> np.ndarray:
        for name in (stem, stem + ".gz"):
            path = os.path.join(data_dir, name)
            if os.path.isfile(path):
                return read_idx(path, path, Span(path, 0), 1 << 30)
        raise SystemExit(f"onnx_accuracy: {data_dir} has no {stem}[.gz]")

    images = read("t10k-images-idx3-ubyte")
    return images.reshape(len(images), 1, 28, 28), read("t10k-labels-idx1-ubyte")


def accuracy(build_dir: str, x: np.ndarray, y: np.ndarray, threads: int) -> dict:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(os.path.join(build_dir, "model.onnx"), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    start = time.perf_counter()
    scores = np.concatenate([session.run(None, {name: x[i:i + 500]})[0] for i in range(0, len(x), 500)])
    errors = int((scores.argmax(axis=1) != y).sum())
    with open(os.path.join(build_dir, "manifest.json")) as handle:
        manifest = json.load(handle)
    return {"model": build_dir, "accuracy": 1 - errors / len(y), "errors": errors, "images": len(y),
            "seconds": round(time.perf_counter() - start, 1), "tta": manifest.get("tta"),
            "weights_sha256": manifest.get("weights", {}).get("sha256")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="+", metavar="BUILD_DIR")
    parser.add_argument("--data", required=True, metavar="DIR")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", metavar="FILE")
    args = parser.parse_args()
    x, y = test_split(args.data)
    rows = []
    for model in args.models:
        row = accuracy(model, x, y, args.threads)
        rows.append(row)
        print(f"{model}: {row['accuracy']:.2%} ({row['errors']} errors) in {row['seconds']} s", flush=True)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(rows, handle, indent=1)


if __name__ == "__main__":
    main()
