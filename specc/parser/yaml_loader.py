"""Safe YAML loading into a located tree, with hard limits.

PyYAML is used only to tokenize and compose; no constructor ever runs, so no
tag can build a Python object. Plain scalars are resolved by the YAML 1.2
core schema (so `1e-8` is a number and `yes` a string), and limits on size,
depth and alias expansion are enforced before anything walks the tree.
"""

from __future__ import annotations

import math
import re

import yaml

from specc.diagnostics import Span, error
from specc.limits import Limits
from specc.lang.located import Entry, Map, Scalar, Seq

CORE = "tag:yaml.org,2002:"
_NULL = re.compile(r"^(?:~|null|Null|NULL|)$")
_BOOL = {"true": True, "True": True, "TRUE": True, "false": False, "False": False, "FALSE": False}
_INT10 = re.compile(r"^[-+]?[0-9]+$")
_INT8 = re.compile(r"^0o[0-7]+$")
_INT16 = re.compile(r"^0x[0-9a-fA-F]+$")
_FLOAT = re.compile(r"^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?$")
_INF = re.compile(r"^[-+]?\.(?:inf|Inf|INF)$")
_NAN = re.compile(r"^\.(?:nan|NaN|NAN)$")
_MAX_NUMBER_DIGITS = 100


# libyaml's parser when PyYAML has it (12x faster on a 1 MiB spec); the pure-Python one otherwise.
_BaseLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _NoImplicitLoader(_BaseLoader):
    """Composes only: every untagged scalar stays a string for our own 1.2 resolution."""


class _NoImplicitPureLoader(yaml.SafeLoader):
    """The same, on PyYAML's pure-Python parser: the fallback when libyaml gives up on depth (below)."""


for _loader in (_NoImplicitLoader, _NoImplicitPureLoader):
    _loader.yaml_implicit_resolvers = {}
_DEFAULT_TAGS = {yaml.ScalarNode: CORE + "str", yaml.SequenceNode: CORE + "seq", yaml.MappingNode: CORE + "map"}


def _resolve(self, kind, value, implicit):
    # Untagged nodes get the plain core tag; our own 1.2 rules resolve plain scalars later.
    return _DEFAULT_TAGS[kind]


_NoImplicitLoader.resolve = _NoImplicitPureLoader.resolve = _resolve

# Newer libyaml builds (0.2.6, shipped with PyYAML 6.0.4) stop at 1000 nesting levels while scanning
# ahead, before our depth check sees the 65th level. The pure-Python parser has no such limit, so the
# same spec gives the same E003 whichever PyYAML build is installed.
_LIBYAML_DEPTH_ERROR = "maximum nesting depth"


def _span(path: str, mark) -> Span:
    return Span(path, mark.line + 1, mark.column + 1)


def resolve_plain(text: str, span: Span):
    """YAML 1.2 core schema resolution of a plain (unquoted) scalar."""
    first = text[:1]
    if first and not (first.isdigit() or first in "+-.~nNtTfF"):
        return text  # most scalars are names: no pattern can match them
    if _NULL.match(text):
        return None
    if text in _BOOL:
        return _BOOL[text]
    if _INT10.match(text) or _INT8.match(text) or _INT16.match(text) or _FLOAT.match(text):
        if len(text) > _MAX_NUMBER_DIGITS:
            raise error("E013", f"number literal too long ({len(text)} characters)", span,
                        f"numbers in a spec have at most {_MAX_NUMBER_DIGITS} characters")
        if _INT10.match(text):
            return int(text)
        if _INT8.match(text):
            return int(text[2:], 8)
        if _INT16.match(text):
            return int(text[2:], 16)
        return float(text)
    if _INF.match(text):
        return -math.inf if text.startswith("-") else math.inf
    if _NAN.match(text):
        return math.nan
    return text


