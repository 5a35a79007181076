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
BENCH_BACKENDS = ("torch", "onnxruntime", "onnxruntime-fp16", "onnxruntime-int8", "onnxruntime-gpu", "tensorrt")
MAX_SEED = 2**32 - 1  # numpy and torch seeds are unsigned 32-bit


class UsageError(Exception):
    pass


class _Once(argparse.Action):
    """An option that may be given once: argparse would silently keep only the last of two."""

    WHY = {"input": "a model with several inputs reads them from one .npz (one array per input name)",
           "output": "a .npz holds every output"}

    def __call__(self, parser, namespace, values, option_string=None):
        if getattr(namespace, self.dest, None) is not None:
            why = self.WHY.get(self.dest)
            parser.error(f"argument {option_string}: given more than once" + (f"; {why}" if why else ""))
        setattr(namespace, self.dest, values)


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
    p.add_argument("--skip-non-specs", action="store_true",
                   help="skip YAML files without a top-level `specc:` key (for pre-commit on a whole repository)")
    _add_safety_options(p)

    p = sub.add_parser("inspect", help="per-layer shapes, parameters and MACs")
    p.add_argument("spec", metavar="SPEC")
    p.add_argument("--format", choices=("text", "json", "markdown"), default="text")
    p.add_argument("--expand", action="store_true", help="list the layers inside each block use")
    p.add_argument("--ir", action="store_true", help="print the typed IR instead of the layer table")
    p.add_argument("--passes", metavar="default|none|LIST", default=None,
                   help="with --ir: the passes to run first (default: the spec's pipeline; "
                        "LIST: comma-separated names, -name drops one)")
    p.add_argument("--print-after-all", action="store_true",
                   help="with --ir: print the IR after every pass that changed it, with what it changed")
    _add_safety_options(p)

    p = sub.add_parser("build", help="build model.onnx and manifest.json")
    p.add_argument("spec", metavar="SPEC")
    p.add_argument("-o", "--output", required=True, metavar="DIR")
    p.add_argument("--weights", metavar="FILE.safetensors")
    p.add_argument("--passes", metavar="default|none|LIST", default=None,
                   help="the pass pipeline (default: the spec's `build.passes`, else the standard one; "
                        "LIST: comma-separated names, -name drops one)")
    p.add_argument("--target", action="append", choices=("onnx", "tensorrt"), metavar="onnx|tensorrt",
                   help="also build this target (as the spec's `build.targets`); tensorrt needs TensorRT 10/11 and "
                        "a CUDA GPU")
    p.add_argument("--check", metavar="onnx|tensorrt[=10|11]", action="append", default=None,
                   help="onnx: run the onnx package's checker, with full shape inference, on the written model; "
                        "tensorrt: check statically (no GPU needed) that TensorRT's ONNX parser takes it "
                        "(may be given twice)")
    p.add_argument("--precision", choices=("fp32", "fp16", "int8"), default=None,
                   help="write the model in this precision (default: the spec's `build.precision`)")
    p.add_argument("--check-accuracy", action=argparse.BooleanOptionalAction, default=None,
                   help="fp16/int8: compare top-1 accuracy with fp32 on the spec's test split and fail beyond "
                        "`build.max_accuracy_drop` (default: when --weights are given and the data is on this machine)")
    p.add_argument("--calibration-data", metavar="FILE.npz",
                   help="int8: calibrate on the array `x` of this file (raw inputs) instead of "
                        "`build.calibration.data`")
    p.add_argument("--data", metavar="DIR", help="where data sets are found (calibration and the accuracy check)")
    _add_safety_options(p)

    p = sub.add_parser("bench", help="latency and throughput per backend and batch size (interleaved runs)")
    p.add_argument("model", metavar="SPEC|BUILD_DIR")
    p.add_argument("--weights", metavar="FILE.safetensors")
    p.add_argument("--batch", default="1,64", metavar="N,N", help="batch sizes (default 1,64)")
    p.add_argument("--backends", default=",".join(BENCH_BACKENDS), metavar="LIST",
                   help="comma-separated, of: " + ", ".join(BENCH_BACKENDS) + " (default: all)")
    p.add_argument("--threads", type=int, default=0, metavar="N", help="CPU threads per backend (default: all cores)")
    p.add_argument("--warmup", type=int, default=10, metavar="N", help="uncounted rounds first (default 10)")
    p.add_argument("--repeat", type=int, default=50, metavar="N", help="timed rounds (default 50)")
    p.add_argument("--calibration-data", metavar="FILE.npz", help="int8 calibration inputs (as for build)")
    p.add_argument("--data", metavar="DIR", help="where data sets are found")
    p.add_argument("--format", choices=("text", "json"), default="text")
    _add_safety_options(p)

    p = sub.add_parser("predict", help="run a spec or a built model on a .npy input")
    p.add_argument("model", metavar="SPEC|BUILD_DIR")
    p.add_argument("--input", required=True, metavar="FILE.npy|FILE.npz", action=_Once,
                   help="a .npy for a one-input model, or a .npz with one array per input name")
    p.add_argument("--weights", metavar="FILE.safetensors",
                   help="trained weights (a run's model.safetensors; an ensemble's runs every member)")
    p.add_argument("--backend", choices=("torch", "onnxruntime", "onnxruntime-gpu", "tensorrt"), default=None,
                   help="default: onnxruntime for a build directory, torch for a spec; tensorrt runs a built "
                        "model.engine, onnxruntime-gpu the CUDA/TensorRT providers")
    p.add_argument("--passes", metavar="default|none|LIST", default=None,
                   help="on a spec: passes to run first (default: none for torch, the spec's pipeline "
                        "for onnxruntime)")
    p.add_argument("--output", metavar="FILE.npz|FILE.npy", action=_Once,
                   help="save the outputs: a .npz keyed by output name, or a .npy when there is one output")
    _add_safety_options(p)

    sub.add_parser("schema", help="print the JSON Schema of the spec language")

    p = sub.add_parser("ops", help="the ops and steps a spec can use, with their arguments")
    p.add_argument("name", nargs="?", metavar="NAME", help="one op or step in full (`augment.scale` picks a step)")
    p.add_argument("--format", choices=("text", "json", "markdown"), default="text")

    p = sub.add_parser("graph", help="draw the network: .svg, .png or Graphviz .dot")
    p.add_argument("spec", metavar="SPEC")
    p.add_argument("-o", "--output", required=True, metavar="FILE.svg|.png|.dot")
    p.add_argument("--collapse", action="store_true",
                   help="draw each block use as one box (default: a cluster of its layers, residual edges visible)")
    p.add_argument("--expand", action="store_true", help=argparse.SUPPRESS)  # the default; kept for old scripts
    p.add_argument("--engine", choices=("auto", "graphviz", "matplotlib"), default="auto",
                   help="how .svg/.png are drawn (auto: Graphviz's `dot` when installed, else matplotlib)")
    _add_safety_options(p)

    p = sub.add_parser("train", help="train a spec (or --resume a run) into a run directory")
    p.add_argument("spec", nargs="?", metavar="SPEC")
    p.add_argument("-o", "--output", metavar="RUN_DIR", help="new run directory (default: runs/<name>-<time>)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue a run from its last checkpoint")
    p.add_argument("--data", metavar="DIR", help="where data sets are found (see docs/training.md)")
    p.add_argument("--epochs", type=int, metavar="N", help="override `training.epochs`")
    p.add_argument("--seed", type=int, metavar="N", help="override `training.seed`")
    p.add_argument("--nproc", type=int, default=1, metavar="N", help="data-parallel processes on this machine")
    p.add_argument("--checkpoint-every", type=int, default=0, metavar="STEPS",
                   help="also checkpoint every STEPS mini-batches (default: at each epoch's end only)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar or per-epoch lines")
    p.add_argument("--no-plots", action="store_true",
                   help="no loss.png and accuracy.png in the run directory (matplotlib is then not needed)")
    _add_device_options(p, per_process=True)
    _add_safety_options(p)

    p = sub.add_parser("eval", help="metrics of a spec with trained weights on the test split")
    p.add_argument("spec", metavar="SPEC")
    p.add_argument("--weights", required=True, metavar="FILE.safetensors")
    p.add_argument("--data", metavar="DIR", help="where data sets are found")
    p.add_argument("--format", choices=("text", "json"), default="text")
    _add_device_options(p)
    _add_safety_options(p)
    return parser


