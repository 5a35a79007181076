"""What a run feeds its model: the data set as tensors, its static expansion, and the augmenter.

Data order and augmentation are functions of (seed, epoch, step): a resumed
run, or one process of a distributed run, draws exactly what an uninterrupted
single run draws at the same position.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from specc.diagnostics import error


@dataclass
class Arrays:
    """A data set as the loop uses it: raw inputs in the model's input dtype, int64 labels.
    `val_*`/`test_*` are None when the data set has no such split."""

    name: str
    train_x: np.ndarray
    train_y: np.ndarray
    val_x: np.ndarray | None
    val_y: np.ndarray | None
    test_x: np.ndarray | None
    test_y: np.ndarray | None
    num_classes: int

    @classmethod
    def from_dataset(cls, ds) -> "Arrays":
        """From `specc.train.data.Dataset` (or anything with its attributes)."""
        def part(split):
            if split is None or len(split.y) == 0:
                return None, None
            return np.asarray(split.x), np.asarray(split.y, dtype=np.int64)

        val, test = part(ds.val), part(ds.test)
        return cls(ds.name, np.asarray(ds.train.x), np.asarray(ds.train.y, dtype=np.int64), *val, *test,
                   int(ds.num_classes))


def load_arrays(compiled, data_dir: str | None, limits, num_outputs: int, seed: int | None = None) -> Arrays:
    """The spec's `training.data`, read by `specc.train.data`. `seed` (default: the spec's) draws the
    validation hold-out: the members of an ensemble and the trials of a search share their parent's."""
    from specc.train.data import data_spans, load_dataset

    spec = compiled.spec
    data_cfg = spec.training.get("data")
    if not data_cfg:
        raise error("E100", "`training.data` is missing: specc train does not know what to train on",
                    spec.tree.key_span("training"), "add e.g. `data: {dataset: mnist-sample}` under `training:`")
    first = spec.inputs[0]
    dataset = load_dataset(data_cfg, spec_path=spec.path, input_shape=tuple(first.shape), input_dtype=first.dtype,
                           data_dir=data_dir, seed=spec.seed if seed is None else seed, limits=limits,
                           num_outputs=num_outputs, layout=first.layout, spans=data_spans(spec))
    return Arrays.from_dataset(dataset)


def expanded(arrays: Arrays, augment_steps: list, layout: str, seed: int = 0) -> Arrays:
    """The training set with the static `expand` step applied (validation and test untouched); `seed`
    (`training.seed`) draws which shifted copies an `expand` with `p` below 1 keeps."""
    if not any(step.op == "expand" for step in augment_steps):
        return arrays
    from specc.train.augment import expand_static

    # The preflight expands the set the run then trains on: the second call reuses the first's arrays
    # (about 1 s for 50,000 MNIST images). The entry holds its source arrays, so their ids stay theirs.
    steps = repr([(step.op, sorted(step.attrs.items())) for step in augment_steps])  # not spans: the copy's differ
    key = (id(arrays.train_x), id(arrays.train_y), steps, layout, seed)
    if _last_expansion and _last_expansion[0] == key:
        x, y = _last_expansion[2]
    else:
        x, y = expand_static(arrays.train_x, arrays.train_y, augment_steps, layout, seed)
        _last_expansion[:] = [key, (arrays.train_x, arrays.train_y), (x, y)]
    return Arrays(arrays.name, x, y, arrays.val_x, arrays.val_y, arrays.test_x, arrays.test_y, arrays.num_classes)


_last_expansion: list = []  # [key, source arrays, expanded arrays] of the latest `expanded` call


def make_augmenter(augment_steps: list, seed: int, layout: str, input_shape: tuple):
    """The per-batch augmenter, or None when the spec has no random steps."""
    if not [step for step in augment_steps if step.op != "expand"]:
        return None
    from specc.train.augment import Augmenter

    return Augmenter(augment_steps, seed, layout, input_shape)


def derived_seed(*parts: int) -> int:
    """A 63-bit seed from integers (seed, epoch, step, ...): independent streams for each position."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(2, np.uint64)[0] >> np.uint64(1))


def epoch_order(seed: int, epoch: int, n: int) -> torch.Tensor:
    """The shuffled order of the training set in one epoch."""
    return torch.from_numpy(np.random.default_rng([seed, 0x0D47A, epoch]).permutation(n))


def batch_generator(seed: int, epoch: int, step: int, rank: int,
                    device: torch.device | None = None) -> torch.Generator:
    """The augmentation generator of one (process's share of a) mini-batch, on the device the batch is on:
    the augmenter draws on the generator's device, so a GPU batch never waits for random numbers from the
    host. (CUDA's generator gives other numbers than the CPU's for the same seed.)"""
    return torch.Generator(device=device or "cpu").manual_seed(derived_seed(seed, 0xA06, epoch, step, rank))
