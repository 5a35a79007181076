"""The `inputs`, `training` and `build` sections, declared with the same types as op arguments.

`training` and `build` are validated here in full; what they mean is
implemented by `specc train` and `specc build`.
"""

from __future__ import annotations

from specc.ir.types import INPUT_DTYPES
from specc.lang.argtypes import (INVALID, REQUIRED, AnyValue, Bool, DictOf, Enum, Field, Float, Int, ListOf,
                                OneKey, Record, Str, Union)
from specc.lang.located import Scalar

NAME_PATTERN = r"[a-z0-9][a-z0-9_.-]*"

# An input dtype people reach for that a built model does not take. A did-you-mean (`float16`) would
# suggest another precision, not the fix.
_UNSUPPORTED_DTYPES = {
    "float64": "models are served in float32 (or float16): declare `dtype: float32`; `specc predict` casts "
               "float64 arrays to it",
}


class _InputDtype(Enum):
    """The input dtypes, with a reason (not a look-alike) for the ones a model does not take."""

    def check(self, node, diags, where):
        if isinstance(node, Scalar) and node.value in _UNSUPPORTED_DTYPES:
            diags.error("E014", f"{where} `{node.value}` is not supported; inputs are "
                        + ", ".join(f"`{c}`" for c in self.choices), node.span, _UNSUPPORTED_DTYPES[node.value])
            return INVALID
        return super().check(node, diags, where)


DIM = Union((Int(1), Str(r"[A-Za-z_][A-Za-z0-9_]*")))

INPUT = Record({
    "shape": Field(ListOf(DIM, 1, 8), REQUIRED, "shape without the batch axis, in the input's layout; "
                   "a name is a symbolic dimension"),
    "dtype": Field(_InputDtype(INPUT_DTYPES), "float32", "element type"),
    "layout": Field(Enum(("NCHW", "NHWC")), "NCHW", "NHWC inputs are transposed once at the model's entry"),
    "description": Field(Str(), None, "free text"),
}, "an input description")

_LR = Float(0, min_open=True)
_EMPTY = Record({}, "no arguments")

OPTIMIZER = OneKey({
    "sgd": Record({"lr": Field(_LR, 0.01), "momentum": Field(Float(0, 1, max_open=True), 0.0),
                   "nesterov": Field(Bool(), False)}),
    "adagrad": Record({"lr": Field(_LR, 0.01)}),
    "rmsprop": Record({"lr": Field(_LR, 0.001), "rho": Field(Float(0, 1, max_open=True), 0.9)}),
    "adam": Record({"lr": Field(_LR, 0.001), "betas": Field(ListOf(Float(0, 1, max_open=True), 2, 2), [0.9, 0.999]),
                    "eps": Field(Float(0, min_open=True), 1e-8)}),
    "adamw": Record({"lr": Field(_LR, 0.001), "betas": Field(ListOf(Float(0, 1, max_open=True), 2, 2), [0.9, 0.999]),
                     "eps": Field(Float(0, min_open=True), 1e-8), "weight_decay": Field(Float(0), 0.01)}),
    "lbfgs": Record({"lr": Field(_LR, 1.0), "history": Field(Int(1), 100)}),
}, "an optimizer")

SCHEDULE = OneKey({
    "constant": None,
    "step": Record({"every": Field(Int(1), REQUIRED, "epochs between steps"), "gamma": Field(Float(0, 1), 0.1)}),
    "exponential": Record({"k": Field(Float(0), REQUIRED, "lr0 e^-kt")}, primary="k"),
    "inverse_time": Record({"k": Field(Float(0), REQUIRED, "lr0 / (1 + kt)")}, primary="k"),
    "cosine": Record({"min_lr": Field(Float(0), 0.0)}),
    "one_cycle": Record({"max_lr": Field(_LR, REQUIRED), "pct_start": Field(Float(0, 1), 0.3)}),
    "cyclic": Record({"period": Field(Int(1), REQUIRED, "epochs per cycle (snapshot ensembles)")}, primary="period"),
    "warmup": Record({"epochs": Field(Int(0), 1)}, primary="epochs"),
}, "a learning-rate schedule")

LOSS = OneKey({
    "cross_entropy": Record({"label_smoothing": Field(Float(0, 1), 0.0)}),
    "nll": None, "mse": None, "bce": None,
}, "a loss")

_RANGE = ListOf(Float(), 2, 2)
SEARCH_SPACE = OneKey({
    "log_uniform": Record({"range": Field(_RANGE, REQUIRED)}, primary="range"),
    "uniform": Record({"range": Field(_RANGE, REQUIRED)}, primary="range"),
    "choice": Record({"values": Field(ListOf(AnyValue(), 1), REQUIRED)}, primary="values"),
}, "a search distribution")

