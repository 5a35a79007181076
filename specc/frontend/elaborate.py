"""Spec AST -> IR graph: expands blocks and repeats, resolves names, infers every shape.

This is where a layer's arguments are evaluated and checked, because inside
a block they depend on the parameters of each use. Errors are collected:
a layer whose input already failed is skipped quietly (no cascades), but
every other layer is still checked.
"""

from __future__ import annotations

import gc
from dataclasses import dataclass, field

from specc.diagnostics import Diagnostics, Span, SpeccError, did_you_mean, error
from specc.ir.graph import Graph, Node, Value, data_value, freeze
from specc.ir.tensor import TensorData
from specc.ir.types import BATCH, TensorType, shape_str
from specc.limits import Limits
from specc.ops import REGISTRY, STEPS, ShapeError
from specc.ops.base import ACTIVATIONS, tensor_rng
from specc.lang.located import Map, Scalar, Seq, kind_name, short, single_entry
from specc.parser.spec import META_KEYS, Spec
from specc.parser.substitute import is_failed, substitute_tree
from specc.lang.argtypes import INVALID, Int, ListOf, Str, Union

LAYER_NAME = Str(r"[A-Za-z_][A-Za-z0-9_-]*", 100)
REFERENCE = Str(r"[A-Za-z_][A-Za-z0-9_.-]*", 300)  # may name `<block use>.<inner>`
FROM = Union((REFERENCE, ListOf(REFERENCE, 1, 64)))
POISON = Value("<failed>", TensorType("float32", ()))  # the output of a layer that could not be built


def init_recipe(op, attrs: dict, local: str, shape: tuple, seed: int, name: str):
    """The deferred initial value of one tensor: nothing (not even numpy) runs until it is asked for."""
    return lambda: op.init_tensor(attrs, local, shape, tensor_rng(seed, name))


@dataclass
class _Layer:
    op: str
    args: object       # located node (substituted)
    name: str
    from_: list | None  # [(name, span)]
    repeat: int
    span: Span
    op_span: Span
    name_span: Span
    repeat_span: Span | None = None
    # A layer read once serves every copy of a repeat and every use of its block with the same
    # parameters: its arguments are checked once, and its types inferred once per input types.
    attrs: object = None
    memo: dict = field(default_factory=dict)


def build_graph(spec: Spec, limits: Limits, diags: Diagnostics | None = None) -> Graph:
    owned = diags is None
    diags = diags if diags is not None else Diagnostics()
    builder = _Builder(spec, diags, limits)
    # The graph is tens of thousands of small objects that refer to each other (values and their
    # producers) and all live until the end: the cycle collector would rescan them again and again.
    collecting = gc.isenabled()
    gc.disable()
    try:
        builder.build()
    except SpeccError as exc:  # a hard limit: stop here, but keep what was found before it
        diags.extend(exc.diagnostics)
    finally:
        if collecting:
            gc.enable()
    if owned:
        diags.raise_if_errors()
    return builder.graph


