"""The run directory: a self-contained record of one training run.

`spec.yaml` is the resolved spec (its `extends` chain merged, paths made
absolute, command-line overrides written in), so `specc train --resume
RUN_DIR` needs nothing else; `run.json` says how the run was started.
"""

from __future__ import annotations

import datetime as _dt
import json
import os

import yaml

from specc import __version__
from specc.diagnostics import Span, error
from specc.train.checkpoint import write_atomic

SPEC_COPY = "spec.yaml"
RUN_INFO = "run.json"
RUN_FORMAT = 1


def resolved_tree(spec_path: str, limits) -> dict:
    """The spec as plain data with `extends` merged and every path key absolute (relative to the spec)."""
    from specc.parser.extends import load_with_extends
    from specc.parser.spec import PATH_KEYS

    tree = load_with_extends(spec_path, limits).plain()
    base = os.path.dirname(os.path.abspath(spec_path))
    for keys in PATH_KEYS:
        parent = tree
        for key in keys[:-1]:
            parent = parent.get(key) if isinstance(parent, dict) else None
        value = parent.get(keys[-1]) if isinstance(parent, dict) else None
        if isinstance(value, str) and value != "train" and "${" not in value:
            parent[keys[-1]] = os.path.normpath(os.path.join(base, os.path.expanduser(value)))
    return tree


def set_training(tree: dict, dotted: str, value) -> None:
    """Set `training.<dotted>`. A value on the way that is not a mapping - a choice written as a bare name,
    `optimizer: sgd` - is replaced by one, so `optimizer.sgd.lr` both picks `sgd` and sets its `lr`."""
    node = tree.setdefault("training", {})
    keys = dotted.split(".")
    for key in keys[:-1]:
        if not isinstance(node.get(key), dict):
            node[key] = {}
        node = node[key]
    node[keys[-1]] = value


def spec_text(tree: dict, source: str) -> str:
    header = (f"# The spec this run trains: {source}, resolved by specc {__version__}\n"
              "# (`extends` merged, paths absolute). `specc train --resume` reads this copy.\n")
    return header + yaml.safe_dump(tree, sort_keys=False, allow_unicode=True, default_flow_style=None, width=100)


def default_run_dir(name: str) -> str:
    """runs/<name>-<date>-<time>[-<n>], made here (empty): two runs started in the same second, even by
    two processes, never get the same directory."""
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    os.makedirs("runs", exist_ok=True)
    suffix = 1
    while True:
        path = os.path.join("runs", f"{name}-{stamp}" + (f"-{suffix}" if suffix > 1 else ""))
        try:
            os.mkdir(path)  # atomic: only one process can make it
            return path
        except FileExistsError:
            suffix += 1


def create_run_dir(path: str) -> str:
    """A new, empty run directory; refuses one that holds anything, a run above all."""
    check_new_run_dir(path)
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as exc:
        raise error("E101", f"cannot create run directory {path}: {exc.strerror}", Span(path)) from None
    return path


def check_new_run_dir(path: str) -> None:
    if os.path.exists(path) and not os.path.isdir(path):
        raise error("E101", f"run directory {path} exists and is not a directory", Span(path),
                    "give `-o` a new directory name")
    if os.path.isdir(path) and os.listdir(path):
        held = os.path.exists(os.path.join(path, RUN_INFO))
        raise error("E101", f"run directory {path} " + ("already holds a run" if held else "is not empty"),
                    Span(path), f"continue it with `specc train --resume {path}`" if held
                    else "give `-o` a new directory, or empty this one")


def write_run(path: str, tree: dict, source: str, info: dict) -> None:
    write_atomic(os.path.join(path, SPEC_COPY), spec_text(tree, source))
    info = {"format": RUN_FORMAT, "source": os.path.abspath(source), "specc_version": __version__,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), **info}
    write_atomic(os.path.join(path, RUN_INFO), json.dumps(info, indent=1) + "\n")


def read_run(path: str) -> dict:
    """run.json of an existing run directory (for `--resume`)."""
    if not os.path.isdir(path):
        raise error("E101", f"no run directory {path}", Span(path), "give `--resume` the `-o` directory of a run")
    info_path = os.path.join(path, RUN_INFO)
    if not (os.path.isfile(info_path) and os.path.isfile(os.path.join(path, SPEC_COPY))):
        raise error("E101", f"{path} is not a run directory (it has no {RUN_INFO} and {SPEC_COPY})", Span(path),
                    "give `--resume` the directory a `specc train` run wrote")
    try:
        with open(info_path) as handle:
            info = json.load(handle)
        if info.get("format") != RUN_FORMAT:
            raise ValueError(f"format {info.get('format')}")
    except (OSError, ValueError) as exc:
        raise error("E101", f"{info_path} is not readable ({exc})", Span(info_path)) from None
    return info
