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
from specc.diagnostics import Span, SpeccError, error
from specc.train.checkpoint import write_atomic

SPEC_COPY = "spec.yaml"
RUN_INFO = "run.json"
RUN_FORMAT = 1


def resolved_tree(spec_path: str, limits) -> dict:
    """The spec as plain data with `extends` merged and every path key absolute (relative to the spec)."""
    from specc.parser.extends import load_with_extends, spec_relative
    from specc.parser.spec import PATH_KEYS

    tree = load_with_extends(spec_path, limits).plain()
    for keys in PATH_KEYS:
        parent = tree
        for key in keys[:-1]:
            parent = parent.get(key) if isinstance(parent, dict) else None
        value = parent.get(keys[-1]) if isinstance(parent, dict) else None
        if isinstance(value, str) and value != "train" and "${" not in value:
            parent[keys[-1]] = spec_relative(value, spec_path, limits)
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


SPEC_HEADER = b"# The spec this run trains: "


def spec_text(tree: dict, source: str) -> str:
    header = (f"{SPEC_HEADER.decode()}{source}, resolved by specc {__version__}\n"
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
    if os.path.isdir(path) and stillborn(path):
        return  # a start killed before its run.json: starting again overwrites what it wrote
    if os.path.isdir(path) and os.listdir(path):
        held = os.path.exists(os.path.join(path, RUN_INFO))
        raise error("E101", f"run directory {path} " + ("already holds a run" if held else "is not empty"),
                    Span(path), f"continue it with `specc train --resume {path}`" if held
                    else "give `-o` a new directory, or empty this one")


def write_run(path: str, tree: dict, source: str, info: dict) -> None:
    """The spec copy, then run.json: a directory with run.json is a complete start."""
    text = spec_text(tree, source)
    write_atomic(os.path.join(path, SPEC_COPY), text)
    info = {"format": RUN_FORMAT, "source": os.path.abspath(source), "specc_version": __version__,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "spec_digest": spec_digest(yaml.safe_load(text)), **info}
    write_atomic(os.path.join(path, RUN_INFO), json.dumps(info, indent=1) + "\n")


def prepare_part(path: str, tree: dict, source: str, info: dict) -> None:
    """A member's or trial's run directory, made on first use, and made again when a kill came between
    making it and writing its run.json."""
    if os.path.isfile(os.path.join(path, RUN_INFO)):
        return
    os.makedirs(path, exist_ok=True)
    write_run(path, tree, source, info)


def stillborn(path: str) -> bool:
    """A run directory whose start was killed before run.json was written: nothing but its spec copy and
    temporary files. Nothing was trained in it."""
    names = [name for name in os.listdir(path) if not is_leftover(name)]
    if RUN_INFO in names or not set(names) <= {SPEC_COPY}:
        return False
    return not names or _is_spec_copy(os.path.join(path, SPEC_COPY))


def _is_spec_copy(path: str) -> bool:
    """Whether `path` is a copy specc wrote (its header), not a user's own spec.yaml, which is never
    overwritten. A copy killed before its first bytes is empty."""
    if not os.path.isfile(path):  # never opened otherwise: a pipe would hang the read
        return False
    try:
        with open(path, "rb") as handle:
            return handle.read(len(SPEC_HEADER)) in (b"", SPEC_HEADER)
    except OSError:
        return False


# Temporary files that a process killed mid-write leaves (the rename over the real file never came):
# specc's own (`.checkpoint.*`, `.specc-weights-*`, `.<file>.*` of write_atomic) and safetensors' `.tmp*`.
_RUN_FILES = ("spec.yaml", "run.json", "summary.json", "metrics.jsonl", "trials.jsonl", "loss.png", "accuracy.png",
              "checkpoint.json", "model.safetensors")
_LEFTOVER_PREFIXES = (".checkpoint.", ".specc-weights-", ".tmp") + tuple(f".{name}." for name in _RUN_FILES)


def is_leftover(name: str) -> bool:
    return name.startswith(_LEFTOVER_PREFIXES)


def remove_leftovers(path: str) -> None:
    """Delete the temporary files of earlier, killed sessions. Only a session of this run writes here, and
    it has not started writing yet."""
    for entry in os.scandir(path):
        if is_leftover(entry.name) and entry.is_file(follow_symlinks=False):
            try:
                os.unlink(entry.path)
            except OSError:
                pass  # gone already, or not ours to delete: it costs only disk space


def read_history(run_dir: str) -> list:
    """The rows of a run's metrics.jsonl (none when it has not finished an epoch)."""
    try:
        with open(os.path.join(run_dir, "metrics.jsonl")) as handle:
            return [json.loads(line) for line in handle if line.strip()]
    except (OSError, ValueError):
        return []  # plots and a composite run's rows are views: a missing or damaged history is left out


def write_part_metrics(run_dir: str, key: str, part_dirs: list, combined: dict | None = None) -> None:
    """An ensemble's or a search's own metrics.jsonl: the rows of each part so far (`part_dirs`, in order),
    each marked `key: index` (`member` or `trial`), then the combined model's row if given."""
    rows = [{key: index, **row} for index, part in enumerate(part_dirs) for row in read_history(part)]
    rows += [combined] if combined else []
    write_atomic(os.path.join(run_dir, "metrics.jsonl"), "".join(json.dumps(row) + "\n" for row in rows))


def spec_digest(tree) -> str:
    """What a resumed run must still train: the spec copy without `training.epochs`, which may be raised
    (or lowered) to train on further (or stop sooner)."""
    import copy
    import hashlib

    tree = copy.deepcopy(tree) if isinstance(tree, dict) else tree
    if isinstance(tree, dict) and isinstance(tree.get("training"), dict):
        tree["training"].pop("epochs", None)
    return hashlib.sha256(json.dumps(tree, sort_keys=True, default=str).encode()).hexdigest()


def read_tree(path: str) -> dict:
    """The run's spec copy as plain data; a copy that is no longer YAML is a located error."""
    copy_path = os.path.join(path, SPEC_COPY)
    try:
        with open(copy_path) as handle:
            tree = yaml.safe_load(handle)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        span = Span(copy_path, mark.line + 1, mark.column + 1) if mark else Span(copy_path)
        raise error("E101", f"the run's spec copy is no longer valid YAML ({getattr(exc, 'problem', None) or exc})",
                    span, "undo the edit, or start again with `specc train SPEC -o NEW_DIR`") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise error("E101", f"the run's spec copy cannot be read ({exc})", Span(copy_path)) from None
    if not isinstance(tree, dict):
        raise error("E101", "the run's spec copy is not a spec (a YAML mapping)", Span(copy_path),
                    "undo the edit, or start again with `specc train SPEC -o NEW_DIR`")
    return tree


def check_unchanged(path: str, info: dict, tree: dict) -> None:
    """Refuse to continue a run whose spec copy was edited in anything but `training.epochs`: the checkpoint
    holds the state of the spec it began with (its batch size, seed, schedule, network)."""
    recorded = info.get("spec_digest")
    if recorded is not None and recorded != spec_digest(tree):
        raise error("E101", f"the spec copy in {path} was changed after the run began; only `training.epochs` may "
                    "change in a run", Span(os.path.join(path, SPEC_COPY)),
                    "undo the edit, or start a new run with the changed spec: `specc train SPEC -o NEW_DIR`")


def read_run(path: str) -> dict:
    """run.json of an existing run directory (for `--resume`)."""
    if not os.path.isdir(path):
        raise error("E101", f"no run directory {path}", Span(path), "give `--resume` the `-o` directory of a run")
    info_path = os.path.join(path, RUN_INFO)
    if stillborn(path) and os.path.isfile(os.path.join(path, SPEC_COPY)):
        raise error("E101", f"the run in {path} was stopped while it was being created, before training began",
                    Span(path), f"start it again: `specc train SPEC -o {path}`")
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


def relocated(exc: SpeccError, copy_path: str, spec_path: str, limits) -> SpeccError:
    """`exc` with the diagnostics located in a run's spec copy pointed at the same key of the user's spec: for
    a new run that is removed because nothing was trained, whose copy is then gone."""
    from dataclasses import replace

    from specc.parser.extends import load_with_extends

    if not any(d.span.path == copy_path for d in exc.diagnostics):
        return exc
    try:
        copy_tree, user_tree = load_with_extends(copy_path, limits), load_with_extends(spec_path, limits)
    except SpeccError:
        return exc
    moved = []
    for diag in exc.diagnostics:
        if diag.span.path == copy_path:
            diag = replace(diag, span=_span_at(user_tree, _keys_at(copy_tree, diag.span.line)) or Span(spec_path))
        moved.append(diag)
    return SpeccError(moved)


def _keys_at(node, line: int, path: tuple = ()) -> tuple:
    """The key path of the mapping key written on `line` (the deepest), or () when no key is."""
    from specc.lang.located import Map

    if not isinstance(node, Map):
        return ()
    for key, entry in node.entries.items():
        if entry.key_span.line == line:
            return path + (key,)
        found = _keys_at(entry.value, line, path + (key,))
        if found:
            return found
    return ()


def _span_at(node, keys: tuple):
    from specc.lang.located import Map

    span = None
    for key in keys:
        if not isinstance(node, Map) or key not in node:
            return span
        span, node = node.key_span(key), node.get(key)
    return span