def _add_device_options(p, per_process: bool = False) -> None:
    """`specc train` and `specc eval`: where the model computes."""
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="auto (default): a CUDA GPU when PyTorch sees one, else the CPU")
    p.add_argument("--threads", type=int, default=0, metavar="N",
                   help="PyTorch's CPU threads" + (", per process with --nproc" if per_process else "")
                   + "; 0 (default): PyTorch's own, one per core")


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
    found = len(specs)
    if args.skip_non_specs:
        specs = _declared_specs(specs, limits)
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
    elif len(specs) > 1 or found > len(specs):
        skipped = found - len(specs)
        print(f"{len(specs) - invalid} of {len(specs)} specs valid"
              + (f"; {skipped} YAML file{'s' * (skipped > 1)} without a top-level `specc:` key skipped"
                 if skipped else ""), file=sys.stderr)
    return 1 if invalid else 0


def _declared_specs(specs: list, limits: Limits) -> list:
    """--skip-non-specs: keep the files that say they are specs. A file found through a symbolic link
    leading outside the walked directory is kept unread, so that the loop reports it."""
    from specc.parser.marker import declares_spec

    return [(path, walked) for path, walked in specs
            if (walked is not None and not limits.allow_outside and not is_inside(path, walked))
            or declares_spec(path, limits.max_file_bytes)]


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
    from specc.inspection import inspect_json, inspect_markdown, inspect_text
    from specc.ir.printer import print_graph

    compiled = compile_spec(args.spec, limits_from(args))
    if args.ir:
        print(_optimized_ir(compiled, args, print_graph))
    elif args.format == "json":
        print(json.dumps(inspect_json(compiled.graph, compiled.spec), indent=2))
    elif args.format == "markdown":
        print(inspect_markdown(compiled.graph, compiled.spec, expand=args.expand))
    else:
        print(inspect_text(compiled.graph, compiled.spec, expand=args.expand))
    return 0


