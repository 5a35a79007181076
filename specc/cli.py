"""The `specc` command line. Exit codes: 0 ok, 1 invalid spec or failed command, 2 usage error.

No stage's exception reaches the user as a traceback: SpeccError prints its
located diagnostics; anything else is reported as an internal error (set
SPECC_DEBUG=1 to see the traceback).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from specc import __version__
from specc.diagnostics import Diagnostic, Span, SpeccError, format_diagnostics
from specc.parser.extends import is_inside
from specc.limits import DEFAULT_LIMITS, Limits

SPEC_SUFFIXES = (".yaml", ".yml")


class UsageError(Exception):
    pass


def _parse_bytes(text: str) -> int:
    units = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
    text = text.strip().upper().removesuffix("B").removesuffix("I")
    unit = text[-1] if text and text[-1] in units else ""
    try:
        value = float(text[: len(text) - len(unit)] if unit else text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 512M, 8G)") from None
    return int(value * units[unit])


def _add_safety_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("safety (see SECURITY.md)")
    group.add_argument("--ci", action="store_true",
                       help="strict mode for untrusted specs (also set by CI=true)")
    group.add_argument("--allow-outside", action="store_true",
                       help="allow `extends` and data paths outside the spec's directory tree in CI mode")
    group.add_argument("--trusted", action="store_true",
                       help="lift the size limits for a spec you trust")
    group.add_argument("--memory-budget", type=_parse_bytes, default=None, metavar="SIZE",
                       help="refuse models needing more memory than this (default: this machine's memory)")


def limits_from(args) -> Limits:
    limits = DEFAULT_LIMITS
    if getattr(args, "trusted", False) or os.environ.get("SPECC_TRUSTED") == "1":
        limits = limits.trusted()
    if getattr(args, "ci", False) or os.environ.get("CI", "").lower() == "true":
        limits = limits.strict()
    if getattr(args, "allow_outside", False):
        from dataclasses import replace

        limits = replace(limits, allow_outside=True)
    if getattr(args, "memory_budget", None):
        from dataclasses import replace

        limits = replace(limits, memory_budget_bytes=args.memory_budget)
    return limits


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="specc", description="Compile declarative YAML model specs.")
    parser.add_argument("--version", action="version", version=f"specc {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("validate", help="check specs; exit 1 if any is invalid")
    p.add_argument("paths", nargs="+", metavar="PATH", help="spec files or directories")
    p.add_argument("--format", choices=("text", "json", "github"), default="text")
    _add_safety_options(p)

    p = sub.add_parser("inspect", help="per-layer shapes, parameters and MACs")
    p.add_argument("spec", metavar="SPEC")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.add_argument("--ir", action="store_true", help="print the typed IR instead of the layer table")
    _add_safety_options(p)

    p = sub.add_parser("build", help="build model.onnx and manifest.json")
    p.add_argument("spec", metavar="SPEC")
    p.add_argument("-o", "--output", required=True, metavar="DIR")
    p.add_argument("--weights", metavar="FILE.safetensors")
    _add_safety_options(p)

    p = sub.add_parser("predict", help="run a spec or a built model on a .npy input")
    p.add_argument("model", metavar="SPEC|BUILD_DIR")
    p.add_argument("--input", required=True, metavar="FILE.npy")
    p.add_argument("--weights", metavar="FILE.safetensors")
    p.add_argument("--backend", choices=("torch", "onnxruntime"), default=None,
                   help="default: onnxruntime for a build directory, torch for a spec")
    p.add_argument("--output", metavar="FILE.npy", help="save the (first) output here")
    _add_safety_options(p)

    sub.add_parser("schema", help="print the JSON Schema of the spec language")
    return parser


def find_specs(paths: list[str]) -> list[tuple[str, str | None]]:
    """(spec file, the directory it was found in, or None when named directly)."""
    found = []
    for path in paths:
        if os.path.isdir(path):
            for root, dirs, files in os.walk(path):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                found += [(os.path.join(root, f), path) for f in sorted(files) if f.endswith(SPEC_SUFFIXES)]
        elif os.path.lexists(path):
            found.append((path, None))
        else:
            raise UsageError(f"no such file or directory: {path}")
    if not found:
        raise UsageError("no spec files (*.yaml, *.yml) found in " + ", ".join(paths))
    return found


def cmd_validate(args) -> int:
    from specc.compiler import check_spec

    limits = limits_from(args)
    all_diags = []
    invalid = 0
    specs = find_specs(args.paths)
    for path, walked in specs:
        if walked is not None and not limits.allow_outside and not is_inside(path, walked):
            diags = [Diagnostic("E040", f"{path} is a symbolic link to a file outside {walked}; not read in CI mode",
                                Span(path), "pass --allow-outside if you trust where it leads")]
        else:
            diags = check_spec(path, limits)
        if not diags and args.memory_budget:
            diags = _memory_diagnostics(path, limits)
        all_diags += diags
        failed = any(d.severity == "error" for d in diags)
        invalid += failed
        if args.format == "text":
            if diags:
                print(format_diagnostics(diags, "text"))
            if not failed:
                print(f"{path}: ok")
    if args.format != "text":
        print(format_diagnostics(all_diags, args.format))
    elif len(specs) > 1:
        print(f"{len(specs) - invalid} of {len(specs)} specs valid", file=sys.stderr)
    return 1 if invalid else 0


def _memory_diagnostics(path: str, limits: Limits) -> list:
    """With an explicit --memory-budget, validate also checks that the model fits it."""
    from specc.compiler import compile_spec
    from specc.ir.analysis import check_memory_budget

    try:
        check_memory_budget(compile_spec(path, limits).graph, limits.memory_budget, what="build")
    except SpeccError as exc:
        return exc.diagnostics
    return []


def cmd_inspect(args) -> int:
    from specc.compiler import compile_spec
    from specc.inspection import inspect_json, inspect_text
    from specc.ir.printer import print_graph

    compiled = compile_spec(args.spec, limits_from(args))
    if args.ir:
        print(print_graph(compiled.graph))
    elif args.format == "json":
        print(json.dumps(inspect_json(compiled.graph), indent=2))
    else:
        print(inspect_text(compiled.graph))
    return 0


def cmd_build(args) -> int:
    from specc.build import build

    result = build(args.spec, args.output, weights=args.weights, limits=limits_from(args))
    print(f"built {result.model_path} ({result.summary})")
    return 0


def cmd_predict(args) -> int:
    from specc.predict import predict

    outputs = predict(args.model, args.input, weights=args.weights, backend=args.backend,
                      limits=limits_from(args))
    import numpy as np

    first = next(iter(outputs))
    if args.output:
        np.save(args.output, outputs[first])
        print(f"saved `{first}` {tuple(outputs[first].shape)} to {args.output}")
    else:
        with np.printoptions(precision=5, suppress=True, threshold=200):
            for name, value in outputs.items():
                print(f"{name} {tuple(value.shape)}:\n{value}")
    return 0


def cmd_schema(args) -> int:
    from specc.parser.schema import spec_schema

    print(json.dumps(spec_schema(), indent=2))
    return 0


COMMANDS = {"validate": cmd_validate, "inspect": cmd_inspect, "build": cmd_build, "predict": cmd_predict,
            "schema": cmd_schema}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    fmt = getattr(args, "format", "text")
    try:
        return COMMANDS[args.command](args)
    except SpeccError as exc:
        out = format_diagnostics(exc.diagnostics, fmt if fmt in ("json", "github") else "text")
        print(out, file=sys.stdout if fmt in ("json", "github") else sys.stderr)
        return 1
    except UsageError as exc:
        print(f"specc {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("specc: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 1
    except Exception as exc:  # never a traceback for a user; SPECC_DEBUG=1 shows it
        if os.environ.get("SPECC_DEBUG") == "1":
            raise
        print(f"specc {args.command}: internal error: {type(exc).__name__}: {str(exc)[:300]}\n"
              "  hint: this is a bug in specc; rerun with SPECC_DEBUG=1 and report the traceback",
              file=sys.stderr)
        return 3
