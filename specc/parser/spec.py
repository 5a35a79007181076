"""The spec AST: the top level of a spec checked and typed; layers stay as written.

Layers are evaluated later, one use at a time, by the IR builder: a block's
body means something only once its parameters are known.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from specc.diagnostics import Diagnostics, Span, SpeccError, did_you_mean
from specc.limits import Limits
from specc.parser.extends import load_with_extends
from specc.lang.located import Map, Scalar, Seq, kind_name, short
from specc.parser.sections import BUILD, INPUT, NAME_PATTERN, TRAINING
from specc.parser.substitute import FAILED_NAMES, is_failed, substitute_scalar, substitute_tree
from specc.lang.argtypes import INVALID, Str

SUPPORTED_VERSIONS = (1,)
TOP_LEVEL = {
    "specc": True, "name": True, "description": False, "extends": False, "params": False, "inputs": True,
    "preprocess": False, "augment": False, "blocks": False, "network": True, "outputs": False,
    "training": False, "build": False,
}
META_KEYS = ("name", "from", "repeat")
REQUIRED_HINTS = {
    "specc": "a spec starts with `specc: 1`",
    "name": "add `name: my_model` (lowercase letters, digits, `_.-`)",
    "inputs": "add e.g. `inputs: {image: {shape: [1, 28, 28]}}`",
    "network": "add `network:` with a list of layers, e.g. `- dense: 10`",
}


@dataclass
class InputDecl:
    name: str
    shape: tuple
    dtype: str
    layout: str
    span: Span


@dataclass
class StepDecl:
    op: str
    attrs: dict
    span: Span
    args: object = None  # the located arguments, so a diagnostic can point at the one at fault


@dataclass
class BlockDecl:
    name: str
    params: dict  # name -> located default node (null = required)
    layers: tuple  # raw located layer nodes, evaluated at each use
    span: Span


@dataclass
class Spec:
    path: str
    name: str
    description: str
    params: dict
    inputs: list
    preprocess: list
    augment: list
    blocks: dict
    network: tuple  # raw located layer nodes
    network_span: Span
    outputs: dict | None  # output name -> (layer name, span)
    training: dict | None
    build: dict
    tree: Map = None  # the evaluated located tree, for checks that need spans after the graph is built
    # Sections that failed in a way the network depends on (an input, a preprocess step or a block
    # that could not be read): elaborating the network then would only report consequences.
    incomplete: frozenset = frozenset()

    @property
    def seed(self) -> int:
        return (self.training or {}).get("seed", 0) or 0

    def span_of(self, section: str, *keys) -> Span:
        """Where `section.key...` is written: the value's span, or the nearest key above it that is
        written (the section's key, or the top of the file). Keys may be list indices.
        With `extends`, this is the file that set the value."""
        if self.tree is None:
            return Span(self.path)
        node, span = self.tree, self.tree.span
        for key in (section, *keys):
            if isinstance(node, Map) and key in node:
                span, node = node.key_span(key), node.get(key)
            elif isinstance(node, Seq) and isinstance(key, int) and -len(node.items) <= key < len(node.items):
                node = node.items[key]
                span = node.span
            else:
                return span
        return node.span


def load_spec(path: str, limits: Limits) -> Spec:
    """Parse a spec file into a Spec, raising SpeccError with every diagnostic found."""
    diags = Diagnostics()
    spec = parse_spec(path, limits, diags)
    diags.raise_if_errors()
    return spec


def parse_spec(path: str, limits: Limits, diags: Diagnostics) -> Spec:
    """Parse a spec file into a Spec, adding the mistakes of every section to `diags`; a section with a
    mistake is left out (or partly filled) and named in `spec.incomplete` when the network depends on it.
    Raises SpeccError only when there is no tree to read (YAML errors, `extends` problems)."""
    return _parse_tree(load_with_extends(path, limits), path, diags, limits)


def _parse_tree(tree: Map, path: str, diags: Diagnostics, limits: Limits) -> Spec | None:
    for key, entry in tree.entries.items():
        if key not in TOP_LEVEL:
            diags.error("E010", f"unknown top-level key `{short(key)}`", entry.key_span,
                        did_you_mean(key, TOP_LEVEL) or "valid keys: " + ", ".join(TOP_LEVEL))
    for key, required in TOP_LEVEL.items():
        if required and key not in tree:
            diags.error("E011", f"missing required top-level key `{key}`", tree.span, REQUIRED_HINTS[key])
    version_ok = _check_version(tree, diags)

    params = _evaluate_params(tree.get("params"), diags, limits)
    scope = dict(params)
    evaluated = substitute_tree(tree, scope, diags, limits, skip=frozenset({"blocks", "network", "params"}))

    name = _scalar(evaluated, "name", Str(NAME_PATTERN, 200), diags, "`name`")
    description = _scalar(evaluated, "description", Str(), diags, "`description`")
    inputs = _parse_inputs(evaluated.get("inputs"), diags)
    preprocess = _parse_steps(evaluated.get("preprocess"), "preprocess", diags)
    augment = _parse_steps(evaluated.get("augment"), "augment", diags)
    blocks = _parse_blocks(tree.get("blocks"), diags)
    network = tree.get("network")
    if network is not None and not (isinstance(network, Seq) and network.items):
        diags.error("E012", f"`network` must be a non-empty list of layers, got a {kind_name(network)}",
                    network.span)
        network = None
    outputs = _parse_outputs(evaluated.get("outputs"), diags)
    training = _section(evaluated, "training", TRAINING, diags)
    build = _section(evaluated, "build", BUILD, diags) or BUILD.check(Scalar(None, tree.span), diags, "build")
    _check_paths(evaluated, path, diags, limits)
    _check_build(evaluated, build, diags)
    if build and build.get("tta"):  # the transforms as typed steps, like `augment`
        build["tta"] = {**build["tta"], "transforms": _parse_tta(evaluated.get("build"), build, diags)}
    incomplete = {key for key, complete in (
        ("specc", version_ok),
        ("params", tree.get("params") is None or isinstance(tree.get("params"), Map)),
        ("inputs", _count(evaluated.get("inputs")) == len(inputs) > 0),
        ("preprocess", _count(evaluated.get("preprocess")) == len(preprocess)),
        ("blocks", _count(tree.get("blocks")) == len(blocks)),
        ("network", network is not None),
    ) if not complete}
    return Spec(path=path, name=name or "", description=description or "", params=params, inputs=inputs,
                preprocess=preprocess, augment=augment, blocks=blocks,
                network=network.items if network is not None else (),
                network_span=network.span if network is not None else tree.span,
                outputs=outputs, training=training, build=build, tree=evaluated, incomplete=frozenset(incomplete))


def _count(node) -> int:
    """How many entries or items a section has as written (0 when absent or not a collection)."""
    if isinstance(node, Map):
        return len(node.entries)
    if isinstance(node, Seq):
        return len(node.items)
    return 0


def _check_version(tree: Map, diags: Diagnostics) -> bool:
    """False when the spec is written for a format this specc does not read."""
    node = tree.get("specc")
    if node is None:
        return True  # reported as a missing key; the rest is read as version 1
    if not (isinstance(node, Scalar) and isinstance(node.value, int) and not isinstance(node.value, bool)):
        diags.error("E012", f"`specc` must be the integer format version, got {kind_name(node)}", node.span,
                    "write `specc: 1`")
        return False
    if node.value not in SUPPORTED_VERSIONS:
        diags.error("E070", f"unsupported spec version {short(node.value)}", node.span,
                    "this specc reads `specc: 1`")
        return False
    return True


def _scalar(tree: Map, key: str, type_, diags, where):
    node = tree.get(key)
    if node is None:
        return None
    value = type_.check(node, diags, where)
    return None if value is INVALID else value


def _section(tree: Map, key: str, record, diags):
    node = tree.get(key)
    if node is None:
        return None
    value = record.check(node, diags, f"`{key}`")
    return None if value is INVALID else value


def _evaluate_params(node, diags: Diagnostics, limits: Limits) -> dict:
    """Params in written order; each may use the ones before it."""
    if node is None:
        return {}
    if not isinstance(node, Map):
        diags.error("E012", f"`params` must be a mapping of names to values, got a {kind_name(node)}", node.span)
        return {}
    scope: dict = {}
    for key, entry in node.entries.items():
        if not key.isidentifier():
            diags.error("E013", f"param name `{short(key)}` is not a valid name", entry.key_span,
                        "use letters, digits and underscores, not starting with a digit")
            continue
        value = entry.value
        if not isinstance(value, Scalar):
            diags.error("E012", f"param `{key}` must be a number, string or boolean, got a {kind_name(value)}",
                        value.span)
            continue
        result = substitute_scalar(value, scope, diags, limits)
        if result is not None:
            scope[key] = result.value
        else:
            scope.setdefault(FAILED_NAMES, set()).add(key)
    return scope


def _parse_inputs(node, diags: Diagnostics) -> list:
    if node is None:
        return []
    if not isinstance(node, Map) or not node.entries:
        diags.error("E012", "`inputs` must map each input name to {shape, dtype}", node.span,
                    "e.g. inputs: {image: {shape: [1, 28, 28]}}")
        return []
    inputs = []
    for key, entry in node.entries.items():
        if not key.isidentifier() or key == "input":
            diags.error("E013", f"input name `{short(key)}` is not allowed", entry.key_span,
                        "use a name of letters, digits and underscores other than `input`")
            continue
        value = INPUT.check(entry.value, diags, f"input `{key}`")
        if value is INVALID:
            continue
        shape = tuple(value["shape"])
        if value["layout"] == "NHWC":
            if len(shape) < 2:
                diags.error("E013", f"input `{key}`: layout NHWC needs a shape [H, W, C] (or [L, C])",
                            entry.value.span)
                continue
        inputs.append(InputDecl(key, shape, value["dtype"], value["layout"], entry.key_span))
    return inputs


def _parse_steps(node, category: str, diags: Diagnostics, what: str | None = None) -> list:
    from specc.ops import STEPS

    if node is None:
        return []
    if not isinstance(node, Seq):
        diags.error("E012", f"`{category}` must be a list of steps, got a {kind_name(node)}", node.span)
        return []
    known = STEPS[category]
    steps = []
    for item in node.items:
        if isinstance(item, Scalar) and isinstance(item.value, str):
            name, args, span = item.value, Scalar(None, item.span), item.span
        elif isinstance(item, Map) and len(item.entries) == 1:
            (name, entry), = item.entries.items()
            args, span = entry.value, entry.key_span
        else:
            if not is_failed(item):
                diags.error("E021", f"each `{category}` step is a name or a mapping with one key",
                            item.span, "e.g. `- scale: ${1/255}` or `- gcn: {scale: 55}`")
            continue
        op = known.get(name)
        if op is None:
            diags.error("E020", f"unknown {what or category + ' step'} `{short(name)}`", span,
                        did_you_mean(name, known) or "valid steps: " + ", ".join(known))
            continue
        attrs = op.args.check(args, diags, f"{what or category + ' step'} `{name}`")
        if attrs is not INVALID:
            steps.append(StepDecl(name, attrs, span, args))
    return steps


def _parse_blocks(node, diags: Diagnostics) -> dict:
    from specc.ops import REGISTRY

    if node is None:
        return {}
    if not isinstance(node, Map):
        diags.error("E012", f"`blocks` must map block names to {{params, network}}, got a {kind_name(node)}",
                    node.span)
        return {}
    blocks = {}
    for key, entry in node.entries.items():
        body = entry.value
        if not key.isidentifier() or key in REGISTRY or key in META_KEYS:
            diags.error("E013", f"block name `{short(key)}` is not allowed", entry.key_span,
                        "an identifier that is not an op name or `name`/`from`/`repeat`")
            continue
        if not isinstance(body, Map):
            diags.error("E012", f"block `{key}` must be a mapping with `network` (and `params`)", body.span)
            continue
        for inner in body.keys():
            if inner not in ("params", "network", "description"):
                diags.error("E010", f"block `{key}`: unknown key `{short(inner)}`", body.key_span(inner),
                            did_you_mean(inner, ("params", "network", "description")))
        params_node = body.get("params")
        params = {}
        if params_node is not None:
            if isinstance(params_node, Map):
                for pname, pentry in params_node.entries.items():
                    if not pname.isidentifier():
                        diags.error("E013", f"block `{key}`: parameter name `{short(pname)}` is not valid",
                                    pentry.key_span)
                    params[pname] = pentry.value
            else:
                diags.error("E012", f"block `{key}`: `params` must be a mapping (null marks a required one)",
                            params_node.span)
        layers = body.get("network")
        if not (isinstance(layers, Seq) and layers.items):
            diags.error("E011", f"block `{key}` needs a non-empty `network` list", body.span)
            continue
        blocks[key] = BlockDecl(key, params, layers.items, entry.key_span)
    return blocks


def _parse_outputs(node, diags: Diagnostics):
    if node is None:
        return None
    if not isinstance(node, Map) or not node.entries:
        diags.error("E012", "`outputs` must map output names to layer names", node.span,
                    "e.g. outputs: {logits: dense_7}")
        return None
    outputs = {}
    for key, entry in node.entries.items():
        value = entry.value
        if not key.isidentifier():
            diags.error("E013", f"output name `{short(key)}` is not a valid name", entry.key_span)
        elif not (isinstance(value, Scalar) and isinstance(value.value, str)):
            if not is_failed(value):
                diags.error("E012", f"output `{key}` must name a layer, got a {kind_name(value)}", value.span)
        else:
            outputs[key] = (value.value, value.span)
    return outputs


def _check_build(tree: Map, build, diags: Diagnostics) -> None:
    node = tree.get("build")
    if not isinstance(node, Map) or not build:
        return
    batch = build.get("batch")
    if isinstance(batch, dict) and not batch["min"] <= batch["opt"] <= batch["max"]:
        diags.error("E013", f"`build.batch` needs min <= opt <= max, got min {batch['min']}, opt {batch['opt']}, "
                    f"max {batch['max']}", node.get("batch").span, "e.g. {min: 1, opt: 8, max: 64}")


# The augment steps that make deterministic test-time views (see specc/tta_build.py), and why the others do not.
TTA_TRANSFORMS = ("flip", "shift", "crop", "rotate", "scale")
NOT_TTA = {"elastic": "is random", "noise": "is random", "color": "is random",
           "expand": "is static (it enlarges the training set)"}
RESAMPLED_VIEWS = ("rotate", "scale")  # ONNX GridSample, opset 16 or later


def _parse_tta(node: Map, build: dict, diags: Diagnostics) -> list:
    """`build.tta.transforms` as augment steps; a step that makes no deterministic view is refused at it."""
    steps = _parse_steps(node.get("tta").get("transforms"), "augment", diags, what="`build.tta` transform")
    kept = []
    for step in steps:
        if step.op in NOT_TTA:
            diags.error("E014", f"`build.tta` transform `{step.op}` {NOT_TTA[step.op]}: a test-time view must be "
                        "deterministic", step.span, "the transforms that make views: " + ", ".join(TTA_TRANSFORMS))
        elif step.op == "flip" and not (step.attrs["horizontal"] or step.attrs["vertical"]):
            diags.error("E013", "`build.tta` transform `flip` enables no direction, so it makes no view", step.span,
                        "`flip: {horizontal: true}` (and/or `vertical: true`)")
        elif step.op in RESAMPLED_VIEWS and build["opset"] < 16:
            diags.error("E013", f"`build.tta` transform `{step.op}` needs ONNX GridSample (opset 16 or later), but "
                        f"`build.opset` is {build['opset']}", step.span, "raise `build.opset` to 17 (the default)")
        else:
            kept.append(step)
    return kept


# Keys whose values are file paths: checked (never opened) so that CI mode confines them to the spec's tree.
PATH_KEYS = (("training", "data", "path"), ("training", "data", "validation"), ("training", "distill", "teacher"),
             ("training", "distill", "weights"), ("training", "init", "from"), ("build", "calibration", "data"),
             ("build", "tensorrt", "timing_cache"))


def _check_paths(tree: Map, path: str, diags: Diagnostics, limits: Limits) -> None:
    from specc.parser.extends import resolve_spec_path

    root = os.path.dirname(os.path.realpath(path))
    for keys in PATH_KEYS:
        node = tree
        for key in keys:
            node = node.get(key) if isinstance(node, Map) else None
        if not (isinstance(node, Scalar) and isinstance(node.value, str)) or node.value == "train":
            continue
        try:
            resolve_spec_path(node.value, path, node.span, limits, root, "`" + ".".join(keys) + "`")
        except SpeccError as exc:
            diags.extend(exc.diagnostics)