def pass_choice(args):
    """--passes as the pipeline resolver takes it; None when not given. Unknown names: usage error."""
    from specc.passes import PipelineError, parse_pass_list, resolve_pipeline

    text = getattr(args, "passes", None)
    if text is None:
        return None
    choice = parse_pass_list(text)
    try:
        resolve_pipeline(choice)
    except PipelineError as exc:
        from specc.diagnostics import did_you_mean
        from specc.passes import PASSES

        hint = did_you_mean(exc.name, PASSES) or "the passes: " + ", ".join(PASSES)
        raise UsageError(f"--passes: no pass named `{exc.name}` ({hint})") from None
    return choice


def _optimized_ir(compiled, args, print_graph) -> str:
    from specc.compiler import optimize, spec_pass_choice

    choice = pass_choice(args)
    pages = [f"// before the passes\n{print_graph(compiled.graph)}"] if args.print_after_all else []

    def after_each(p, result):
        if args.print_after_all and result.changed:
            counts = ", ".join(f"{k} {v}" for k, v in result.stats.items())
            pages.append(f"// after {p.name}: {counts}\n{print_graph(result.graph)}")

    graph, applied, _ = optimize(compiled.graph, spec_pass_choice(compiled.spec) if choice is None else choice,
                                 after_each=after_each)
    return "\n\n".join(pages) if args.print_after_all else print_graph(graph)


def cmd_build(args) -> int:
    from specc.deps import require_for_build

    require_for_build(args.weights)
    from specc.build import build

    checks = args.check or []
    trt_checks = [c for c in checks if c != "onnx"]
    if len(trt_checks) > 1:
        raise UsageError("--check tensorrt may be given once")
    trt_check = trt_checks[0] if trt_checks else None
    if trt_check:
        from specc.codegen.tensorrt_check import check_version

        try:
            check_version(trt_check)
        except ValueError as exc:
            raise UsageError(str(exc).replace("--check takes", "--check takes onnx,")) from None
    result = build(args.spec, args.output, weights=args.weights, limits=limits_from(args), passes=pass_choice(args),
                   precision=args.precision, check_accuracy=args.check_accuracy,
                   calibration_data=args.calibration_data, data_dir=args.data,
                   check_onnx=True if "onnx" in checks else None)
    print(f"built {result.model_path} ({result.summary})")
    accuracy = result.manifest.get("accuracy")
    if accuracy and accuracy.get("checked"):
        print(_accuracy_line(result.manifest["precision"], accuracy))
    elif accuracy:
        print(f"accuracy not checked: {accuracy['reason']}")
    if "onnx" in checks:
        print(f"{result.model_path}: passes the onnx checker (full shape inference)")
    if trt_check:
        from specc.build import check_tensorrt

        diagnostics = check_tensorrt(result, trt_check)
        if diagnostics:
            print(format_diagnostics(diagnostics, "text"), file=sys.stderr)
        if any(d.severity == "error" for d in diagnostics):
            return 1
        print(f"{result.model_path}: passes the static {trt_check} check")
    if "tensorrt" in set(result.build_cfg["targets"]) | set(args.target or ()):
        from specc.build import build_tensorrt

        entry = build_tensorrt(result)
        print(f"built {entry['engine']} (TensorRT {entry['tensorrt_version']} on {entry['gpu']})\n"
              f"  trtexec equivalent: {entry['trtexec']}")
    return 0


