"""Polyak averaging of the weights (`training.ema`): what evaluation, `model.safetensors` and the built
model use when the spec asks for it.

The same update as `torch.optim.swa_utils.AveragedModel` with `get_ema_multi_avg_fn(decay)`: the first
update copies the weights, each later one moves the average a fraction (1 - decay) toward them. Buffers
(batchnorm statistics) are not averaged: the averaged model takes the live model's, as AveragedModel
with `use_buffers=False` followed by a copy does.
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
            torch._foreach_lerp_(averaged, current, 1.0 - self.decay)
        self.updates += 1

    @torch.no_grad()
    def sync_buffers(self) -> None:
        """Give the averaged model the live model's buffers (running statistics, fitted preprocessing)."""
        trainable = {name for name, _ in self.live.spec_parameters()}
        state = self.live.spec_state()
        self.averaged.load_spec_state({k: v for k, v in state.items() if k not in trainable}, strict=False)
