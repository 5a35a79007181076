"""What a `specc train` run directory says about the run: accuracy at the kept epoch, epochs, seconds.

A finished run has `summary.json`; a run stopped at the runner's deadline has only its `metrics.jsonl`
(one line per completed epoch), from which the same numbers follow: the kept epoch is the last one marked
`best` (the best validation accuracy so far, ties to the later epoch, as `specc train` keeps it).
An ensemble's members are run directories `member_<i>/` of their own.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics

SMALL_FILES = ("run.json", "summary.json", "metrics.jsonl", "checkpoint.json")


def read_json(path: str):
    try:
        with open(path) as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return None


def read_metrics(run_dir: str) -> list[dict]:
    rows = []
    try:
        with open(os.path.join(run_dir, "metrics.jsonl")) as handle:
            for line in handle:
                if line.strip():
                    rows.append(json.loads(line))
    except (OSError, ValueError):
        pass
    return rows


def member_dirs(run_dir: str) -> list[str]:
    if not os.path.isdir(run_dir):
        return []
    names = sorted((n for n in os.listdir(run_dir) if n.startswith("member_")), key=lambda n: int(n[7:]))
    return [os.path.join(run_dir, n) for n in names]


def percent(split: dict | None) -> float | None:
    return None if not split or split.get("accuracy") is None else round(100.0 * split["accuracy"], 2)


def run_figures(run_dir: str) -> dict:
    """Accuracy, epochs and timing of one run directory (single network or ensemble), finished or not."""
    summary = read_json(os.path.join(run_dir, "summary.json"))
    members = member_dirs(run_dir)
    histories = [read_metrics(d) for d in members] if members else [read_metrics(run_dir)]
    rows = [row for history in histories for row in history]
    if summary is not None:
        best = summary.get("best") or {}
        epochs_run = summary.get("epochs_run")
    elif not members:
        kept = [row for row in rows if row.get("best")]
        best = kept[-1] if kept else {}
        epochs_run = len(rows)
    else:  # an ensemble that did not finish has no combined result
        best, epochs_run = {}, max((len(h) for h in histories), default=0)
    info = read_json(os.path.join(run_dir, "run.json")) or {}
    seconds = [row["seconds"] for row in rows if row.get("seconds")]
    evals = [row["eval_seconds"] for row in rows if row.get("eval_seconds") is not None]
    return {
        "finished": summary is not None,
        "best_epoch": best.get("epoch") if not members else None,
        "val_accuracy": percent(best.get("val")),
        "test_accuracy": percent(best.get("test")),
        "epochs_run": epochs_run,
        "seconds_per_epoch": round(statistics.median(seconds), 2) if seconds else None,
        "eval_seconds_per_epoch": round(statistics.median(evals), 2) if evals else None,
        "train_seconds": round(sum(seconds), 1) if seconds else None,
        "device": (summary or {}).get("device") or info.get("device"),
        "threads": (summary or {}).get("threads") or info.get("threads"),
    }


def copy_small_files(run_dir: str, target: str) -> None:
    """The run's JSON records (not its weights) into `target`, members in subdirectories."""
    for source in [run_dir] + member_dirs(run_dir):
        destination = os.path.join(target, os.path.relpath(source, run_dir))
        for name in SMALL_FILES:
            path = os.path.join(source, name)
            if os.path.isfile(path):
                os.makedirs(destination, exist_ok=True)
                shutil.copyfile(path, os.path.join(destination, name))
