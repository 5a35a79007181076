"""Combine the kept weights of separately trained runs into one ensemble weights file.

    python benchmarks/nielsen/combine_members.py RUN_DIR ... -o FILE [--combine mean|vote] [--name NAME]

Each RUN_DIR is a `specc train` run directory of the same network (its `model.safetensors` holds the
weights kept at the epoch of best validation accuracy). FILE gets the layout `specc train` writes for a
`training.ensemble` (see specc/train/ensemble.py): member i's tensors under `member_<i>.<tensor>`, in the
order the runs are given, and the metadata

    specc.ensemble.members   number of members
    specc.ensemble.combine   mean | vote
    specc.ensemble.seeds     JSON list of the members' `training.seed` (from each run's spec.yaml)

so that `specc eval ENSEMBLE_SPEC --weights FILE` and `specc build` read it as an ensemble. Only
safetensors are read and written (never a pickle). The members must hold the same tensor names and
shapes; `specc eval` then checks them against the spec.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np
import yaml
from safetensors import safe_open
from safetensors.numpy import save_file

WEIGHTS = "model.safetensors"


def run_seed(run_dir: str) -> int:
    """`training.seed` of the run: its spec.yaml is the spec as trained, `extends` merged."""
    with open(os.path.join(run_dir, "spec.yaml")) as handle:
        tree = yaml.safe_load(handle) or {}
    return int((tree.get("training") or {}).get("seed") or 0)


def read_member(run_dir: str) -> tuple[dict, dict]:
    path = os.path.join(run_dir, WEIGHTS)
    if not os.path.isfile(path):
        raise SystemExit(f"combine_members: {run_dir} has no {WEIGHTS} (did the run finish an epoch?)")
    with safe_open(path, "np") as handle:
        return {key: handle.get_tensor(key) for key in handle.keys()}, handle.metadata() or {}


def combine(run_dirs: list[str], output: str, how: str, name: str | None) -> dict:
    members, epochs = [], []
    for run_dir in run_dirs:
        tensors, metadata = read_member(run_dir)
        if members and (set(tensors) != set(members[0]) or
                        any(tensors[k].shape != members[0][k].shape for k in tensors)):
            raise SystemExit(f"combine_members: {run_dir} does not hold the tensors of {run_dirs[0]} "
                             "(runs of different networks?)")
        members.append(tensors)
        epochs.append(metadata.get("specc.epoch"))
    seeds = [run_seed(d) for d in run_dirs]
    combined = {f"member_{i}.{key}": np.ascontiguousarray(value)
                for i, tensors in enumerate(members) for key, value in tensors.items()}
    metadata = {"specc.ensemble.members": str(len(members)), "specc.ensemble.combine": how,
                "specc.ensemble.seeds": json.dumps(seeds)}
    if name:
        metadata["specc.name"] = name
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    tmp = output + ".tmp"
    save_file(combined, tmp, metadata=metadata)
    os.replace(tmp, output)
    return {"file": output, "members": len(members), "combine": how, "seeds": seeds, "kept_epochs": epochs,
            "runs": run_dirs}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run directories, member 0 first")
    p.add_argument("-o", "--output", required=True, metavar="FILE", help="the ensemble weights file to write")
    p.add_argument("--combine", choices=("mean", "vote"), default="mean", help="how the members' outputs combine")
    p.add_argument("--name", help="specc.name metadata (the ensemble spec's name)")
    args = p.parse_args(argv)
    print(json.dumps(combine(args.runs, args.output, args.combine, args.name)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
