"""What `training.bn_recalibration` would have changed in a finished run, epoch by epoch, without training again.

Recomputing batchnorm's statistics for evaluation leaves the training run itself as it was (same weights,
same order, same random draws), so a run trained without the key, whose checkpoint was copied after each
epoch, can be evaluated both ways afterwards:

    # while `specc train` (or run.py) trains SPEC into RUN_DIR: copy each epoch's checkpoint
    python benchmarks/nielsen/recalibrated_epochs.py watch RUN_DIR SNAPSHOTS
    # afterwards: validation and test accuracy of every epoch, with the live statistics and recomputed
    python benchmarks/nielsen/recalibrated_epochs.py evaluate SPEC SNAPSHOTS --images 10000 --data $SPECC_MNIST_DIR

`evaluate` prints one line per epoch and the epoch each way keeps (the best validation accuracy, a tie
keeping the later epoch, as `specc train` does), and writes SNAPSHOTS/recalibrated-N.json.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import re
import shutil
import sys
import time


def watch(run_dir: str, snapshots: str) -> None:
    """Copy RUN_DIR's checkpoint to SNAPSHOTS/epochN.safetensors each time an epoch ends, until the run finishes."""
    os.makedirs(snapshots, exist_ok=True)
    state_file, last = os.path.join(run_dir, "checkpoint.json"), None
    while True:
        try:
            with open(state_file) as handle:
                state = json.load(handle)
        except (OSError, ValueError):  # not written yet, or being replaced
            state = None
        if state and state["step"] == 0 and not state.get("partial") and state["epoch"] != last:
            # the safetensors file is written before the json document that points at it
            shutil.copy(os.path.join(run_dir, "checkpoint.safetensors"),
                        os.path.join(snapshots, f"epoch{state['epoch']}.safetensors"))
            last = state["epoch"]
        if state and state.get("finished"):
            return
        time.sleep(5)


def evaluate(spec_path: str, snapshots: str, images: int, data_dir: str | None) -> list:
    import torch
    from safetensors.torch import load_file

    from specc.compiler import compile_spec
    from specc.limits import DEFAULT_LIMITS
    from specc.train.bn_stats import recalibrate, recalibration_images
    from specc.train.device import torch_model
    from specc.train.evaluate import evaluate as evaluate_split, host_tensor, module_predictor
    from specc.train.feed import load_arrays

    compiled = compile_spec(spec_path, DEFAULT_LIMITS)
    graph, cpu = compiled.graph, torch.device("cpu")
    output = next(iter(graph.outputs))
    classes = graph.outputs[output].type.shape[-1]
    arrays = load_arrays(compiled, data_dir, DEFAULT_LIMITS, classes)
    splits = {"val": (host_tensor(arrays.val_x), host_tensor(arrays.val_y)),
              "test": (host_tensor(arrays.test_x), host_tensor(arrays.test_y))}
    sample = recalibration_images(host_tensor(arrays.train_x), images, compiled.spec.seed)

    def accuracy(module, split):
        x, y = splits[split]
        return evaluate_split(module_predictor(module, output), x, y, None, classes).results()["accuracy"]

    def epoch_of(path):
        return int(re.search(r"epoch(\d+)\.safetensors$", path).group(1))

    rows = []
    for path in sorted(glob.glob(os.path.join(snapshots, "epoch*.safetensors")), key=epoch_of):
        tensors = load_file(path)
        # the averaged weights (under `ema`) with the live model's buffers, as `specc train` evaluates them
        state = {k[6:]: v.numpy() for k, v in tensors.items() if k.startswith("model.")}
        state.update({k[4:]: v.numpy() for k, v in tensors.items() if k.startswith("ema.") and "running_" not in k})
        module = torch_model(graph, state, cpu)
        live = {split: accuracy(module, split) for split in splits}
        started = time.perf_counter()
        recalibrate(module, sample, cpu)
        seconds = time.perf_counter() - started
        recomputed = {split: accuracy(module, split) for split in splits}
        rows.append({"epoch": epoch_of(path), "live": live, "recalibrated": recomputed, "seconds": round(seconds, 2)})
        print(f"epoch {rows[-1]['epoch']:2d}  live statistics: val {live['val']:.2%} test {live['test']:.2%}   "
              f"recomputed ({seconds:.1f} s): val {recomputed['val']:.2%} test {recomputed['test']:.2%}", flush=True)
    for way in ("live", "recalibrated"):
        kept = max(reversed(rows), key=lambda r: r[way]["val"])  # reversed: a tie keeps the later epoch
        print(f"kept with {way} statistics: epoch {kept['epoch']}, test {kept[way]['test']:.2%}")
    with open(os.path.join(snapshots, f"recalibrated-{images}.json"), "w") as handle:
        json.dump(rows, handle, indent=1)
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    w = commands.add_parser("watch", help="copy a running run's checkpoint after every epoch")
    w.add_argument("run_dir")
    w.add_argument("snapshots")
    e = commands.add_parser("evaluate", help="evaluate every copied epoch with live and recomputed statistics")
    e.add_argument("spec")
    e.add_argument("snapshots")
    e.add_argument("--images", type=int, default=10000)
    e.add_argument("--data", default=None, help="the data directory (default: SPECC_DATA_DIR, then the cache)")
    e.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    if args.command == "watch":
        watch(args.run_dir, args.snapshots)
    else:
        import torch

        torch.set_num_threads(args.threads)
        evaluate(args.spec, args.snapshots, args.images, args.data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
