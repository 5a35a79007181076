"""`specc train`: start or resume a run in a run directory.

A run directory holds one of three kinds of run, chosen by the spec's
`training` section: a single network, an `ensemble` (one run per member in
`member_<i>/`), or a random `search` (one run per trial in `trial_<i>/`). The
members and trials are ordinary run directories, so every kind resumes the
same way: finished parts are skipped, the unfinished one continues from its
checkpoint.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from dataclasses import dataclass, field, replace

from safetensors import SafetensorError

from specc.diagnostics import Diagnostic, Span, SpeccError, error
from specc.limits import DEFAULT_LIMITS, Limits
from specc.train.checkpoint import CHECKPOINT, load_checkpoint, write_atomic
from specc.train.device import describe, prepare, resolve_device, torch_threads, use_threads
from specc.train.distributed import SINGLE, World, core_share, spawn, world_from_env
from specc.train.rundir import (SPEC_COPY, check_new_run_dir, check_unchanged, create_run_dir, default_run_dir,
                                read_run, read_tree, relocated, remove_leftovers, resolved_tree, set_training,
                                write_run)

SUMMARY = "summary.json"


@dataclass
class RunResult:
    run_dir: str
    kind: str                       # single | ensemble | search
    best: dict | None               # the kept epoch's metrics row (val, test, epoch)
    epochs_run: int = 0
    stopped_early: bool = False
    wall_seconds: float = 0.0
    parts: list = field(default_factory=list)   # members or trials: their summaries
    device: str | None = None       # where the run (its last session) trained: `cpu (2 threads)`, `cuda:0 (...)`
    threads: int | None = None      # PyTorch's CPU threads in that session

    def as_dict(self) -> dict:
        return {"kind": self.kind, "best": self.best, "epochs_run": self.epochs_run,
                "stopped_early": self.stopped_early, "wall_seconds": round(self.wall_seconds, 3),
                "device": self.device, "threads": self.threads, "parts": self.parts}


@dataclass(frozen=True)
class RunOptions:
    """How to run (not what: that is the spec copy)."""

    limits: Limits = DEFAULT_LIMITS
    data_dir: str | None = None
    nproc: int = 1
    progress: bool = True
    checkpoint_every: int = 0
    plots: bool = True              # loss.png and accuracy.png
    dataset: object = None          # an in-memory data set (tests, notebooks): used instead of `training.data`
    device: str = "cpu"             # cpu | cuda | auto (a CUDA GPU when there is one); `specc train` says auto
    threads: int = 0                # PyTorch's CPU threads per process (`--threads`); 0 keeps its default


def train(spec_path: str, run_dir: str | None = None, *, epochs: int | None = None, seed: int | None = None,
          options: RunOptions = RunOptions()) -> RunResult:
    """Start a run of the spec at `spec_path` in a new run directory."""
    use_threads(options.threads)
    world = world_from_env()  # a process group when started by torchrun; one process otherwise
    if world.size > 1:
        return _train_under_launcher(world, spec_path, run_dir, epochs, seed, options)
    claimed = run_dir is None  # the default directory is made (empty) when it is named
    run_dir = run_dir or _default_dir(spec_path, options.limits)
    existed = os.path.isdir(run_dir) and not claimed
    try:
        arrays = start_run(spec_path, run_dir, epochs, seed, options)
    except BaseException:
        if claimed and not os.listdir(run_dir):
            os.rmdir(run_dir)  # refused before anything was written: leave nothing behind
        raise
    try:
        return run_in_dir(run_dir, replace(options, dataset=arrays))
    except SpeccError as exc:
        if _trained_anything(run_dir):
            raise
        # Nothing was trained: leave no half-made run behind, and say where in the user's spec the problem is.
        moved = relocated(exc, os.path.join(run_dir, SPEC_COPY), spec_path, options.limits)
        _remove_new_run(run_dir, existed)
        if moved is exc:
            raise
        raise moved from None


def start_run(spec_path: str, run_dir: str, epochs: int | None, seed: int | None, options: RunOptions):
    """Check the spec, read its data and write the new run directory's spec copy and run.json.
    Returns the data set: read here, its problems are reported at the user's spec, not at the copy."""
    from specc.compiler import compile_spec
    from specc.ir.analysis import check_memory_budget
    from specc.train.config import training_config
    from specc.train.session import check_trainable, config_span, preflight

    compiled = compile_spec(spec_path, options.limits)  # diagnostics point at the user's file, not the copy
    spec = compiled.spec
    if spec.training is None:
        raise error("E100", "the spec has no `training` section, so specc train does not know how to train it",
                    Span(spec.path), "add e.g. `training: {data: {dataset: mnist-sample}, epochs: 2, "
                    "optimizer: {adam: {lr: 0.001}}}`")
    cfg = training_config(spec.training)
    check_trainable(compiled, cfg)
    check_memory_budget(compiled.graph, options.limits.memory_budget, batch=cfg.batch_size, what="train",
                        training=True)  # before the data is read or anything is allocated
    processes = max(options.nproc, int(os.environ.get("WORLD_SIZE", "1")))  # --nproc, or torchrun's world
    if cfg.batch_size < processes:
        raise error("E100", f"`batch_size: {cfg.batch_size}` is split across {processes} processes, so some would "
                    "get no examples", config_span(spec, "batch_size"),
                    f"use a batch size of at least {processes}, or fewer processes")
    device = resolve_device(options.device, spec_path, processes)  # refused here, before the run directory
    tree = resolved_tree(spec_path, options.limits)
    if epochs is not None:
        set_training(tree, "epochs", epochs)
    if seed is not None:
        set_training(tree, "seed", seed)
    if tree["training"].get("search"):
        from specc.train.search import check_space

        check_space(compiled, tree, options.limits)
    check_new_run_dir(run_dir)  # before the data is read: that may take a while
    arrays = _dataset(options)
    if arrays is None:
        from specc.train.feed import load_arrays

        width = next(iter(compiled.graph.outputs.values())).type.shape[-1]
        arrays = load_arrays(compiled, options.data_dir, options.limits, width,
                             seed=seed if seed is not None else spec.seed)
    preflight(compiled, cfg, arrays, options.limits)
    create_run_dir(run_dir)
    # What each training process uses: with --nproc, the workers share the cores out (or take --threads).
    threads = (options.threads or core_share(options.nproc)) if options.nproc > 1 else torch_threads()
    write_run(run_dir, tree, spec_path, {"data_dir": _abs(options.data_dir), "nproc": options.nproc,
                                         "device": describe(device, threads), "threads": threads,
                                         "checkpoint_every": options.checkpoint_every, "plots": options.plots})
    return arrays