METRICS = ("accuracy", "precision", "recall", "f1", "confusion", "loss")
MONITORED = METRICS + tuple(f"val_{m}" for m in METRICS)  # early stopping watches validation anyway

TRAINING = Record({
    "data": Field(Record({
        "dataset": Field(Enum(("mnist", "mnist-sample", "npz", "idx", "folder")), REQUIRED),
        "path": Field(Str(), None, "relative to the spec"),
        "validation": Field(Union((Int(0), Str())), 10000, "count held out of training, or a path"),
    }), None, "where the data comes from"),
    "epochs": Field(Int(1), 10),
    "batch_size": Field(Int(1), 32),
    "loss": Field(LOSS, "cross_entropy"),
    "optimizer": Field(OPTIMIZER, "sgd"),
    "schedule": Field(SCHEDULE, "constant"),
    "regularization": Field(Record({
        "l2": Field(Float(0), 0.0), "l1": Field(Float(0), 0.0),
        "elastic_net": Field(Record({"l1": Field(Float(0), REQUIRED), "l2": Field(Float(0), REQUIRED)}), None),
        "weight_decay": Field(Float(0), None),  # unset: adamw keeps its own decay
    }), None),
    "grad_clip": Field(Float(0, min_open=True), None, "max global gradient norm"),
    "ema": Field(Float(0, 1, min_open=True, max_open=True), None, "Polyak averaging decay"),
    "bn_recalibration": Field(Int(1), None, "clean training images batchnorm statistics are recomputed from "
                              "before each evaluation"),
    "early_stopping": Field(Record({"metric": Field(Enum(MONITORED), "loss"), "patience": Field(Int(1), 5)}), None),
    "metrics": Field(ListOf(Enum(METRICS)), ["accuracy"]),
    "seed": Field(Int(0, 2**32 - 1), 0),  # the CLI's MAX_SEED
    "ensemble": Field(Record({"members": Field(Int(1, 1000), REQUIRED), "combine": Field(Enum(("vote", "mean")), "mean")}), None),
    "distill": Field(Record({
        "teacher": Field(Str(), REQUIRED, "path of the teacher's spec"),
        "weights": Field(Str(), None), "temperature": Field(Float(0, min_open=True), 4.0),
        "alpha": Field(Float(0, 1), 0.5),
    }), None),
    "init": Field(Record({
        "from": Field(Str(), REQUIRED, "checkpoint path"),
        "freeze": Field(ListOf(Str()), []), "reinit": Field(ListOf(Str()), []),
    }), None),
    "lr_mult": Field(DictOf(Float(0)), None, "per-layer learning-rate multipliers"),
    "search": Field(Record({
        "trials": Field(Int(1, 100_000), REQUIRED),
        "space": Field(DictOf(SEARCH_SPACE), REQUIRED, "dotted spec path -> distribution"),
    }), None),
}, "the training section")

TENSORRT = Record({
    "workspace_mb": Field(Int(1), 1024), "timing_cache": Field(Str(), None),
    "optimization_level": Field(Int(0, 5), 3), "hardware_compatibility": Field(
        Union((Enum(("none", "ampere_plus", "same_compute_capability")), Bool())), "none",
        "TensorRT hardware compatibility level (true = ampere_plus)"),
    "version_compatible": Field(Bool(), False),
})

BATCH = Union((Int(1), Record({"min": Field(Int(1), 1), "opt": Field(Int(1), 1), "max": Field(Int(1), 64)})))

BUILD = Record({
    "targets": Field(ListOf(Enum(("onnx", "tensorrt")), 1), ["onnx"]),
    "opset": Field(Int(13, 23), 17, "ONNX opset"),
    "precision": Field(Enum(("fp32", "fp16", "int8")), "fp32"),
    "keep_fp32": Field(ListOf(Str()), []),
    "calibration": Field(Record({
        "data": Field(Str(), "train"), "samples": Field(Int(1), 512),
        "method": Field(Enum(("minmax", "entropy", "percentile")), "minmax"),
        "percentile": Field(Float(0, 100), 99.99), "per_channel": Field(Bool(), True),
    }), None),
    "batch": Field(BATCH, None),
    "passes": Field(Union((Enum(("none", "standard")), ListOf(Str()))), "standard"),
    "tensorrt": Field(TENSORRT, None),
    "max_accuracy_drop": Field(Float(0), 1.0, "for fp16/int8: the largest accepted drop in top-1 accuracy "
                               "against fp32, in percentage points"),
    "tta": Field(Record({"transforms": Field(ListOf(AnyValue()), REQUIRED),
                         "combine": Field(Enum(("mean", "vote")), "mean")}), None),
}, "the build section")
