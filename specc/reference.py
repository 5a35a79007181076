"""The language reference, generated from the op registry and the section types.

`specc ops` prints parts of it; `python -m specc.reference > docs/reference.md`
(or `specc ops --format markdown > docs/reference.md`) writes the whole page.
Nothing here is written twice: arguments, types, defaults, ranges, arity and
lowering status come from `specc.ops`, the `inputs`/`training`/`build` keys
from `specc.parser.sections`, and each example is checked by the compiler's
own loader and shape inference (`specc.op_examples`).
"""

from __future__ import annotations

from specc.ir.types import shape_str
from specc.lang.argtypes import AnyValue, Bool, DictOf, Enum, Field, ListOf, Number, OneKey, Record, Str, Union
from specc.op_examples import example_for, flow

REGENERATE = "specc ops --format markdown > docs/reference.md"

GROUPS = (  # (category, title, where it is written)
    ("layer", "Layers", "`network:` and block bodies"),
    ("preprocess", "Preprocess steps", "`preprocess:`, in training and inference, built into the model"),
    ("augment", "Augment steps", "`augment:`, in training only, never in the built model"),
)


def public_ops() -> dict:
    """category -> {name: OpDef} for the ops a spec can write (internal ops left out)."""
    from specc.ops import REGISTRY, STEPS

    def public(ops: dict) -> dict:
        return {name: op for name, op in ops.items()
                if op.category != "internal" and not getattr(op, "internal", False)}

    return {"layer": public(REGISTRY), "preprocess": public(STEPS.get("preprocess", {})),
            "augment": public(STEPS.get("augment", {}))}


def find_ops(name: str) -> list:
    """The ops called `name` (a step name may exist in both step lists); `augment.scale` picks one."""
    category, _, bare = name.rpartition(".")
    groups = public_ops()
    if category:
        op = groups.get(category, {}).get(bare)
        return [op] if op is not None else []
    return [ops[name] for ops in groups.values() if name in ops]


def all_names() -> list:
    return sorted({name for ops in public_ops().values() for name in ops})


class UnknownOp(LookupError):
    def __init__(self, name: str):
        from specc.diagnostics import did_you_mean, printable

        super().__init__(f"no op or step named `{printable(name[:100])}`")
        self.hint = did_you_mean(name, all_names()) or "`specc ops` lists every op and step"


def render_ops(name: str | None, fmt: str) -> str:
    """What `specc ops [NAME] --format FMT` prints: the list (or, in Markdown, the whole reference), or
    the full entry of NAME. Raises UnknownOp."""
    ops = None
    if name is not None:
        ops = find_ops(name)
        if not ops:
            raise UnknownOp(name)
    if fmt == "json":
        import json

        return json.dumps(ops_json(ops), indent=2) + "\n"
    if fmt == "markdown":
        return reference_markdown() if ops is None else "\n".join(op_markdown(op) for op in ops)
    return (ops_list_text() if ops is None else "\n\n".join(op_text(op) for op in ops)) + "\n"


# --- types in words ---------------------------------------------------------

def type_words(t) -> str:
    """What kind of value a type takes, in words: `integer`, `list of 2 numbers`, `choice`."""
    if isinstance(t, Number):
        return "integer" if t.integer else "number"
    if isinstance(t, Bool):
        return "boolean"
    if isinstance(t, Str):
        return "name" if t.pattern else "string"
    if isinstance(t, (Enum, OneKey)):
        return "choice"
    if isinstance(t, ListOf):
        return f"list of {_count_words(t)}{_plural(type_words(t.item))}"
    if isinstance(t, Union):
        return _or_list(dict.fromkeys(type_words(o) for o in t.options))
    if isinstance(t, Record):
        return "mapping"
    if isinstance(t, DictOf):
        return f"mapping of names to {_plural(type_words(t.value))}"
    if isinstance(t, AnyValue):
        return "any value"
    return type(t).__name__