def _check_events(text: str, path: str, limits: Limits, loader) -> tuple:
    """Walk the event stream once: nesting depth, document count and, when there is no alias,
    the node count (refused here, before composing, pointing at the innermost node over the limit).
    Returns (aliases, nodes)."""
    depth = 0
    documents = 0
    aliases = nodes = 0
    starts: list = []   # (start mark, node count before it) of the open collections
    first_over = None
    for event in yaml.parse(text, Loader=loader):
        if isinstance(event, yaml.ScalarEvent):
            nodes += 1
        elif isinstance(event, yaml.AliasEvent):
            aliases += 1
        elif isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            depth += 1
            starts.append((event.start_mark, nodes))
            nodes += 1
            if depth > limits.max_yaml_depth:
                raise error("E003", f"YAML nesting deeper than {limits.max_yaml_depth} levels",
                            _span(path, event.start_mark), "a spec is never nested this deeply")
        elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            depth -= 1
            mark, before = starts.pop()
            if first_over is None and nodes - before > limits.max_yaml_nodes:
                first_over = mark
        elif isinstance(event, yaml.DocumentStartEvent):
            documents += 1
            if documents > 1:
                raise error("E001", "a spec is one YAML document; found a second one",
                            _span(path, event.start_mark), "remove the `---` separator and what follows")
    if not aliases and nodes > limits.max_yaml_nodes:
        raise error("E003", f"the YAML document has {nodes:,} nodes (limit {limits.max_yaml_nodes:,})",
                    _span(path, first_over) if first_over else Span(path),
                    "a spec is never this large; pass --trusted for one you trust")
    return aliases, nodes


def _expanded_size(root, limit: int, path: str) -> int:
    """Node count after alias expansion, computed on the DAG without expanding it.
    An alias inside its own anchor (`x: &a {k: *a}`) makes a cycle: refused, never walked."""
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()  # entered, children not finished: meeting one again is a cycle
    first_over = None
    stack = [(root, False)]
    while stack:  # iterative post-order: aliases make a DAG, never a deep recursion
        node, done = stack.pop()
        if id(node) in sizes:
            continue
        if not done and id(node) in open_nodes:
            raise error("E003", "a YAML alias refers to the node that contains it (a recursive structure)",
                        _span(path, node.start_mark), "an anchor can only be used after its node is complete")
        if done:
            open_nodes.discard(id(node))
            children = _children(node)
            sizes[id(node)] = 1 + sum(sizes[id(c)] for c in children)
            if first_over is None and sizes[id(node)] > limit:
                first_over = node  # innermost node over the limit: where the blow-up is written
            continue
        open_nodes.add(id(node))
        stack.append((node, True))
        for child in _children(node):
            if id(child) not in sizes:
                stack.append((child, False))
    total = sizes[id(root)]
    if total > limit:
        span = _span(path, (first_over or root).start_mark)
        if len(sizes) > limit:
            raise error("E003", f"the YAML document has {len(sizes):,} nodes (limit {limit:,})", span,
                        "a spec is never this large; pass --trusted for one you trust")
        raise error("E003", f"YAML aliases expand to {total:,} nodes (limit {limit:,})", span,
                    "a document of nested aliases (a 'billion laughs') is refused before it is expanded")
    return total


def _children(node):
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


_ALLOWED_TAGS = {CORE + t for t in ("str", "int", "float", "bool", "null", "map", "seq")}


