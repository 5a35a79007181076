"""One training epoch through `specc train`'s loop against the same network written by hand in PyTorch.

    python benchmarks/train_overhead.py [--data DIR] [--examples 10000] [--rounds 5] [--threads 1] [--batch 10 128]
                                        [--method interleaved|epochs]

The network is specs/nielsen_conv1.yaml (conv 20@5x5 sigmoid, max-pool 2, dense 100 sigmoid, dense 10,
softmax) trained as network3.py does: mini-batches of 10, plain SGD at 0.1, log-likelihood cost. The hand-written
side writes it as PyTorch users do: the module ends at the last layer's scores, the loss is `F.cross_entropy` on
them, and the softmax is applied only to predict; specc trains a softmax output on its scores the same way
(SpeccModule.train_on_scores), so both sides do the same arithmetic and end with bit-identical weights, which the
script checks.
`--batch` times other mini-batch sizes instead, one configuration after the other (e.g. `--batch 10 128`:
network3.py's 10, where the Python work of each step shows most, and the 128 of specs/mnist_best.yaml).
Both sides get the same MNIST examples (raw float pixels; the /255 is in the network), the same initial
weights, the same shuffled order and the same batch size, in one process, one thread (set --threads).
specc's side is its real loop (`Trainer.train_epoch`: schedule, loss rule, progress bar, running loss
and accuracy); the hand-written side is the loop a PyTorch user writes, with a running loss.

Two ways to time them, after one warm-up epoch each:

- `interleaved` (the default): in each round both sides train one epoch in step with each other. specc's real
  loop runs, and each of its mini-batches is paired with one mini-batch of the hand-written loop, run just
  before it in odd rounds and just after it in even ones. The hand-written steps are timed on their own clock
  and taken out of specc's epoch time. A speed change of the machine then hits both sides within
  milliseconds of each other: on virtual machines whose speed moves by 30% from one second to the next,
  this measures a ratio to within about 1% where whole epochs scatter by 20%.
- `epochs`: rounds alternate whole epochs, specc, hand-written / hand-written, specc (ABBA).

Reported: each side's median seconds per epoch, the median of the per-round ratios specc / hand-written and
their range, and, for `epochs`, the ratio of the fastest epochs and the same figures in process CPU time.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

import torch
from torch import nn

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
SPEC = os.path.join(ROOT, "benchmarks", "train_overhead.yaml")


def load(data_dir: str | None, examples: int):
    from specc.compiler import compile_spec
    from specc.limits import DEFAULT_LIMITS
    from specc.train.feed import Arrays, load_arrays

    compiled = compile_spec(SPEC, DEFAULT_LIMITS)
    if data_dir is None and not os.environ.get("SPECC_MNIST_DIR"):
        print("no --data DIR or SPECC_MNIST_DIR: using the bundled MNIST sample", file=sys.stderr)
        compiled.spec.training["data"] = {"dataset": "mnist-sample", "path": None, "validation": 0}
    arrays = load_arrays(compiled, data_dir or os.environ.get("SPECC_MNIST_DIR"), DEFAULT_LIMITS, 10)
    n = min(examples, len(arrays.train_y))
    return compiled, Arrays(arrays.name, arrays.train_x[:n], arrays.train_y[:n], None, None, None, None, 10)


def specc_trainer(compiled, arrays, batch: int):
    from specc.limits import DEFAULT_LIMITS
    from specc.train.config import training_config
    from specc.train.distributed import SINGLE
    from specc.train.loop import Trainer
    from specc.train.session import Session

    session = Session(compiled, training_config({**compiled.spec.training, "batch_size": batch}), arrays, SINGLE,
                      DEFAULT_LIMITS)
    return Trainer(session, arrays, None, progress_bar=True)


class HandWritten(nn.Module):
    """specs/nielsen_conv1.yaml in plain PyTorch."""

    def __init__(self, weights: dict):
        super().__init__()
        self.conv = nn.Conv2d(1, 20, 5)
        self.fc = nn.Linear(20 * 12 * 12, 100)
        self.out = nn.Linear(100, 10)
        with torch.no_grad():
            for layer, name in ((self.conv, "conv_1"), (self.fc, "dense_4"), (self.out, "dense_5")):
                layer.weight.copy_(torch.from_numpy(weights[f"{name}.weight"]))
                layer.bias.copy_(torch.from_numpy(weights[f"{name}.bias"]))

    def forward(self, x):
        x = x * (1 / 255)
        x = torch.max_pool2d(torch.sigmoid(self.conv(x)), 2)
        x = torch.sigmoid(self.fc(x.flatten(1)))
        scores = self.out(x)
        return scores if self.training else torch.softmax(scores, dim=-1)


class HandLoop:
    """The hand-written training loop, one mini-batch at a time: what `for step in range(...)` runs."""

    def __init__(self, model, optimizer, x, y, batch: int):
        self.model, self.optimizer, self.x, self.y, self.batch = model, optimizer, x, y, batch
        self.steps = len(y) // batch
        self.order, self.position, self.running = None, 0, 0.0

    def start(self, epoch: int) -> None:
        from specc.train.feed import epoch_order

        self.order = epoch_order(0, epoch, len(self.y))  # the order specc's loop draws (seed 0)
        self.position, self.running = 0, 0.0

    def step(self) -> None:
        step, batch = self.position, self.batch
        idx = self.order[step * batch:(step + 1) * batch]
        self.optimizer.zero_grad()
        loss = nn.functional.cross_entropy(self.model(self.x[idx]), self.y[idx])
        loss.backward()
        self.optimizer.step()
        self.running += loss.item()
        self.position += 1

    def epoch(self, epoch: int) -> float:
        self.start(epoch)
        for _ in range(self.steps):
            self.step()
        return self.running


def minor_faults() -> int:
    """Page faults the process has taken so far (0 where the platform does not count them). A step whose
    temporaries make the C allocator hand memory back to the system and fetch it again pays for every page
    on each step: the count shows when that, rather than the arithmetic, is the difference."""
    try:
        import resource
    except ImportError:
        return 0
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def timed(fn) -> tuple[float, float, int]:
    """(wall seconds, CPU seconds, page faults) of one call."""
    wall, cpu, faults = time.perf_counter(), time.process_time(), minor_faults()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu, minor_faults() - faults


def compare(compiled, arrays, batch: int, rounds: int, threads: int, method: str) -> None:
    """Time `rounds` epochs of each side at one batch size and print the figures."""
    from specc.codegen.weights import init_weights

    trainer = specc_trainer(compiled, arrays, batch)
    model = HandWritten(init_weights(compiled.graph))
    hand = HandLoop(model, torch.optim.SGD(model.parameters(), lr=0.1), torch.from_numpy(arrays.train_x),
                    torch.from_numpy(arrays.train_y), batch)
    header = (f"{arrays.name}: {len(hand.y):,} examples, batch {batch}, {hand.steps:,} steps per epoch, "
              f"{threads} thread(s), {rounds} rounds, {method}")
    if method == "interleaved":
        rows = interleaved_rounds(trainer, hand, rounds)
        print(f"{header}, load average {os.getloadavg()[0]:.2f}")
        print(f"specc        {statistics.median(a for a, _ in rows):.3f} s/epoch")
        print(f"hand-written {statistics.median(b for _, b in rows):.3f} s/epoch")
        ratios = [a / b for a, b in rows]
        print(f"ratio specc / hand-written: {statistics.median(ratios):.3f} (median of the rounds; "
              f"{min(ratios):.3f} to {max(ratios):.3f})")
    else:
        epoch_rounds(trainer, hand, rounds, header)
    print(f"weights after {rounds + 1} epochs each: {same_weights(trainer, model)}")


def interleaved_rounds(trainer, hand: HandLoop, rounds: int) -> list:
    """(specc seconds, hand-written seconds) per round, the two loops' mini-batches taking turns."""
    own_step = trainer.step
    clock = {"hand": 0.0, "first": False}

    def hand_step():
        started = time.perf_counter()
        hand.step()
        clock["hand"] += time.perf_counter() - started

    def paired_step(x, y, scale):
        if clock["first"]:
            hand_step()
            return own_step(x, y, scale)
        result = own_step(x, y, scale)
        hand_step()
        return result

    trainer.train_epoch(0)
    hand.epoch(0)  # warm-up: first-call costs on both sides
    # The loop calls self.step: the instance attribute takes its place. The pairing's own few microseconds a step
    # (this wrapper, two clock reads) are counted to specc's side.
    trainer.step = paired_step
    rows = []
    try:
        for r in range(1, rounds + 1):
            hand.start(r)
            clock.update(hand=0.0, first=bool(r % 2))
            started = time.perf_counter()
            trainer.train_epoch(r)
            total = time.perf_counter() - started
            if hand.position != hand.steps:
                raise RuntimeError(f"the loops took {trainer.s.steps_per_epoch} and {hand.position} steps")
            rows.append((total - clock["hand"], clock["hand"]))
            print(f"batch {hand.batch}, round {r}: specc {rows[-1][0]:.3f}s | hand-written {rows[-1][1]:.3f}s | "
                  f"ratio {rows[-1][0] / rows[-1][1]:.4f}", file=sys.stderr)
    finally:
        trainer.step = own_step
    return rows


