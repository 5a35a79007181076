"""`training.ensemble`: independently trained members, combined into one model.

Member i trains with seed `training.seed + i` (its own initial weights, data
order, dropout and augmentation) in `RUN_DIR/member_<i>/`, an ordinary run
directory; every member shares the parent's validation split. The ensemble's
weights file, `RUN_DIR/model.safetensors`, holds each member's kept tensors
under `member_<i>.<tensor name>` with the metadata

    specc.ensemble.members   number of members
    specc.ensemble.combine   mean | vote
    specc.ensemble.seeds     JSON list of the members' seeds

Combining: `mean` averages the members' class probabilities; `vote` gives
each class the fraction of members whose top class it is (ties broken by the
mean probability). Either way the combined output is a distribution over the
classes, and its argmax is the ensemble's prediction.
"""

from __future__ import annotations

import json
import os
import re
import sys
from dataclasses import replace

import torch

from specc.diagnostics import Span, error
from specc.train.losses import PROBS, make_loss, output_kind, probabilities

PREFIX = re.compile(r"^member_(\d+)\.(.+)$")


class EnsemblePredictor:
    def __init__(self, modules: list, kind: str, combine: str):
        self.modules = [m.eval() for m in modules]
        self.kind, self.combine = kind, combine
        self.output = next(iter(modules[0].graph.outputs))

    @torch.no_grad()
    def __call__(self, x):
        probs = torch.stack([probabilities(m(x)[self.output], self.kind) for m in self.modules])
        mean = probs.mean(dim=0)
        if self.combine == "mean":
            return mean
        votes = torch.nn.functional.one_hot(probs.argmax(dim=-1), probs.shape[-1]).to(probs.dtype).mean(dim=0)
        tie_break = 1e-3  # below one vote's 1/members: only orders classes with equal votes
        return (votes + tie_break * mean) / (1.0 + tie_break)


def member_weights(tensors: dict, graph, path: str) -> list[dict]:
    """Split an ensemble file's tensors into one weights dict per member, each checked against the graph."""
    members: dict = {}
    for key, value in tensors.items():
        match = PREFIX.match(key)
        if not match:
            raise error("E080", f"ensemble weights file {path} has tensor `{key}` outside any `member_<i>.`",
                        Span(path))
        members.setdefault(int(match.group(1)), {})[match.group(2)] = value
    expected = {n: tuple(v.shape) for n, v in graph.params.items() if getattr(v, "kind", "param") != "const"}
    out = []
    for index in sorted(members):
        got = members[index]
        missing = sorted(set(expected) - set(got))
        wrong = sorted(n for n in set(expected) & set(got) if tuple(got[n].shape) != expected[n])
        if missing or wrong or set(got) - set(expected):
            detail = (f"missing {', '.join(missing[:3])}" if missing else
                      f"`{wrong[0]}` has shape {list(got[wrong[0]].shape)}, the spec needs {list(expected[wrong[0]])}"
                      if wrong else f"extra tensor `{sorted(set(got) - set(expected))[0]}`")
            raise error("E080", f"member {index} in {path} does not fit the spec: {detail}", Span(path),
                        "was the file saved from another spec?")
        out.append({n: got[n].float().numpy() if isinstance(got[n], torch.Tensor) else got[n] for n in expected})
    return out


def is_ensemble_file(tensors: dict) -> bool:
    return bool(tensors) and all(PREFIX.match(k) for k in tensors)


def member_tree(tree: dict, i: int) -> dict:
    """The spec tree member i trains: the ensemble's, with seed `training.seed + i` and no `ensemble`."""
    member = json.loads(json.dumps(tree))
    member["training"]["seed"] = (tree["training"].get("seed", 0) or 0) + i
    del member["training"]["ensemble"]
    return member