def resume(run_dir: str, options: RunOptions = RunOptions()) -> RunResult:
    """Continue the run in `run_dir` from its last checkpoint (or finish nothing if it is complete), on
    `options.device`: a run may continue on another device than it began on."""
    info = read_run(run_dir)
    options = as_started(replace(options, data_dir=options.data_dir or info.get("data_dir")), info)
    use_threads(options.threads)
    world = world_from_env()
    if world.size > 1:
        _refuse_composite(run_dir)
        if world.main:
            remove_leftovers(run_dir)
        return train_in_dir(run_dir, options, world)
    if options.nproc == 1 and info.get("nproc", 1) > 1:
        options = replace(options, nproc=info["nproc"])
    return run_in_dir(run_dir, options)


def as_started(options: RunOptions, info: dict) -> RunOptions:
    """What `--resume` does not repeat is taken from run.json: the checkpoint interval, no plots, and the
    thread count of a one-process run (another count rounds sums differently, and the weights would then
    differ from an uninterrupted run's), capped at the cores this machine gives the process."""
    if options.threads == 0 and info.get("nproc", 1) == 1 and isinstance(info.get("threads"), int):
        # the cores this process may use (macOS has no affinity call: all of them)
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        options = replace(options, threads=max(1, min(info["threads"], cores)))
    if options.checkpoint_every == 0 and isinstance(info.get("checkpoint_every"), int):
        options = replace(options, checkpoint_every=max(0, info["checkpoint_every"]))
    if info.get("plots") is False:
        options = replace(options, plots=False)
    return options


def run_in_dir(run_dir: str, options: RunOptions) -> RunResult:
    """Run (or continue) whatever kind of run `run_dir/spec.yaml` describes."""
    from specc.train.interrupt import RunInterrupted

    tree = read_tree(run_dir)
    check_unchanged(run_dir, read_run(run_dir), tree)
    remove_leftovers(run_dir)
    training = tree.get("training") or {}
    if not (training.get("search") or training.get("ensemble")):
        return run_single(run_dir, options)
    try:
        if training.get("search"):
            from specc.train.search import run_search

            return run_search(run_dir, options)
        from specc.train.ensemble import run_ensemble

        return run_ensemble(run_dir, options)
    except RunInterrupted:  # a member or trial stopped: `--resume` continues the whole run, not that part
        raise RunInterrupted(run_dir) from None


def run_single(run_dir: str, options: RunOptions) -> RunResult:
    done = read_summary(run_dir)
    if done is not None:
        _note_finished(run_dir, done)
        return done
    if options.nproc > 1:
        _spawn_run(run_dir, options)
        return read_summary(run_dir)
    return train_in_dir(run_dir, options, SINGLE)