def epoch_rounds(trainer, hand: HandLoop, rounds: int, header: str) -> None:
    """Whole epochs in ABBA order; prints the figures."""
    def ours(epoch):
        return lambda: trainer.train_epoch(epoch)

    def theirs(epoch):
        return lambda: hand.epoch(epoch)

    timed(ours(0))
    timed(theirs(0))  # warm-up: first-call costs on both sides
    rows = []
    for r in range(1, rounds + 1):
        if r % 2:  # ABBA order: whatever favours the first (or second) of a pair hits both sides alike
            a, b = timed(ours(r)), timed(theirs(r))
        else:
            b, a = timed(theirs(r)), timed(ours(r))
        rows.append((a, b))
        print(f"batch {hand.batch}, round {r}: specc {a[0]:.2f}s wall {a[1]:.2f}s cpu | "
              f"hand-written {b[0]:.2f}s wall {b[1]:.2f}s cpu", file=sys.stderr)
    wall = statistics.median(a[0] / b[0] for a, b in rows)
    cpu = statistics.median(a[1] / b[1] for a, b in rows)
    print(f"{header}, load average {os.getloadavg()[0]:.2f}")
    print(f"specc        {statistics.median(a[0] for a, _ in rows):.3f} s/epoch wall, "
          f"{statistics.median(a[1] for a, _ in rows):.3f} s cpu")
    print(f"hand-written {statistics.median(b[0] for _, b in rows):.3f} s/epoch wall, "
          f"{statistics.median(b[1] for _, b in rows):.3f} s cpu")
    print(f"ratio specc / hand-written: {wall:.3f} (wall), {cpu:.3f} (cpu); of the fastest epochs: "
          f"{min(a[0] for a, _ in rows) / min(b[0] for _, b in rows):.3f} (wall), "
          f"{min(a[1] for a, _ in rows) / min(b[1] for _, b in rows):.3f} (cpu)")
    quartiles = statistics.quantiles((a[0] / b[0] for a, b in rows), n=4) if len(rows) > 1 else [wall] * 3
    print(f"per-round wall ratios: {min(a[0] / b[0] for a, b in rows):.3f} to {max(a[0] / b[0] for a, b in rows):.3f}, "
          f"middle half {quartiles[0]:.3f} to {quartiles[2]:.3f}")
    print(f"page faults per epoch (median): specc {statistics.median(a[2] for a, _ in rows):,.0f}, "
          f"hand-written {statistics.median(b[2] for _, b in rows):,.0f}")


