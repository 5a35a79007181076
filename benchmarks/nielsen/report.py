"""Render results.json files (from run.py) as the tables of docs/nielsen.md.

    python benchmarks/nielsen/report.py RESULTS.json [RESULTS.json ...] [--doc docs/nielsen.md]

Two tables: accuracy (every row of Nielsen's table and our networks, ours next to his; rows without a
result say "pending") and seconds per epoch (every run, with how many epochs fit in 15 minutes). Where
several files have a result for one spec, the newest file's is shown. Timing measurements (run.py
--timing) appear only in the second table. Each result names its source ([A], [B], ...), listed under the
tables with its date, machine and options.

With --doc, the tables replace what stands between the two result markers of the file (added at its end
when it has none); the rest of the file is left as it is.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from machine import describe_machine  # noqa: E402
from rows import ROWS  # noqa: E402

BEGIN = "<!-- results: begin (written by benchmarks/nielsen/report.py; edit the text around it) -->"
END = "<!-- results: end -->"
BUDGET_SECONDS = 15 * 60


def source_tag(index: int) -> str:
    """A, B, ..., Z, then AA, AB, ...: spreadsheet column names, so that the 27th results file is not `[[]`."""
    tag = ""
    index += 1
    while index:
        index, letter = divmod(index - 1, 26)
        tag = chr(ord("A") + letter) + tag
    return tag


def render(results_files: list[dict]) -> str:
    ordered = sorted(results_files, key=lambda r: r.get("created", ""))
    tags = {id(r): f"[{source_tag(i)}]" for i, r in enumerate(ordered)}
    latest: dict = {}
    for results in ordered:
        if not results.get("timing"):
            for run in results["runs"]:
                if run.get("status") != "not started (deadline)":
                    latest[run["spec"]] = (run, tags[id(results)])
    lines = ["### Accuracy", "",
             "Test accuracy (%) at the epoch of best validation accuracy.", "",
             "| row | network | spec | Nielsen | specc | epochs | wall time | s/epoch | source |",
             "|---|---|---|---:|---:|---|---:|---:|---|"]
    for row in ROWS:
        run, tag = latest.pop(row.spec, (None, ""))
        lines.append(_accuracy_line(row.key, row.network, row.spec, row.nielsen, run, tag))
    for spec, (run, tag) in latest.items():  # specs outside the table, run by name
        lines.append(_accuracy_line("", run.get("network") or "", spec, None, run, tag))
    lines += ["", "### Seconds per epoch", "",
              "Median wall seconds of one epoch's training and of its evaluation (validation and test splits), "
              "and how many such epochs fit in 15 minutes.", "",
              "| spec | device | threads | train s/epoch | eval s/epoch | epochs in 15 min | source |",
              "|---|---|---:|---:|---:|---:|---|"]
    for results in ordered:
        for run in results["runs"]:
            if run.get("seconds_per_epoch"):
                lines.append(_timing_line(run, tags[id(results)]))
    lines += ["", "### Sources", ""]
    for results in ordered:
        lines.append(f"- {tags[id(results)]} {_source_line(results)}")
    return "\n".join(lines) + "\n"


def _accuracy_line(key, network, spec, nielsen, run, tag) -> str:
    theirs = f"{nielsen:.2f}" if nielsen is not None else "-"
    if run is None:
        return f"| {key} | {network} | `{spec[:-5]}` | {theirs} | pending | | | | |"
    ours = f"{run['test_accuracy']:.2f}" if run.get("test_accuracy") is not None else run.get("status", "?")
    seconds = f"{run['seconds_per_epoch']:.1f}" if run.get("seconds_per_epoch") else ""
    return (f"| {key} | {network} | `{spec[:-5]}` | {theirs} | {ours} | {epochs_text(run)} | "
            f"{_minutes(run.get('wall_seconds'))} | {seconds} | {tag} |")


def epochs_text(run: dict) -> str:
    done, asked, spec = run.get("epochs_run") or 0, run.get("epochs_planned"), run.get("epochs_spec")
    text = f"{done}" if done == spec else f"{done} of {spec}"
    notes = []
    if run.get("status") == "stopped at the deadline":
        notes.append(f"time limit, {asked} planned" if asked != spec else "time limit")
    elif run.get("status", "").startswith(("failed", "interrupted")):
        notes.append(run["status"])
    if run.get("limit_train"):
        notes.append(f"first {run['limit_train']:,} images")
    if run.get("sample"):
        notes.append("MNIST sample")
    if run.get("best_epoch"):
        notes.append(f"best {run['best_epoch']}")
    return text + (f" ({'; '.join(notes)})" if notes else "")


def _timing_line(run: dict, tag: str) -> str:
    train, evaluation = run["seconds_per_epoch"], run.get("eval_seconds_per_epoch") or 0.0
    fit = math.floor(BUDGET_SECONDS / (train + evaluation)) if train + evaluation > 0 else ""
    return (f"| `{run['spec'][:-5]}` | {run.get('device') or '?'} | {run.get('threads') or ''} | {train:.1f} | "
            f"{evaluation:.1f} | {fit} | {tag} |")


def _source_line(results: dict) -> str:
    options = results.get("options", {})
    how = []
    if options.get("epochs"):
        how.append(f"{options['epochs']} epoch{'s' if options['epochs'] != 1 else ''}")
    elif options.get("epochs_scale", 1.0) != 1.0:
        how.append(f"epochs x{options['epochs_scale']:g}")
    if options.get("unscaled"):
        how.append("own epochs for " + ", ".join(options["unscaled"]))
    if options.get("deadline"):
        how.append(f"time limit {options['deadline']:g} s")
    how.append(f"{options.get('parallel', 1)} at a time x {options.get('threads_per_run', 1)} threads")
    if options.get("limit_train"):
        how.append(f"first {options['limit_train']:,} training images (a dry run)")
    if options.get("sample"):
        how.append("the bundled MNIST sample (a dry run)")
    if results.get("timing"):
        how.append("timing only")
    if results.get("note"):
        how.append(results["note"])
    return (f"{results.get('created', '?')[:10]}, device {options.get('device', '?')}: "
            f"{describe_machine(results.get('machine', {}))}; {', '.join(how)}; "
            f"specc {results.get('machine', {}).get('specc_commit') or '?'}")


def _minutes(seconds) -> str:
    if not seconds:
        return ""
    minutes, rest = divmod(int(round(seconds)), 60)
    return f"{minutes}m{rest:02d}s"


def update_doc(path: str, table: str) -> None:
    text = open(path).read() if os.path.exists(path) else ""
    block = f"{BEGIN}\n\n{table}\n{END}"
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        text = head + block + rest.split(END, 1)[1]
    else:
        text = text.rstrip("\n") + ("\n\n" if text else "") + block + "\n"
    with open(path, "w") as handle:
        handle.write(text)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="render run.py results as the tables of docs/nielsen.md")
    p.add_argument("results", nargs="+", metavar="RESULTS.json")
    p.add_argument("--doc", metavar="FILE", help="write the tables into FILE between its result markers")
    args = p.parse_args(argv)
    files = []
    for path in args.results:
        with open(path) as handle:
            files.append(json.load(handle))
    table = render(files)
    if args.doc:
        update_doc(args.doc, table)
    print(table, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