def allowed_words(t) -> str:
    """The values a type allows beyond its kind: a range, the choices."""
    if isinstance(t, Number):
        low = f"{'>' if t.min_open else '>='} {flow(t.min)}" if t.min is not None else ""
        high = f"{'<' if t.max_open else '<='} {flow(t.max)}" if t.max is not None else ""
        return " and ".join(part for part in (low, high) if part)
    if isinstance(t, Enum):
        return ", ".join(f"`{c}`" if isinstance(c, str) else f"`{flow(c)}`" for c in t.choices)
    if isinstance(t, OneKey):
        return ", ".join(f"`{name}`" if record is None or not record.fields
                         else f"`{{{name}: {{{', '.join(record.fields)}}}}}`"
                         for name, record in t.options.items())
    if isinstance(t, ListOf):
        inner = allowed_words(t.item)
        return f"each {inner}" if inner else ""
    if isinstance(t, Union):
        return "; ".join(dict.fromkeys(a for a in map(allowed_words, t.options) if a))
    if isinstance(t, Str) and t.pattern:
        return f"matches `{t.pattern}`"
    return ""


def _count_words(t: ListOf) -> str:
    if t.max_len is not None and t.min_len == t.max_len:
        return f"{t.min_len} "
    if t.max_len is not None:
        return f"{t.min_len} to {t.max_len} "
    return f"{t.min_len} or more " if t.min_len > 1 else ""


def _plural(words: str) -> str:
    if words == "any value":
        return "values"
    if " or " in words or words.startswith(("list", "mapping")):
        return f"({words})s" if " or " in words else words
    return words + "s"


def _or_list(items) -> str:
    items = list(items)
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " or " + items[-1]


def default_words(field: Field) -> str:
    if field.required:
        return "required"
    if field.default is None:
        return "not set"
    if isinstance(field.default, tuple):  # a OneKey value: (name, args)
        return f"`{field.default[0]}`"
    return f"`{flow(field.default)}`"


def arity_words(arity: tuple) -> str:
    lo, hi = arity
    if lo == hi:
        return f"{lo} input" + ("s (`from: [a, b]`)" if lo > 1 else "")
    if hi is None:
        return f"{lo} or more inputs (`from: [a, b, ...]`)"
    return f"{lo} to {hi} inputs (`from:` a list when more than one)"


def lowering_words(op) -> str:
    if op.category == "augment":
        return "training only: the built model never contains it"
    if op.lowered:
        return "lowered to PyTorch and ONNX: `specc build` and `specc predict` run it"
    if op.category == "preprocess":
        return "not lowered yet: it validates, but `specc build` and `specc predict` stop at it"
    return ("not lowered yet: it validates, infers shapes and counts parameters, "
            "but `specc build` and `specc predict` stop at it")


# --- one op -----------------------------------------------------------------

def op_entry(op) -> dict:
    """Everything the reference says about one op, as JSON-ready data (`specc ops --format json`)."""
    example = example_for(op)
    return {
        "name": op.name,
        "category": op.category,
        "doc": op.doc,
        "arity": {"min": op.arity[0], "max": op.arity[1]},
        "lowered": bool(op.lowered),
        "primary": op.primary,
        "arguments": [
            {"name": name, "type": type_words(f.type), "allowed": allowed_words(f.type),
             "required": f.required, "default": None if f.required else _json_value(f.default),
             "primary": name == op.primary, "doc": f.doc, "schema": f.type.json_schema()}
            for name, f in op.fields.items()
        ],
        "example": {
            "inputs": [{"name": i.name, "shape": ["N", *i.shape], "dtype": i.dtype} for i in example.inputs],
            "forms": [{"kind": f.kind, "yaml": "\n".join(f.lines),
                       "output_shape": list(f.output_shape) if f.output_shape is not None else None}
                      for f in example.forms],
        },
    }


def _json_value(value):
    if isinstance(value, tuple):
        return [_json_value(v) for v in value]
    if isinstance(value, dict):
        return {k: _json_value(v) for k, v in value.items()}
    return value


def example_lines(op) -> tuple[str, list[str]]:
    """(what the example reads, its YAML lines with the inferred output shapes as comments)."""
    example = example_for(op)
    reads = ", ".join(f"`{i.name}` {shape_str(i.tensor_type().shape)}"
                      + (f" {i.dtype}" if i.dtype != "float32" else "") for i in example.inputs)
    width = max(len(line) for form in example.forms for line in form.lines)
    lines = []
    for n, form in enumerate(example.forms):
        if n:
            lines.append("# or" + (", naming the arguments:" if form.kind == "mapping" else ":"))
        for i, line in enumerate(form.lines):
            note = f"# gives {shape_str(form.output_shape)}" if i == 0 and form.output_shape else ""
            lines.append(f"{line.ljust(width)}   {note}".rstrip())
    return reads, lines


