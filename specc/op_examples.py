"""A short, valid YAML example for every op and step, generated from its declared fields.

The language reference (`specc ops`, docs/reference.md) shows each op in its
shorthand form (the primary argument alone) and its mapping form. Values come
from the field types; the few tables below only pick nicer values and a
fitting input (a sequence for `lstm`, token ids for `embedding`). Each example
is run through the real YAML loader, argument checker and shape inference,
so the output shape it prints is the one the compiler computes.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from specc.diagnostics import Diagnostics
from specc.ir.types import TensorType
from specc.lang.argtypes import (AnyValue, Bool, DictOf, Enum, ListOf, Number, OneKey, Record, Str,
                                 Union)
from specc.limits import DEFAULT_LIMITS


@dataclass(frozen=True)
class ExampleInput:
    name: str
    shape: tuple  # without the batch axis
    dtype: str = "float32"

    def tensor_type(self) -> TensorType:
        return TensorType(self.dtype, ("N",) + tuple(self.shape))


@dataclass(frozen=True)
class ExampleForm:
    kind: str            # "shorthand" (the primary argument alone), "mapping", or "bare" (no arguments)
    lines: tuple         # the YAML list item, one string per line
    output_shape: tuple | None  # what the compiler infers for it (None for augment steps: training only)


@dataclass(frozen=True)
class OpExample:
    inputs: tuple        # of ExampleInput: what the layer reads
    forms: tuple         # of ExampleForm


IMAGE = (ExampleInput("image", (3, 32, 32)),)
FEATURES = (ExampleInput("features", (64,)),)
SEQUENCE = (ExampleInput("sequence", (20, 64)),)
TOKENS = (ExampleInput("tokens", ("seq",), "int64"),)
TWO_IMAGES = (ExampleInput("a", (3, 32, 32)), ExampleInput("b", (3, 32, 32)))
QUERY_AND_KEYS = (ExampleInput("query", (20, 64)), ExampleInput("keys", (20, 64)))

# Inputs that suit an op better than an image. An op not named here reads an image (two images when it
# takes two or more inputs).
EXAMPLE_INPUTS = {
    ("layer", "dense"): FEATURES, ("layer", "dropout"): FEATURES, ("layer", "reshape"): FEATURES,
    ("layer", "softmax"): FEATURES, ("layer", "log_softmax"): FEATURES, ("layer", "layernorm"): FEATURES,
    ("layer", "embedding"): TOKENS,
    ("layer", "rnn"): SEQUENCE, ("layer", "lstm"): SEQUENCE, ("layer", "gru"): SEQUENCE,
    ("layer", "multihead_attention"): SEQUENCE, ("layer", "positional_encoding"): SEQUENCE,
    ("layer", "attention"): QUERY_AND_KEYS,
}

# Argument values worth showing (the mapping form names these, plus every required argument). Values
# not given here come from the field's type (see `sample_value`).
EXAMPLE_VALUES = {
    ("layer", "conv"): {"filters": 16, "kernel": 3, "padding": "same", "activation": "relu"},
    ("layer", "dense"): {"units": 32, "activation": "relu"},
    ("layer", "maxpool"): {"size": 2, "stride": 2},
    ("layer", "avgpool"): {"size": 2, "stride": 2},
    ("layer", "fractional_maxpool"): {"ratio": 1.414},
    ("layer", "dropout"): {"p": 0.5},
    ("layer", "stochastic_depth"): {"p": 0.2},
    ("layer", "leaky_relu"): {"slope": 0.1},
    ("layer", "embedding"): {"vocab": 10000, "dim": 64},
    ("layer", "rnn"): {"hidden": 128, "bidirectional": True},
    ("layer", "lstm"): {"hidden": 128, "return_sequences": False},
    ("layer", "gru"): {"hidden": 128, "layers": 2},
    ("layer", "attention"): {"kind": "additive"},
    ("layer", "multihead_attention"): {"heads": 8, "causal": True},
    ("layer", "positional_encoding"): {"kind": "learned", "max_len": 128},
    ("layer", "reshape"): {"shape": [4, 16]},
    ("layer", "permute"): {"dims": [1, 2, 0]},
    ("layer", "concat"): {"axis": 1},
    ("preprocess", "scale"): {"factor": "${1/255}"},
    ("preprocess", "normalize"): {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]},
    ("preprocess", "resize"): {"size": [36, 36]},
    ("preprocess", "center_crop"): {"size": [28, 28]},
    ("preprocess", "lcn"): {"size": 7, "sigma": "box"},
    ("augment", "shift"): {"pixels": 2, "p": 0.5},
    ("augment", "rotate"): {"degrees": 15, "p": 0.5},
    ("augment", "scale"): {"range": [0.9, 1.1], "p": 0.5},
    ("augment", "flip"): {"horizontal": True},
    ("augment", "crop"): {"size": [32, 32], "padding": 4},
    ("augment", "noise"): {"std": 0.05, "p": 0.5},
    ("augment", "color"): {"brightness": 0.2, "contrast": 0.2},
}

MAPPING_FORM_MIN_KEYS = 2  # a mapping form shows at least this many keys when the op has them


def example_for(op) -> OpExample:
    """The example of one op or step (an OpDef from the registry)."""
    key = (op.category, op.name)
    inputs = EXAMPLE_INPUTS.get(key) or (TWO_IMAGES if op.arity[0] >= 2 else IMAGE)
    values = EXAMPLE_VALUES.get(key, {})
    from_line = f"  from: [{', '.join(i.name for i in inputs)}]" if len(inputs) > 1 else None
    forms = []
    if op.primary is not None:
        forms.append(("shorthand", flow(_value(op, op.primary, values))))
    elif not any(f.required for f in op.fields.values()):
        forms.append(("bare", None))
    mapping = _mapping_keys(op, values)
    if mapping and mapping != [op.primary]:
        forms.append(("mapping", flow({k: _value(op, k, values) for k in mapping})))
    return OpExample(inputs, tuple(_form(op, kind, text, inputs, from_line) for kind, text in forms))


def _mapping_keys(op, values: dict) -> list:
    keys = [k for k, f in op.fields.items() if f.required or k in values]
    for k, f in op.fields.items():
        if len(keys) >= MAPPING_FORM_MIN_KEYS:
            break
        if k not in keys and f.default is not None:
            keys.append(k)
    return [k for k in op.fields if k in keys]  # declaration order


def _value(op, key: str, values: dict):
    if key in values:
        return values[key]
    field = op.fields[key]
    return sample_value(field.type) if field.required or field.default is None else field.default


def _form(op, kind: str, text: str | None, inputs: tuple, from_line: str | None) -> ExampleForm:
    if text is None:
        first = f"- {op.name}: {{}}" if from_line else f"- {op.name}"
    else:
        first = f"- {op.name}: {text}"
    lines = (first, from_line) if from_line else (first,)
    shape = None if op.category == "augment" else infer_example(op, first[2:], inputs)
    return ExampleForm(kind, lines, shape)


def infer_example(op, item_text: str, inputs: tuple) -> tuple:
    """The output shape of `item_text` (`conv: 16`) on `inputs`, through the real loader and checker.

    Raises ValueError when the example does not check: a wrong entry in the tables above."""
    from specc.lang.located import Map, Scalar
    from specc.parser.substitute import substitute_tree
    from specc.parser.yaml_loader import load_yaml_text

    node = load_yaml_text(item_text, f"<example of {op.name}>", DEFAULT_LIMITS)
    if isinstance(node, Map):
        (entry,) = node.entries.values()
        args = entry.value
    else:
        args = Scalar(None, node.span)
    diags = Diagnostics()
    args = substitute_tree(args, {}, diags, DEFAULT_LIMITS)
    attrs = op.args.check(args, diags, f"`{op.name}`") if not diags.has_errors else None
    if diags.has_errors:
        raise ValueError(f"the example `{item_text}` of `{op.name}` does not check: "
                         + "; ".join(d.message for d in diags.items))
    types = [i.tensor_type() if op.category == "layer" else _as_float(i.tensor_type()) for i in inputs]
    return tuple(op.infer(attrs, types).shape)


def _as_float(t: TensorType) -> TensorType:
    return TensorType("float32", t.shape)  # steps see the input after its cast to float32


def example_spec(op, form: ExampleForm, example: OpExample) -> str:
    """A whole minimal spec in which `form` is the one layer (or step): what the tests validate."""
    inputs = "\n".join(f"  {i.name}: {{shape: {flow(list(i.shape))}, dtype: {i.dtype}}}" for i in example.inputs)
    item = "\n".join("  " + line for line in form.lines)
    head = f"specc: 1\nname: example\ninputs:\n{inputs}\n"
    if op.category == "layer":
        return head + f"network:\n{item}\n"
    return head + f"{op.category}:\n{item}\nnetwork:\n  - flatten\n"


def sample_value(t):
    """A value of type `t` that checks, for an argument the tables above do not give."""
    if isinstance(t, Bool):
        return True
    if isinstance(t, Number):
        candidates = (16, 4, 2, 1, 0, -1) if t.integer else (0.5, 0.1, 1.0, 2.0, 0.0)
        for c in candidates:
            if _in_range(t, c):
                return c
        return t.min if t.min is not None else 0
    if isinstance(t, Enum):
        return t.choices[0]
    if isinstance(t, ListOf):
        return [sample_value(t.item)] * max(t.min_len, 1)
    if isinstance(t, Union):
        return sample_value(t.options[0])
    if isinstance(t, OneKey):
        return next(iter(t.options))
    if isinstance(t, Str):
        return "name"
    if isinstance(t, (Record, DictOf, AnyValue)):
        return {}
    raise TypeError(f"no sample value for {type(t).__name__}")


def _in_range(t: Number, value) -> bool:
    if t.min is not None and (value <= t.min if t.min_open else value < t.min):
        return False
    return not (t.max is not None and (value >= t.max if t.max_open else value > t.max))


_PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_EXPRESSION = re.compile(r"\$\{[^{}]*\}")
_YAML_WORDS = {"true", "false", "null", "yes", "no", "on", "off", "y", "n"}


def flow(value, nested: bool = False) -> str:
    """`value` as YAML flow text: `{filters: 16, padding: same}`, `[2, 2]`, `0.5`, `${1/255}`.

    An expression is written bare where it is the whole value; inside `{...}` or `[...]` YAML needs it
    quoted."""
    if value is True or value is False:
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        plain = _PLAIN.fullmatch(value) and value.lower() not in _YAML_WORDS
        expression = not nested and _EXPRESSION.fullmatch(value)
        return value if plain or expression else json.dumps(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(flow(v, True) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {flow(v, True)}" for k, v in value.items()) + "}"
    raise TypeError(f"cannot write {type(value).__name__} as YAML")
