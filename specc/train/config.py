"""The validated `training` section, with every choice spelled out.

The parser keeps a choice written as a bare name (`optimizer: sgd`) as that
name; here each becomes `(name, arguments)` with the declared defaults filled
in, so the training code never guesses a default of its own.
"""

from __future__ import annotations

from dataclasses import dataclass

from specc.lang.argtypes import REQUIRED
from specc.parser.sections import LOSS, OPTIMIZER, SCHEDULE


def choice(value, options) -> tuple[str, dict]:
    """`'sgd'` or `('sgd', {...})` -> `('sgd', {every argument})`."""
    if isinstance(value, tuple):
        name, args = value
    else:
        name, args = value, {}
    record = options.options[name]
    full = {} if record is None else {k: f.default for k, f in record.fields.items() if f.default is not REQUIRED}
    full.update(args or {})
    return name, full


@dataclass(frozen=True)
class Regularization:
    l2: float = 0.0            # network3.py: 0.5 * l2 * sum(w^2) / batches per epoch, added to the loss
    l1: float = 0.0            # l1 * sum(|w|) / batches per epoch
    weight_decay: float = 0.0  # decoupled: w <- w - lr * weight_decay * w before each update

    @property
    def any(self) -> bool:
        return bool(self.l2 or self.l1 or self.weight_decay)


@dataclass(frozen=True)
class TrainConfig:
    data: dict | None
    epochs: int
    batch_size: int
    loss: tuple
    optimizer: tuple
    schedule: tuple
    regularization: Regularization
    grad_clip: float | None
    ema: float | None
    bn_recalibration: int | None
    early_stopping: dict | None
    metrics: tuple
    seed: int
    ensemble: dict | None
    distill: dict | None
    init: dict | None
    lr_mult: dict
    search: dict | None

    @property
    def lr(self) -> float:
        return self.optimizer[1]["lr"]


def training_config(training: dict) -> TrainConfig:
    reg = training.get("regularization") or {}
    elastic = reg.get("elastic_net") or {}
    optimizer = choice(training["optimizer"], OPTIMIZER)
    weight_decay = reg.get("weight_decay")
    if weight_decay is None:
        weight_decay = 0.0
        if optimizer[0] == "adamw":
            weight_decay = optimizer[1]["weight_decay"]  # AdamW's own decay, unless the section sets one
    return TrainConfig(
        data=training.get("data"),
        epochs=training["epochs"],
        batch_size=training["batch_size"],
        loss=choice(training["loss"], LOSS),
        optimizer=optimizer,
        schedule=choice(training["schedule"], SCHEDULE),
        regularization=Regularization(l2=reg.get("l2", 0.0) + elastic.get("l2", 0.0),
                                      l1=reg.get("l1", 0.0) + elastic.get("l1", 0.0),
                                      weight_decay=weight_decay),
        grad_clip=training.get("grad_clip"),
        ema=training.get("ema"),
        bn_recalibration=training.get("bn_recalibration"),
        early_stopping=training.get("early_stopping"),
        metrics=tuple(training.get("metrics") or ("accuracy",)),
        seed=training.get("seed", 0) or 0,
        ensemble=training.get("ensemble"),
        distill=training.get("distill"),
        init=training.get("init"),
        lr_mult=dict(training.get("lr_mult") or {}),
        search=training.get("search"),
    )
