"""`training.search`: random search over keys of the training section.

Each key of `space` is a dotted path under `training` (`optimizer.sgd.lr`,
`regularization.l2`, `batch_size`); each trial draws one value per key
(`log_uniform` and `uniform` give numbers, `choice` one of its values: use it
for integers) from a generator seeded by `training.seed`, and is an ordinary
run in `RUN_DIR/trial_<i>/` whose spec is the parent's with those values
written in and `search` removed. Trials share the parent's validation split
and are compared on validation accuracy; `trials.jsonl` has one line per
trial, and `RUN_DIR/model.safetensors` is a copy of the best trial's.
"""

from __future__ import annotations

import copy
import json
import math
import os
import shutil
import sys
from dataclasses import replace

import numpy as np

from specc.diagnostics import Diagnostics, error
from specc.train.checkpoint import write_atomic

TRIALS = "trials.jsonl"
FIRST_CHECKED = 100  # trials validated whole before the run starts; beyond them, the ones holding extreme draws


def draw(space: dict, rng) -> dict:
    """One value per key. `space`: dotted key -> (distribution, arguments) as validated."""
    values = {}
    for key, (kind, args) in space.items():
        if kind == "choice":
            values[key] = args["values"][int(rng.integers(len(args["values"])))]
        else:
            lo, hi = args["range"]
            if kind == "log_uniform":
                values[key] = float(math.exp(rng.uniform(math.log(lo), math.log(hi))))
            else:
                values[key] = float(rng.uniform(lo, hi))
    return values


def trial_values(search: dict, seed: int) -> list[dict]:
    rng = np.random.default_rng([seed, 0x5EA2C4])
    return [draw(search["space"], rng) for _ in range(search["trials"])]


def trial_tree(tree: dict, values: dict) -> dict:
    from specc.train.rundir import set_training

    trial = copy.deepcopy(tree)
    del trial["training"]["search"]
    for key, value in values.items():
        set_training(trial, key.removeprefix("training."), value)
    return trial


def check_space(compiled, tree: dict, limits) -> None:
    """Refuse, at the spec's `search` keys, a space whose draws would make an invalid training section."""
    import yaml

    from specc.lang.argtypes import INVALID
    from specc.parser.sections import TRAINING
    from specc.parser.yaml_loader import load_yaml_text
    from specc.train.session import config_span

    spec = compiled.spec
    search = spec.training["search"]
    for key, (kind, args) in search["space"].items():
        if kind != "choice" and not args["range"][0] < args["range"][1] or \
                kind == "log_uniform" and args["range"][0] <= 0:
            raise error("E013", f"search key `{key}`: {kind} needs a range [lo, hi] with lo < hi"
                        + (" and lo > 0" if kind == "log_uniform" else ""), config_span(spec, "search", "space", key))
    trials = trial_values(search, spec.seed)
    for values in (trials[i] for i in checked_trials(trials, search["space"])):
        training = trial_tree(tree, values)["training"]
        diags = Diagnostics()
        node = load_yaml_text(yaml.safe_dump(training), "trial", limits)
        if TRAINING.check(node, diags, "`training`") is INVALID or diags.has_errors:
            first = diags.sorted()[0]
            culprit = next((k for k in values if k.split(".")[0] in first.message), next(iter(values)))
            raise error("E100", f"`search` draws values that make `training` invalid: {first.message}",
                        config_span(spec, "search", "space", culprit), first.hint or
                        "check the dotted key and the value type (use `choice` for integers)")


def checked_trials(trials: list, space: dict) -> list:
    """Indices of the trials to validate: the first FIRST_CHECKED whole, then for every key the trials that
    draw its smallest and largest number, or first draw each of its choices. The section's rules bound each
    key on its own, so these find any draw out of range without checking up to 100,000 trials one by one."""
    picked = set(range(min(FIRST_CHECKED, len(trials))))
    for key, (kind, _) in space.items():
        drawn = [values[key] for values in trials]
        if kind == "choice":
            first = {}
            for index, value in enumerate(drawn):
                first.setdefault(repr(value), index)
            picked.update(first.values())
        else:
            picked.update((drawn.index(min(drawn)), drawn.index(max(drawn))))
    return sorted(picked)