def argument_rows(op) -> list[tuple]:
    return [(name, type_words(f.type), default_words(f), allowed_words(f.type), f.doc)
            for name, f in op.fields.items()]


def op_markdown(op, level: int = 3) -> str:
    out = [f"{'#' * level} `{op.name}`", "", _sentence(op.doc), ""]
    if op.category == "layer":
        out.append(f"Takes {arity_words(op.arity)}; {lowering_words(op)}.")
    else:
        out.append(_sentence(lowering_words(op)))
    out.append("")
    if op.fields:
        rows = [(f"**`{name}`**" if name == op.primary else f"`{name}`", kind, default, allowed, doc)
                for name, kind, default, allowed, doc in argument_rows(op)]
        out += md_table(("argument", "type", "default", "allowed", "meaning"), rows)
        if op.primary:
            out += ["", f"The primary argument (**bold**) may be written alone: `{op.name}: <{op.primary}>`."]
    else:
        out.append("No arguments.")
    reads, lines = example_lines(op)
    out += ["", f"Example, reading {reads}:", "", "```yaml", *lines, "```", ""]
    return "\n".join(out)


def op_text(op) -> str:
    title = {"layer": "layer", "preprocess": "preprocess step", "augment": "augment step"}[op.category]
    out = [f"{op.name} ({title})", *_wrap(_sentence(op.doc), "  ")]
    if op.category == "layer":
        out.append(f"  takes {_plain(arity_words(op.arity))}")
    out += _wrap(_plain(lowering_words(op)), "  ") + [""]
    if op.fields:
        out.append("  arguments:" if op.primary is None else
                   f"  arguments (the primary one, {op.primary}, may be written alone: {op.name}: <{op.primary}>):")
        width = max(len(name) for name in op.fields) + 2
        for name, kind, default, allowed, doc in argument_rows(op):
            facts = "; ".join(part for part in (kind, allowed, "required" if default == "required"
                                                 else f"default {default}") if part)
            out += _wrap(_plain(f"{name.ljust(width)}{facts}"), "    ", " " * (4 + width))
            if doc:
                out += _wrap(_plain(doc), " " * (4 + width))
    else:
        out.append("  no arguments")
    reads, lines = example_lines(op)
    out += ["", f"  example, reading {_plain(reads)}:"] + ["    " + line for line in lines]
    return "\n".join(out)


TEXT_WIDTH = 100


def _wrap(text: str, indent: str, subsequent: str | None = None) -> list[str]:
    import textwrap

    return textwrap.wrap(text, TEXT_WIDTH, initial_indent=indent,
                         subsequent_indent=indent if subsequent is None else subsequent,
                         break_on_hyphens=False) or [indent.rstrip()]


def _plain(text: str) -> str:
    return text.replace("`", "")


def _sentence(doc: str) -> str:
    doc = doc.strip() or "(no description)"
    return doc[0].upper() + doc[1:] + ("" if doc.endswith(".") else ".")


# --- the op list --------------------------------------------------------------

def ops_list_text() -> str:
    groups = public_ops()
    width = max(len(name) for ops in groups.values() for name in ops) + 2
    out = []
    for category, title, where in GROUPS:
        out.append(f"{title} - {_plain(where)}")
        for name, op in groups[category].items():
            mark = "" if op.lowered or category == "augment" else " (validates; not lowered yet)"
            out += _wrap(f"{name.ljust(width)}{op.doc}{mark}", "  ", " " * (2 + width))
        out.append("")
    out.append("`specc ops NAME` shows one in full: arguments, defaults, ranges and an example.")
    return "\n".join(out)


def ops_json(ops=None) -> list:
    if ops is None:
        ops = [op for category, _, _ in GROUPS for op in public_ops()[category].values()]
    return [op_entry(op) for op in ops]


# --- tables -------------------------------------------------------------------

