"""One network being trained: its model, optimizer, schedule, loss, averaging and teacher.

Built from a compiled spec and its resolved `training` section; knows how to
save itself into checkpoint tensors and to restore from them. The epoch loop
(`specc.train.loop`) drives it.
"""

from __future__ import annotations

import torch

from specc.diagnostics import Span, SpeccError, error
from specc.train.bn_stats import recalibrate
from specc.train.config import TrainConfig
from specc.train.device import cuda_rng_state, set_cuda_rng_state, torch_model
from specc.train.distributed import SINGLE, World
from specc.train.ema import Averager
from specc.train.feed import Arrays
from specc.train.losses import PROBS, SCORES, make_loss, output_kind
from specc.train.optim import Regularizer, make_optimizer, trainable_set
from specc.train.schedules import make_schedule
from specc.train.transfer import apply_init, owner_of, spec_file

FITTED_STEPS = ("mean_image", "zca")


def config_span(spec, *keys) -> Span:
    """Where the spec writes `training.<keys>` (the deepest part that exists)."""
    from specc.lang.located import Map

    node, span = spec.tree, Span(spec.path)
    for key in ("training",) + keys:
        if not isinstance(node, Map) or key not in node:
            break
        span = node.key_span(key)
        node = node.get(key)
    return span


def check_trainable(compiled, cfg: TrainConfig) -> str:
    """Refuse, with a located reason, what this spec and configuration cannot train. Returns the output."""
    spec, graph = compiled.spec, compiled.graph
    if len(graph.inputs) != 1:
        raise error("E100", f"specc train feeds one input; this spec has {len(graph.inputs)} "
                    f"({', '.join(v.name for v in graph.inputs)})", spec.inputs[1].span,
                    "train a spec with a single input")
    output = next(iter(graph.outputs))
    shape = graph.outputs[output].type.shape
    if len(shape) != 2 or not isinstance(shape[1], int):
        raise error("E100", f"the trained output `{output}` has shape {list(shape)}; specc train trains "
                    "classifiers, whose output is (N, classes)", config_span(spec),
                    "end the network with e.g. `dense: 10` (and `softmax`), or list that layer first in `outputs`")
    name, args = cfg.optimizer
    if name == "sgd" and args["nesterov"] and not args["momentum"]:
        raise error("E100", "`nesterov: true` needs a momentum above 0", config_span(spec, "optimizer"),
                    "add e.g. `momentum: 0.9`")
    if name == "lbfgs" and len(set(cfg.lr_mult.values()) - {1.0}) > 0:
        raise error("E100", "`lbfgs` takes one learning rate for every layer, so `lr_mult` cannot apply",
                    config_span(spec, "lr_mult"), "remove `lr_mult`, or use another optimizer")
    if cfg.distill and not cfg.distill.get("weights"):
        raise error("E100", "`training.distill` needs the teacher's `weights` (a .safetensors file)",
                    config_span(spec, "distill"), "add e.g. `weights: runs/teacher/model.safetensors`")
    return output


def preflight(compiled, cfg: TrainConfig, arrays: Arrays, limits) -> None:
    """Build a session once on the CPU from the user's spec, before the run directory exists. What only
    training finds (a batch larger than the data, an `init.from` file or a teacher that does not fit,
    nothing left to train) is then reported at the user's file, not at the run's copy of it. (Augment
    steps the input cannot take are refused earlier, by `compile_spec`.)"""
    from specc.train.feed import expanded
    from specc.train.loop import Monitor

    arrays = expanded(arrays, compiled.spec.augment, compiled.spec.inputs[0].layout, cfg.seed)
    session = Session(compiled, cfg, arrays, SINGLE, limits, torch.device("cpu"), fit=False)
    Monitor.of(session, arrays.val_x is not None)


