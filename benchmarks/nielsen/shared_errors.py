"""Which MNIST test images several trained runs get wrong: how much their errors overlap, and what the mean of
their probabilities gets right.

    python benchmarks/nielsen/shared_errors.py RUN_DIR ... [--data DIR] [--threads 1] [--json FILE]

Each RUN_DIR is a finished `specc train` run of one network (its spec.yaml and the kept model.safetensors).
Prints each run's test errors, how many test images exactly k of the runs misclassify (k = 1 ... runs), and
the errors of the ensemble that averages the runs' probabilities, as `specc eval` computes it for an
ensemble with `combine: mean`. When many images are wrong in every run, more runs of the same recipe cannot
fix them: the ensemble is bounded by those.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

from specc.compiler import compile_spec  # noqa: E402
from specc.limits import DEFAULT_LIMITS  # noqa: E402
from specc.train.evaluate import host_tensor, load_predictor  # noqa: E402
from specc.train.feed import load_arrays  # noqa: E402
from specc.train.losses import probabilities as as_probabilities  # noqa: E402

CHUNK = 1000  # test images per forward pass


def probabilities(run_dir: str, data: str | None) -> tuple[np.ndarray, np.ndarray]:
    """(probabilities (N, classes), labels (N,)) of the run's kept weights on its spec's test split."""
    compiled = compile_spec(os.path.join(run_dir, "spec.yaml"), DEFAULT_LIMITS)
    output = next(iter(compiled.graph.outputs.values()))
    arrays = load_arrays(compiled, data, DEFAULT_LIMITS, output.type.shape[-1])
    predict, kind, _ = load_predictor(compiled.graph, os.path.join(run_dir, "model.safetensors"))
    x = host_tensor(arrays.test_x)
    with torch.no_grad():
        probs = torch.cat([as_probabilities(predict(x[i:i + CHUNK]), kind) for i in range(0, len(x), CHUNK)])
    return probs.numpy(), np.asarray(arrays.test_y)


def overlap(probs: list[np.ndarray], labels: np.ndarray) -> dict:
    wrong = np.stack([p.argmax(1) != labels for p in probs])
    times = wrong.sum(0)
    return {"errors": [int(w.sum()) for w in wrong],
            "misclassified_by": {k: int((times == k).sum()) for k in range(1, len(probs) + 1)},
            "ensemble_errors": int((np.mean(probs, axis=0).argmax(1) != labels).sum()),
            "images": int(len(labels))}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+", metavar="RUN_DIR")
    p.add_argument("--data", help="the directory of the data set's files (as `specc eval --data`)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", help="also write the figures to this file")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    probs, labels = [], None
    for run in args.runs:
        run_probs, run_labels = probabilities(run, args.data)
        if labels is not None and not np.array_equal(labels, run_labels):
            sys.exit(f"{run}: its test split is not the first run's")
        probs.append(run_probs)
        labels = run_labels
    figures = {"runs": args.runs, **overlap(probs, labels)}
    n = figures["images"]
    for run, errors in zip(args.runs, figures["errors"]):
        print(f"{run}: {errors} errors ({100 * (1 - errors / n):.2f}%)")
    print("test images misclassified by exactly k runs:",
          ", ".join(f"k={k}: {c}" for k, c in figures["misclassified_by"].items()))
    e = figures["ensemble_errors"]
    print(f"mean of the {len(probs)} runs' probabilities: {e} errors ({100 * (1 - e / n):.2f}%)")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(figures, handle, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