class _Builder:
    def __init__(self, spec: Spec, diags: Diagnostics, limits: Limits):
        self.spec, self.diags, self.limits = spec, diags, limits
        self.graph = Graph(spec.name, seed=spec.seed, source=spec.path)
        self.node_count = 0
        self.taken: dict[str, Span] = {}  # node name -> where it was defined
        self.repeats: list[Span] = []     # the `repeat`s being expanded, outermost first
        self.read_cache: dict = {}        # (layer node, index, parameter values) -> _Layer: blocks reuse layers
        self.block_uses: set = set()      # full names of block uses (they make no node of their own)
        self.use_stack: list = []         # (use path, block name, span) of the block uses being expanded

    # --- entry and exit -------------------------------------------------
    def build(self) -> None:
        scope: dict[str, Value] = {}
        first = None
        for index, decl in enumerate(self.spec.inputs):
            value = self.graph.add_input(Value(decl.name, TensorType(decl.dtype, (BATCH,) + tuple(decl.shape)),
                                               "input", span=decl.span))
            self.taken[decl.name] = decl.span
            # Cast first, then transpose: TensorRT takes uint8 only at the network's edges.
            if decl.dtype in ("uint8", "float16"):
                value = self.add_node(f"{decl.name}.cast", "cast", "internal", {"to": "float32"}, [value], decl.span,
                                      decl.name)
            if decl.layout == "NHWC":
                value = self.add_node(f"{decl.name}.to_channels_first", "to_channels_first", "internal", {},
                                      [value], decl.span, decl.name)
            if index == 0:
                value = self.preprocess(value, decl.span)
                first = value
            scope[decl.name] = value
        if first is None:
            return
        scope["input"] = first
        last, names = self.expand(self.spec.network, scope, "", first, dict(self.spec.params), ())
        self.set_outputs(last, {**scope, **names})

    def preprocess(self, value: Value, span: Span) -> Value:
        for i, step in enumerate(self.spec.preprocess, 1):
            if value is not POISON and value.type.dtype == "int64":
                self.diags.error("E061", f"preprocess step `{step.op}` needs a float or uint8 input, "
                                 "got int64 token ids", step.span, "remove `preprocess` for token inputs")
                return POISON
            value = self.add_node(f"preprocess.{step.op}_{i}", step.op, "preprocess", step.attrs, [value],
                                  step.span, f"preprocess.{step.op}_{i}", args=step.args)
        return value

    def set_outputs(self, last: Value, names: dict) -> None:
        if self.spec.outputs is None:
            if last is not POISON:
                self.graph.outputs["output"] = last
            return
        for out_name, (layer, span) in self.spec.outputs.items():
            value = names.get(layer)
            if value is None:
                self.diags.error("E023", f"output `{out_name}` names `{short(layer)}`, which is not a layer",
                                 span, lambda: did_you_mean(layer, [n for n in names if n != "input"]))
            elif value is not POISON:
                self.graph.outputs[out_name] = value

    # --- layers ---------------------------------------------------------
    def expand(self, layers, scope: dict, prefix: str, previous: Value, params: dict, stack: tuple):
        """Build a list of layers; returns (last value, names defined here -> value)."""
        defined: dict[str, Value] = {}
        visible = dict(scope)
        for index, raw in enumerate(layers, 1):
            layer = self.read_layer(raw, index, params)
            if layer is None:
                previous = POISON
                continue
            inputs = self.resolve_from(layer, visible, previous)
            if layer.repeat > 1:
                self.repeats.append(layer.repeat_span)
            for copy in range(1, layer.repeat + 1):
                name = layer.name if layer.repeat == 1 else f"{layer.name}.{copy}"
                full = prefix + name
                if layer.op in self.spec.blocks:
                    if not self.claim(full, prefix + layer.name, layer.name_span):
                        out, inner = POISON, {}
                    else:
                        self.block_uses.add(full)
                        self.use_stack.append((full, layer.op, layer.op_span))
                        try:
                            out, inner = self.use_block(layer, full, inputs, params, stack)
                        finally:
                            self.use_stack.pop()
                    for inner_name, value in inner.items():
                        defined[f"{name}.{inner_name}"] = value
                        visible[f"{name}.{inner_name}"] = value
                else:
                    if layer.attrs is None:
                        layer.attrs = REGISTRY[layer.op].args.check(layer.args, self.diags, f"layer `{layer.name}`")
                    out = self.add_layer(layer, full, inputs, layer.attrs, layer.memo)
                defined[name] = visible[name] = out
                inputs = [out]
            if layer.repeat > 1:
                self.repeats.pop()
                defined[layer.name] = visible[layer.name] = inputs[0]
                self.taken.setdefault(prefix + layer.name, layer.name_span)  # `<name>` refers to the last copy
            previous = inputs[0]
        return previous, defined

    def read_layer(self, raw, index: int, params: dict) -> _Layer | None:
        # A block used n times reads the same layer nodes n times; with equal parameters the result
        # (and any diagnostic, reported once) is the same.
        try:
            key = (id(raw), index, tuple(params.items()))
            if key in self.read_cache:
                return self.read_cache[key]
        except TypeError:
            key = None
        layer = self._read_layer(raw, index, params)
        if key is not None:
            self.read_cache[key] = layer
        return layer

    def _read_layer(self, raw, index: int, params: dict) -> _Layer | None:
        diags = self.diags
        if isinstance(raw, Scalar) and isinstance(raw.value, str) and "${" not in raw.value:
            raw = single_entry(raw.value, Scalar(None, raw.span))
        if not isinstance(raw, Map):
            diags.error("E021", f"layer {index} must be an op name or a mapping with one op key, "
                        f"got a {kind_name(raw)}", raw.span, "e.g. `- dense: 10` or `- flatten`")
            return None
        node = substitute_tree(raw, params, diags, self.limits)
        op_keys = [k for k in node.keys() if k not in META_KEYS]
        if len(op_keys) != 1:
            what = "no op key" if not op_keys else "several op keys: " + ", ".join(f"`{short(k)}`" for k in op_keys)
            hint = "split them into separate list items" if op_keys else "add one op such as `dense: 10`"
            diags.error("E021", f"layer {index} has {what}", node.span, hint)
            return None
        op = op_keys[0]
        if op not in REGISTRY and op not in self.spec.blocks:
            diags.error("E020", f"unknown op `{short(op)}`", node.key_span(op),
                        lambda: did_you_mean(op, list(REGISTRY) + list(self.spec.blocks))
                        or "see `specc schema` for the ops")
            return None
        name = f"{op}_{index}"
        if "name" in node:
            checked = LAYER_NAME.check(node.get("name"), diags, f"layer {index}: `name`")
            if checked is INVALID:
                return None
            if checked == "input":
                diags.error("E013", f"layer {index}: `input` is reserved for the network's (or block's) input",
                            node.get("name").span, "choose another name")
                return None
            name = checked
        from_ = None
        if "from" in node:
            checked = FROM.check(node.get("from"), diags, f"layer `{name}`: `from`")
            if checked is INVALID:
                return None
            from_node = node.get("from")
            items = from_node.items if isinstance(from_node, Seq) else (from_node,)
            from_ = [(v, item.span) for v, item in zip([checked] if isinstance(checked, str) else checked, items)]
        repeat = 1
        if "repeat" in node:
            checked = Int(1).check(node.get("repeat"), diags, f"layer `{name}`: `repeat`")
            if checked is INVALID:
                return None
            if checked > self.limits.max_repeat:
                diags.error("E090", f"layer `{name}`: `repeat: {checked:,}` is over the limit of "
                            f"{self.limits.max_repeat:,}", node.get("repeat").span,
                            "pass --trusted to lift the limit for a spec you trust")
                return None
            repeat = checked
        return _Layer(op, node.get(op), name, from_, repeat, node.span, node.key_span(op),
                      node.key_span("name") if "name" in node else node.key_span(op),
                      node.get("repeat").span if "repeat" in node else None)

    def resolve_from(self, layer: _Layer, visible: dict, previous: Value) -> list:
        if layer.from_ is None:
            return [previous]
        values = []
        for ref, span in layer.from_:
            value = visible.get(ref)
            if value is None:
                self.diags.error("E023", f"layer `{layer.name}`: `from` names `{short(ref)}`, which is not "
                                 "an input or a layer defined before it", span,
                                 lambda: did_you_mean(ref, visible) or "available: " + ", ".join(list(visible)[-8:]))
                value = POISON
            values.append(value)
        return values

    def add_layer(self, layer: _Layer, full: str, inputs: list, attrs, memo: dict | None = None) -> Value:
        op = REGISTRY[layer.op]
        if attrs is INVALID:
            return POISON
        lo, hi = op.arity
        if not lo <= len(inputs) <= (hi if hi is not None else len(inputs)):
            want = f"{lo}" if lo == hi else f"{lo} or more" if hi is None else f"{lo} to {hi}"
            want += " input" if want == "1" else " inputs"
            span = layer.from_[0][1] if layer.from_ else layer.op_span
            self.diags.error("E024", f"layer `{layer.name}` ({layer.op}) takes {want}, got {len(inputs)}",
                             span, "list the inputs in `from: [a, b]`" if lo > 1 else "remove the extra `from` names")
            return POISON
        shown = full if layer.repeat == 1 else full[:full.rfind(".")]  # copies are reported as the layer
        out = self.add_node(full, layer.op, "layer", attrs, inputs, layer.op_span, full, shown,
                            args=layer.args, name_span=layer.name_span, memo=memo)
        if layer.op == "dense" and out is not POISON and inputs[0].type.rank >= 4:
            # Valid (SPEC: dense acts on the last axis), but on an image a missing `flatten` is likelier.
            from specc.diagnostics import Diagnostic

            self.diags.add(Diagnostic(
                "W002", f"layer `{shown}` (dense) on a {shape_str(inputs[0].type.shape)} input acts on its last "
                f"axis only, giving {shape_str(out.type.shape)}", layer.op_span,
                "add `flatten` before it to connect every feature; dense acts on the last axis only",
                severity="warning", notes=tuple(self.use_notes())))
        return out

    def add_node(self, name, op_name, category, attrs, inputs, span, layer, shown=None, args=None,
                 name_span=None, memo: dict | None = None) -> Value:
        if any(v is POISON for v in inputs):
            return POISON
        self.node_count += 1
        if self.node_count > self.limits.max_layers:
            where = self.repeats[0] if self.repeats else span  # the outermost multiplier, if any
            raise error("E090", f"the network expands to more than {self.limits.max_layers:,} layers",
                        where, "lower `repeat` counts, or pass --trusted for a spec you trust")
        if not self.claim(name, shown, name_span or span):
            return POISON
        op = REGISTRY[op_name] if category == "layer" else STEPS[category][op_name]
        itypes = [v.type for v in inputs]
        try:
            out_types, params, buffers, attrs = self.typed(op, attrs, itypes, memo)
        except ShapeError as exc:
            got = ", ".join(shape_str(t.shape) for t in itypes)
            if exc.arg and isinstance(args, Map) and exc.arg in args:
                span = args.get(exc.arg).span
            self.diags.error(exc.code, f"layer `{shown or name}` ({op_name}): {exc.message} "
                             f"[input shape{'s' if len(itypes) > 1 else ''} {got}]", span, exc.hint,
                             notes=self.use_notes())
            return POISON
        if not isinstance(out_types, (tuple, list)):
            out_types = (out_types,)
        outputs = [Value(name if i == 0 else f"{name}:{i}", t) for i, t in enumerate(out_types)]
        const = getattr(op, "const_params", ())
        data = {}
        for local, shape in {**params, **buffers}.items():
            kind = "param" if local in params else "const" if local in const else "buffer"
            full = f"{name}.{local}"
            recipe = init_recipe(op, attrs, local, tuple(shape), self.graph.seed, full)
            data[local] = data_value(full, tuple(shape), kind, TensorData(tuple(shape), recipe=recipe), span)
        self.graph.append(Node(name, op, category, attrs, inputs, outputs, span, layer, params=data))
        return outputs[0]

    @staticmethod
    def typed(op, attrs: dict, itypes: list, memo: dict | None):
        """(output types, param shapes, buffer shapes, frozen resolved attrs). The copies of a repeated
        layer share their arguments; with equal input types they share all of this (`memo`)."""
        key = tuple(itypes)
        if memo is not None and key in memo:
            return memo[key]
        result = (op.infer(attrs, itypes), op.param_shapes(attrs, itypes), op.buffer_shapes(attrs, itypes),
                  freeze({**attrs, **op.resolve(attrs, itypes)}))
        if memo is not None:
            memo[key] = result
        return result

    def claim(self, name: str, shown: str | None, span: Span) -> bool:
        """Take a layer (or block use) name; a name taken before is E022, pointing at both places."""
        if name in self.taken:
            first = self.taken[name]
            what = "an input" if any(v.name == name for v in self.graph.inputs) else "a layer"
            if name in self.block_uses:
                what = "a block use"
            self.diags.error("E022", f"duplicate layer name `{shown or name}`: {what} of that name is defined at "
                             f"line {first.line}", span, "each layer name must be unique", notes=self.use_notes())
            return False
        self.taken[name] = span
        return True

    def use_notes(self) -> tuple:
        """Where the enclosing block uses are written, innermost first: an error inside a block
        is about one of its uses."""
        return tuple((span, f"in `{use}`, a use of block `{block}`") for use, block, span in reversed(self.use_stack))

    # --- blocks ---------------------------------------------------------
    def use_block(self, layer: _Layer, full: str, inputs: list, params: dict, stack: tuple):
        block = self.spec.blocks[layer.op]
        if layer.op in stack:
            chain = " -> ".join(stack + (layer.op,))
            self.diags.error("E051", f"block `{layer.op}` uses itself: {chain}", layer.op_span,
                             "blocks cannot be recursive")
            return POISON, {}
        if len(stack) >= self.limits.max_block_depth:
            self.diags.error("E090", f"blocks nested more than {self.limits.max_block_depth} deep "
                             f"(`{stack[0]}` -> ... -> `{layer.op}`)", layer.op_span,
                             "pass --trusted to lift the limit for a spec you trust")
            return POISON, {}
        if len(inputs) != 1:
            self.diags.error("E024", f"block `{layer.op}` takes one input, got {len(inputs)}", layer.op_span)
            return POISON, {}
        args = layer.args
        given: dict = {}
        if isinstance(args, Map):
            for key, entry in args.entries.items():
                if key not in block.params and key != "activation":
                    self.diags.error("E050", f"block `{layer.op}` has no parameter `{short(key)}`", entry.key_span,
                                     lambda: did_you_mean(key, block.params) or
                                     "its parameters: " + (", ".join(block.params) or "none"))
                    return POISON, {}
                if is_failed(entry.value):
                    return POISON, {}
                if not isinstance(entry.value, Scalar):
                    self.diags.error("E012", f"block parameter `{key}` must be a number, string or boolean",
                                     entry.value.span)
                    return POISON, {}
                given[key] = entry.value.value
        elif not (isinstance(args, Scalar) and args.value is None):
            self.diags.error("E012", f"block `{layer.op}` takes a mapping of its parameters, got a {kind_name(args)}",
                             args.span, "e.g. `- residual: {c: 64}`")
            return POISON, {}
        # SPEC: `activation` is accepted by blocks; unless the block declares it, it applies to the output.
        activation = given.pop("activation", None) if "activation" not in block.params else None
        if activation is not None and activation not in ACTIVATIONS:
            self.diags.error("E014", f"block `{layer.op}`: `activation` must be one of {', '.join(ACTIVATIONS)}",
                             args.entries["activation"].value.span, did_you_mean(activation, ACTIVATIONS))
            return POISON, {}
        scope = dict(self.spec.params)
        for pname, default in block.params.items():
            if pname in given:
                scope[pname] = given[pname]
                continue
            if isinstance(default, Scalar) and default.value is None:
                self.diags.error("E050", f"block `{layer.op}` needs parameter `{pname}`", layer.op_span,
                                 f"add `{pname}: ...` to the arguments of `{layer.name}`")
                return POISON, {}
            node = substitute_tree(default, scope, self.diags, self.limits)
            if is_failed(node) or not isinstance(node, Scalar):
                return POISON, {}
            scope[pname] = node.value
        local = {"input": inputs[0]}
        last, inner = self.expand(block.layers, local, full + ".", inputs[0], scope, stack + (layer.op,))
        if activation not in (None, "linear"):
            defaults = REGISTRY[activation].args.check(Scalar(None, layer.op_span), self.diags, activation)
            last = self.add_node(f"{full}.{activation}", activation, "layer", defaults, [last], layer.op_span, full)
        return last, inner