def _convert(node, path: str):
    span = _span(path, node.start_mark)
    if node.tag not in _ALLOWED_TAGS:
        raise error("E002", f"YAML tag `{node.tag.replace(CORE, '!!')[:60]}` is not allowed",
                    span, "specs are plain YAML 1.2: no tags that construct objects")
    if isinstance(node, yaml.ScalarNode):
        plain = not node.style  # None from PyYAML's parser, "" from libyaml's
        if plain or node.tag != CORE + "str":  # plain, or explicitly typed
            value = resolve_plain(node.value, span)
            if node.tag == CORE + "str" and not plain:
                value = node.value
        else:
            value = node.value
        return Scalar(value, span, node.style in ("'", '"'))
    if isinstance(node, yaml.SequenceNode):
        return Seq(tuple(_convert(item, path) for item in node.value), span)
    entries: dict[str, Entry] = {}
    for key_node, value_node in node.value:
        key_span = _span(path, key_node.start_mark)
        if key_node.tag not in _ALLOWED_TAGS:
            raise error("E002", "a YAML tag on a key is not allowed", key_span,
                        "specs are plain YAML 1.2: no tags that construct objects")
        if not isinstance(key_node, yaml.ScalarNode):
            raise error("E012", "mapping keys must be plain names, not lists or mappings", key_span)
        key = key_node.value
        if key in entries:
            raise error("E004", f"duplicate key `{key[:40]}`", key_span,
                        f"first written at line {entries[key].key_span.line}")
        entries[key] = Entry(key, key_span, _convert(value_node, path))
    return Map(entries, span)


def _yaml_error(exc, path: str, text: str):
    """A located E001 from PyYAML's error, pointing where the mistake is rather than where PyYAML gave up."""
    problem = exc.problem or exc.context or "invalid YAML"
    context = exc.context or ""
    mark = exc.problem_mark or exc.context_mark
    hint = None
    opened = exc.context_mark is not None and ("flow" in context or "quoted scalar" in context)
    if opened and exc.problem_mark is not None and exc.problem_mark.line != exc.context_mark.line:
        # An unclosed bracket or quote: the mistake is where it opened, not at the end of the file.
        what = "quoted string" if "quoted" in context else "bracket"
        where = exc.problem_mark.line + 1
        return error("E001", f"YAML syntax error: this {what} is never closed ({problem} at line {where})",
                     _span(path, exc.context_mark), "close it on the line where it belongs")
    at = mark.index if mark is not None and mark.index is not None else -1
    if "\t" in problem or (0 <= at < len(text) and text[at] == "\t"):
        hint = "YAML is indented with spaces, not tabs"
    elif "could not find expected ':'" in problem and exc.context_mark is not None:
        # PyYAML gives up on the line after; the mistake is the line that started a key without `:`.
        mark = exc.context_mark
        hint = _missing_colon_hint(text, mark)
    elif "expected '-' indicator" in problem or ("block collection" in context and "block end" in problem):
        hint = _list_item_hint(text, exc.problem_mark, exc.context_mark)
    elif any(p in problem for p in ("block end", "mapping values are not allowed", "expected <block",
                                     "expected key")):
        hint = "check the indentation: keys of one mapping (and items of one list) must line up"
    elif "flow" in context:
        hint = "items in [...] or {...} are separated by `,` and the bracket must be closed"
    suffix = f" ({context})" if context and exc.problem else ""
    return error("E001", f"YAML syntax error: {problem}{suffix}", _span(path, mark) if mark else Span(path), hint)


def _missing_colon_hint(text: str, mark) -> str:
    lines = text.splitlines()
    word = lines[mark.line].split("#")[0].strip() if mark.line < len(lines) else ""
    continuation = "if it continues the text of the line above, indent it deeper than that line's key"
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", word):
        return (f"`{word}` alone on this line is read as a key without `:`: in a layer that also has "
                f"`name:` or `from:`, write the op with a value (`{word}: {{}}`); " + continuation)
    return "a key is written `key: value`; " + continuation


def _list_item_hint(text: str, mark, list_mark) -> str:
    lines = text.splitlines()
    line = lines[mark.line] if mark is not None and mark.line < len(lines) else ""
    start = f" (the list starts at line {list_mark.line + 1})" if list_mark is not None else ""
    if line.lstrip().startswith("-"):
        return (f"this list item is indented differently from the items before it{start}: "
                "the `-` of every item of one list must line up")
    return (f"a list item starts with `- `{start}: add it here, or indent this line under the item "
            "it belongs to")


def _parse(text: str, path: str, limits: Limits, loader) -> tuple:
    """(aliases, nodes, composed root): the limits are checked on the event stream before composing."""
    aliases, nodes = _check_events(text, path, limits, loader)
    return aliases, nodes, yaml.compose(text, Loader=loader)