def _accuracy_line(precision: str, report: dict) -> str:
    line = (f"{precision} agrees with fp32 on {report['top1_agreement']:.2f}% of {report['samples']:,} "
            f"{report['split']} examples")
    if "accuracy" in report:
        line += (f"; top-1 accuracy {report['accuracy']:.2f}% (fp32 {report['accuracy_fp32']:.2f}%, "
                 f"drop {report['drop']:.2f} points, limit {report['max_drop']})")
    return line


def _int_list(text: str, flag: str) -> tuple:
    try:
        values = tuple(int(t) for t in text.split(",") if t.strip())
    except ValueError:
        raise UsageError(f"{flag}: give comma-separated integers, e.g. 1,64") from None
    if not values or min(values) < 1:
        raise UsageError(f"{flag}: give positive integers, e.g. 1,64")
    return values


def cmd_bench(args) -> int:
    from specc.bench import BenchOptions, bench

    backends = tuple(b.strip() for b in args.backends.split(",") if b.strip())
    unknown = [b for b in backends if b not in BENCH_BACKENDS]
    if unknown or not backends:
        raise UsageError(f"--backends: unknown {', '.join(unknown) or '(none given)'}; "
                         f"choose from {', '.join(BENCH_BACKENDS)}")
    for flag, value, low in (("--threads", args.threads, 0), ("--warmup", args.warmup, 0),
                             ("--repeat", args.repeat, 1)):
        if value < low:
            raise UsageError(f"{flag} must be at least {low}")
    if not os.path.exists(args.model):
        raise UsageError(f"no such spec or build directory: {args.model}")
    if os.path.isdir(args.model) and not os.path.isfile(os.path.join(args.model, "manifest.json")):
        raise UsageError(f"{args.model} is not a build directory (no manifest.json); give a spec or the output "
                         "of `specc build`")
    options = BenchOptions(_int_list(args.batch, "--batch"), backends, args.threads, args.warmup, args.repeat,
                           args.weights, args.calibration_data, args.data)
    report = bench(args.model, options, limits_from(args))
    print(report.as_json() if args.format == "json" else report.as_text())
    return 0


def cmd_predict(args) -> int:
    from specc.deps import require_for_predict

    if args.output and not args.output.endswith((".npz", ".npy")):
        raise UsageError(f"--output {args.output}: name a .npz file (every output, keyed by name) "
                         "or a .npy file (a model with one output)")
    if args.weights and os.path.isdir(args.model):
        raise UsageError(f"--weights applies to a SPEC: the built model in {args.model} holds its own weights "
                         f"(build it with them: `specc build SPEC --weights {args.weights} -o DIR`)")
    require_for_predict(args.model, args.backend, args.weights)
    from specc.predict import predict, save_outputs

    outputs = predict(args.model, args.input, weights=args.weights, backend=args.backend,
                      limits=limits_from(args), passes=pass_choice(args))
    import numpy as np

    if args.output:
        if args.output.endswith(".npy") and len(outputs) != 1:
            raise UsageError(f"the model has {len(outputs)} outputs ({', '.join(outputs)}) and a .npy file "
                             f"holds one array; save them all with --output {args.output[:-len('.npy')]}.npz")
        save_outputs(outputs, args.output)
        saved = ", ".join(f"`{name}` {tuple(value.shape)}" for name, value in outputs.items())
        print(f"saved {saved} to {args.output}")
    else:
        with np.printoptions(precision=5, suppress=True, threshold=200):
            for name, value in outputs.items():
                print(f"{name} {tuple(value.shape)}:\n{value}")
    return 0


def cmd_schema(args) -> int:
    from specc.parser.schema import spec_schema

    print(json.dumps(spec_schema(), indent=2))
    return 0


def cmd_ops(args) -> int:
    from specc.reference import UnknownOp, render_ops

    try:
        print(render_ops(args.name, args.format), end="")
    except UnknownOp as exc:
        print(f"specc ops: error: {exc}\n  hint: {exc.hint}", file=sys.stderr)
        return 1
    return 0


def cmd_graph(args) -> int:
    from specc.graph import RenderError, output_format, write_graph

    if output_format(args.output) is None:
        raise UsageError(f"cannot tell the picture format from {args.output!r}: name a .svg, .png or .dot file")
    from specc.compiler import compile_spec

    compiled = compile_spec(args.spec, limits_from(args))
    try:
        how = write_graph(compiled.graph, args.output, spec=compiled.spec, expand=not args.collapse, engine=args.engine)
    except RenderError as exc:
        print(f"specc graph: error: {exc}" + (f"\n  hint: {exc.hint}" if exc.hint else ""), file=sys.stderr)
        return 1
    print(f"wrote {args.output} ({how})")
    return 0