def _note_finished(run_dir: str, done: RunResult) -> None:
    """A finished run whose spec copy was given more epochs is not trained further: say so, not nothing."""
    epochs = (read_tree(run_dir).get("training") or {}).get("epochs")
    if isinstance(epochs, int) and epochs > done.epochs_run and not done.stopped_early:
        print(f"specc train: the run in {run_dir} finished after {done.epochs_run} epoch(s); its spec copy now says "
              f"{epochs}, but a finished run is not trained further. To go on from its weights, start a new run "
              f"with `init: {{from: {os.path.join(run_dir, 'model.safetensors')}}}`", file=sys.stderr)


def compile_copy(run_dir: str, limits: Limits):
    """The spec copy, compiled. Its paths were checked (and made absolute) when the run began."""
    from specc.compiler import compile_spec

    return compile_spec(os.path.join(run_dir, SPEC_COPY), replace(limits, allow_outside=True))


def _dataset(options: RunOptions):
    from specc.train.feed import Arrays

    dataset = options.dataset
    return dataset if dataset is None or isinstance(dataset, Arrays) else Arrays.from_dataset(dataset)


def load_data(compiled, run_dir: str, options: RunOptions):
    from specc.train.feed import load_arrays

    if options.dataset is not None:
        return _dataset(options)
    info = read_run(run_dir)
    graph = compiled.graph
    width = next(iter(graph.outputs.values())).type.shape[-1]
    return load_arrays(compiled, options.data_dir, options.limits, width, seed=info.get("data_seed"))


def train_in_dir(run_dir: str, options: RunOptions, world: World) -> RunResult:
    from specc.train.config import training_config
    from specc.train.feed import expanded
    from specc.train.interrupt import GracefulStop
    from specc.train.loop import Trainer
    from specc.train.session import Session

    threads = use_threads(options.threads)  # per process: after the launcher's share of the cores
    device = resolve_device(options.device, run_dir, world.size)
    prepare(device)
    compiled = compile_copy(run_dir, options.limits)
    spec = compiled.spec
    cfg = training_config(spec.training)
    arrays = expanded(load_data(compiled, run_dir, options), spec.augment, spec.inputs[0].layout, cfg.seed)
    session = Session(compiled, cfg, arrays, world, options.limits, device)
    trainer = Trainer(session, arrays, run_dir, options.progress, options.checkpoint_every, options.plots)
    if world.main:  # like the closing summary, printed with or without progress lines
        print(run_header(spec.name, device, session.steps_per_epoch, cfg), file=sys.stderr, flush=True)
    if os.path.exists(os.path.join(run_dir, CHECKPOINT)):
        try:
            tensors, state = load_checkpoint(run_dir)
            trainer.restore(tensors, state)
        except (OSError, ValueError, KeyError, TypeError, RuntimeError, SafetensorError) as exc:
            raise error("E101", f"the checkpoint in {run_dir} cannot be read ({type(exc).__name__}: "
                        f"{str(exc)[:200]})", Span(os.path.join(run_dir, CHECKPOINT)),
                        "start the run again with `specc train SPEC -o NEW_DIR`") from None
    if not trainer.progress.finished:
        with GracefulStop(enabled=world.size == 1) as trainer.stop:
            trainer.run()
    progress = trainer.progress
    result = RunResult(run_dir, "single", progress.best, progress.epoch, progress.stopped_early,
                       trainer.wall_seconds, device=describe(device), threads=threads)
    if world.main:
        write_summary(run_dir, result)
    return result


def write_summary(run_dir: str, result: RunResult) -> None:
    write_atomic(os.path.join(run_dir, SUMMARY), json.dumps({"run_dir": run_dir, **result.as_dict()}, indent=1))


def read_summary(run_dir: str) -> RunResult | None:
    """The result of a finished run directory, or None when it has not finished."""
    path = os.path.join(run_dir, SUMMARY)
    if not os.path.isfile(path):
        return None
    try:
        with open(path) as handle:
            data = json.load(handle)
        return RunResult(run_dir, data["kind"], data["best"], data["epochs_run"], data["stopped_early"],
                         data["wall_seconds"], data.get("parts", []), data.get("device"), data.get("threads"))
    except (OSError, ValueError, KeyError, TypeError) as exc:  # JSONDecodeError is a ValueError
        raise error("E101", f"{SUMMARY} of the finished run in {run_dir} is not readable ({type(exc).__name__}: "
                    f"{str(exc)[:200]})", Span(path),
                    f"delete {path} and `specc train --resume {run_dir}` writes it again") from None


# --- several processes ----------------------------------------------------------------------------

def _train_under_launcher(world: World, spec_path, run_dir, epochs, seed, options: RunOptions) -> RunResult:
    """Under torchrun every process runs `specc train`: the first makes the run directory, all train in it."""
    import torch.distributed as dist

    shared = [None]
    if world.main:
        try:
            run_dir = run_dir or _default_dir(spec_path, options.limits)
            options = replace(options, dataset=start_run(spec_path, run_dir, epochs, seed, options))
            shared = [run_dir]
        finally:
            dist.broadcast_object_list(shared, src=0)
    else:
        dist.broadcast_object_list(shared, src=0)
        if shared[0] is None:
            raise error("E102", "the first process could not start the run (it printed why)", Span(spec_path))
    _refuse_composite(shared[0])
    return train_in_dir(shared[0], replace(options, progress=options.progress and world.main), world)


