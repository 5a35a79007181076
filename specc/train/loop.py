"""The epoch loop: train, validate, keep the best, checkpoint, stop early.

Nielsen's protocol: after every epoch the model is evaluated on the
validation split; the kept model (`model.safetensors`) is the best one so far
on the monitored validation metric (accuracy, or `early_stopping.metric`;
ties go to the later epoch, as network3.py's `>=`), and the test metrics
reported for the run are those of that epoch. Without a validation split the
last epoch is kept. `early_stopping` ends the run after `patience` epochs
without a strict improvement of its metric.

As in network3.py, an epoch is len(train) // batch_size full mini-batches of a
fresh shuffle; the remainder waits for another epoch's shuffle.
"""

from __future__ import annotations

import functools
import json
import math
import os
import sys
import time
from dataclasses import asdict, dataclass, field

import torch

from specc.diagnostics import error
from specc.train.bn_stats import recalibration_images
from specc.train.checkpoint import save_checkpoint, write_atomic
from specc.train.device import to_device
from specc.train.evaluate import evaluate, host_tensor, module_predictor
from specc.train.feed import Arrays, batch_generator, derived_seed, epoch_order, make_augmenter
from specc.train.interrupt import RunInterrupted
from specc.train.losses import distillation_loss
from specc.train.metrics import higher_is_better
from specc.train.optim import set_lr
from specc.train.session import Session, config_span

MODEL = "model.safetensors"
METRICS = "metrics.jsonl"
PLOT_INTERVAL = 60.0  # seconds
BAR_INTERVAL = 1.0  # seconds between progress-bar refreshes: each takes about 2 ms (count, format, write)
ROW_BLOCK = 256     # rows of an epoch's tables made into views at a time (see `row_views`)


def row_views(table: torch.Tensor, start: int = 0):
    """table[start], table[start + 1], ...: views made ROW_BLOCK rows at a time by one `unbind`. Inside a
    training step, whose arithmetic has just evicted the caches, a `table[step]` select costs about 20 us;
    taking the next view of a block costs nothing."""
    for first in range(start, len(table), ROW_BLOCK):
        yield from table[first:first + ROW_BLOCK].unbind(0)


@dataclass
class Progress:
    """Where a run stands; saved in every checkpoint."""

    epoch: int = 0                  # epochs completed
    step: int = 0                   # mini-batches done in the next epoch (a mid-epoch checkpoint)
    partial: dict | None = None     # that epoch's running sums
    history: list = field(default_factory=list)   # one row per completed epoch (metrics.jsonl)
    best: dict | None = None        # the kept epoch's row
    since_best: int = 0
    elapsed: float = 0.0            # wall seconds of earlier sessions of this run
    finished: bool = False
    stopped_early: bool = False


@dataclass
class Monitor:
    """What "best" means: a validation metric and its direction."""

    metric: str
    patience: int | None

    @classmethod
    def of(cls, session: Session, has_val: bool) -> "Monitor":
        stopping = session.cfg.early_stopping
        if stopping and not has_val:
            raise error("E100", "`early_stopping` watches the validation split, and this data set has none",
                        config_span(session.compiled.spec, "early_stopping"),
                        "hold some training data out with `data: {validation: 5000}`, or remove `early_stopping`")
        if stopping and stopping["metric"].removeprefix("val_") == "confusion":
            raise error("E100", "`early_stopping` watches one number; the confusion matrix is a table",
                        config_span(session.compiled.spec, "early_stopping"),
                        "watch `accuracy`, `f1` or `loss`")
        if stopping:
            return cls(stopping["metric"].removeprefix("val_"), stopping["patience"])
        return cls("accuracy", None)

    def compare(self, row: dict, best: dict | None) -> tuple[bool, bool]:
        """(keep this epoch, strictly better). A tie keeps the later epoch (network3.py's `>=`) but does
        not count as progress for `patience`, so a plateau still stops."""
        if best is None or row.get("val") is None:
            return True, True
        new, old = row["val"][self.metric], best["val"][self.metric]
        if not higher_is_better(self.metric):
            new, old = -new, -old
        return new >= old, new > old