def same_weights(trainer, model: "HandWritten") -> str:
    """Whether both sides, having trained the same epochs in the same order, hold the same weights: they do
    the same arithmetic, so anything but bit-identical means the comparison is not like for like."""
    ours = trainer.s.module.spec_state()
    worst = 0.0
    for layer, name in ((model.conv, "conv_1"), (model.fc, "dense_4"), (model.out, "dense_5")):
        for kind in ("weight", "bias"):
            theirs = getattr(layer, kind).detach().numpy()
            worst = max(worst, float(abs(ours[f"{name}.{kind}"] - theirs).max()))
    return "bit-identical" if worst == 0.0 else f"differ by up to {worst:.3g}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", metavar="DIR", help="directory with the MNIST IDX files (default: SPECC_MNIST_DIR)")
    parser.add_argument("--examples", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--method", choices=("interleaved", "epochs"), default="interleaved",
                        help="interleaved: the two loops' mini-batches take turns within each epoch (default); "
                             "epochs: whole epochs take turns")
    parser.add_argument("--batch", type=int, nargs="+", metavar="N",
                        help="mini-batch sizes to time, one configuration each (default: the spec's, 10)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    if args.batch and len(args.batch) > 1:
        # One process per configuration: timed after another configuration in the same process, the second
        # one's ratio moved by up to 15% (heap and cache state left by the first), which is not what a user's
        # one-run-per-process training sees.
        argv = ["--examples", str(args.examples), "--rounds", str(args.rounds), "--threads", str(args.threads),
                "--method", args.method]
        argv += ["--data", args.data] if args.data else []
        for batch in args.batch:
            code = subprocess.call([sys.executable, os.path.abspath(__file__), *argv, "--batch", str(batch)])
            if code:
                return code
        return 0
    compiled, arrays = load(args.data, args.examples)
    for batch in args.batch or [compiled.spec.training["batch_size"]]:
        if not 0 < batch <= len(arrays.train_y):
            parser.error(f"--batch {batch}: a mini-batch holds 1 to {len(arrays.train_y):,} examples")
        compare(compiled, arrays, batch, args.rounds, args.threads, args.method)
    return 0


if __name__ == "__main__":
    sys.exit(main())