def _refuse_composite(run_dir: str) -> None:
    training = read_tree(run_dir).get("training") or {}
    for key in ("ensemble", "search"):
        if training.get(key):
            raise error("E100", f"a `{key}` runs its parts one after another: start it with `specc train --nproc N`, "
                        "not under torchrun", Span(os.path.join(run_dir, SPEC_COPY)),
                        "torchrun runs single networks; use --nproc for each part of an ensemble or search")


ERROR_FILE = ".failed-rank{}.json"


def _spawn_run(run_dir: str, options: RunOptions) -> None:
    for name in os.listdir(run_dir):
        if name.startswith(".failed-rank"):
            os.unlink(os.path.join(run_dir, name))
    try:
        spawn(_process_main, options.nproc, run_dir, options)
    except Exception as exc:  # a process died: its located diagnostics, if it left any, say why
        diags = []
        for rank in range(options.nproc):
            path = os.path.join(run_dir, ERROR_FILE.format(rank))
            if os.path.exists(path):
                with open(path) as handle:
                    diags += [Diagnostic(d["code"], d["message"], Span(d["path"], d["line"], d["column"]),
                                         d["hint"]) for d in json.load(handle)]
                os.unlink(path)
        if diags:
            raise SpeccError(diags) from None
        raise error("E102", f"a training process failed: {str(exc).strip().splitlines()[-1][:300]}",
                    Span(run_dir), "run with --nproc 1 to see the problem in one process") from None


def _process_main(run_dir: str, options: RunOptions) -> None:
    """One process of a multi-process run (spawned by --nproc, or started by torchrun)."""
    world = world_from_env()
    try:
        train_in_dir(run_dir, replace(options, progress=options.progress and world.main), world)
    except SpeccError as exc:
        write_atomic(os.path.join(run_dir, ERROR_FILE.format(world.rank)),
                     json.dumps([d.as_dict() for d in exc.diagnostics]))
        raise


# --- helpers --------------------------------------------------------------------------------------

def _default_dir(spec_path: str, limits: Limits) -> str:
    from specc.parser.spec import load_spec

    return default_run_dir(load_spec(spec_path, limits).name or "run")


def _abs(path: str | None) -> str | None:
    return os.path.abspath(path) if path else None


def _trained_anything(run_dir: str) -> bool:
    return any(CHECKPOINT in files for _, _, files in os.walk(run_dir))


def _remove_new_run(run_dir: str, existed: bool) -> None:
    if existed:
        for name in os.listdir(run_dir):
            target = os.path.join(run_dir, name)
            shutil.rmtree(target) if os.path.isdir(target) else os.unlink(target)
    else:
        shutil.rmtree(run_dir, ignore_errors=True)


def run_header(name: str, device, steps: int, cfg) -> str:
    """The line a run starts with: what trains where, and how long an epoch is."""
    return (f"training {name} on {describe(device)}: {cfg.epochs} epoch{'s' if cfg.epochs != 1 else ''} of "
            f"{steps:,} mini-batches of {cfg.batch_size}")


def summary_text(result: RunResult) -> str:
    """The closing lines `specc train` prints."""
    best = result.best or {}
    lines = []
    if result.kind == "search":
        from specc.train.search import trials_table

        epoch = "" if best.get("epoch") is None else f" (epoch {best['epoch']})"  # an ensemble trial has none
        lines += [trials_table(result.parts), f"best trial {best.get('trial')}{epoch}"]
    elif result.kind == "ensemble":
        for part in result.parts:
            val = (part.get("val") or {}).get("accuracy")
            lines.append(f"member {part['member']} (seed {part['seed']}): best epoch {part['best_epoch']}"
                         + (f", validation accuracy {val:.2%}" if val is not None else ""))
        lines.append(f"ensemble of {len(result.parts)}")
    else:
        lines.append(f"best epoch {best.get('epoch')} of {result.epochs_run}"
                     + (" (stopped early)" if result.stopped_early else ""))
    for key, label in (("val", "validation"), ("test", "test")):
        if best.get(key):
            lines.append(f"  {label} accuracy {best[key]['accuracy']:.2%}  loss {best[key]['loss']:.4f}")
    minutes, seconds = divmod(result.wall_seconds, 60)
    lines.append(f"  wall time {int(minutes)}m {seconds:.1f}s" + (f" on {result.device}" if result.device else ""))
    lines.append(f"  run directory {result.run_dir}")
    return "\n".join(lines)
