"""ONNX Runtime CPU latency of specc's ResNet-18 against the same network exported by torch.onnx.export.

    python benchmarks/ort_latency.py [--batches 1,8] [--iterations 30] [--warmup 5] [--threads 2] [--spin] [--json]

Both models are built first, each by its own tool in a child process:
  specc  python -m specc build benchmarks/specs/resnet18.yaml
  torch  python benchmarks/torch_export_resnet18.py (TorchScript exporter, eval
         mode, constant folding), starting from specc's initial weights
so both compute the same function; the script checks that their outputs agree
before timing anything. Then, in this one process, each model is loaded twice:
with ONNX Runtime's graph optimizations (ORT_ENABLE_ALL, the default, which
among other things folds a BatchNormalization into the Conv before it and
fuses Conv + Add + Relu) and without (ORT_DISABLE_ALL, which runs each graph
as written, so it shows what the exporter itself did; the op counts printed
say, for instance, whether BatchNormalization is still there). Each iteration
runs every session once, in turn, so load from other work hits all alike.
Idle ONNX Runtime threads do not spin (session.intra_op.allow_spinning=0):
with four sessions taking turns, the threads of one would otherwise spin on
the cores the next one needs; --spin restores ORT's default.
Reported per batch size and session: median, p90 and min latency in ms, and
the ratio specc/torch (below 1: specc's model is faster) of the medians, as the
median of the per-iteration ratios (the two runs back to back see nearly the
same load from other work) and of the minimums.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter

import numpy as np
import onnxruntime as ort

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SPEC = os.path.join("benchmarks", "specs", "resnet18.yaml")
EXPORT_SCRIPT = os.path.join("benchmarks", "torch_export_resnet18.py")
LEVELS = {"ORT_ENABLE_ALL": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
          "ORT_DISABLE_ALL": ort.GraphOptimizationLevel.ORT_DISABLE_ALL}


def build_models(tmp: str) -> dict[str, str]:
    specc_dir = os.path.join(tmp, "specc")
    torch_path = os.path.join(tmp, "torch.onnx")
    for cmd in ([sys.executable, "-m", "specc", "build", SPEC, "-o", specc_dir],
                [sys.executable, EXPORT_SCRIPT, "-o", torch_path,
                 "--weights-from-spec", SPEC]):
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return {"specc": os.path.join(specc_dir, "model.onnx"), "torch": torch_path}


def session(path: str, level: str, threads: int, spin: bool,
            optimized_path: str | None = None) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = LEVELS[level]
    # Each session has its own thread pool, whose threads by default spin for a while after a run,
    # waiting for more work. With four sessions taking turns on two cores, the spinning threads of
    # the session that just ran would steal the cores from the next one and skew every number.
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
    if optimized_path:  # what ORT made of the graph, to show which fusions it applied
        options.optimized_model_filepath = optimized_path
        options.log_severity_level = 3  # not the warning that such a file is tied to this CPU
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def op_counts(path: str) -> dict[str, int]:
    import onnx

    model = onnx.load(path, load_external_data=False)
    return dict(Counter(node.op_type for node in model.graph.node).most_common())


def check_same_function(sessions: dict, batch: int) -> float:
    """Largest absolute difference between the two models' outputs on one random batch."""
    x = np.random.default_rng(0).standard_normal((batch, 3, 224, 224), dtype=np.float32)
    outputs = {key: s.run(None, {s.get_inputs()[0].name: x})[0] for key, s in sessions.items()}
    reference = outputs[("torch", "ORT_DISABLE_ALL")]
    scale = float(np.abs(reference).max())
    worst = max(float(np.abs(out - reference).max()) for out in outputs.values())
    if worst > 1e-3 * max(scale, 1.0):
        raise SystemExit(f"the two models disagree: max |difference| {worst:.3g} (outputs up to {scale:.3g}); "
                         "the timing would compare different networks")
    return worst


def time_batch(sessions: dict, batch: int, iterations: int, warmup: int) -> dict:
    x = np.random.default_rng(batch).standard_normal((batch, 3, 224, 224), dtype=np.float32)
    feeds = {key: {s.get_inputs()[0].name: x} for key, s in sessions.items()}
    samples = {key: [] for key in sessions}
    for i in range(warmup + iterations):
        for key, s in sessions.items():  # alternate: every session once per iteration
            start = time.perf_counter()
            s.run(None, feeds[key])
            if i >= warmup:
                samples[key].append((time.perf_counter() - start) * 1e3)
    return samples


