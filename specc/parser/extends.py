"""Loading a spec file and the chain of files it `extends`, merged into one located tree."""

from __future__ import annotations

import os

from specc.diagnostics import Span, SpeccError, error
from specc.limits import Limits
from specc.lang.located import Entry, Map, Scalar, Seq, short
from specc.parser.marker import SPEC_MARKER
from specc.parser.yaml_loader import load_yaml_text, read_spec_text


def display_path(path: str) -> str:
    """How a file is named in diagnostics: relative to the working directory when below it."""
    try:
        rel = os.path.relpath(path)
    except ValueError:  # pragma: no cover - another drive on Windows
        return path
    return rel if not rel.startswith("..") else path


def is_inside(path: str, root: str) -> bool:
    path, root = os.path.realpath(path), os.path.realpath(root)
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def spec_relative(value: str, referrer: str, limits: Limits) -> str:
    """Where a path written in a spec points: relative to the spec; `~` is the home directory, except in
    CI mode, where nothing outside the spec's tree is reached by it."""
    return os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(referrer)),
                                         value if limits.ci else os.path.expanduser(value)))


def resolve_spec_path(value: str, referrer: str, span: Span, limits: Limits, root: str, what: str) -> str:
    """A path written in a spec: relative to the spec, and inside `root` unless allowed."""
    if not value or "\x00" in value or not value.isprintable():
        raise error("E040", f"{what} path is empty or malformed", span)
    path = spec_relative(value, referrer, limits)
    if not limits.allow_outside and not is_inside(path, root):
        raise error("E040", f"{what} `{short(value)}` resolves outside the spec's directory tree",
                    span, "pass --allow-outside if you trust this spec")
    return path


def load_document(path: str, limits: Limits, shown: str | None = None, base_of: Span | None = None) -> Map:
    """One spec file's located tree. For an `extends` target (`base_of` is the `extends:` value), problems
    that mean "this is not a spec" are reported at the `extends:` line, and nothing of the file is echoed."""
    shown = shown or display_path(path)
    try:
        text = read_spec_text(path, limits, shown)
        if base_of is not None and not SPEC_MARKER.search(text):
            # Not even parsed: a file that does not say it is a spec could be anything (a secret),
            # and a YAML error about it would quote it.
            raise error("E001", f"`extends` target {shown} is not a spec: it has no top-level `specc:` key",
                        base_of, "a spec starts with `specc: 1`")
        tree = load_yaml_text(text, shown, limits)
    except SpeccError as exc:
        if base_of is None or exc.diagnostics[0].code not in ("E001", "E003", "E040") \
                or exc.diagnostics[0].span == base_of:  # already said at the `extends:` line
            raise
        first = exc.diagnostics[0]
        raise error(first.code, f"`extends` target {shown} is not a valid spec file: {first.message}",
                    base_of, first.hint) from None
    if not isinstance(tree, Map):
        # Never echo the content: this may be any file a hostile spec pointed at.
        raise error("E001", f"not a spec: {shown} holds a YAML {'list' if isinstance(tree, Seq) else 'scalar'}, "
                    "not a mapping", base_of or Span(shown), "a spec is a mapping that starts with `specc: 1`")
    if "specc" not in tree and base_of is not None:
        raise error("E001", f"`extends` target {shown} is not a spec: it has no `specc:` key", base_of,
                    "a spec starts with `specc: 1`")
    return tree


def load_with_extends(path: str, limits: Limits, root: str | None = None, chain: tuple = (),
                      base_of: Span | None = None) -> Map:
    """The spec at `path` with its `extends` chain merged in (base first, this file on top)."""
    real = os.path.realpath(path)
    root = root if root is not None else os.path.dirname(real)
    tree = load_document(path, limits, base_of=base_of)
    base_node = tree.get("extends")
    if base_node is None:
        return _without(tree, "extends")
    span = base_node.span
    if not (isinstance(base_node, Scalar) and isinstance(base_node.value, str)):
        raise error("E012", "`extends` must be a path (a string)", span)
    if len(chain) + 1 > limits.max_extends_depth:
        raise error("E042", f"`extends` chain deeper than {limits.max_extends_depth} files", span)
    base_path = resolve_spec_path(base_node.value, path, span, limits, root, "`extends`")
    seen = chain + (real,)
    if os.path.realpath(base_path) in seen:
        cycle = " -> ".join(display_path(p) for p in seen + (os.path.realpath(base_path),))
        raise error("E041", f"`extends` cycle: {cycle}", span, "a spec cannot extend itself, directly or not")
    if not os.path.exists(base_path):
        if os.path.islink(base_path):
            raise error("E040", f"`extends` target {short(base_node.value, 80)} is a symbolic link that loops "
                        "or leads nowhere", span)
        raise error("E040", f"`extends` file not found: {short(base_node.value, 80)}", span,
                    "the path is relative to this spec's directory")
    if not os.path.isfile(base_path) and not os.path.isdir(base_path) and os.path.exists(base_path):
        raise error("E003", f"`extends` target {short(base_node.value, 80)} is not a regular file", span)
    base = load_with_extends(base_path, limits, root, seen, span)
    return merge(base, _without(tree, "extends"))


def _without(tree: Map, key: str) -> Map:
    return Map({k: e for k, e in tree.entries.items() if k != key}, tree.span)


def merge(base, override):
    """Mappings merge deeply; lists and scalars are replaced; a null deletes an inherited key."""
    if not (isinstance(base, Map) and isinstance(override, Map)):
        return override
    entries = dict(base.entries)
    for key, entry in override.entries.items():
        value = entry.value
        if key in entries and isinstance(value, Scalar) and value.value is None:
            del entries[key]
        elif key in entries:
            entries[key] = Entry(key, entry.key_span, merge(entries[key].value, value))
        else:
            entries[key] = entry
    return Map(entries, override.span)
