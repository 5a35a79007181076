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
    layer = {"anyOf": [{"enum": bare}] + layers + [block_use]}
    network = {"type": "array", "items": {"$ref": "#/$defs/layer"}, "minItems": 1}
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "specc model spec, version 1",
        "type": "object",
        "required": ["specc", "name"],
        # A spec that `extends` another may leave out what it inherits, and delete keys with null.
        "if": {"not": {"required": ["extends"]}},
        "then": {"required": ["inputs", "network"]},
        "additionalProperties": False,
        "$defs": {"layer": layer},
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
    return schema