def summarize(samples: dict) -> list[dict]:
    rows = []
    for level in LEVELS:
        medians = {}
        for model in ("specc", "torch"):
            values = samples[(model, level)]
            medians[model] = statistics.median(values)
            rows.append({"model": model, "optimization": level, "median_ms": medians[model],
                         "p90_ms": float(np.percentile(values, 90)), "min_ms": min(values),
                         "iterations": len(values)})
        specc, torch = samples[("specc", level)], samples[("torch", level)]
        rows[-2]["ratio_specc_to_torch"] = medians["specc"] / medians["torch"]
        # Back-to-back runs see nearly the same load from other work: their ratio drifts least.
        rows[-2]["ratio_median_of_pairs"] = statistics.median(a / b for a, b in zip(specc, torch))
        rows[-2]["ratio_of_mins"] = min(specc) / min(torch)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", default="1,8", help="comma-separated batch sizes (1,8)")
    parser.add_argument("--iterations", type=int, default=30, help="timed iterations per session (30)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed iterations per session first (5)")
    parser.add_argument("--threads", type=int, default=2, help="ONNX Runtime intra-op threads (2)")
    parser.add_argument("--spin", action="store_true",
                        help="let idle ORT threads spin (ORT's default; skews interleaved sessions, see above)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of the table")
    args = parser.parse_args()
    batches = [int(b) for b in args.batches.split(",")]

    with tempfile.TemporaryDirectory(prefix="specc-ort-") as tmp:
        paths = build_models(tmp)
        graphs = {model: {"as built": op_counts(path)} for model, path in paths.items()}
        sessions = {}
        for model, path in paths.items():
            for level in LEVELS:
                optimized = os.path.join(tmp, f"{model}-optimized.onnx") if level == "ORT_ENABLE_ALL" else None
                sessions[(model, level)] = session(path, level, args.threads, args.spin, optimized)
            graphs[model]["after ORT_ENABLE_ALL"] = op_counts(os.path.join(tmp, f"{model}-optimized.onnx"))
        max_difference = check_same_function(sessions, batch=2)
        load_before = os.getloadavg()
        results = {batch: summarize(time_batch(sessions, batch, args.iterations, args.warmup)) for batch in batches}
        load_after = os.getloadavg()

    report = {"onnxruntime": ort.__version__, "threads": args.threads, "spinning": args.spin,
              "iterations": args.iterations,
              "warmup": args.warmup, "load_average_before": load_before, "load_average_after": load_after,
              "max_output_difference": max_difference, "graphs": graphs,
              "results": {str(b): rows for b, rows in results.items()}}
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"onnxruntime {ort.__version__}, CPU, {args.threads} intra-op threads "
          f"({'spinning' if args.spin else 'no spinning'}), {args.iterations} iterations "
          f"after {args.warmup} warm-up; load average before {' '.join(f'{x:.2f}' for x in load_before)}, "
          f"after {' '.join(f'{x:.2f}' for x in load_after)}")
    print(f"outputs agree: max |specc - torch| = {max_difference:.2e}")
    for model, counts in graphs.items():
        for stage, ops in counts.items():
            print(f"{model} {stage}: " + ", ".join(f"{op} {n}" for op, n in ops.items()))
    print(f"{'batch':>5} {'optimization':<16} {'model':<6} {'median ms':>10} {'p90 ms':>8} {'min ms':>8}  "
          "specc/torch: medians, pairs, mins")
    for batch, rows in results.items():
        for row in rows:
            ratios = ""
            if "ratio_specc_to_torch" in row:
                ratios = (f"{row['ratio_specc_to_torch']:.3f}, {row['ratio_median_of_pairs']:.3f}, "
                          f"{row['ratio_of_mins']:.3f}")
            print(f"{batch:>5} {row['optimization']:<16} {row['model']:<6} {row['median_ms']:10.2f} "
                  f"{row['p90_ms']:8.2f} {row['min_ms']:8.2f}  {ratios}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
