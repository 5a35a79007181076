"""Value types of the spec language: one description drives both checking and JSON Schema.

Every argument of every op, and every key of `training` and `build`, is
declared with these types. `check` turns a located node into a plain Python
value (or `INVALID`, after adding a located diagnostic); `json_schema` gives
the draft 2020-12 schema that `specc schema` prints for editors.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from specc.diagnostics import Diagnostics, did_you_mean
from specc.lang.located import Map, Scalar, Seq, is_failed, kind_name, short, single_entry

INVALID = object()
REQUIRED = object()
# An unexpanded `${...}` is allowed wherever a value is, so editors accept expressions.
EXPR_SCHEMA = {"type": "string", "pattern": r"^\$\{.*\}$"}


def _with_expr(schema: dict) -> dict:
    return {"anyOf": [schema, EXPR_SCHEMA]}


class Type:
    description = ""

    def check(self, node, diags: Diagnostics, where: str):
        raise NotImplementedError

    def json_schema(self) -> dict:
        raise NotImplementedError

    def describe(self) -> str:
        return self.description

    def _bad(self, node, diags: Diagnostics, where: str, message: str | None = None, hint=None, code="E012"):
        if is_failed(node):  # its expression already has a diagnostic
            return INVALID
        got = kind_name(node)
        if isinstance(node, Scalar) and node.value is not None:
            got += f" `{short(node.value)}`"
        diags.error(code, message or f"{where} must be {self.describe()}, got {got}", node.span, hint)
        return INVALID


def _range_text(lo, hi, lo_open=False, hi_open=False) -> str:
    parts = []
    if lo is not None:
        parts.append(f"{'>' if lo_open else '>='} {lo}")
    if hi is not None:
        parts.append(f"{'<' if hi_open else '<='} {hi}")
    return " and ".join(parts)


@dataclass(frozen=True)
class Number(Type):
    integer: bool = False
    min: float | None = None
    max: float | None = None
    min_open: bool = False
    max_open: bool = False

    def describe(self) -> str:
        base = "an integer" if self.integer else "a number"
        rng = _range_text(self.min, self.max, self.min_open, self.max_open)
        return f"{base} {rng}" if rng else base

    def check(self, node, diags, where):
        value = node.value if isinstance(node, Scalar) else None
        if not isinstance(node, Scalar) or isinstance(value, bool) or not isinstance(value, (int, float)):
            return self._bad(node, diags, where)
        if self.integer and not isinstance(value, int):
            if float(value).is_integer() and math.isfinite(value):
                value = int(value)
            else:
                return self._bad(node, diags, where)
        if isinstance(value, float) and not math.isfinite(value):
            return self._bad(node, diags, where, f"{where} must be a finite number, got {value}", code="E013")
        low_bad = self.min is not None and (value <= self.min if self.min_open else value < self.min)
        high_bad = self.max is not None and (value >= self.max if self.max_open else value > self.max)
        if low_bad or high_bad:
            rng = _range_text(self.min, self.max, self.min_open, self.max_open)
            return self._bad(node, diags, where, f"{where} is {short(value)}, out of range",
                             hint=f"valid range: {rng}", code="E013")
        return value if self.integer else float(value)

    def json_schema(self):
        schema: dict = {"type": "integer" if self.integer else "number"}
        if self.min is not None:
            schema["exclusiveMinimum" if self.min_open else "minimum"] = self.min
        if self.max is not None:
            schema["exclusiveMaximum" if self.max_open else "maximum"] = self.max
        return _with_expr(schema)


def Int(min=None, max=None) -> Number:
    return Number(True, min, max)


def Float(min=None, max=None, min_open=False, max_open=False) -> Number:
    return Number(False, min, max, min_open, max_open)


@dataclass(frozen=True)
class Bool(Type):
    description = "true or false"

    def check(self, node, diags, where):
        if isinstance(node, Scalar) and isinstance(node.value, bool):
            return node.value
        return self._bad(node, diags, where)

    def json_schema(self):
        return _with_expr({"type": "boolean"})


@dataclass(frozen=True)
class Str(Type):
    pattern: str | None = None
    max_length: int = 10_000

    def describe(self):
        return f"a string matching `{self.pattern}`" if self.pattern else "a string"

    def check(self, node, diags, where):
        if not (isinstance(node, Scalar) and isinstance(node.value, str)):
            return self._bad(node, diags, where)
        if len(node.value) > self.max_length:
            return self._bad(node, diags, where, f"{where} is {len(node.value)} characters long",
                             hint=f"at most {self.max_length}", code="E013")
        if self.pattern and not re.fullmatch(self.pattern, node.value):
            return self._bad(node, diags, where, f"{where} `{short(node.value)}` is not a valid name",
                             hint=f"it must match {self.pattern}", code="E013")
        return node.value

    def json_schema(self):
        schema = {"type": "string"}
        if self.pattern:
            schema["pattern"] = f"^(?:{self.pattern})$"
        return schema


@dataclass(frozen=True)
class Enum(Type):
    choices: tuple

    def describe(self):
        return "one of " + ", ".join(f"`{c}`" for c in self.choices)

    def check(self, node, diags, where):
        if isinstance(node, Scalar) and node.value in self.choices and not isinstance(node.value, bool):
            return node.value
        hint = (lambda: did_you_mean(node.value, self.choices)) if isinstance(node, Scalar) else None
        got = f"`{short(node.value)}`" if isinstance(node, Scalar) else f"a {kind_name(node)}"
        return self._bad(node, diags, where, f"{where} must be {self.describe()}, got {got}",
                         hint=hint, code="E014")

    def json_schema(self):
        return _with_expr({"enum": list(self.choices)})


@dataclass(frozen=True)
class AnyValue(Type):
    description = "any value"

    def check(self, node, diags, where):
        return node.plain()

    def json_schema(self):
        return {}


@dataclass(frozen=True)
class ListOf(Type):
    item: Type
    min_len: int = 0
    max_len: int | None = None

    def describe(self):
        count = f"{self.min_len} " if self.min_len and self.min_len == self.max_len else ""
        return f"a list of {count}{_plural(self.item.describe())}"

    def check(self, node, diags, where):
        if not isinstance(node, Seq):
            return self._bad(node, diags, where)
        n = len(node.items)
        if n < self.min_len or (self.max_len is not None and n > self.max_len):
            want = (f"exactly {self.min_len}" if self.min_len == self.max_len
                    else _range_text(self.min_len, self.max_len))
            return self._bad(node, diags, where, f"{where} has {n} items", hint=f"it needs {want}",
                             code="E013")
        values = [self.item.check(item, diags, f"{where}[{i}]") for i, item in enumerate(node.items)]
        return INVALID if any(v is INVALID for v in values) else values

    def json_schema(self):
        schema = {"type": "array", "items": self.item.json_schema(), "minItems": self.min_len}
        if self.max_len is not None:
            schema["maxItems"] = self.max_len
        return schema


def _plural(description: str) -> str:
    """The plural of an item's description, for list types: "a number > 0" -> "numbers > 0",
    "an integer >= 1" -> "integers >= 1"; a description that is not one noun phrase is kept whole."""
    for article in ("a ", "an "):
        if description.startswith(article) and " or " not in description:
            noun, _, rest = description[len(article):].partition(" ")
            return f"{noun}s {rest}".rstrip()
    if description == "any value":
        return "values"
    return f"items, each {description}"


@dataclass(frozen=True)
class Union(Type):
    options: tuple

    def describe(self):
        return " or ".join(o.describe() for o in self.options)

    def check(self, node, diags, where):
        # Try each option quietly; report against the first whose kind matches.
        for option in self.options:
            trial = Diagnostics()
            value = option.check(node, trial, where)
            if not trial.has_errors:
                return value
        for option in self.options:
            if _same_kind(option, node):
                return option.check(node, diags, where)
        return self._bad(node, diags, where)

    def json_schema(self):
        return {"anyOf": [o.json_schema() for o in self.options]}


def _same_kind(option: Type, node) -> bool:
    if isinstance(node, Seq):
        return isinstance(option, ListOf)
    if isinstance(node, Map):
        return isinstance(option, (Record, DictOf, OneKey))
    value = node.value
    if isinstance(value, bool):
        return isinstance(option, Bool)
    if isinstance(value, (int, float)):
        return isinstance(option, Number)
    if isinstance(value, str):
        return isinstance(option, (Str, Enum, OneKey))
    return False


@dataclass(frozen=True)
class Field:
    type: Type
    default: object = None  # REQUIRED for required fields
    doc: str = ""

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    @property
    def nullable_section(self) -> bool:
        """An optional mapping with required keys: null cannot fill it with defaults, so it means absent."""
        return self.default is None and isinstance(self.type, Record) and any(
            f.required for f in self.type.fields.values())


@dataclass(frozen=True)
class Record(Type):
    """A closed mapping: unknown keys are errors, required keys must be present."""

    fields: dict = field(default_factory=dict)
    description: str = "a mapping"
    primary: str | None = None  # a scalar (or list) written in place of the mapping sets this field

    def check(self, node, diags, where, fill_defaults: bool = True):
        if not isinstance(node, Map):
            if self.primary is not None and not (isinstance(node, Scalar) and node.value is None):
                node = single_entry(self.primary, node)
            elif isinstance(node, Scalar) and node.value is None:
                node = Map({}, node.span)
            else:
                return self._bad(node, diags, where)
        result = {}
        ok = True
        for key, entry in node.entries.items():
            spec = self.fields.get(key)
            if spec is None:
                diags.error("E010", f"{where}: unknown key `{short(key)}`", entry.key_span,
                            lambda key=key: did_you_mean(key, self.fields) or (
                                "valid keys: " + ", ".join(sorted(self.fields)) if self.fields
                                else "it takes no arguments"))
                ok = False
                continue
            if spec.nullable_section and isinstance(entry.value, Scalar) and entry.value.value is None:
                result[key] = None  # `tta: null` is the section left out, as its default says
                continue
            value = spec.type.check(entry.value, diags, f"{where}: `{key}`")
            ok &= value is not INVALID
            result[key] = value
        unknown = [k for k in node.entries if k not in self.fields]
        for key, spec in self.fields.items():
            if key in result:
                continue
            if spec.required and any(did_you_mean(u, [key]) for u in unknown):
                continue  # the unknown key's "did you mean" already says it
            if spec.required:
                diags.error("E011", f"{where}: missing required key `{key}`", node.span,
                            f"add `{key}: <{spec.type.describe()}>`")
                ok = False
            elif fill_defaults:
                result[key] = spec.default
        # Declaration order, whatever order the spec wrote them in: stable printing and hashing.
        return {k: result[k] for k in self.fields if k in result} if ok else INVALID

    def json_schema(self):
        schema = {
            "type": "object",
            "properties": {k: _documented(_nullable(f.type.json_schema()) if f.nullable_section else
                                          f.type.json_schema(), f.doc) for k, f in self.fields.items()},
            "additionalProperties": False,
        }
        required = [k for k, f in self.fields.items() if f.required]
        if required:
            schema["required"] = required
        if self.primary is not None:
            return {"anyOf": [schema, self.fields[self.primary].type.json_schema(), {"type": "null"}]}
        return {"anyOf": [schema, {"type": "null"}]} if not required else schema


def _nullable(schema: dict) -> dict:
    return {"anyOf": [schema, {"type": "null"}]}


def _documented(schema: dict, doc: str) -> dict:
    return {**schema, "description": doc} if doc else schema



@dataclass(frozen=True)
class DictOf(Type):
    """An open mapping from names to values of one type (e.g. `lr_mult`)."""

    value: Type
    description: str = "a mapping"

    def check(self, node, diags, where):
        if not isinstance(node, Map):
            return self._bad(node, diags, where)
        result = {k: self.value.check(v, diags, f"{where}: `{short(k)}`") for k, v in node.items()}
        return INVALID if any(v is INVALID for v in result.values()) else result

    def json_schema(self):
        return {"type": "object", "additionalProperties": self.value.json_schema()}


def _inherited_hint(node) -> str | None:
    """For a choice with several keys because `extends` merged a base spec's key into it: which keys came
    from another file, and how to drop them."""
    if not isinstance(node, Map) or len(node.entries) < 2:
        return None
    inherited = [k for k, e in node.entries.items() if e.key_span.path != node.span.path]
    if not inherited or len(inherited) == len(node.entries):
        return None
    keys = ", ".join(f"`{short(k)}`" for k in inherited)
    first = short(inherited[0])
    return (f"{keys} {'comes' if len(inherited) == 1 else 'come'} from the spec this one extends (mappings merge "
            f"key by key): `{first}: null` removes it")


@dataclass(frozen=True)
class OneKey(Type):
    """`name` or `{name: args}`: one choice among named variants (optimizers, schedules, losses)."""

    options: dict  # name -> Record (or None for a variant without arguments)
    description: str = "a choice"

    def describe(self):
        return "one of " + ", ".join(f"`{k}`" for k in self.options)

    def check(self, node, diags, where):
        if isinstance(node, Scalar) and isinstance(node.value, str):
            name, args, key_span = node.value, Scalar(None, node.span), node.span
        elif isinstance(node, Map) and len(node.entries) == 1:
            (name, entry), = node.entries.items()
            args, key_span = entry.value, entry.key_span
        else:
            return self._bad(node, diags, where, f"{where} must be {self.describe()} "
                             "(a name, or a mapping with that one name as key)", _inherited_hint(node))
        if name not in self.options:
            diags.error("E014", f"{where}: unknown choice `{short(name)}`", key_span,
                        did_you_mean(name, self.options) or self.describe())
            return INVALID
        record = self.options[name]
        if record is None:
            if not (isinstance(args, Scalar) and args.value is None) and not (isinstance(args, Map) and not args.entries):
                diags.error("E012", f"{where}: `{name}` takes no arguments", args.span)
                return INVALID
            return (name, {})
        value = record.check(args, diags, f"{where}: `{name}`")
        return INVALID if value is INVALID else (name, value)

    def json_schema(self):
        variants = []
        for name, record in self.options.items():
            if record is None:
                variants.append({"const": name})
            else:
                variants.append({"type": "object", "properties": {name: record.json_schema()},
                                 "required": [name], "additionalProperties": False})
                if not any(f.required for f in record.fields.values()):
                    variants.append({"const": name})
        return {"anyOf": variants}
