"""`training.init`: start from another model's weights (transfer learning).

`from` is a safetensors file (a `model.safetensors` of an earlier run, or any
file with spec-named tensors). Every tensor of this spec is taken from it,
except those of the layers listed in `reinit`, which keep their fresh
initial values (a new head). `freeze` stops the listed layers' trainable
tensors from changing: they get no gradient and no optimizer state, and no
penalty or decay touches them. Names are layer names or block uses (`res_1`
covers every layer inside that use).
"""

from __future__ import annotations

import os

import numpy as np

from specc.diagnostics import Diagnostics, Span, error
from specc.train.optim import layer_of


def owner_of(info) -> str:
    return getattr(info, "owner", None) or info.node


def tensors_under(graph, layers) -> set:
    """Spec names of every data tensor (params and buffers) of the listed layers."""
    wanted = dict.fromkeys(layers)
    return {name for name, info in graph.params.items() if layer_of(name, owner_of(info), wanted) is not None}


def spec_file(value: str, spec_path: str, key: str, span: Span, limits, what: str, missing: str = "E080") -> str:
    """The path `training.<key>` names, resolved as every spec path is (the validator has confined it to
    the spec's tree in CI mode), refused at that line as `missing` when absent, and as E003 when it is not
    a regular file: a pipe or device is never opened, it could hang."""
    from specc.parser.extends import spec_relative

    path = spec_relative(value, spec_path, limits)
    if not os.path.isfile(path):
        exists = os.path.exists(path)
        raise error("E003" if exists else missing,
                    f"`training.{key}` {value}: {'is not a regular file' if exists else 'not found'}", span,
                    f"give the path, relative to this spec, of {what}")
    return path


def apply_init(weights: dict, graph, init: dict, spec_path: str, span: Span, limits) -> set:
    """Overwrite `weights` with the `init.from` file's tensors; returns the names to freeze."""
    from safetensors.numpy import load_file

    path = spec_file(init["from"], spec_path, "init.from", span, limits,
                     "a .safetensors file, e.g. an earlier run's model.safetensors")
    try:
        source = load_file(path)
    except Exception as exc:  # safetensors raises its own error types for malformed headers
        raise error("E080", f"`training.init.from`: {init['from']} is not a readable safetensors file "
                    f"({type(exc).__name__})", span) from None
    fresh = tensors_under(graph, init["reinit"])
    diags = Diagnostics()
    for name, info in graph.params.items():
        if name in fresh or getattr(info, "kind", "param") == "const":
            continue
        tensor = source.get(name)
        if tensor is None:
            diags.error("E080", f"`training.init.from` file {init['from']} has no tensor `{name}` "
                        f"for layer `{owner_of(info)}`", span,
                        f"list `{owner_of(info)}` in `init.reinit` to start it from fresh values")
        elif tuple(tensor.shape) != tuple(info.shape):
            diags.error("E080", f"tensor `{name}` in {init['from']} has shape {list(tensor.shape)}, but layer "
                        f"`{owner_of(info)}` needs {list(info.shape)}", span,
                        f"list `{owner_of(info)}` in `init.reinit` to start it from fresh values")
        else:
            weights[name] = np.ascontiguousarray(tensor, dtype=np.float32)
    diags.raise_if_errors()
    return {name for name in tensors_under(graph, init["freeze"]) if graph.params[name].trainable}
