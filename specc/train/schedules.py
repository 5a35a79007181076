"""Learning-rate schedules as pure functions of the position in training.

`lr(epoch, step)` (both 0-based, `step` within the epoch) is all a schedule
is: no hidden state, so a resumed run needs only its position, and a test can
compare each schedule with the `torch.optim.lr_scheduler` class it matches
(named beside each formula; `tests/test_train_optim.py` checks them).
"""

from __future__ import annotations

import math
from typing import Callable

Schedule = Callable[[int, int], float]


def make_schedule(name: str, args: dict, lr0: float, epochs: int, steps_per_epoch: int) -> Schedule:
    steps = max(1, steps_per_epoch)
    if name == "constant":
        return lambda epoch, step: lr0
    if name == "step":  # StepLR(step_size=every, gamma), stepped per epoch
        every, gamma = args["every"], args["gamma"]
        return lambda epoch, step: lr0 * gamma ** (epoch // every)
    if name == "exponential":  # lr0 e^(-k t), t in epochs: ExponentialLR(gamma=e^-k)
        k = args["k"]
        return lambda epoch, step: lr0 * math.exp(-k * epoch)
    if name == "inverse_time":  # lr0 / (1 + k t): LambdaLR(lambda t: 1 / (1 + k t))
        k = args["k"]
        return lambda epoch, step: lr0 / (1.0 + k * epoch)
    if name == "cosine":  # CosineAnnealingLR(T_max=epochs, eta_min=min_lr), per epoch
        low = args["min_lr"]
        return lambda epoch, step: low + (lr0 - low) * (1 + math.cos(math.pi * epoch / epochs)) / 2
    if name == "cyclic":
        return _cyclic(lr0, args["period"], steps)
    if name == "one_cycle":
        return _one_cycle(lr0, args["max_lr"], args["pct_start"], epochs * steps, steps)
    if name == "warmup":
        return _warmup(lr0, args["epochs"] * steps, steps)
    raise ValueError(f"unknown schedule {name}")


def _cyclic(lr0: float, period: int, steps: int) -> Schedule:
    """Cosine annealing restarted every `period` epochs, per step (Huang et al.'s snapshot ensembles):
    CosineAnnealingWarmRestarts(T_0=period) stepped with fractional epochs."""
    def lr(epoch, step):
        t = (epoch + step / steps) % period
        return lr0 * (1 + math.cos(math.pi * t / period)) / 2
    return lr


def _one_cycle(lr0: float, max_lr: float, pct_start: float, total: int, steps: int) -> Schedule:
    """Per step: cosine from lr0 up to max_lr over pct_start of training, then down to lr0 / 1e4.
    OneCycleLR(max_lr, total_steps, pct_start, div_factor=max_lr/lr0, cycle_momentum=False)."""
    low = lr0 / 1e4  # torch's final_div_factor
    peak_step = max(float(pct_start * total) - 1, 1e-12)  # torch's phase boundary
    last = total - 1

    def anneal(start, end, pct):
        return end + (start - end) / 2 * (math.cos(math.pi * pct) + 1)

    def lr(epoch, step):
        t = epoch * steps + step
        if t <= peak_step:
            return anneal(lr0, max_lr, t / peak_step)
        return anneal(max_lr, low, (t - peak_step) / max(last - peak_step, 1e-12))
    return lr


def _warmup(lr0: float, warm_steps: int, steps: int) -> Schedule:
    """Linear from lr0/W to lr0 over the first W steps, then constant:
    LinearLR(start_factor=1/W, total_iters=W-1), stepped per step."""
    def lr(epoch, step):
        t = epoch * steps + step
        return lr0 if warm_steps <= 0 else lr0 * min(1.0, (t + 1) / warm_steps)
    return lr