def md_table(header: tuple, rows: list) -> list[str]:
    def cell(text) -> str:
        return str(text).replace("|", "\\|").replace("\n", " ") or " "

    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return out


def text_table(header: tuple, rows: list) -> list[str]:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip() for row in [header, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return lines


# --- sections: inputs, training, build ------------------------------------------

def key_rows(record: Record, prefix: str = "") -> tuple[list, list]:
    """Rows (key, type, default, allowed, meaning) of a section, nested keys dotted (`data.dataset`);
    and the choice-valued keys (optimizer, schedule, ...) whose variants get a table of their own."""
    rows, choices = [], []
    for name, f in record.fields.items():
        key = prefix + name
        rows.append((f"`{key}`", type_words(f.type), default_words(f), allowed_words(f.type),
                     f.doc or KEY_NOTES.get(key, "")))
        for inner in _inner_types(f.type):
            if isinstance(inner, Record) and inner.fields:
                sub_rows, sub_choices = key_rows(inner, key + ".")
                rows += sub_rows
                choices += sub_choices
            elif isinstance(inner, OneKey):
                choices.append((key, inner))
    return rows, choices


def _inner_types(t) -> list:
    if isinstance(t, Union):
        return [x for o in t.options for x in _inner_types(o)]
    if isinstance(t, DictOf):
        return _inner_types(t.value)
    return [t]


def choice_table(key: str, choice: OneKey) -> list[str]:
    rows = []
    for name, record in choice.options.items():
        if record is None or not record.fields:
            args = "no arguments"
        else:
            args = ", ".join(f"`{k}` ({default_words(f).strip('`')}" + (f": {f.doc}" if f.doc else "") + ")"
                             for k, f in record.fields.items())
            if record.primary:
                args += f"; `{name}: <{record.primary}>` for short"
        rows.append((f"`{name}`", args))
    written = f"`{key}: name` or `{key}: {{name: {{arguments}}}}`"
    return [f"`{key}` is one of ({written}):", "", *md_table(("choice", "arguments (default)"), rows)]


# Meanings of section keys whose declaration carries no doc string.
KEY_NOTES = {
    "training.epochs": "passes over the training set",
    "training.batch_size": "examples per step",
    "training.loss": "the loss; see the table below",
    "training.optimizer": "the optimizer; see the table below",
    "training.schedule": "the learning-rate schedule; see the table below",
    "training.regularization": "penalties on the weights",
    "training.regularization.l2": "L2 penalty added to the loss (weights only)",
    "training.regularization.l1": "L1 penalty added to the loss (weights only)",
    "training.regularization.elastic_net": "L1 and L2 together",
    "training.regularization.weight_decay": "decoupled weight decay; unset, `adamw` applies its own `weight_decay`",
    "training.data.dataset": "`mnist-sample` is a small real subset of MNIST shipped with specc",
    "training.early_stopping": "stop when a validation metric stops improving; the best model is kept",
    "training.early_stopping.metric": "the watched metric",
    "training.early_stopping.patience": "epochs without improvement before stopping",
    "training.metrics": "metrics reported on validation",
    "training.seed": "seeds initialization, shuffling and augmentation",
    "training.ensemble": "members trained independently, built into one model",
    "training.distill": "knowledge distillation from a teacher spec",
    "training.distill.weights": "the teacher's weights file",
    "training.distill.alpha": "weight of the teacher's soft targets in the loss",
    "training.init": "start from a checkpoint (transfer learning)",
    "training.init.freeze": "layers whose weights stay fixed",
    "training.init.reinit": "layers initialized afresh",
    "training.search": "random search over spec values",
    "training.search.trials": "models trained",
    "build.targets": "what to build; a target that cannot be built is an error",
    "build.precision": "written into the graph (Casts for fp16, Quantize/DequantizeLinear pairs for int8)",
    "build.keep_fp32": "layer or op names kept in fp32 when `precision` is lower",
    "build.calibration": "int8 calibration",
    "build.calibration.data": "`train`, or a path",
    "build.calibration.samples": "examples used",
    "build.calibration.method": "how ranges are chosen",
    "build.calibration.per_channel": "one scale per output channel",
    "build.batch": "the dynamic batch range `{min, opt, max}`; an integer fixes it (default `{min: 1, opt: 1, max: 64}`)",
    "build.passes": "the pass pipeline: `standard`, `none`, or a list of pass names (`-name` removes one)",
    "build.tensorrt": "TensorRT builder options",
    "build.tensorrt.workspace_mb": "builder workspace",
    "build.tensorrt.timing_cache": "path of a timing cache to reuse",
    "build.tensorrt.optimization_level": "builder optimization level",
    "build.tensorrt.version_compatible": "an engine that later TensorRT versions can load",
    "build.tta": "test-time augmentation compiled into the model",
    "build.tta.transforms": "augment steps",
    "build.tta.combine": "how the augmented predictions are combined",
}


# --- the whole page -------------------------------------------------------------

TOP_LEVEL = (
    ("specc", "yes", "format version: the integer `1`"),
    ("name", "yes", "model name: `[a-z0-9][a-z0-9_.-]*`"),
    ("description", "no", "free text"),
    ("extends", "no", "path (relative to this file) of a base spec: mappings merge deeply, lists and scalars are "
                      "replaced, `null` deletes an inherited key; cycles are an error"),
    ("params", "no", "named numbers, strings and booleans usable in `${...}` expressions anywhere below"),
    ("inputs", "yes", "mapping of input name to tensor description ([inputs](#inputs))"),
    ("preprocess", "no", "list of steps applied in training **and** inference, compiled into the built model "
                         "([preprocess steps](#preprocess-steps))"),
    ("augment", "no", "list of random transforms applied in training only ([augment steps](#augment-steps))"),
    ("blocks", "no", "reusable, parameterized sub-networks ([blocks](#blocks))"),
    ("network", "yes", "the layers, in order ([network](#network), [layers](#layers))"),
    ("outputs", "no", "mapping of output name to a layer name (default: one output `output`, the last layer)"),
    ("training", "no", "how to train ([training](#training))"),
    ("build", "no", "what to build ([build](#build))"),
)

INTRO = """\
# specc language reference

Every key a spec may write, every op and step with its arguments, and an
example of each. This page is generated from specc itself
(`{regenerate}`), so it always matches the version that made it: an
argument listed here is accepted, one not listed is an error.

A spec is one YAML document. Unknown keys are errors (with a "did you mean"
hint), never ignored; every error names the file, line and column.

## Top level

{top_level}

A minimal spec:

```yaml
specc: 1
name: tiny_mlp
inputs:
  image: {{shape: [1, 28, 28], dtype: uint8}}
preprocess:
  - scale: ${{1/255}}
network:
  - flatten
  - dense: {{units: 32, activation: relu}}
  - dense: 10
  - softmax
```

## Expressions

`${{expr}}` is replaced by its value. `expr` is arithmetic (`+ - * / // % **`,
unary `+ -`, parentheses, `min`, `max`, `round`) over numbers and the names in
`params` and, inside a block, the block's parameters. A whole-value `${{...}}`
keeps its type (`filters: ${{c * 2}}` is an integer when `c` is); inside a
longer string the value is formatted into it (`name: "block_${{i}}"`). `$${{`
writes a literal `${{`. Inside a YAML flow mapping quote the expression:
`{{filters: "${{c}}"}}`. Nothing else is evaluated; unknown names are errors.

## inputs

```yaml
inputs:
  image: {{shape: [1, 28, 28], dtype: float32}}   # the batch axis is implicit
  tokens: {{shape: [seq], dtype: int64}}          # a name is a symbolic dimension
```

{inputs}

`shape` is written in the layout the data arrives in (`NHWC`: `[H, W, C]`);
the model transposes it to channels-first once at its entry, and casts
`uint8` and `float16` inputs to float32 there. `preprocess` applies to the
first input.

## network

A list of layers. Each layer is a mapping with exactly one op key, whose value
is the op's arguments (a mapping, or a scalar for the op's primary argument),
or a bare op name when it takes no arguments; plus these optional keys:

| key | meaning |
|---|---|
| `name` | a unique name for this layer's output (default `<op>_<index>`, the index counting from 1 over the list it stands in: `conv_1`, `maxpool_2`) |
| `from` | input(s): a layer name, `input` (the first input, after preprocessing), an input's name, or a list for multi-input ops; default: the previous layer |
| `repeat` | repeat this layer (or block) n times in sequence; the copies are `<name>.1` ... `<name>.n`, and `<name>` refers to the last copy |

```yaml
network:
  - conv: {{filters: 20, kernel: 5, activation: relu}}
  - maxpool: 2
  - flatten
  - dense: {{units: 100, activation: relu}}
  - dropout: 0.5
  - dense: 10
  - softmax
```

## blocks

A block is a named sub-network with parameters (`null` marks a required one),
used in `network` like an op with its parameters as arguments. Names inside a
block are local to each use; from outside, `<use>.<inner>` names one of them
(`<use>.<k>.<inner>` for a repeated use). A block's output is its last layer.
`activation` on a use applies to the block's output unless the block declares
a parameter of that name.

```yaml
blocks:
  residual:
    params: {{c: null, stride: 1}}
    network:
      - conv: {{filters: "${{c}}", kernel: 3, stride: "${{stride}}", padding: same, bias: false}}
      - batchnorm
      - relu
      - conv: {{filters: "${{c}}", kernel: 3, padding: same, bias: false}}
      - name: bn2
        batchnorm: {{}}
      - name: sum
        add: {{}}
        from: [bn2, input]        # `input` is the block's input
      - relu
network:
  - conv: {{filters: 64, kernel: 3, padding: same}}
  - residual: {{c: 64}}
    repeat: 2
```

## outputs

```yaml
outputs: {{logits: dense_7, probs: softmax_8}}
```
"""

STEPS_INTRO = {
    "layer": "The ops of `network:` and of block bodies. Shapes are written `(N, C, H, W)`: `N` is the batch "
             "axis. An op's primary argument is in **bold**.",
    "preprocess": "The steps of `preprocess:`. Each step is a mapping with one key, or a bare name when it takes "
                  "no arguments. They run in order on the first input (after its cast to float32) in training "
                  "and inference, and are compiled into the built model. Fitted steps (`mean_image`, `zca`) are "
                  "computed from the training set and travel with the weights.",
    "augment": "The steps of `augment:`, applied in training only; the built model never contains them. They "
               "are written like preprocess steps, and each takes `p`, the probability of applying it "
               "(default 1). Augmentation is seeded from `training.seed`, so it is reproducible.",
}


def reference_markdown() -> str:
    from specc.parser.sections import BUILD, INPUT, TRAINING

    header = ("key", "type", "default", "allowed", "meaning")
    input_rows, _ = key_rows(INPUT)
    out = [INTRO.format(
        regenerate=REGENERATE,
        top_level="\n".join(md_table(("key", "required", "meaning"), [(f"`{k}`", r, m) for k, r, m in TOP_LEVEL])),
        inputs="\n".join(md_table(header, input_rows)),
    )]
    groups = public_ops()
    for category, title, where in GROUPS:
        out += [f"## {title}", "", STEPS_INTRO[category], ""]
        out += [", ".join(f"[`{name}`](#{_anchor(name, category)})" for name in groups[category]), ""]
        out += [op_markdown(op) for op in groups[category].values()]
    for name, record, intro in (("training", TRAINING, TRAINING_INTRO), ("build", BUILD, BUILD_INTRO)):
        rows, choices = key_rows(record, name + ".")
        out += [f"## {name}", "", intro, "", *md_table(header, rows), ""]
        for key, choice in choices:
            out += [*choice_table(key, choice), ""]
    return "\n".join(out).rstrip("\n") + "\n"


TRAINING_INTRO = ("How to train the model. Every key is optional and checked when the spec is validated; "
                  "nested keys are written as mappings (`data.dataset` is `data: {dataset: mnist}`).")
BUILD_INTRO = ("What `specc build` makes. Every key is optional. A requested target or precision that this "
               "version cannot build is an error, never skipped quietly.")


def _anchor(name: str, category: str) -> str:
    """The anchor GitHub gives an op's heading: a name already used above (a step in both lists) gets `-1`."""
    order = [c for c, _, _ in GROUPS]
    before = sum(1 for c in order[:order.index(category)] if name in public_ops()[c])
    return name + (f"-{before}" if before else "")


if __name__ == "__main__":
    print(reference_markdown(), end="")
