"""Wall time of `specc build` against exporting the same ResNet-18 with torch.onnx.export, whole processes.

    python benchmarks/compile_speed.py [--runs 7] [--json] [--profile] [--no-bytecode-cache]

Rows (--only picks some), each a fresh interpreter, run interleaved (A, B, C,
A, B, C, ...) after one warm-up each, so load from other work on the machine
hits all of them alike:
  specc        python -m specc build benchmarks/specs/resnet18.yaml -o TMP
  torchscript  python benchmarks/torch_export_resnet18.py
  dynamo       python benchmarks/torch_export_resnet18.py --dynamo   (needs onnxscript)
A row whose command cannot run (onnxscript missing, an exporter error) is shown
as unavailable with the reason; the others still run.

Ratios are row/specc: how many times longer the export takes than `specc
build`, as the median of the per-round ratios (robust to drift) and as the
ratio of the medians, both of wall time. "CPU s" is the median user + system
time of the process and its threads (torch uses several): on a shared machine
it moves less with other people's load than wall time does.

Python caches compiled bytecode in __pycache__; an installed specc has it, a
checkout run with PYTHONDONTWRITEBYTECODE=1 recompiles every module on each
start. By default the children write and reuse bytecode under a temporary
PYTHONPYCACHEPREFIX (so nothing is written into the checkout);
--no-bytecode-cache runs them with the environment as it is.

--profile adds where `specc build`'s time goes (benchmarks/build_profile.py).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from build_profile import child_env, print_profile, profile_build  # beside this script

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SPEC = os.path.join("benchmarks", "specs", "resnet18.yaml")
EXPORT_SCRIPT = os.path.join("benchmarks", "torch_export_resnet18.py")
ROWS = {"specc": "specc build", "torchscript": "torch (TorchScript)", "dynamo": "torch (dynamo)"}
# What the team aims at: `specc build` this many times faster than each export.
TARGETS = {"torchscript": 5.0, "dynamo": 12.0}


def commands(out_dir: str) -> dict[str, list[str]]:
    py = sys.executable
    return {
        "specc": [py, "-m", "specc", "build", SPEC, "-o", out_dir],
        "torchscript": [py, EXPORT_SCRIPT],
        "dynamo": [py, EXPORT_SCRIPT, "--dynamo"],
    }


class Unavailable(Exception):
    pass


def timed(cmd: list[str], env: dict) -> tuple[float, float]:
    """(wall seconds, CPU seconds: user + system of the child and its threads)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
        raise Unavailable(f"exit {proc.returncode}: {lines[-1] if lines else 'no message'}")
    return elapsed, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def precheck(name: str, env: dict) -> None:
    if name == "dynamo":
        probe = subprocess.run([sys.executable, "-c", "import onnxscript"], env=env, capture_output=True)
        if probe.returncode != 0:
            raise Unavailable("onnxscript is not installed (pip install onnxscript)")


def run(names: list[str], runs: int, env: dict) -> tuple[dict, dict]:
    samples: dict[str, list[tuple[float, float]]] = {}
    unavailable: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="specc-bench-") as tmp:
        cmds = commands(os.path.join(tmp, "build"))
        for name in names:  # warm-up: page cache, bytecode cache
            try:
                precheck(name, env)
                timed(cmds[name], env)
                samples[name] = []
            except Unavailable as exc:
                unavailable[name] = str(exc)
        for _ in range(runs):
            for name in list(samples):
                try:
                    samples[name].append(timed(cmds[name], env))
                except Unavailable as exc:
                    unavailable[name] = str(exc)
                    del samples[name]
    return samples, unavailable


