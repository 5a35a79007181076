"""Train an ensemble spec's members several at a time, then combine them as `specc train` does.

    python benchmarks/nielsen/train_members.py specs/mnist_best_ensemble.yaml -o RUN_DIR --data DIR \\
        [--parallel 2] [--threads-per-run 1] [--cores 0-1] [--adopt 0=OTHER_RUN_DIR]

`specc train ENSEMBLE_SPEC` trains the members one after another, each with all the threads it is given.
On a CPU, two one-thread runs side by side get more work done than one two-thread run (the threads of one
run wait for each other at every layer), so this script makes the very run directory `specc train -o
RUN_DIR` would make (its spec copy, run.json and `member_<i>/` directories, by specc's own functions), trains
the members with `specc train --resume RUN_DIR/member_<i>`, K at a time, each pinned to its own cores, and
ends with `specc train --resume RUN_DIR`, which finds every member finished, combines their weights into
RUN_DIR/model.safetensors and evaluates the ensemble. Nothing of the training differs from `specc train`:
each member's seed, data split and schedule come from the ensemble's spec.

`--adopt I=OTHER_RUN_DIR` takes a finished `specc train` run as member I, when its spec (name and
description aside) is member I's spec: seed `training.seed + I` and the ensemble's validation split (its
data seed is the ensemble's seed). For instance member 0 of mnist_best_ensemble is specs/mnist_best.yaml
trained with seed 0.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path[:0] = [ROOT, HERE]

from machine import parse_cpu_list  # noqa: E402
from run import core_slots  # noqa: E402

from specc.train.ensemble import member_tree, prepare_member  # noqa: E402
from specc.train.run import RunOptions, read_summary, read_tree, start_run  # noqa: E402
from specc.train.rundir import read_run  # noqa: E402

DESCRIPTIVE = ("name", "description")


def same_training(a: dict, b: dict) -> bool:
    strip = lambda tree: {k: v for k, v in tree.items() if k not in DESCRIPTIVE}  # noqa: E731
    return strip(a) == strip(b)


def adopt(run_dir: str, tree: dict, i: int, source: str) -> None:
    """Copy the finished run `source` into member_<i>/ after checking it trained member i's spec and split."""
    summary = read_summary(source)
    if summary is None:
        sys.exit(f"--adopt {i}={source}: that run has not finished (no summary.json)")
    expected = member_tree(tree, i)
    if not same_training(read_tree(source), expected):
        sys.exit(f"--adopt {i}={source}: its spec is not member {i}'s (seed {expected['training']['seed']})")
    info = read_run(source)
    data_seed = info.get("data_seed", expected["training"]["seed"] if "member" not in info else None)
    if data_seed != (tree["training"].get("seed", 0) or 0):
        sys.exit(f"--adopt {i}={source}: its validation split (data seed {data_seed}) is not the ensemble's")
    member_dir = os.path.join(run_dir, f"member_{i}")
    for name in os.listdir(source):
        if name not in ("spec.yaml", "run.json", "summary.json"):
            path = os.path.join(source, name)
            (shutil.copytree if os.path.isdir(path) else shutil.copy2)(path, os.path.join(member_dir, name))
    with open(os.path.join(source, "summary.json")) as handle:
        data = json.load(handle)
    data["run_dir"], data["adopted_from"] = member_dir, os.path.abspath(source)
    with open(os.path.join(member_dir, "summary.json"), "w") as handle:
        json.dump(data, handle, indent=1)


def specc(*args: str) -> list[str]:
    return [sys.executable, "-m", "specc", *args]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("spec")
    p.add_argument("-o", dest="run_dir", required=True)
    p.add_argument("--data", metavar="DIR")
    p.add_argument("--parallel", type=int, default=2, metavar="K")
    p.add_argument("--threads-per-run", type=int, default=1, metavar="T")
    p.add_argument("--cores", metavar="LIST", help="CPUs to share out (default: all this process may use)")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda", "auto"))
    p.add_argument("--adopt", action="append", default=[], metavar="I=RUN_DIR")
    args = p.parse_args(argv)

    run_dir = os.path.abspath(args.run_dir)
    if not os.path.isdir(run_dir):
        start_run(args.spec, run_dir, None, None, RunOptions(data_dir=args.data, device=args.device))
    tree, info = read_tree(run_dir), read_run(run_dir)
    ensemble = (tree.get("training") or {}).get("ensemble")
    if not ensemble:
        sys.exit(f"{args.spec} has no training.ensemble")
    members = [prepare_member(run_dir, tree, info, i, 1) for i in range(ensemble["members"])]
    for item in args.adopt:
        index, _, source = item.partition("=")
        if read_summary(members[int(index)]) is None:
            adopt(run_dir, tree, int(index), source)

    cores = parse_cpu_list(args.cores) if args.cores else sorted(os.sched_getaffinity(0))
    slots = core_slots(args.parallel, args.threads_per_run, cores)  # None: too few cores to pin each run
    pending = [m for m in members if read_summary(m) is None]
    running: dict = {}  # slot index -> (process, member dir, log, start)
    began = time.time()
    while pending or running:
        for k, slot in enumerate(slots):
            if k not in running and pending:
                member = pending.pop(0)
                log = open(member + ".log", "w")
                proc = subprocess.Popen(
                    specc("train", "--resume", member, "--threads", str(args.threads_per_run), "--device",
                          args.device, "--no-progress"), stdout=log, stderr=subprocess.STDOUT,
                    preexec_fn=(lambda cpus=slot: os.sched_setaffinity(0, cpus)) if slot else None)
                running[k] = (proc, member, log, time.time())
                where = f"CPUs {slot}" if slot else "any CPU"
                print(f"[{time.strftime('%H:%M:%S')}] {os.path.basename(member)} on {where}", flush=True)
        time.sleep(2)
        for k, (proc, member, log, start) in list(running.items()):
            if proc.poll() is not None:
                log.close()
                del running[k]
                result = read_summary(member)
                test = (result.best or {}).get("test", {}).get("accuracy") if result else None
                print(f"[{time.strftime('%H:%M:%S')}] {os.path.basename(member)} exit {proc.returncode} after "
                      f"{time.time() - start:.0f} s, test accuracy {test}", flush=True)
                if proc.returncode:
                    sys.exit(f"{member} failed: see {member}.log")
    print(f"members done in {time.time() - began:.0f} s; combining", flush=True)
    return subprocess.call(specc("train", "--resume", run_dir, "--threads", str(len(cores)), "--device",
                                 args.device, "--no-progress"))


if __name__ == "__main__":
    sys.exit(main())
