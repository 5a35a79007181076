"""`loss.png` and `accuracy.png`: the learning curves of a run, redrawn after every epoch. At the top of an
ensemble or search they hold one validation curve per member or trial, redrawn as each one finishes."""

from __future__ import annotations

import io
import os

from specc.train.checkpoint import write_atomic
from specc.train.rundir import read_history

SPLITS = (("train", "train"), ("val", "validation"), ("test", "test"))


def _axes():
    import matplotlib

    matplotlib.use("Agg")  # files only; never a window, even where a display exists
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6, 4), dpi=100)
    return figure, figure.subplots()


def _curve(axes, history: list, split: str, metric: str, label: str) -> None:
    points = [(row["epoch"], (row.get(split) or {}).get(metric)) for row in history]
    points = [(e, v) for e, v in points if v is not None]
    if points:
        axes.plot(*zip(*points), marker="o", markersize=3, label=label)


def _figure_png(history: list, metric: str, title: str, ylabel: str) -> bytes:
    return _finish(*draw_curves(history, metric), title, ylabel)


def draw_curves(history: list, metric: str) -> tuple:
    """(figure, axes) with each split's curve and a dashed line at the kept epoch: the one whose weights are
    model.safetensors, and whose test figure the run reports."""
    figure, axes = _axes()
    for key, label in SPLITS:
        _curve(axes, history, key, metric, label)
    kept = [row["epoch"] for row in history if row.get("best")]
    if kept:
        axes.axvline(kept[-1], color="grey", linestyle="--", linewidth=1, label=f"kept: epoch {kept[-1]}")
    return figure, axes


def _finish(figure, axes, title: str, ylabel: str) -> bytes:
    from matplotlib.ticker import MaxNLocator

    axes.set_xlabel("epoch")
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole: no 1.5 ticks on short runs
    axes.set_ylabel(ylabel)
    axes.set_title(title)
    axes.grid(True, alpha=0.3)
    handles = axes.get_legend_handles_labels()[0]
    if handles:  # many members or trials: a smaller legend in two columns
        axes.legend(fontsize="small" if len(handles) > 3 else None, ncol=2 if len(handles) > 8 else 1)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", bbox_inches="tight")
    return buffer.getvalue()


def write_plots(run_dir: str, history: list, name: str) -> None:
    write_atomic(os.path.join(run_dir, "loss.png"), _figure_png(history, "loss", f"{name}: loss", "loss"))
    write_atomic(os.path.join(run_dir, "accuracy.png"),
                 _figure_png(history, "accuracy", f"{name}: accuracy", "accuracy"))


def write_part_plots(run_dir: str, parts: list, name: str) -> None:
    """`parts`: (label, run directory) of each member or trial so far. Their validation curves (test curves
    when there is no validation split), one per part, in `run_dir`."""
    histories = [(label, read_history(part)) for label, part in parts]
    split = "val" if any(row.get("val") for _, rows in histories for row in rows) else "test"
    shown = "validation" if split == "val" else "test"
    for metric in ("loss", "accuracy"):
        figure, axes = _axes()
        for label, rows in histories:
            _curve(axes, rows, split, metric, label)
        write_atomic(os.path.join(run_dir, f"{metric}.png"),
                     _finish(figure, axes, f"{name}: {shown} {metric}", f"{shown} {metric}"))
