"""`loss.png` and `accuracy.png`: the learning curves of a run, redrawn after every epoch."""

from __future__ import annotations

import io
import os

from specc.train.checkpoint import write_atomic

SPLITS = (("train", "train"), ("val", "validation"), ("test", "test"))


def _figure_png(history: list, metric: str, title: str, ylabel: str) -> bytes:
    import matplotlib

    matplotlib.use("Agg")  # files only; never a window, even where a display exists
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    figure = Figure(figsize=(6, 4), dpi=100)
    axes = figure.subplots()
    epochs = [row["epoch"] for row in history]
    for key, label in SPLITS:
        values = [(row.get(key) or {}).get(metric) for row in history]
        points = [(e, v) for e, v in zip(epochs, values) if v is not None]
        if points:
            axes.plot(*zip(*points), marker="o", markersize=3, label=label)
    axes.set_xlabel("epoch")
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole: no 1.5 ticks on short runs
    axes.set_ylabel(ylabel)
    axes.set_title(title)
    axes.grid(True, alpha=0.3)
    if axes.get_legend_handles_labels()[0]:
        axes.legend()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", bbox_inches="tight")
    return buffer.getvalue()


def write_plots(run_dir: str, history: list, name: str) -> None:
    write_atomic(os.path.join(run_dir, "loss.png"), _figure_png(history, "loss", f"{name}: loss", "loss"))
    write_atomic(os.path.join(run_dir, "accuracy.png"),
                 _figure_png(history, "accuracy", f"{name}: accuracy", "accuracy"))