@functools.cache
def _epoch_bar_class():
    """tqdm without its monitor thread, made once (tqdm is imported only when a bar is shown). The thread
    exists to rescue bars whose updates stall; this one is refreshed from the loop once a second, and a
    second thread waking in a process that trains on one core showed as up to 5% more time per epoch
    (benchmarks/train_overhead.py)."""
    from tqdm import tqdm

    class EpochBar(tqdm):
        monitor_interval = 0

    return EpochBar


class _Sums:
    """Running training loss and accuracy of one epoch.

    The loss: on the CPU each mini-batch's loss is read at once (.item() on a CPU tensor is a read), so a
    loss that is not finite stops the run at its own mini-batch. On a GPU reading would wait for the batch
    to finish and stall the queue of work, so the loss sum stays on the device until `settle()` reads it.

    The accuracy: given the epoch's labels, each mini-batch's predicted classes are written into a table
    made for the epoch, and `settle()` compares them with the labels all at once. A step then runs one op
    where counting took four (argmax, compare, sum, read), and none of its tensors outlives it (small tensors
    kept across steps split the C heap, and the allocator then gave pages back to the system and faulted
    them in again at every step). Without the labels each mini-batch is counted as it comes.

    `settle()` runs at progress updates and checkpoints, and at the epoch's end."""

    def __init__(self, partial: dict | None = None, device: torch.device | None = None,
                 labels: torch.Tensor | None = None, start: int = 0):
        partial = partial or {}
        self.loss = partial.get("loss", 0.0)
        self.correct = partial.get("correct", 0)
        self.count = partial.get("count", 0)
        self.seconds = partial.get("seconds", 0.0)
        self.deferred = device is not None and device.type != "cpu"
        self._loss: torch.Tensor | None = None      # deferred: the loss sum on the device, not yet read
        self._correct: torch.Tensor | None = None   # deferred: correct predictions on the device, not yet read
        self._labels = labels                       # (mini-batches, examples): the epoch's labels
        self._predicted = None if labels is None else torch.empty_like(labels)
        self._rows = None if labels is None else row_views(self._predicted, start)
        self._counted = self._added = start         # mini-batches [counted, added) predicted, not yet compared

    def add(self, loss: torch.Tensor, out: torch.Tensor, y: torch.Tensor) -> float:
        """Returns the batch's loss, or (deferred) 0.0: `settle()` then says whether the sums are finite."""
        n = len(y)
        self.count += n
        if self._predicted is None:
            self._add_correct((out.argmax(dim=-1) == y).sum())
        else:
            torch.argmax(out, dim=-1, out=next(self._rows))
            self._added += 1
        if self.deferred:
            batch = loss.detach().double() * n
            self._loss = batch if self._loss is None else self._loss + batch
            return 0.0
        value = loss.item()
        self.loss += value * n
        return value

    def _add_correct(self, correct: torch.Tensor) -> None:
        if self.deferred:
            self._correct = correct if self._correct is None else self._correct + correct
        else:
            self.correct += int(correct)

    def settle(self) -> float:
        """Count the predictions not yet compared, and read the device's sums into the running ones (one wait
        for the device). Returns the loss sum."""
        if self._added > self._counted:
            batches = slice(self._counted, self._added)
            self._add_correct((self._predicted[batches] == self._labels[batches]).sum())
            self._counted = self._added
        if self._loss is not None:
            self.loss += float(self._loss)
            self._loss = None
        if self._correct is not None:
            self.correct += int(self._correct)
            self._correct = None
        return self.loss

    def as_dict(self) -> dict:
        self.settle()
        return {"loss": self.loss, "correct": self.correct, "count": self.count, "seconds": self.seconds}


