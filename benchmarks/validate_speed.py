"""Cold-start cost of `specc validate` and `specc inspect` against `import torch`, side by side.

    python benchmarks/validate_speed.py [--runs 10]

Each command runs in a fresh interpreter, alternating so drift hits both
equally; medians and the median of per-pair ratios are printed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SPEC = os.path.join(ROOT, "specs", "resnet_small.yaml")
COMMANDS = {
    "specc validate": [sys.executable, "-m", "specc", "validate", SPEC],
    "specc inspect": [sys.executable, "-m", "specc", "inspect", SPEC],
    "import torch": [sys.executable, "-c", "import torch"],
}


def timed(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, cwd=ROOT)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    for cmd in COMMANDS.values():  # warm the page cache
        timed(cmd)
    samples: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for _ in range(args.runs):
        for name, cmd in COMMANDS.items():
            samples[name].append(timed(cmd))
    base = samples["import torch"]
    print(f"{'command':<16} {'median s':>9} {'min s':>7}  ratio to `import torch` (median of pairs)")
    for name, values in samples.items():
        ratio = statistics.median(v / b for v, b in zip(values, base))
        print(f"{name:<16} {statistics.median(values):9.3f} {min(values):7.3f}  {ratio:.3f}")


if __name__ == "__main__":
    main()
