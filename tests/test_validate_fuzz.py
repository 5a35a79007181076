"""Property tests: `check_spec` never raises and every diagnostic is located.

Each valid spec in specs/ is mutated at random (a key deleted, a value replaced by
a random scalar, list, mapping or `${...}` string, a layer duplicated, random text
inserted into the YAML, the text truncated) and written beside copies of all the
specs (so `extends: lenet5.yaml` still resolves). Whatever the mutation, specc
must answer with a list of diagnostics (possibly empty), never an exception, and
each diagnostic must point at a line >= 1.
"""

from __future__ import annotations

import copy
import itertools
import os
import shutil
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from specc.compiler import check_spec
from specc.diagnostics import Diagnostic
from specc.limits import Limits

ROOT = Path(__file__).resolve().parent.parent
SPEC_FILES = sorted((ROOT / "specs").glob("*.yaml"))
SPEC_TEXTS = {p.name: p.read_text(encoding="utf-8") for p in SPEC_FILES}
SPEC_TREES = {name: yaml.safe_load(text) for name, text in SPEC_TEXTS.items()}

# SPECC_FUZZ_EXAMPLES=5000 for a longer hunt; the default keeps the file well under a minute.
EXAMPLES = int(os.environ.get("SPECC_FUZZ_EXAMPLES", "300"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=False, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.filter_too_much])

_counter = itertools.count()


@pytest.fixture(scope="module")
def spec_dir(tmp_path_factory):
    """A directory holding copies of every spec in specs/; mutants are written beside them."""
    directory = tmp_path_factory.mktemp("fuzz_specs")
    for path in SPEC_FILES:
        shutil.copy(path, directory / path.name)
    return directory


def check_text(spec_dir: Path, data: bytes | str) -> list:
    """Write one mutant beside the specs and check it: a list of located diagnostics, never an exception."""
    path = spec_dir / f"mutant_{next(_counter)}.yaml"
    path.write_bytes(data.encode("utf-8", errors="surrogatepass") if isinstance(data, str) else data)
    try:
        diags = check_spec(str(path), Limits())
    finally:
        path.unlink()
    assert isinstance(diags, list)
    for d in diags:
        assert isinstance(d, Diagnostic), d
        assert isinstance(d.span.line, int) and d.span.line >= 1, d
        assert isinstance(d.span.column, int) and d.span.column >= 1, d
        assert d.code.startswith("E" if d.severity == "error" else "W") and d.message, d
    return diags


def dump(tree) -> str:
    return yaml.safe_dump(tree, sort_keys=False, allow_unicode=True, width=10_000)


# ---------------------------------------------------------------- random values

PARAM_NAMES = sorted({k for t in SPEC_TREES.values() if isinstance(t.get("params"), dict) for k in t["params"]}
                     | {"c", "stride", "width", "classes", "fitlers"})