class Trainer:
    def __init__(self, session: Session, arrays: Arrays, run_dir: str | None, progress_bar: bool = True,
                 checkpoint_every: int = 0, plots: bool = True):
        spec = session.compiled.spec
        self.s, self.run_dir, self.world = session, run_dir, session.world
        self.cfg = session.cfg
        self.show = progress_bar and self.world.main
        self.checkpoint_every = checkpoint_every
        self.plots = plots
        self._plotted = -math.inf
        first = spec.inputs[0]
        self.device = session.device
        self.augmenter = make_augmenter(spec.augment, self.cfg.seed, first.layout, tuple(first.shape))
        # The data stays in host memory; each mini-batch is copied to the device on its own.
        self.train_x, self.train_y = host_tensor(arrays.train_x), host_tensor(arrays.train_y)
        self.splits = {key: (host_tensor(x), host_tensor(y)) for key, x, y in
                       (("val", arrays.val_x, arrays.val_y), ("test", arrays.test_x, arrays.test_y)) if x is not None}
        self.recalibration_images = None if not self.cfg.bn_recalibration else \
            recalibration_images(self.train_x, self.cfg.bn_recalibration, self.cfg.seed)
        self.monitor = Monitor.of(session, "val" in self.splits)
        self.wanted = tuple(dict.fromkeys(self.cfg.metrics + (self.monitor.metric,)))
        self.progress = Progress()
        self._session_start = time.perf_counter()
        self.stop = None  # a GracefulStop while `specc train` runs: asked, the loop saves its place and stops

    # --- the run ------------------------------------------------------------------------------
    def run(self) -> Progress:
        p = self.progress
        while p.epoch < self.cfg.epochs and not p.finished:
            row = self.epoch(p.epoch)
            p.history.append(row)
            p.epoch, p.step, p.partial = p.epoch + 1, 0, None
            keep, better = self.monitor.compare(row, p.best)
            p.since_best = 0 if better else p.since_best + 1
            row["best"] = keep  # in every row, so readers need not treat a missing key as false
            if keep:
                p.best = row
                self.save_model(row)
            if self.monitor.patience is not None and p.since_best >= self.monitor.patience:
                p.stopped_early = True
            p.finished = p.stopped_early or p.epoch >= self.cfg.epochs
            self.report(row, p.finished)
            self.save_progress()
            if self._stop_asked() and not p.finished:
                raise RunInterrupted(self.run_dir)
        return p

    def _stop_asked(self) -> bool:
        return self.stop is not None and self.stop.requested

    def epoch(self, epoch: int) -> dict:
        sums = self.train_epoch(epoch)
        lr = self.s.schedule(epoch, self.s.steps_per_epoch - 1)
        train = self.world.all_reduce_sum(torch.tensor([sums.loss, float(sums.correct), float(sums.count)],
                                                       dtype=torch.float64))
        loss, correct, count = (float(v) for v in train)
        if not math.isfinite(loss):
            self.diverged(epoch, self.s.steps_per_epoch - 1)
        row = {"epoch": epoch + 1, "lr": lr, "train": {"loss": loss / count, "accuracy": correct / count}}
        started = time.perf_counter()
        predict = module_predictor(self.s.prepare_evaluation(self.recalibration_images), self.s.output)
        for key, (x, y) in self.splits.items():
            row[key] = evaluate(predict, x, y, self.s.loss, self.s.num_classes, self.world,
                                device=self.device).results(self.wanted)
        self.s.module.train()
        row["seconds"] = round(sums.seconds, 3)
        row["eval_seconds"] = round(time.perf_counter() - started, 3)
        row["images_per_second"] = round(count / sums.seconds, 1) if sums.seconds else None
        return row

    def train_epoch(self, epoch: int) -> _Sums:
        s, cfg, world = self.s, self.cfg, self.world
        p = self.progress
        start = p.step if p.epoch == epoch else 0
        device = self.device
        if start == 0:  # dropout's randomness: a function of the position, so a resumed run draws the same
            torch.manual_seed(derived_seed(cfg.seed, 0x70C4, epoch, world.rank))
        batch, steps = cfg.batch_size, s.steps_per_epoch
        order = epoch_order(cfg.seed, epoch, len(self.train_y))
        # Row i: this process's share of mini-batch i (`shard` of every row at once, through the transpose).
        batches = world.shard(order[:steps * batch].view(steps, batch).T).T
        labels = to_device(self.train_y[batches], device)
        sums = _Sums(p.partial if start else None, device, labels, start)
        scale = batches.shape[1] * world.size / batch  # this process's share of a mini-batch's loss
        s.module.train()
        bar = self.bar(epoch, steps, start)
        rate = None  # the learning rate the optimizer has
        shown = time.perf_counter()
        began = time.perf_counter()
        for step, mine, y in zip(range(start, steps), row_views(batches, start), row_views(labels, start)):
            x = to_device(self.train_x[mine], device)
            if self.augmenter is not None:
                x = self.augmenter(x.float(), batch_generator(cfg.seed, epoch, step, world.rank, device))
            lr = s.schedule(epoch, step)
            if lr != rate:  # most schedules move once an epoch, and setting the rate costs ~8 us in a step
                set_lr(s.optimizer, lr, s.trainable.groups)
                rate = lr
            out, loss = self.step(x, y, scale)
            if not math.isfinite(sums.add(loss, out, y)):
                self.diverged(epoch, step)
            if bar is not None:
                bar.update(1)
                now = time.perf_counter()
                if now - shown > BAR_INTERVAL:
                    shown = now
                    self.settle(sums, epoch, step)
                    self.show_sums(bar, sums, sums.seconds + now - began)
            stopping = self._stop_asked()
            if (stopping or self.checkpoint_every and (step + 1) % self.checkpoint_every == 0) and step + 1 < steps:
                self.settle(sums, epoch, step)
                sums.seconds += time.perf_counter() - began
                p.step, p.partial = step + 1, sums.as_dict()
                self.save_progress()
                if stopping:
                    if bar is not None:
                        bar.close()
                    raise RunInterrupted(self.run_dir)
                began = time.perf_counter()
        self.settle(sums, epoch, steps - 1)  # the epoch's time includes the device's queued work
        sums.seconds += time.perf_counter() - began
        if bar is not None:
            bar.close()
        return sums

    def step(self, x, y, scale: float):
        """One optimizer update on a mini-batch (this process's share of it). Returns (output, data loss)."""
        s = self.s
        if s.cfg.optimizer[0] == "lbfgs":
            return self.lbfgs_step(x, y, scale)
        s.optimizer.zero_grad(set_to_none=True)
        out = s.model(x)[s.output]
        loss = s.train_loss(out, y)
        total = self.with_teacher(loss, out, x)
        (total * scale if scale != 1.0 else total).backward()
        self.after_backward()
        s.regularizer.decoupled_decay(s.optimizer, s.trainable.groups)
        s.optimizer.step()
        if s.averager is not None:
            s.averager.update()
        return out, loss

    def lbfgs_step(self, x, y, scale: float):
        s = self.s
        last = {}

        def closure():
            s.optimizer.zero_grad(set_to_none=True)
            out = s.model(x)[s.output]
            loss = s.train_loss(out, y)
            total = self.with_teacher(loss, out, x)
            (total * scale if scale != 1.0 else total).backward()
            self.after_backward()
            last["out"], last["loss"] = out, loss
            return total.detach() + s.regularizer.penalty(s.trainable.weights)

        s.regularizer.decoupled_decay(s.optimizer, s.trainable.groups)
        s.optimizer.step(closure)
        if s.averager is not None:
            s.averager.update()
        return last["out"], last["loss"]

    def settle(self, sums: _Sums, epoch: int, step: int) -> None:
        """Bring the sums up to date; a deferred (GPU) loss that has become infinite or NaN stops the run here."""
        loss = sums.settle()
        if sums.deferred and not math.isfinite(loss):
            self.diverged(epoch, step, by=True)

    def with_teacher(self, loss, out, x):
        teacher = self.s.teacher
        if teacher is None:
            return loss
        soft = distillation_loss(out, teacher(x), self.s.train_kind, teacher.kind, teacher.temperature)
        return teacher.alpha * soft + (1.0 - teacher.alpha) * loss

    def after_backward(self) -> None:
        s = self.s
        if s.cfg.regularization.l2 or s.cfg.regularization.l1:
            s.regularizer.add_gradients(s.trainable.weights)
        if s.cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(s.trainable.params, s.cfg.grad_clip)

    # --- output ---------------------------------------------------------------------------------
    def bar(self, epoch: int, steps: int, start: int):
        if not self.show:
            return None
        return _epoch_bar_class()(total=steps, initial=start, desc=f"epoch {epoch + 1}/{self.cfg.epochs}",
                                  file=sys.stderr, unit="batch", leave=False, dynamic_ncols=True,
                                  mininterval=BAR_INTERVAL)

    def show_sums(self, bar, sums: _Sums, seconds: float) -> None:
        loss = sums.loss / max(1, sums.count)
        rate = sums.count * self.world.size / seconds if seconds > 0 else 0.0
        bar.set_postfix_str(f"loss {loss:.4f}, acc {sums.correct / max(1, sums.count):.2%}, "
                            f"{rate:,.0f} img/s", refresh=False)

    def diverged(self, epoch: int, step: int, by: bool = False):
        """`by`: the loss was found not finite when the GPU's sums were read, somewhere up to this mini-batch."""
        lr = self.s.schedule(epoch, min(step, self.s.steps_per_epoch - 1))
        raise error("E102", f"training diverged: the loss is not finite in epoch {epoch + 1}, "
                    f"{'by ' if by else ''}mini-batch {step + 1} (lr {lr:g})",
                    config_span(self.s.compiled.spec, "optimizer"),
                    "lower the learning rate, or add `grad_clip: 1.0`")

    def report(self, row: dict, last: bool) -> None:
        if not self.world.main:
            return
        if self.run_dir:
            write_atomic(os.path.join(self.run_dir, METRICS),
                         "".join(json.dumps(r) + "\n" for r in self.progress.history))
            # Drawing takes a good part of a second: on short epochs, redraw once a minute and at the end.
            if self.plots and (last or time.perf_counter() - self._plotted > PLOT_INTERVAL):
                from specc.train.plots import write_plots

                write_plots(self.run_dir, self.progress.history, self.s.compiled.spec.name)
                self._plotted = time.perf_counter()
        if self.show:
            print(epoch_line(row, self.cfg.epochs), file=sys.stderr, flush=True)

    def save_model(self, row: dict) -> None:
        if not (self.world.main and self.run_dir):
            return
        from specc.codegen.weights import save_weights

        save_weights(os.path.join(self.run_dir, MODEL), self.s.kept_weights(),
                     {"specc.name": self.s.compiled.spec.name, "specc.epoch": row["epoch"],
                      "specc.averaged": bool(self.s.averager)})

    def save_progress(self) -> None:
        p = self.progress
        if not (self.world.main and self.run_dir):
            return
        tensors, meta = self.s.state_tensors()
        elapsed = p.elapsed + time.perf_counter() - self._session_start
        save_checkpoint(self.run_dir, tensors, {**asdict(p), "elapsed": elapsed, "session": meta})

    def restore(self, tensors: dict, state: dict) -> None:
        state = dict(state)
        self.s.restore(tensors, state.pop("session"))
        state.pop("format", None)
        self.progress = Progress(**state)
        self._session_start = time.perf_counter()

    @property
    def wall_seconds(self) -> float:
        return self.progress.elapsed + time.perf_counter() - self._session_start


def epoch_line(row: dict, epochs: int) -> str:
    parts = [f"epoch {row['epoch']}/{epochs}", f"loss {row['train']['loss']:.4f}",
             f"train {row['train']['accuracy']:.2%}"]
    for key in ("val", "test"):
        if row.get(key):
            parts.append(f"{key} {row[key]['accuracy']:.2%}")
    parts.append(f"{row['seconds']:.1f}s")
    if row.get("images_per_second"):
        parts.append(f"{row['images_per_second']:,.0f} img/s")
    if row.get("best"):
        parts.append("*")
    return "  ".join(parts)