class Session:
    def __init__(self, compiled, cfg: TrainConfig, arrays: Arrays, world: World, limits,
                 device: torch.device | None = None, fit: bool = True):
        """`fit=False` leaves fitted preprocessing (`mean_image`, `zca`) at its initial values: a preflight
        does not need them, and a ZCA fit on a large training set takes a while."""
        from specc.codegen.weights import init_weights

        self.compiled, self.cfg, self.world = compiled, cfg, world
        self.device = device or torch.device("cpu")  # the model and every batch; the data stays in host memory
        spec, graph = compiled.spec, compiled.graph
        self.output = check_trainable(compiled, cfg)
        self.kind = output_kind(graph, self.output)
        self.num_classes = graph.outputs[self.output].type.shape[1]
        self.steps_per_epoch = len(arrays.train_y) // cfg.batch_size
        if self.steps_per_epoch == 0:
            raise error("E100", f"`batch_size: {cfg.batch_size}` is larger than the training set "
                        f"({len(arrays.train_y):,} examples)", config_span(spec, "batch_size"),
                        f"use a batch size of at most {len(arrays.train_y)}")

        weights = init_weights(graph)
        if fit and any(node.op in FITTED_STEPS for node in graph.nodes):
            from specc.train.fitted import fit_preprocessing

            weights.update(fit_preprocessing(graph, arrays.train_x))
        frozen = set()
        if cfg.init:
            frozen = apply_init(weights, graph, cfg.init, spec.path, config_span(spec, "init", "from"), limits)
        # On the device before the optimizer is made: its state is created beside the parameters.
        self.module = torch_model(graph, weights, self.device)
        self.averager = Averager(cfg.ema, self.module, torch_model(graph, weights, self.device)) if cfg.ema else None

        owners = {name: owner_of(info) for name, info in graph.params.items()}
        self.trainable = trainable_set(self.module.spec_parameters(), owners, cfg.lr_mult, frozen)
        if not self.trainable.groups:
            raise error("E100", "`training.init.freeze` freezes every trainable layer, so there is nothing to train",
                        config_span(spec, "init", "freeze"),
                        "leave at least one layer out of `freeze` (often the last one), or evaluate the "
                        "`init.from` weights with `specc eval`")
        self.optimizer = make_optimizer(*cfg.optimizer, self.trainable.groups)
        self.regularizer = Regularizer(cfg.regularization, self.steps_per_epoch)
        self.schedule = make_schedule(*cfg.schedule, cfg.lr, cfg.epochs, self.steps_per_epoch)
        self.loss = make_loss(*cfg.loss, self.kind)  # on what the model gives in evaluation mode
        # What the model gives in training mode, and the loss on it: a softmax classifier under cross-entropy
        # trains on its scores (SpeccModule.train_on_scores), as a PyTorch user writes it.
        self.train_kind = SCORES if self.kind == PROBS and cfg.loss[0] in ("cross_entropy", "nll") and \
            self.module.train_on_scores(self.output) else self.kind
        self.train_loss = make_loss(*cfg.loss, self.train_kind)
        self.teacher = load_teacher(compiled, cfg, limits, self.device) if cfg.distill else None
        if cfg.bn_recalibration and not self.module.batchnorm_attrs():
            raise error("E100", "`bn_recalibration` recomputes batchnorm statistics, and this network has no "
                        "batchnorm layer", config_span(spec, "bn_recalibration"), "remove `bn_recalibration`")
        self.model = self.module
        if world.size > 1:
            from torch.nn.parallel import DistributedDataParallel

            self.model = DistributedDataParallel(self.module)

    @property
    def eval_module(self):
        """The weights evaluation and `model.safetensors` use: the averaged ones under `ema`. Its buffers are
        the ones `prepare_evaluation` gave it."""
        return self.averager.averaged if self.averager is not None else self.module

    def prepare_evaluation(self, recalibration_images=None):
        """The module to evaluate, with its batchnorm statistics: the live model's under `ema`, recomputed from
        `recalibration_images` under `bn_recalibration` (specc.train.bn_stats)."""
        if self.averager is not None:
            self.averager.sync_buffers()
        if recalibration_images is not None:
            recalibrate(self.eval_module, recalibration_images, self.device)
        return self.eval_module

    def kept_weights(self) -> dict:
        """Weights and buffers (fitted preprocessing included) as `model.safetensors` holds them."""
        params = self.compiled.graph.params
        return {name: array for name, array in self.eval_module.spec_state().items()
                if getattr(params[name], "kind", "param") != "const"}

    # --- checkpoint ---------------------------------------------------------------------------
    def state_tensors(self) -> tuple[dict, dict]:
        from specc.train.checkpoint import optimizer_state

        tensors = {f"model.{k}": torch.from_numpy(v) for k, v in self.module.spec_state().items()}
        if self.averager is not None:
            tensors.update({f"ema.{k}": torch.from_numpy(v) for k, v in self.averager.averaged.spec_state().items()})
        optim_tensors, skeleton = optimizer_state(self.optimizer)
        tensors.update(optim_tensors)
        tensors["rng.torch"] = torch.get_rng_state()
        cuda_state = cuda_rng_state(self.device)  # dropout on a GPU draws from the GPU's generator
        if cuda_state is not None:
            tensors["rng.cuda"] = cuda_state
        meta = {"optimizer": skeleton, "ema_updates": self.averager.updates if self.averager else 0}
        return tensors, meta

    def restore(self, tensors: dict, meta: dict) -> None:
        from specc.train.checkpoint import restore_optimizer

        self.module.load_spec_state({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
        if self.averager is not None:
            self.averager.averaged.load_spec_state({k[4:]: v for k, v in tensors.items() if k.startswith("ema.")})
            self.averager.updates = meta["ema_updates"]
        restore_optimizer(self.optimizer, tensors, meta["optimizer"])  # its state moves to the parameters' device
        torch.set_rng_state(tensors["rng.torch"])
        set_cuda_rng_state(tensors.get("rng.cuda"), self.device)


class Teacher:
    """A trained model whose softened outputs the student learns from (`training.distill`)."""

    def __init__(self, module, kind: str, temperature: float, alpha: float):
        self.module, self.kind, self.temperature, self.alpha = module.eval(), kind, temperature, alpha
        self.output = next(iter(module.graph.outputs))

    @torch.no_grad()
    def __call__(self, x):
        return self.module(x)[self.output]


def load_teacher(compiled, cfg: TrainConfig, limits, device: torch.device | None = None) -> Teacher:
    from specc.codegen.weights import load_weights
    from specc.compiler import compile_spec

    spec, distill = compiled.spec, cfg.distill
    span = config_span(spec, "distill", "teacher")
    teacher_path = spec_file(distill["teacher"], spec.path, "distill.teacher", span, limits,
                             "the teacher's spec (.yaml)", missing="E040")
    weights_path = spec_file(distill["weights"], spec.path, "distill.weights", config_span(spec, "distill", "weights"),
                             limits, "the teacher's trained weights, e.g. its run's model.safetensors")
    teacher = compile_spec(teacher_path, limits).graph
    try:
        weights = load_weights(weights_path, teacher)
    except SpeccError as exc:
        first = exc.diagnostics[0]
        if first.span.path != weights_path:  # tensors that do not fit: located at the teacher's layers
            raise
        raise error(first.code, f"`training.distill.weights`: {first.message}", config_span(spec, "distill", "weights"),
                    first.hint) from None
    student_in, teacher_in = compiled.graph.inputs[0].type, teacher.inputs[0].type
    if len(teacher.inputs) != 1 or teacher_in.dtype != student_in.dtype or \
            teacher_in.shape[1:] != student_in.shape[1:]:
        raise error("E100", f"the teacher's input {teacher_in} differs from the student's {student_in}", span,
                    "a teacher sees the same examples as its student: give both the same input")
    out = next(iter(teacher.outputs.values())).type.shape
    want = next(iter(compiled.graph.outputs.values())).type.shape
    if tuple(out[1:]) != tuple(want[1:]):
        raise error("E100", f"the teacher's output has shape {list(out)}, the student's {list(want)}", span,
                    "teacher and student must predict the same classes")
    module = torch_model(teacher, weights, device)
    for param in module.parameters():
        param.requires_grad_(False)
    return Teacher(module, output_kind(teacher, next(iter(teacher.outputs))), distill["temperature"],
                   distill["alpha"])