def prepare_member(run_dir: str, tree: dict, info: dict, i: int, nproc: int) -> str:
    """RUN_DIR/member_<i>/, an ordinary run directory (made on first use) whose data split is the ensemble's."""
    from specc.train.rundir import prepare_part

    member_dir = os.path.join(run_dir, f"member_{i}")
    prepare_part(member_dir, member_tree(tree, i), os.path.join(run_dir, "spec.yaml"),
                 {"data_dir": info.get("data_dir"), "nproc": nproc,
                  "data_seed": tree["training"].get("seed", 0) or 0, "member": i})
    return member_dir


def run_ensemble(run_dir: str, options):
    from specc.codegen.weights import load_weights, save_weights
    from specc.train.device import describe, resolve_device, torch_model, torch_threads
    from specc.train.evaluate import evaluate, host_tensor
    from specc.train.rundir import write_part_metrics
    from specc.train.run import (RunResult, compile_copy, load_data, read_run, read_summary, read_tree, run_single,
                                 write_summary)

    done = read_summary(run_dir)
    if done is not None:
        return done
    tree = read_tree(run_dir)
    training = tree["training"]
    members, combine = training["ensemble"]["members"], training["ensemble"].get("combine", "mean")
    base_seed = training.get("seed", 0) or 0
    compiled = compile_copy(run_dir, options.limits)
    arrays = load_data(compiled, run_dir, options)
    info = read_run(run_dir)
    results, weights, curves = [], [], []
    for i in range(members):
        member_dir = prepare_member(run_dir, tree, info, i, options.nproc)
        if options.progress:
            print(f"member {i + 1}/{members} (seed {base_seed + i}): {member_dir}", file=sys.stderr, flush=True)
        results.append(run_single(member_dir, replace(options, dataset=arrays)))
        weights.append(load_weights(os.path.join(member_dir, "model.safetensors"), compiled.graph))
        curves.append((f"member {i} (seed {base_seed + i})", member_dir))
        write_part_metrics(run_dir, "member", [part for _, part in curves])
        if options.plots:
            from specc.train.plots import write_part_plots

            write_part_plots(run_dir, curves, compiled.spec.name)

    combined = {f"member_{i}.{name}": array for i, w in enumerate(weights) for name, array in w.items()}
    save_weights(os.path.join(run_dir, "model.safetensors"), combined,
                 {"specc.name": compiled.spec.name, "specc.ensemble.members": members,
                  "specc.ensemble.combine": combine,
                  "specc.ensemble.seeds": json.dumps([base_seed + i for i in range(members)])})
    graph = compiled.graph
    output = next(iter(graph.outputs))
    device = resolve_device(options.device, run_dir, options.nproc)
    predict = EnsemblePredictor([torch_model(graph, w, device) for w in weights], output_kind(graph, output),
                                combine)
    from specc.train.config import training_config

    cfg = training_config(compiled.spec.training)
    loss = make_loss(*cfg.loss, PROBS)
    num_classes = graph.outputs[output].type.shape[1]
    best = {}
    for key, x, y in (("val", arrays.val_x, arrays.val_y), ("test", arrays.test_x, arrays.test_y)):
        if x is not None:
            best[key] = evaluate(predict, host_tensor(x), host_tensor(y), loss, num_classes,
                                 device=device).results(cfg.metrics)
    write_part_metrics(run_dir, "member", [part for _, part in curves],
                       {"combined": combine, "members": members, "val": best.get("val"), "test": best.get("test"),
                        "best": True})
    parts = [{"member": i, "seed": base_seed + i, "run_dir": r.run_dir,
              "best_epoch": (r.best or {}).get("epoch"),
              "val": (r.best or {}).get("val"), "test": (r.best or {}).get("test")} for i, r in enumerate(results)]
    result = RunResult(run_dir, "ensemble", best, max(r.epochs_run for r in results), False,
                       sum(r.wall_seconds for r in results), parts, describe(device), torch_threads())
    write_summary(run_dir, result)
    return result