def cmd_train(args) -> int:
    from specc.deps import require_importable

    # tqdm draws the progress bar and matplotlib the learning curves: without them, neither is needed.
    needed = ["torch", "safetensors"]
    needed += [] if args.no_progress else ["tqdm"]
    needed += [] if args.no_plots else ["matplotlib"]
    require_importable(tuple(needed), "train", "`specc train`")
    from specc.train.run import RunOptions, resume, summary_text, train

    if bool(args.spec) == bool(args.resume):
        raise UsageError("give a SPEC to start a run, or --resume RUN_DIR to continue one (not both)")
    if args.resume and (args.epochs is not None or args.seed is not None or args.output):
        raise UsageError("--resume continues a run as it was started: -o, --epochs and --seed cannot change it")
    for flag, value, low in (("--nproc", args.nproc, 1), ("--epochs", args.epochs, 1), ("--seed", args.seed, 0),
                             ("--checkpoint-every", args.checkpoint_every, 0), ("--threads", args.threads, 0)):
        if value is not None and value < low:
            raise UsageError(f"{flag} must be at least {low}")
    if args.seed is not None and args.seed > MAX_SEED:  # `training.seed`'s own range
        raise UsageError(f"--seed must be at most {MAX_SEED}")
    options = RunOptions(limits=limits_from(args), data_dir=args.data, nproc=args.nproc,
                         progress=not args.no_progress, checkpoint_every=args.checkpoint_every,
                         plots=not args.no_plots, device=args.device, threads=args.threads)
    if args.resume:
        result = resume(args.resume, options)
    else:
        result = train(args.spec, args.output, epochs=args.epochs, seed=args.seed, options=options)
    if int(os.environ.get("RANK", "0")) == 0:
        print(summary_text(result))
    return 0


def cmd_eval(args) -> int:
    from specc.deps import require_importable

    require_importable(("torch", "safetensors"), "train", "`specc eval`")
    from specc.train.device import use_threads
    from specc.train.evaluate import evaluate_spec, format_report

    if args.threads < 0:
        raise UsageError("--threads must be at least 0")
    use_threads(args.threads)
    report = evaluate_spec(args.spec, args.weights, data_dir=args.data, limits=limits_from(args),
                           device=args.device)
    print(json.dumps(report, indent=2) if args.format == "json" else format_report(report))
    return 0


def _check_data_dir(path: str | None) -> None:
    """`--data` names a directory. A mistyped one would otherwise be passed over for SPECC_DATA_DIR, the
    cache or a download, and the run would use data the user did not point at."""
    if path is not None and not os.path.isdir(path):
        raise UsageError(f"--data {path}: " + ("not a directory" if os.path.exists(path) else "no such directory"))


COMMANDS = {"validate": cmd_validate, "inspect": cmd_inspect, "build": cmd_build, "bench": cmd_bench,
            "predict": cmd_predict, "schema": cmd_schema, "ops": cmd_ops, "graph": cmd_graph, "train": cmd_train,
            "eval": cmd_eval}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    fmt = getattr(args, "format", "text")
    try:
        _check_data_dir(getattr(args, "data", None))
        return COMMANDS[args.command](args)
    except SpeccError as exc:
        out = format_diagnostics(exc.diagnostics, fmt if fmt in ("json", "github") else "text")
        print(out, file=sys.stdout if fmt in ("json", "github") else sys.stderr)
        return 1
    except UsageError as exc:
        print(f"specc {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        run_dir = getattr(exc, "run_dir", None)  # a training run that saved its place before stopping
        print("specc: interrupted" + (f"; the run is saved: continue it with `specc train --resume {run_dir}`"
                                      if run_dir else ""), file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 1
    except Exception as exc:  # never a traceback for a user; SPECC_DEBUG=1 shows it
        if os.environ.get("SPECC_DEBUG") == "1":
            raise
        from specc.deps import broken_import, failed_import_outside_specc

        module = failed_import_outside_specc(exc)
        if module is not None:  # another package failed to import: not specc's bug, and the user can fix it
            print(format_diagnostics([broken_import(exc, module, f"`specc {args.command}`")], "text"),
                  file=sys.stderr)
            return 1
        print(f"specc {args.command}: internal error: {type(exc).__name__}: {str(exc)[:300]}\n"
              "  hint: this is a bug in specc; rerun with SPECC_DEBUG=1 and report the traceback",
              file=sys.stderr)
        return 3