def summarize(samples: dict, unavailable: dict, names: list[str]) -> list[dict]:
    base = [wall for wall, _ in samples["specc"]] if "specc" in samples else None
    rows = []
    for name in names:
        if name in unavailable:
            rows.append({"name": name, "label": ROWS[name], "available": False, "reason": unavailable[name]})
            continue
        values = [wall for wall, _ in samples[name]]
        cpu = [cpu for _, cpu in samples[name]]
        row = {"name": name, "label": ROWS[name], "available": True, "runs": len(values),
               "median_s": statistics.median(values), "min_s": min(values), "max_s": max(values),
               "cpu_median_s": statistics.median(cpu), "samples_s": values, "cpu_samples_s": cpu}
        if base and name != "specc":
            row["ratio_median_of_pairs"] = statistics.median(v / b for v, b in zip(values, base))
            row["ratio_of_medians"] = row["median_s"] / statistics.median(base)
            if name in TARGETS:
                row["target_ratio"] = TARGETS[name]
                row["meets_target"] = row["ratio_median_of_pairs"] >= TARGETS[name]
        rows.append(row)
    return rows


def print_table(rows: list[dict]) -> None:
    print(f"{'command':<21} {'median s':>9} {'min s':>7} {'max s':>7} {'CPU s':>7}  {'x specc (pairs)':>15} "
          f"{'x specc (medians)':>17}  target")
    for row in rows:
        if not row["available"]:
            print(f"{row['label']:<21} unavailable: {row['reason']}")
            continue
        pairs = f"{row['ratio_median_of_pairs']:.2f}" if "ratio_median_of_pairs" in row else "-"
        medians = f"{row['ratio_of_medians']:.2f}" if "ratio_of_medians" in row else "-"
        target = ""
        if "target_ratio" in row:
            target = f">= {row['target_ratio']:g}x: {'met' if row['meets_target'] else 'not met'}"
        print(f"{row['label']:<21} {row['median_s']:9.3f} {row['min_s']:7.3f} {row['max_s']:7.3f} "
              f"{row['cpu_median_s']:7.3f}  {pairs:>15} "
              f"{medians:>17}  {target}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="timed rounds after the warm-up (7)")
    parser.add_argument("--only", default=",".join(ROWS),
                        help=f"comma-separated rows to run, of {', '.join(ROWS)} (default: all)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of the table")
    parser.add_argument("--profile", action="store_true", help="also profile `specc build` (imports and phases)")
    parser.add_argument("--no-bytecode-cache", action="store_true",
                        help="run the children with the environment as it is (see above)")
    args = parser.parse_args()
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = set(names) - set(ROWS)
    if unknown:
        parser.error(f"unknown rows {sorted(unknown)}; choose from {', '.join(ROWS)}")

    pycache = None if args.no_bytecode_cache else tempfile.mkdtemp(prefix="specc-bench-pycache-")
    try:
        env = child_env(pycache)
        machine = machine_info()
        samples, unavailable = run(names, args.runs, env)
        machine["load_average_after"] = os.getloadavg()
        rows = summarize(samples, unavailable, names)
        report = {"machine": machine, "bytecode_cache": pycache is not None, "rows": rows}
        if args.profile:
            report["profile"] = profile_build(env, runs=3)
    finally:
        if pycache:
            shutil.rmtree(pycache, ignore_errors=True)
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print_machine(report["machine"], report["bytecode_cache"])
    print_table(rows)
    if args.profile:
        print()
        print_profile(report["profile"])
    return 0


def machine_info() -> dict:
    from importlib import metadata

    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as handle:
            cpu = next((line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")), cpu)
    except OSError:
        pass
    versions = {}
    for package in ("numpy", "torch", "onnx", "onnxruntime", "onnxscript"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return {"nproc": os.cpu_count(), "cpu": cpu, "python": sys.version.split()[0], "versions": versions,
            "load_average_before": os.getloadavg()}


def print_machine(info: dict, bytecode_cache: bool) -> None:
    versions = ", ".join(f"{k} {v}" for k, v in info["versions"].items() if v)
    before, after = (" ".join(f"{x:.2f}" for x in info[key]) for key in ("load_average_before", "load_average_after"))
    print(f"{info['nproc']} CPUs ({info['cpu']}), python {info['python']}, {versions}")
    print(f"load average (1, 5, 15 min) before: {before}, after: {after}; "
          f"bytecode cache: {'on' if bytecode_cache else 'as the environment says'}")


if __name__ == "__main__":
    sys.exit(main())
