"""`training.bn_recalibration: N`: batchnorm's running statistics recomputed, before each evaluation, for
the weights being evaluated, from N training images without augmentation (SWA's `update_bn`).

Two mismatches make the statistics training leaves behind a poor fit for evaluation:
- Under `ema` the evaluated weights are the average, while the statistics are the live model's (a running
  mean over its last few dozen mini-batches). While the learning rate is high the two differ: over the
  first five epochs of `mnist_best` the averaged weights validated 0.22 points lower on average (up to
  0.48) than after recomputing. Once the rate has annealed they agree, and the kept epochs gained nothing
  measurable (docs/nielsen.md).
- Training images are augmented; the test images are not.

The images are a fixed sample of the training split drawn from the seed, the same at every epoch. Each
forward pass runs in training mode without gradients. The cumulative average over the chunks is computed
exactly as `nn.BatchNorm` does with `momentum=None`. Dropout's draws are made on a forked generator, so
the training run itself (its weights, its order, its randomness) is the one it would be without this.
"""

from __future__ import annotations

import torch

from specc.train.device import to_device
from specc.train.feed import derived_seed

CHUNK = 500  # images per forward pass: the statistics are averaged over the chunks


def recalibration_images(train_x: torch.Tensor, count: int, seed: int) -> torch.Tensor:
    """The first `count` training images of a permutation drawn from the seed (all of them when fewer)."""
    generator = torch.Generator().manual_seed(derived_seed(seed, 0xB7))
    order = torch.randperm(len(train_x), generator=generator)[:count]
    return train_x[order.sort().values]


@torch.no_grad()
def recalibrate(module, images: torch.Tensor, device: torch.device) -> None:
    """Replace the running mean and variance of every batchnorm in `module` by their averages over `images`."""
    layers = module.batchnorm_attrs()
    saved = [attrs["momentum"] for attrs in layers]
    was_training = module.training
    forked = [device] if device.type == "cuda" else []
    module.train()
    try:
        with torch.random.fork_rng(devices=forked):
            seen = 0
            for start in range(0, len(images), CHUNK):
                chunk = images[start:start + CHUNK]
                seen += len(chunk)
                for attrs in layers:  # the new chunk's share of the average so far
                    attrs["momentum"] = len(chunk) / seen
                module(to_device(chunk, device))
    finally:
        for attrs, momentum in zip(layers, saved):
            attrs["momentum"] = momentum
        module.train(was_training)