def run_search(run_dir: str, options):
    from specc.train.rundir import prepare_part, write_part_metrics
    from specc.train.run import (RunResult, compile_copy, load_data, read_run, read_summary, read_tree, run_in_dir,
                                 write_summary)
    from specc.train.session import config_span

    done = read_summary(run_dir)
    if done is not None:
        return done
    tree = read_tree(run_dir)
    compiled = compile_copy(run_dir, options.limits)
    arrays = load_data(compiled, run_dir, options)
    if arrays.val_x is None:
        raise error("E100", "`search` compares trials on the validation split, and this data set has none",
                    config_span(compiled.spec, "search"), "hold data out with `data: {validation: 5000}`")
    info = read_run(run_dir)
    draws = trial_values(compiled.spec.training["search"], compiled.spec.seed)
    rows, results = [], []
    for i, values in enumerate(draws):
        trial_dir = os.path.join(run_dir, f"trial_{i}")
        prepare_part(trial_dir, trial_tree(tree, values), os.path.join(run_dir, "spec.yaml"),
                     {"data_dir": info.get("data_dir"), "nproc": options.nproc, "data_seed": compiled.spec.seed,
                      "trial": i, "values": values})
        if options.progress:
            shown = ", ".join(f"{k}={_fmt(v)}" for k, v in values.items())
            print(f"trial {i + 1}/{len(draws)}: {shown}", file=sys.stderr, flush=True)
        result = run_in_dir(trial_dir, replace(options, dataset=arrays))
        results.append(result)
        best = result.best or {}
        rows.append({"trial": i, "values": values, "run_dir": trial_dir, "best_epoch": best.get("epoch"),
                     "val": best.get("val"), "test": best.get("test"), "wall_seconds": result.wall_seconds})
        write_atomic(os.path.join(run_dir, TRIALS), "".join(json.dumps(r) + "\n" for r in rows))
        write_part_metrics(run_dir, "trial", [r["run_dir"] for r in rows])
        if options.plots:
            from specc.train.plots import write_part_plots

            write_part_plots(run_dir, [(f"trial {r['trial']}: " + ", ".join(f"{k.split('.')[-1]}={_fmt(v)}"
                                                                            for k, v in r["values"].items()),
                                        r["run_dir"]) for r in rows], compiled.spec.name)
    winner = max(rows, key=lambda r: (r["val"] or {}).get("accuracy", -1.0))
    model = os.path.join(winner["run_dir"], "model.safetensors")
    if os.path.exists(model):
        tmp = os.path.join(run_dir, ".model.safetensors.tmp")
        shutil.copyfile(model, tmp)
        os.replace(tmp, os.path.join(run_dir, "model.safetensors"))
    result = RunResult(run_dir, "search", {"trial": winner["trial"], "epoch": winner["best_epoch"],
                                           "val": winner["val"], "test": winner["test"]},
                       epochs_run=max(r.epochs_run for r in results), wall_seconds=sum(r["wall_seconds"] for r in rows),
                       parts=rows, device=results[-1].device, threads=results[-1].threads)
    write_summary(run_dir, result)
    return result


def trials_table(rows: list) -> str:
    """The trials, one line each, the best (on validation accuracy) marked."""
    if not rows:
        return ""
    keys = list(rows[0]["values"])
    best = max(range(len(rows)), key=lambda i: (rows[i]["val"] or {}).get("accuracy", -1.0))
    header = ["trial"] + keys + ["epoch", "val acc", "test acc"]
    table = [header]
    for i, row in enumerate(rows):
        acc = [f"{(row[s] or {}).get('accuracy', float('nan')):.2%}" for s in ("val", "test")]
        table.append([str(row["trial"]) + (" *" if i == best else "")] + [_fmt(row["values"][k]) for k in keys]
                     + [epoch_cell(row["best_epoch"])] + acc)
    widths = [max(len(r[c]) for r in table) for c in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in table)


def epoch_cell(epoch) -> str:
    """The kept epoch; `-` for a trial that has none of its own (an ensemble keeps one per member)."""
    return "-" if epoch is None else str(epoch)


def _fmt(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