EXPR_ATOMS = st.one_of(
    st.integers(-10**6, 10**6).map(str),
    st.floats(allow_nan=False, allow_infinity=False, width=32).map(repr),
    st.sampled_from(PARAM_NAMES),
    st.sampled_from(["+", "-", "*", "/", "//", "%", "**", "(", ")", ",", "min(", "max(", "round(", " ",
                     "__import__('os')", "open('/etc/passwd')", "().__class__", ".", "'", '"', "$", "{", "}",
                     "10**10**10", "1/0", "lambda: 1", "[1]", "True", "None"]),
)
EXPRESSIONS = st.lists(EXPR_ATOMS, min_size=0, max_size=8).map(lambda parts: "${" + "".join(parts) + "}")
STRINGS = st.one_of(
    st.text(max_size=30),
    EXPRESSIONS,
    st.builds(lambda a, e, b: a + e + b, st.text(max_size=5), EXPRESSIONS, st.text(max_size=5)),
    st.sampled_from(["relu", "same", "valid", "input", "flatten", "dense_1", "conv_1", "stem", "image",
                     "lenet5.yaml", "../specs/lenet5.yaml", "/etc/passwd", "mutant.yaml", "NHWC", "int64",
                     "fp16", "onnx", "-", "", " ", "null", "~", "1e-8", ".inf", "0x10", "${", "}"]),
)
SCALARS = st.one_of(
    st.none(), st.booleans(),
    st.integers(-3, 70), st.integers(-2**70, 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    STRINGS,
)
VALUES = st.recursive(
    SCALARS,
    lambda children: st.one_of(st.lists(children, max_size=4),
                               st.dictionaries(st.one_of(STRINGS, st.sampled_from(
                                   ["units", "filters", "kernel", "from", "name", "repeat", "shape", "dtype",
                                    "p", "size", "axis", "params", "network", "c"])), children, max_size=4)),
    max_leaves=10,
)


# ---------------------------------------------------------------- tree mutations

def paths(tree, prefix=()):
    """Every path (tuple of keys/indices) to a node in a parsed YAML tree, the root excluded."""
    if isinstance(tree, dict):
        items = tree.items()
    elif isinstance(tree, list):
        items = enumerate(tree)
    else:
        return
    for key, value in items:
        yield prefix + (key,)
        yield from paths(value, prefix + (key,))


def parent_of(tree, path):
    node = tree
    for key in path[:-1]:
        node = node[key]
    return node


def delete_at(tree, path):
    parent = parent_of(tree, path)
    del parent[path[-1]]


def replace_at(tree, path, value):
    parent_of(tree, path)[path[-1]] = value


def layer_lists(tree):
    """Paths of every `network` list (top level and inside blocks)."""
    found = []
    if isinstance(tree.get("network"), list):
        found.append(("network",))
    blocks = tree.get("blocks")
    if isinstance(blocks, dict):
        for name, block in blocks.items():
            if isinstance(block, dict) and isinstance(block.get("network"), list):
                found.append(("blocks", name, "network"))
    return found


@st.composite
def mutated_tree(draw):
    name = draw(st.sampled_from(sorted(SPEC_TREES)))
    tree = copy.deepcopy(SPEC_TREES[name])
    for _ in range(draw(st.integers(1, 3))):
        # deepest first: hypothesis favours early choices, and deep values reach the semantic checks
        all_paths = sorted(paths(tree), key=len, reverse=True)
        kind = draw(st.sampled_from(["delete", "replace", "replace", "duplicate_layer", "add_key"]))
        if kind == "delete" and all_paths:
            delete_at(tree, draw(st.sampled_from(all_paths)))
        elif kind == "replace" and all_paths:
            replace_at(tree, draw(st.sampled_from(all_paths)), draw(VALUES))
        elif kind == "duplicate_layer" and layer_lists(tree):
            layers = parent_of(tree, draw(st.sampled_from(layer_lists(tree))) + ("x",))
            if layers:
                index = draw(st.integers(0, len(layers) - 1))
                layers.insert(draw(st.integers(0, len(layers))), copy.deepcopy(layers[index]))
        elif kind == "add_key":
            mappings = [()] + [p for p in all_paths if isinstance(parent_of(tree, p + ("x",)), dict)]
            target = parent_of(tree, draw(st.sampled_from(mappings)) + ("x",))
            target[draw(STRINGS)] = draw(VALUES)
    return name, tree


# ---------------------------------------------------------------- properties

def test_specs_are_valid_to_start_with(spec_dir):
    assert len(SPEC_FILES) >= 5
    for path in SPEC_FILES:
        assert check_text(spec_dir, SPEC_TEXTS[path.name]) == [], path.name


@FUZZ
@given(case=mutated_tree())
def test_mutated_tree(spec_dir, case):
    name, tree = case
    check_text(spec_dir, dump(tree))


@FUZZ
@given(name=st.sampled_from(sorted(SPEC_TEXTS)), data=st.data())
def test_inserted_text(spec_dir, name, data):
    text = SPEC_TEXTS[name]
    for _ in range(data.draw(st.integers(1, 3))):
        at = data.draw(st.integers(0, len(text)))
        junk = data.draw(st.one_of(
            st.text(max_size=20),
            STRINGS,
            st.sampled_from(["\n", "\t", ":", "- ", "{", "[", "]", "}", "&a ", "*a", "!!python/name:os.system ",
                             "!include x", "---\n", "...\n", "? ", "|\n", ">\n", "#", "'", '"', "%YAML 1.1\n",
                             "<<: *a\n", "\ufeff", "\x00", "\r", "${", "  ", "\n  - dense: 10\n"]),
        ))
        text = text[:at] + junk + text[at:]
    check_text(spec_dir, text)


@FUZZ
@given(name=st.sampled_from(sorted(SPEC_TEXTS)), data=st.data())
def test_truncated_text(spec_dir, name, data):
    raw = SPEC_TEXTS[name].encode("utf-8")
    cut = data.draw(st.integers(0, len(raw)))
    check_text(spec_dir, raw[:cut])   # may cut a UTF-8 sequence in half


@FUZZ
@given(name=st.sampled_from(sorted(SPEC_TEXTS)), data=st.data())
def test_deleted_lines(spec_dir, name, data):
    lines = SPEC_TEXTS[name].splitlines(keepends=True)
    for _ in range(data.draw(st.integers(1, 4))):
        if lines:
            del lines[data.draw(st.integers(0, len(lines) - 1))]
    check_text(spec_dir, "".join(lines))


@FUZZ
@given(name=st.sampled_from(sorted(SPEC_TEXTS)), data=st.data())
def test_expression_values(spec_dir, name, data):
    """Any value in the spec replaced by a `${...}` string (quoted, so the YAML stays valid)."""
    tree = copy.deepcopy(SPEC_TREES[name])
    scalar_paths = [p for p in paths(tree) if not isinstance(parent_of(tree, p + ("x",)), (dict, list))]
    for _ in range(data.draw(st.integers(1, 3))):
        replace_at(tree, data.draw(st.sampled_from(scalar_paths)), data.draw(EXPRESSIONS))
    check_text(spec_dir, dump(tree))
