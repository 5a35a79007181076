"""ONNX Runtime CPU: specc's int8 (and fp16) build of a spec against its fp32 build and against ONNX Runtime's
own `quantize_static` (QDQ format, its default placement) of the same fp32 model.

    python benchmarks/precision_int8.py [SPEC] [--weights W] [--data DIR] [--batch 64] [--threads 2]
                                        [--warmup 20] [--repeat 300] [--json]

Everything runs in this one process. The models are built first: `specc build` at fp32, fp16 and int8
(int8 calibrated on `build.calibration`, as a user's build is), and `quantize_static` on the fp32 model
with the same calibration samples. Each round runs every session once, in turn (interleaved), so load
from other work hits all alike; `warmup` rounds are not counted. Reported per session: median, p90 and
min latency in ms and the speed-up over fp32 (of the medians; of the minima, which is what a quiet
machine gives). Needs the spec's data set for calibration (SPECC_MNIST_DIR or --data for MNIST).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def ort_quantize_static(fp32_path: str, out_path: str, samples: np.ndarray, input_name: str) -> None:
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.batches = iter([{input_name: samples[i:i + 32]} for i in range(0, len(samples), 32)])

        def get_next(self):
            return next(self.batches, None)

    quantize_static(fp32_path, out_path, Reader(), quant_format=QuantFormat.QDQ)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("spec", nargs="?", default=os.path.join(ROOT, "specs", "nielsen_final.yaml"))
    parser.add_argument("--weights")
    parser.add_argument("--data", default=os.environ.get("SPECC_MNIST_DIR"))
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=300)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    from specc.bench import onnxruntime_runner, random_inputs
    from specc.build import build
    from specc.compiler import compile_spec
    from specc.limits import DEFAULT_LIMITS
    from specc.precision.calibration import load_calibration_set

    with tempfile.TemporaryDirectory(prefix="specc-precision-bench-") as work:
        paths = {}
        for precision in ("fp32", "fp16", "int8"):
            result = build(args.spec, os.path.join(work, precision), weights=args.weights, precision=precision,
                           check_accuracy=False, data_dir=args.data)
            paths[f"specc {precision}"] = result.model_path
        compiled = compile_spec(args.spec, DEFAULT_LIMITS)
        calib = load_calibration_set(compiled.spec, compiled.graph, data_dir=args.data)
        name = compiled.graph.inputs[0].name
        paths["ORT quantize_static int8"] = os.path.join(work, "ort_int8.onnx")
        ort_quantize_static(paths["specc fp32"], paths["ORT quantize_static int8"], calib.x, name)

        decl = compiled.spec.inputs[0]
        feeds = random_inputs([(name, decl.dtype, tuple(decl.shape))], args.batch)
        runners = {label: onnxruntime_runner(path, args.threads) for label, path in paths.items()}
        times = {label: [] for label in runners}
        for round_ in range(args.warmup + args.repeat):
            for label, run in runners.items():
                start = time.perf_counter()
                run(feeds)
                if round_ >= args.warmup:
                    times[label].append((time.perf_counter() - start) * 1e3)

    base_median, base_min = np.median(times["specc fp32"]), np.min(times["specc fp32"])
    rows = [{"model": label, "median_ms": round(float(np.median(t)), 3),
             "p90_ms": round(float(np.percentile(t, 90)), 3), "min_ms": round(float(np.min(t)), 3), "speedup_median": round(float(base_median / np.median(t)), 2),
             "speedup_min": round(float(base_min / np.min(t)), 2)} for label, t in times.items()]
    header = {"spec": os.path.basename(args.spec), "batch": args.batch, "threads": args.threads,
              "warmup": args.warmup, "repeat": args.repeat, "calibration_samples": int(len(calib.x))}
    if args.json:
        print(json.dumps({**header, "results": rows}, indent=2))
        return 0
    print(f"{header['spec']}: ONNX Runtime CPU, {args.threads} threads, batch {args.batch}, warm-up {args.warmup}, "
          f"repeat {args.repeat}, interleaved")
    print(f"{'model':<26} {'median ms':>10} {'p90 ms':>8} {'min ms':>8} {'x fp32 (median)':>16} {'x fp32 (min)':>13}")
    for r in rows:
        print(f"{r['model']:<26} {r['median_ms']:>10.3f} {r['p90_ms']:>8.3f} {r['min_ms']:>8.3f} "
              f"{r['speedup_median']:>16.2f} {r['speedup_min']:>13.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
