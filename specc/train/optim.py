"""Optimizers, per-layer learning rates, and regularization.

Regularization follows network3.py: the penalty covers weights only (tensors
of two or more axes: dense and conv kernels, embeddings, recurrent matrices),
never biases or normalization scales, and is divided by the number of
mini-batches per epoch:

    cost = loss + 0.5 * l2 * sum(w^2) / batches + l1 * sum(|w|) / batches

It is applied as its exact gradient (`l2 * w / batches`, `l1 * sign(w) /
batches`) added after backward, which is what autograd of the penalty gives
without building the penalty into the graph on every step. Decoupled weight
decay (AdamW's) shrinks the same tensors by `lr * weight_decay` before each
update.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from specc.train.config import Regularization


def layer_of(name: str, owner: str, layers: dict) -> str | None:
    """The entry of `layers` (layer names, block uses) that covers the tensor's owning node, most specific
    first: `res_1.conv_1` before `res_1`."""
    best = None
    for key in layers:
        if owner == key or owner.startswith(key + ".") or name.startswith(key + "."):
            if best is None or len(key) > len(best):
                best = key
    return best


@dataclass
class TrainableSet:
    """The tensors the optimizer updates, grouped by learning-rate multiplier."""

    groups: list                                   # dicts for torch.optim: params, lr_mult, decay_params
    weights: list = field(default_factory=list)    # the penalized tensors (two or more axes)
    names: list = field(default_factory=list)      # spec names of every trained tensor, in order

    @property
    def params(self) -> list:
        return [p for g in self.groups for p in g["params"]]


def trainable_set(named_params, owners: dict, lr_mult: dict, frozen: set) -> TrainableSet:
    """`named_params`: (spec name, nn.Parameter); `owners`: spec name -> owning node name."""
    by_mult: dict = {}
    weights, names = [], []
    for name, param in named_params:
        if name in frozen:
            param.requires_grad_(False)
            continue
        key = layer_of(name, owners[name], lr_mult)
        mult = float(lr_mult[key]) if key is not None else 1.0
        group = by_mult.setdefault(mult, {"params": [], "lr_mult": mult, "decay_params": []})
        group["params"].append(param)
        names.append(name)
        if param.dim() >= 2:
            group["decay_params"].append(param)
            weights.append(param)
    groups = [g for g in by_mult.values() if g["params"]]
    return TrainableSet(groups, weights, names)


def make_optimizer(name: str, args: dict, groups: list) -> torch.optim.Optimizer:
    lr = args["lr"]
    groups = [{"params": g["params"], "lr_mult": g["lr_mult"], "lr": lr * g["lr_mult"]}  # the decay lists stay ours
              for g in groups]
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=args["momentum"], nesterov=args["nesterov"])
    if name == "adagrad":
        return torch.optim.Adagrad(groups, lr=lr)
    if name == "rmsprop":
        return torch.optim.RMSprop(groups, lr=lr, alpha=args["rho"])
    if name == "adam":
        return torch.optim.Adam(groups, lr=lr, betas=tuple(args["betas"]), eps=args["eps"])
    if name == "adamw":  # its decay is applied by `decoupled_decay`, exactly as AdamW orders it
        return torch.optim.AdamW(groups, lr=lr, betas=tuple(args["betas"]), eps=args["eps"], weight_decay=0.0)
    if name == "lbfgs":
        return torch.optim.LBFGS(groups[0]["params"], lr=lr, history_size=args["history"])
    raise ValueError(f"unknown optimizer {name}")


def set_lr(optimizer: torch.optim.Optimizer, lr: float, groups: list) -> None:
    for torch_group, group in zip(optimizer.param_groups, groups):
        torch_group["lr"] = lr * group["lr_mult"]


@dataclass
class Regularizer:
    reg: Regularization
    batches_per_epoch: int

    def add_gradients(self, weights: list) -> None:
        """d/dw of network3's penalty, added to each weight's gradient."""
        scale = 1.0 / max(1, self.batches_per_epoch)
        with torch.no_grad():
            for w in weights:
                if w.grad is None:
                    continue
                if self.reg.l2:
                    w.grad.add_(w, alpha=self.reg.l2 * scale)
                if self.reg.l1:
                    w.grad.add_(torch.sign(w), alpha=self.reg.l1 * scale)

    def penalty(self, weights: list) -> float:
        """The penalty's value (what L-BFGS sees in the cost it minimizes)."""
        if not (self.reg.l2 or self.reg.l1):
            return 0.0
        scale = 1.0 / max(1, self.batches_per_epoch)
        with torch.no_grad():
            total = 0.0
            for w in weights:
                if self.reg.l2:
                    total += 0.5 * self.reg.l2 * scale * float((w * w).sum())
                if self.reg.l1:
                    total += self.reg.l1 * scale * float(w.abs().sum())
        return total

    def decoupled_decay(self, optimizer: torch.optim.Optimizer, groups: list) -> None:
        """w <- w * (1 - lr * weight_decay), before the optimizer's update (torch.optim.AdamW's order)."""
        if not self.reg.weight_decay:
            return
        with torch.no_grad():
            for torch_group, group in zip(optimizer.param_groups, groups):
                if group["decay_params"]:
                    torch._foreach_mul_(group["decay_params"], 1.0 - torch_group["lr"] * self.reg.weight_decay)
