"""Small specs and an in-memory data set that train in well under a second (shared by tests/test_train_*.py).

Also a script: `python tests/train_fixtures.py SPEC RUN_DIR [--resume] [--pause SECONDS]` trains on the
same data in a fresh process (the resume test kills it part-way).
"""

from __future__ import annotations

import os
import sys
import textwrap
from dataclasses import dataclass

import numpy as np

CLASSES = 4


@dataclass
class Split:
    x: np.ndarray
    y: np.ndarray


@dataclass
class Dataset:
    name: str
    train: Split
    val: Split | None
    test: Split | None
    num_classes: int


def blobs(n: int, seed: int, shape=(1, 6, 6), noise: int = 80, signal: int = 150) -> Split:
    """Each class is a bright patch in its own corner of a noisy uint8 image: learnable in a few epochs
    (with more noise than signal, never perfectly)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, CLASSES, n)
    x = rng.integers(0, noise, (n,) + shape)
    h, w = shape[-2] // 2, shape[-1] // 2
    for i, label in enumerate(y):
        r, c = divmod(int(label), 2)
        x[i, ..., r * h:(r + 1) * h, c * w:(c + 1) * w] += signal
    return Split(x.clip(0, 255).astype(np.uint8), y.astype(np.int64))


def dataset(n_train: int = 256, n_val: int = 64, n_test: int = 64, shape=(1, 6, 6), **hardness) -> Dataset:
    return Dataset("blobs", blobs(n_train, 1, shape, **hardness), blobs(n_val, 2, shape, **hardness) if n_val else None,
                   blobs(n_test, 3, shape, **hardness), CLASSES)


NETWORKS = {
    "mlp": """
        network:
          - flatten
          - dense: {units: 16, activation: relu}
          - dense: 4
          - softmax
    """,
    "logits": """
        network:
          - flatten
          - dense: {units: 16, activation: relu}
          - dense: 4
    """,
    "dropout": """
        network:
          - flatten
          - dense: {units: 16, activation: relu}
          - dropout: 0.3
          - dense: 4
          - softmax
    """,
    "wide_conv": """
        network:
          - conv: {filters: 32, kernel: 3}
          - batchnorm
          - relu
          - conv: {filters: 32, kernel: 3}
          - relu
          - flatten
          - dropout: 0.3
          - dense: 4
          - softmax
    """,
    "bn": """
        network:
          - conv: {filters: 4, kernel: 3}
          - batchnorm
          - relu
          - flatten
          - dense: 4
    """,
}


def write_spec(directory, training: str, network: str = "mlp", name: str = "tiny", augment: str = "") -> str:
    """A spec file with the given `training:` body (YAML, indented as under `training:`) and, optionally,
    `augment:` steps (a YAML list)."""
    text = textwrap.dedent(f"""\
        specc: 1
        name: {name}
        inputs:
          image: {{shape: [1, 6, 6], dtype: uint8}}
        preprocess:
          - scale: ${{1/255}}
    """) + (f"augment: {augment}\n" if augment else "") + textwrap.dedent(NETWORKS[network]).strip() + \
        "\ntraining:\n" + textwrap.indent(
        textwrap.dedent(training).strip(), "  ") + "\n"
    path = os.path.join(str(directory), f"{name}.yaml")
    with open(path, "w") as handle:
        handle.write(text)
    return path


def options(**kw):
    from specc.train.run import RunOptions

    return RunOptions(dataset=kw.pop("dataset", dataset()), progress=kw.pop("progress", False),
                      plots=kw.pop("plots", False), **kw)


def session(directory, training: str, network: str = "mlp", data=None):
    """(Session, Trainer) for a spec written from `training`, on the in-memory data set; no run directory."""
    from specc.compiler import compile_spec
    from specc.limits import DEFAULT_LIMITS
    from specc.train.config import training_config
    from specc.train.distributed import SINGLE
    from specc.train.feed import Arrays
    from specc.train.loop import Trainer
    from specc.train.session import Session

    compiled = compile_spec(write_spec(directory, training, network), DEFAULT_LIMITS)
    arrays = Arrays.from_dataset(data or dataset())
    s = Session(compiled, training_config(compiled.spec.training), arrays, SINGLE, DEFAULT_LIMITS)
    return s, Trainer(s, arrays, None, progress_bar=False)


def batches(count: int, size: int = 16):
    """`count` distinct mini-batches (x uint8, y int64) of the training split."""
    import torch

    train = dataset().train
    return [(torch.from_numpy(train.x[i * size:(i + 1) * size]), torch.from_numpy(train.y[i * size:(i + 1) * size]))
            for i in range(count)]


def _main(argv: list) -> int:
    import time

    import specc.train.checkpoint as checkpoint
    from specc.train.run import resume, train

    spec, run_dir = argv[0], argv[1]
    pause = float(argv[argv.index("--pause") + 1]) if "--pause" in argv else 0.0
    if pause:
        # Stretch the run after each checkpoint so that the test can kill it between two of them.
        original = checkpoint.save_checkpoint

        def slow_save(*args, **kwargs):
            original(*args, **kwargs)
            time.sleep(pause)

        checkpoint.save_checkpoint = slow_save
        import specc.train.loop as loop

        loop.save_checkpoint = slow_save
    if "--signal-at" in argv:
        # The process signals itself (SIGTERM, or the name given) during its N-th mini-batch, as a user would.
        import signal

        import specc.train.loop as loop

        at = int(argv[argv.index("--signal-at") + 1])
        signum = getattr(signal, argv[argv.index("--signal") + 1]) if "--signal" in argv else signal.SIGTERM
        if signum == signal.SIGINT:
            # A test run started as a background job (`cmd &` in a script) starts this process with SIGINT
            # ignored, and specc rightly keeps it so; the Ctrl-C simulated here is a foreground user's.
            signal.signal(signal.SIGINT, signal.default_int_handler)
        original_step, calls = loop.Trainer.step, [0]

        def signalling_step(self, *args, **kwargs):
            calls[0] += 1
            if calls[0] == at:
                os.kill(os.getpid(), signum)
            return original_step(self, *args, **kwargs)

        loop.Trainer.step = signalling_step
    every = int(argv[argv.index("--every") + 1]) if "--every" in argv else 0
    opts = options(checkpoint_every=every)
    try:
        if "--resume" in argv:
            resume(run_dir, opts)
        else:
            train(spec, run_dir, options=opts)
    except KeyboardInterrupt as exc:
        print(f"interrupted: {type(exc).__name__}", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    sys.exit(_main(sys.argv[1:]))
