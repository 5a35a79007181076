"""Gather a recipe search (benchmarks/nielsen/gpu_search.sh) into one JSON file and a Markdown table.

    python benchmarks/nielsen/search_bundle.py SPEC ... --runs DIR [--results FILE] [--logs DIR]
        [--combined FILE] [--ensemble FILE] [--ensemble-group NAME COMBINED EVAL ...] [--base base]
        [--info KEY=VALUE ...] -o search.json [--table FILE]

SPEC: the variant specs the search trained, named `<prefix>_<variant>_s<seed>.yaml` (e.g.
`best_ema_s1.yaml`); each trained in the run directory DIR/<file name without .yaml>. The run directories
are read directly (summary.json when the run finished, else metrics.jsonl, one line per completed epoch), so
the bundle is complete even when the runner itself was stopped; --results (the runner's results.json)
adds each run's status (finished, stopped at the deadline, failed) and wall time, and the machine.

Per run: variant, seed, status, whether the deadline cut it, the test accuracy at the epoch of best
validation accuracy, that epoch, epochs asked for and run, seconds, and every epoch's validation and test
accuracy; the last lines of the log of a run that did not finish. Per variant: the mean, lowest and highest
accuracy over its seeds, and the mean paired difference against the base variant over the seeds both have.
--combined and --ensemble are the outputs (JSON) of combine_members.py and `specc eval --format json` for
the ensemble of the base runs; --ensemble-group NAME COMBINED EVAL (repeatable) gives the same two files for
the ensemble of the runs `<NAME>_s<seed>`, with the mean of its members' accuracies beside it. The bundle's
`ensembles` lists them all; `ensemble` is the first, as before.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from collect import percent, read_json, read_metrics, run_figures  # noqa: E402

NAME = re.compile(r"^(?P<prefix>[a-z0-9]+)_(?P<variant>.+)_s(?P<seed>\d+)$")
LOG_TAIL = 25  # lines of a log kept for a run that did not finish


def log_tail(path: str | None) -> list[str]:
    try:
        with open(path, errors="replace") as handle:
            return [line.rstrip("\n") for line in handle.readlines()[-LOG_TAIL:]]
    except (OSError, TypeError):
        return []


def run_record(spec: str, runs: str, logs: str | None, runner: dict) -> dict:
    name = os.path.basename(spec)[:-5]
    match = NAME.match(name)
    run_dir = os.path.join(runs, name)
    figures = run_figures(run_dir)
    history = read_metrics(run_dir)
    ran = runner.get(os.path.basename(spec), {})
    status = ran.get("status") or ("finished" if figures["finished"] else
                                   "not started" if not os.path.isdir(run_dir) else "unknown (no runner record)")
    planned = ran.get("epochs_planned")
    record = {
        "name": name,
        "variant": match["variant"] if match else name,
        "seed": int(match["seed"]) if match else None,
        "status": status,
        # "interrupted": the runner itself was stopped by the search's overall time bound
        "cut_by_deadline": status in ("stopped at the deadline", "not started (deadline)", "interrupted"),
        "complete": figures["finished"] and (planned is None or figures["epochs_run"] == planned),
        "test_accuracy": figures["test_accuracy"],
        "val_accuracy": figures["val_accuracy"],
        "best_epoch": figures["best_epoch"],
        "epochs_planned": planned,
        "epochs_run": figures["epochs_run"],
        "wall_seconds": ran.get("wall_seconds"),
        "seconds_per_epoch": figures["seconds_per_epoch"],
        "eval_seconds_per_epoch": figures["eval_seconds_per_epoch"],
        "device": figures["device"],
        "epochs": [{"epoch": row.get("epoch"), "val": percent(row.get("val")), "test": percent(row.get("test")),
                    "train": percent(row.get("train")), "lr": row.get("lr"), "seconds": row.get("seconds"),
                    "best": bool(row.get("best"))} for row in history],
    }
    if not record["complete"]:
        record["log_tail"] = log_tail(ran.get("log") or (os.path.join(logs, name + ".log") if logs else None))
    return record


def variant_summary(records: list[dict], base: str) -> list[dict]:
    by_variant: dict = {}
    for record in records:
        by_variant.setdefault(record["variant"], []).append(record)
    base_by_seed = {r["seed"]: r["test_accuracy"] for r in by_variant.get(base, []) if r["test_accuracy"] is not None}
    out = []
    for variant, group in by_variant.items():
        done = [r for r in group if r["test_accuracy"] is not None]
        accuracies = [r["test_accuracy"] for r in done]
        paired = [r["test_accuracy"] - base_by_seed[r["seed"]] for r in done if r["seed"] in base_by_seed]
        base_same_seeds = [base_by_seed[r["seed"]] for r in done if r["seed"] in base_by_seed]
        out.append({
            "variant": variant,
            "seeds": [r["seed"] for r in group],
            "accuracies": accuracies,
            "mean": round(statistics.mean(accuracies), 3) if accuracies else None,
            "min": min(accuracies, default=None),
            "max": max(accuracies, default=None),
            "mean_best_epoch": round(statistics.mean(r["best_epoch"] for r in done if r["best_epoch"]), 1)
            if any(r["best_epoch"] for r in done) else None,
            "all_complete": all(r["complete"] for r in group),
            "base_mean_same_seeds": round(statistics.mean(base_same_seeds), 3) if base_same_seeds else None,
            "paired_delta_vs_base": round(statistics.mean(paired), 3) if paired and variant != base else None,
        })
    return out


def table(bundle: dict) -> str:
    records = bundle["runs"]
    seeds = sorted({r["seed"] for r in records if r["seed"] is not None})
    head = "| variant | " + " | ".join(f"seed {s}" for s in seeds) + " | mean | base, same seeds | paired delta |"
    lines = [head, "|" + "---|" * (len(seeds) + 4)]
    for summary in bundle["variants"]:
        cells = []
        for seed in seeds:
            record = next((r for r in records if r["variant"] == summary["variant"] and r["seed"] == seed), None)
            if record is None:
                cells.append("")
            elif record["test_accuracy"] is None:
                cells.append(record["status"])
            else:
                mark = "" if record["complete"] else f" (cut: {record['epochs_run']} of {record['epochs_planned']} ep.)"
                cells.append(f"{record['test_accuracy']:.2f} @{record['best_epoch']}{mark}")

        def fmt(value, signed=False):
            return "" if value is None else (f"{value:+.2f}" if signed else f"{value:.2f}")

        lines.append(f"| {summary['variant']} | " + " | ".join(cells) +
                     f" | {fmt(summary['mean'])} | {fmt(summary['base_mean_same_seeds'])} | "
                     f"{fmt(summary['paired_delta_vs_base'], True)} |")
    ensembles = bundle.get("ensembles") or []
    if ensembles:
        lines.append("")
    for ensemble in ensembles:
        what = f"the runs {ensemble['group']}_s<seed>" if ensemble.get("group") else "the base runs"
        members = "" if ensemble.get("members_mean") is None else \
            f" (its members' mean {ensemble['members_mean']:.2f})"
        result = "no result" if ensemble.get("test_accuracy") is None else \
            f"{ensemble['test_accuracy']:.2f}% test accuracy{members}"
        lines.append(f"Ensemble of {what} (seeds {ensemble.get('seeds')}, mean of probabilities): {result}")
    return "\n".join(lines) + "\n"


def ensemble_record(report: dict | None, combined: dict | None, group: str | None, records: list[dict]) -> dict:
    metrics = (report or {}).get("metrics") or {}
    seeds = (combined or {}).get("seeds")
    members = [r["test_accuracy"] for r in records if group and r["test_accuracy"] is not None
               and r["name"] in {f"{group}_s{seed}" for seed in seeds or []}]
    return {"group": group,
            "test_accuracy": round(100 * metrics["accuracy"], 2) if "accuracy" in metrics else None,
            "seeds": seeds, "members": (report or combined or {}).get("members"),
            "members_mean": round(statistics.mean(members), 3) if members else None,
            "combine": (combined or {}).get("combine"), "kept_epochs": (combined or {}).get("kept_epochs"),
            "eval": report,
            "note": "members trained as separate runs: each drew its validation split with its own "
                    "seed (an ensemble run shares member 0's); the test split is untouched by all"}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("specs", nargs="+", metavar="SPEC")
    p.add_argument("--runs", required=True, metavar="DIR", help="the run directories")
    p.add_argument("--results", metavar="FILE", help="the runner's results.json (run.py)")
    p.add_argument("--logs", metavar="DIR", help="the runs' logs (run.py's OUT/logs)")
    p.add_argument("--combined", metavar="FILE", help="combine_members.py's output")
    p.add_argument("--ensemble", metavar="FILE", help="`specc eval --format json` of the ensemble")
    p.add_argument("--ensemble-group", nargs=3, action="append", default=[], metavar=("NAME", "COMBINED", "EVAL"),
                   help="the ensemble of the runs NAME_s<seed>: combine_members.py's output and its specc eval")
    p.add_argument("--base", default="base", help="the variant the others are compared with")
    p.add_argument("--info", action="append", default=[], metavar="KEY=VALUE", help="recorded as given")
    p.add_argument("-o", "--output", required=True, metavar="FILE")
    p.add_argument("--table", metavar="FILE", help="also write the Markdown table here")
    args = p.parse_args(argv)

    results = read_json(args.results) if args.results else None
    runner = {r["spec"]: r for r in (results or {}).get("runs", [])}
    records = [run_record(spec, args.runs, args.logs, runner) for spec in args.specs]
    records.sort(key=lambda r: (r["variant"] != args.base, r["variant"], r["seed"] if r["seed"] is not None else -1))
    ensembles = []
    report, combined = (read_json(args.ensemble) if args.ensemble else None), \
        (read_json(args.combined) if args.combined else None)
    if report or combined:
        ensembles.append(ensemble_record(report, combined, None, records))
    for group, combined_file, eval_file in args.ensemble_group:
        ensembles.append(ensemble_record(read_json(eval_file), read_json(combined_file), group, records))
    bundle = {
        "info": dict(item.split("=", 1) for item in args.info if "=" in item),
        "runner": {k: (results or {}).get(k) for k in ("created", "command", "wall_seconds", "machine")}
        if results else None,
        "cut_by_deadline": [r["name"] for r in records if r["cut_by_deadline"]],
        "incomplete": [r["name"] for r in records if not r["complete"]],
        "variants": variant_summary(records, args.base),
        "ensemble": ensembles[0] if ensembles else None,
        "ensembles": ensembles,
        "runs": records,
    }
    text = table(bundle)
    bundle["table"] = text
    with open(args.output, "w") as handle:
        json.dump(bundle, handle, indent=1)
    if args.table:
        with open(args.table, "w") as handle:
            handle.write(text)
    print(text, end="")
    if bundle["cut_by_deadline"]:
        print("cut by the deadline:", ", ".join(bundle["cut_by_deadline"]))
    if bundle["incomplete"]:
        print("not complete:", ", ".join(bundle["incomplete"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