def load_yaml_text(text: str, path: str, limits: Limits):
    """Parse one YAML document into a located tree, or raise SpeccError."""
    if "\x00" in text:
        raise error("E003", "not a spec: the file is binary (contains NUL bytes)", Span(path))
    try:
        try:
            aliases, nodes, root = _parse(text, path, limits, _NoImplicitLoader)
        except yaml.MarkedYAMLError as exc:
            if _LIBYAML_DEPTH_ERROR not in (exc.problem or "") or _NoImplicitLoader is _NoImplicitPureLoader:
                raise
            aliases, nodes, root = _parse(text, path, limits, _NoImplicitPureLoader)
    except yaml.MarkedYAMLError as exc:
        raise _yaml_error(exc, path, text) from None
    except yaml.reader.ReaderError as exc:  # a control character, or bytes that are not text
        offset = max(0, min(exc.position, len(text)))
        line = text.count("\n", 0, offset) + 1
        column = offset - (text.rfind("\n", 0, offset) + 1) + 1
        raise error("E001", f"YAML syntax error: control character U+{exc.character:04X} is not allowed"
                    if isinstance(exc.character, int) else "YAML syntax error: a character that is not allowed",
                    Span(path, line, column), "remove it, or write it as an escape in a quoted string") from None
    except yaml.YAMLError:
        raise error("E001", "YAML syntax error", Span(path)) from None
    except RecursionError:  # defence in depth: the depth check should make this unreachable
        raise error("E003", "YAML nesting too deep", Span(path)) from None
    if root is None:
        raise error("E001", "the file is empty; a spec is a YAML mapping starting with `specc: 1`", Span(path))
    if aliases or nodes > limits.max_yaml_nodes:
        _expanded_size(root, limits.max_yaml_nodes, path)
    try:
        return _convert(root, path)
    except RecursionError:  # only reachable with --trusted depths
        raise error("E003", "YAML nesting too deep to read", Span(path)) from None


def read_spec_text(path, limits: Limits, shown: str) -> str:
    """Read a spec file's text with the size limit applied before reading it whole."""
    import os
    import stat

    try:
        info = os.stat(path)
    except FileNotFoundError:
        hint = "a symbolic link that leads nowhere" if os.path.islink(path) else None
        raise error("E040", f"file not found: {shown}", Span(shown), hint) from None
    except (UnicodeEncodeError, ValueError):
        raise error("E040", "the path is not a valid file name", Span(shown)) from None
    except OSError as exc:
        raise error("E040", f"cannot read {shown}: {exc.strerror}", Span(shown)) from None
    if stat.S_ISDIR(info.st_mode):
        raise error("E040", f"{shown} is a directory, not a spec file", Span(shown))
    if not stat.S_ISREG(info.st_mode):
        raise error("E003", f"{shown} is not a regular file (a device, pipe or socket)", Span(shown))
    if info.st_size > limits.max_file_bytes:
        raise error("E003", f"spec file is {info.st_size:,} bytes (limit {limits.max_file_bytes:,})",
                    Span(shown), "pass --trusted to lift the limit for a spec you trust")
    try:
        with open(path, "rb") as handle:
            # Chunks, never one read(limit): read(n) allocates n bytes up front, and files such as
            # /proc/self/environ report size 0 but hold more.
            chunks, size = [], 0
            while size <= limits.max_file_bytes:
                chunk = handle.read(min(1 << 16, limits.max_file_bytes + 1 - size))
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
            data = b"".join(chunks)
    except OSError as exc:
        raise error("E040", f"cannot read {shown}: {exc.strerror}", Span(shown)) from None
    if len(data) > limits.max_file_bytes:
        raise error("E003", f"spec file is larger than {limits.max_file_bytes:,} bytes", Span(shown))
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise error("E003", "not a spec: the file is not UTF-8 text (an invalid byte here)",
                    Span(shown, line, column), "save the file as UTF-8") from None
