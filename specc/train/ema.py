"""Polyak averaging of the weights (`training.ema`): what evaluation, `model.safetensors` and the built
model use when the spec asks for it.

The update of `torch.optim.swa_utils.AveragedModel` with an EMA `avg_fn`: the first update copies the
weights, each later one moves the average a fraction (1 - decay) toward them. The decay warms up as
TensorFlow's `ExponentialMovingAverage(num_updates=...)` makes it: update n uses
min(decay, (1 + n) / (10 + n)), so the average forgets the initial weights within the first few hundred
steps instead of ~1/(1 - decay) of them. Without the warm-up, `ema: 0.999` on MNIST still held 42% of
the random initial weights after an epoch of 859 steps, and validated at 10-45% for the first epochs
while the live model stood at 98%; with it, 98% after the first epoch. From update 10/(1 - decay) on
(9,000 at 0.999) the decay is the spec's.

Buffers (batchnorm statistics) are not averaged: the averaged model takes the live model's, as
AveragedModel with `use_buffers=False` followed by a copy does. (A trial that averaged them as well
validated as the warm-up alone does over four short epochs: no reason to differ from AveragedModel.)
"""

from __future__ import annotations

import torch


class Averager:
    def __init__(self, decay: float, live, averaged):
        """`live` and `averaged` are two SpeccModules of one graph (the second starts as a copy)."""
        self.decay = decay
        self.live = live
        self.averaged = averaged.eval()
        for param in self.averaged.parameters():
            param.requires_grad_(False)
        live_named = dict(live.spec_parameters())
        self._pairs = [(p, live_named[name]) for name, p in averaged.spec_parameters()]
        self.updates = 0

    @torch.no_grad()
    def update(self) -> None:
        averaged = [a for a, _ in self._pairs]
        current = [p.detach() for _, p in self._pairs]
        if self.updates == 0:
            torch._foreach_copy_(averaged, current)
        else:
            torch._foreach_lerp_(averaged, current, 1.0 - self.decay_at(self.updates))
        self.updates += 1

    def decay_at(self, update: int) -> float:
        """The decay of update number `update` (counted from 0, the copy)."""
        return min(self.decay, (1 + update) / (10 + update))

    @torch.no_grad()
    def sync_buffers(self) -> None:
        """Give the averaged model the live model's buffers (running statistics, fitted preprocessing)."""
        trainable = {name for name, _ in self.live.spec_parameters()}
        state = self.live.spec_state()
        self.averaged.load_spec_state({k: v for k, v in state.items() if k not in trainable}, strict=False)
