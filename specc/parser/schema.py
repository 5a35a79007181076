"""The JSON Schema (draft 2020-12) of the spec language, generated from the op registry.

For editors (yaml-language-server) and for other tools; `specc validate`
does its own checking from the same declarations, with located messages.
"""

from __future__ import annotations

from specc.parser.sections import BUILD, INPUT, NAME_PATTERN, TRAINING
from specc.lang.argtypes import EXPR_SCHEMA

SCHEMA_ID = "https://specc.dev/schema/spec-v1.json"


def _meta():
    name = {"type": "string", "pattern": r"^[A-Za-z_][A-Za-z0-9_-]*$"}
    ref = {"type": "string"}
    return {
        "name": name,
        "from": {"anyOf": [ref, {"type": "array", "items": ref, "minItems": 1}]},
        "repeat": {"anyOf": [{"type": "integer", "minimum": 1}, EXPR_SCHEMA]},
    }


def _step_list(category: str) -> dict:
    from specc.ops import STEPS

    variants = []
    for name, op in sorted(STEPS[category].items()):
        variants.append({"type": "object", "properties": {name: op.args.json_schema()}, "required": [name],
                         "additionalProperties": False, "description": op.doc})
        if not any(f.required for f in op.fields.values()):
            variants.append({"const": name})
    return {"type": "array", "items": {"anyOf": variants}}


def spec_schema() -> dict:
    from specc.ops import REGISTRY

    meta = _meta()
    layers = []
    bare = []
    for name, op in sorted(REGISTRY.items()):
        layers.append({
            "type": "object",
            "properties": {name: op.args.json_schema(), **meta},
            "required": [name],
            "additionalProperties": False,
            "description": op.doc,
        })
        if not any(f.required for f in op.fields.values()):
            bare.append(name)
    block_use = {
        "type": "object",
        "description": "a use of a block defined under `blocks`, with its parameters",
        "propertyNames": {"pattern": r"^[A-Za-z_][A-Za-z0-9_]*$"},
        "minProperties": 1,
        "not": {"anyOf": [{"required": [name]} for name in sorted(REGISTRY)]},
    }
    op_layer = {"anyOf": [{"enum": bare}] + layers}
    layer = {"anyOf": [{"$ref": "#/$defs/op_layer"}, block_use]}
    network = {"type": "array", "items": {"$ref": "#/$defs/layer"}, "minItems": 1}
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "specc model spec, version 1",
        "type": "object",
        "required": ["specc", "name"],
        "allOf": [
            # A spec that `extends` another may leave out what it inherits, and delete keys with null.
            {"if": {"not": {"required": ["extends"]}}, "then": {"required": ["inputs", "network"]}},
            # Block names are the spec's own, so a layer that is no op may be a block use; a spec that
            # neither defines nor inherits blocks has none, and then an unknown op (`desne`) is an error.
            {"if": {"not": {"anyOf": [{"required": ["blocks"]}, {"required": ["extends"]}]}},
             "then": {"properties": {"network": {"items": {"$ref": "#/$defs/op_layer"}}}}},
        ],
        "additionalProperties": False,
        "$defs": {"layer": layer, "op_layer": op_layer},
        "properties": {
            "specc": {"const": 1, "description": "format version"},
            "name": {"type": "string", "pattern": f"^{NAME_PATTERN}$"},
            "description": {"type": "string"},
            "extends": {"type": "string", "description": "path of a base spec, relative to this file"},
            "params": {"type": "object", "additionalProperties": {"type": ["number", "string", "boolean"]}},
            "inputs": {"type": "object", "minProperties": 1, "additionalProperties": INPUT.json_schema()},
            "preprocess": _step_list("preprocess"),
            "augment": _step_list("augment"),
            "blocks": {"type": "object", "additionalProperties": {
                "type": "object", "required": ["network"], "additionalProperties": False,
                "properties": {"params": {"type": "object"}, "network": network, "description": {"type": "string"}},
            }},
            "network": network,
            "outputs": {"type": "object", "additionalProperties": {"type": "string"}},
            "training": TRAINING.json_schema(),
            "build": BUILD.json_schema(),
        },
    }
    for key in ("description", "params", "preprocess", "augment", "blocks", "outputs", "training", "build"):
        schema["properties"][key] = {"anyOf": [schema["properties"][key], {"type": "null"}]}
    return _accept_yaml11_exponents(schema)


# specc reads YAML 1.2 (core schema), where `1e-8` is a number. YAML 1.1 loaders (PyYAML's
# safe_load, and the tools built on it) read a float with an exponent but no dot, or no sign in the
# exponent, as a string. So that the schema gives the same answer whichever YAML a tool uses, a
# number may also be such a string; its range is then left to `specc validate`.
YAML12_EXPONENT = {"type": "string", "pattern": r"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)[eE][-+]?[0-9]+$"}


def _accept_yaml11_exponents(node):
    if isinstance(node, list):
        return [_accept_yaml11_exponents(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: _accept_yaml11_exponents(value) for key, value in node.items()}
    if node.get("type") in ("number", "integer"):
        return {"anyOf": [node, YAML12_EXPONENT]}
    return node
