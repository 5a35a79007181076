"""CPU and wall time of specc's training step for a spec: what an epoch costs, measured in seconds, not minutes.

    python benchmarks/nielsen/step_time.py specs/mnist_best.yaml [--threads 2] [--steps 30]

Runs `Trainer.step` (forward, loss, backward, regularization, optimizer update; augmentation of the batch
first, as the training loop does) on random images shaped like the spec's input, after 3 uncounted steps,
and reports per mini-batch the process CPU time and the wall time, and what they make for an epoch of
MNIST (the 60,000 training images less the spec's validation hold-out, five times as many with `expand`).
On a machine shared with other work the CPU time of a one-thread run is the steady figure: the wall time
moves with the load, and with several threads so does the CPU time (threads waiting for each other spin).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

from specc.compiler import compile_spec  # noqa: E402
from specc.limits import DEFAULT_LIMITS  # noqa: E402
from specc.train.config import training_config  # noqa: E402
from specc.train.distributed import SINGLE  # noqa: E402
from specc.train.feed import Arrays, batch_generator  # noqa: E402
from specc.train.loop import Trainer  # noqa: E402
from specc.train.session import Session  # noqa: E402

MNIST_TRAIN = 60_000
WARMUP = 3


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("spec")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--steps", type=int, default=30)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)

    compiled = compile_spec(args.spec, DEFAULT_LIMITS)
    cfg = training_config(compiled.spec.training)
    first = compiled.spec.inputs[0]
    batch = cfg.batch_size
    rng = np.random.default_rng(0)
    n = batch * (args.steps + WARMUP)
    x = rng.integers(0, 256, (n,) + tuple(first.shape)).astype(first.dtype)
    y = rng.integers(0, next(iter(compiled.graph.outputs.values())).type.shape[-1], n)
    arrays = Arrays("random", x, y, x[:batch], y[:batch], None, None, 10)
    trainer = Trainer(Session(compiled, cfg, arrays, SINGLE, DEFAULT_LIMITS), arrays, None, progress_bar=False)

    def steps(first_step: int, count: int) -> None:
        for step in range(first_step, first_step + count):
            rows = slice(step * batch, (step + 1) * batch)
            xb, yb = torch.from_numpy(x[rows]), torch.from_numpy(y[rows])
            if trainer.augmenter is not None:
                xb = trainer.augmenter(xb.float(), batch_generator(cfg.seed, 0, step, 0))
            trainer.step(xb, yb, 1.0)

    steps(0, WARMUP)
    cpu, wall = time.process_time(), time.perf_counter()
    steps(WARMUP, args.steps)
    cpu, wall = (time.process_time() - cpu) / args.steps, (time.perf_counter() - wall) / args.steps
    validation = (cfg.data or {}).get("validation", 10_000)
    images = MNIST_TRAIN - (validation if isinstance(validation, int) else 0)
    if any(step.op == "expand" for step in compiled.spec.augment):
        images *= 5  # the training set and its four one-pixel shifts
    per_epoch = images // batch
    print(f"{os.path.basename(args.spec)}, {args.threads} thread{'s' if args.threads != 1 else ''}, mini-batch "
          f"{batch}: {cpu * 1e3:.1f} ms CPU and {wall * 1e3:.1f} ms wall per mini-batch; an MNIST epoch "
          f"({per_epoch:,} mini-batches): {cpu * per_epoch:.0f} s CPU, {wall * per_epoch:.0f} s wall")
    return 0


if __name__ == "__main__":
    sys.exit(main())
