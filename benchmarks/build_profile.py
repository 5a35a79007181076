"""Where `specc build benchmarks/specs/resnet18.yaml` spends its time: startup, imports, and the build's phases.

    python benchmarks/build_profile.py [--runs 3] [--json] [--no-bytecode-cache]

Three measurements, each in fresh interpreters:
  startup   `python -c pass`, the floor under any command;
  imports   `python -X importtime -m specc build ...`, self time summed per
            top-level package, and the slowest top-level imports;
  phases    one build in a process to load every module, then a second build
            under cProfile, so the phases below are the build's own work and
            not the imports it triggers the first time. A phase is found by
            its functions (PHASES) among the calls beneath specc.build.build
            and shown under the phase that calls it; a phase that the code no
            longer has is left out, and its time shows up as "other".
"""

from __future__ import annotations

import argparse
import json
import os
import pstats
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SPEC = os.path.join("benchmarks", "specs", "resnet18.yaml")

# label -> the calls that make up that phase: (where, name). `where` is a path fragment of the
# function's file, or "~" for a C function, whose name is then matched as a substring. A phase is
# shown under the phase that calls it (weights, for one, are initialized lazily, by whichever stage
# first reads them); phases the build no longer has are simply absent.
PHASES = {
    "parse, expand, shape-check (compile_spec)": [("specc/compiler.py", "compile_spec")],
    "graph passes (optimized_graph)": [("specc/build.py", "optimized_graph")],
    "memory budget check": [("specc/ir/analysis.py", "check_memory_budget")],
    "weight initialization (init_tensor)": [("specc/ops/", "init_tensor")],
    "ONNX lowering to records (lower)": [("specc/codegen/onnx_export.py", "lower")],
    "ONNX graph construction (to_onnx)": [("specc/codegen/onnx_export.py", "to_onnx")],
    "model written, weights streamed (onnx_wire.write)": [("specc/codegen/onnx_wire.py", "write")],
    "encoding the records (encode_parts)": [("specc/codegen/onnx_wire.py", "encode_parts")],
    "waiting for the sha256 thread": [("~", "'acquire' of '_thread.lock'")],
    "onnx.save_model": [("onnx/__init__.py", "save_model")],
    "serialization (SerializeToString)": [("~", "SerializeToString")],
    "file write": [("~", "'write' of '_io.BufferedWriter'")],
    "onnx.checker.check_model": [("onnx/checker.py", "check_model")],
    "sha256 hashing": [("~", "openssl_sha256"), ("~", "'update' of '_hashlib.HASH'")],
    "package versions (dist-info lookup)": [("specc/build.py", "_version")],
    "manifest (json.dump)": [("json/__init__.py", "dump")],
}
BUILD_FUNCTION = ("specc/build.py", "build")

# Runs in the child: build once (loads every module), then time an unprofiled build and profile another.
DRIVER = """
import cProfile, sys, time
out, stats_path = sys.argv[1], sys.argv[2]
start = time.perf_counter()
from specc.cli import main
imported = time.perf_counter()
assert main(["build", SPEC, "-o", out + "/first"]) == 0
first = time.perf_counter()
assert main(["build", SPEC, "-o", out + "/second"]) == 0
second = time.perf_counter()
profiler = cProfile.Profile()
profiler.runcall(main, ["build", SPEC, "-o", out + "/profiled"])
profiler.dump_stats(stats_path)
print(imported - start, first - imported, second - first)
""".replace("SPEC", repr(SPEC))


def child_env(pycache: str | None) -> dict:
    env = dict(os.environ)
    if pycache:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = pycache
    return env


def _run(cmd: list[str], env: dict) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed (exit {proc.returncode}):\n{proc.stderr[-2000:]}")
    return proc


def startup_time(env: dict, runs: int) -> float:
    samples = []
    for _ in range(runs + 1):
        start = time.perf_counter()
        _run([sys.executable, "-c", "pass"], env)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples[1:])


def parse_importtime(stderr: str) -> list[tuple[int, int, int, str]]:
    """(depth, self us, cumulative us, module) per line of -X importtime output."""
    rows = []
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, cumulative_us, name = line[len("import time:"):].split("|", 2)
        name = name[1:]  # one space after the bar, then two per level of nesting
        depth = (len(name) - len(name.lstrip(" "))) // 2
        rows.append((depth, int(self_us), int(cumulative_us), name.strip()))
    return rows


def import_profile(env: dict, runs: int) -> dict:
    by_package_runs, totals, top_level_runs = [], [], []
    with tempfile.TemporaryDirectory(prefix="specc-importtime-") as tmp:
        for i in range(runs + 1):
            proc = _run([sys.executable, "-X", "importtime", "-m", "specc", "build", SPEC, "-o", tmp], env)
            if i == 0:
                continue  # warm-up
            rows = parse_importtime(proc.stderr)
            by_package: dict[str, int] = {}
            for _, self_us, _, name in rows:
                package = name.split(".")[0]
                by_package[package] = by_package.get(package, 0) + self_us
            by_package_runs.append(by_package)
            totals.append(sum(r[1] for r in rows))
            top_level_runs.append({name: cum for depth, _, cum, name in rows if depth == 0})
    packages = set().union(*by_package_runs)
    by_package = {p: statistics.median(run.get(p, 0) for run in by_package_runs) / 1e6 for p in packages}
    top_level = {m: statistics.median(run.get(m, 0) for run in top_level_runs) / 1e6
                 for m in set().union(*top_level_runs)}
    return {"total_s": statistics.median(totals) / 1e6,
            "by_package_s": dict(sorted(by_package.items(), key=lambda kv: -kv[1])),
            "top_level_s": dict(sorted(top_level.items(), key=lambda kv: -kv[1]))}


def _matches(key: tuple, where: str, name: str) -> bool:
    filename, _, function = key
    if where == "~":
        return filename == "~" and name in function
    return function == name and where in filename.replace(os.sep, "/")


def _descendants(children: dict, roots: list) -> set:
    seen, todo = set(), list(roots)
    while todo:
        for child in children.get(todo.pop(), ()):
            if child not in seen:
                seen.add(child)
                todo.append(child)
    return seen


def phase_tree(stats: pstats.Stats, build_key: tuple) -> list[dict]:
    """The phases found beneath build(), each with its cumulative time and its sub-phases."""
    children: dict = {}
    for key, (_, _, _, _, callers) in stats.stats.items():
        for caller in callers:
            children.setdefault(caller, set()).add(key)
    under_build = _descendants(children, [build_key])
    phases = {}
    for label, patterns in PHASES.items():
        keys = [k for k in under_build if any(_matches(k, where, name) for where, name in patterns)]
        if keys:
            phases[label] = {"label": label, "seconds": sum(stats.stats[k][3] for k in keys), "keys": keys,
                             "below": _descendants(children, keys), "children": []}
    # Each phase goes under the innermost phase that reaches it.
    roots = []
    for phase in phases.values():
        parents = [p for p in phases.values() if p is not phase and set(phase["keys"]) <= p["below"]]
        innermost = [p for p in parents if not any(set(p["keys"]) <= q["below"] for q in parents if q is not p)]
        (innermost[0]["children"] if innermost else roots).append(phase)

    def clean(phase):
        return {"label": phase["label"], "seconds": phase["seconds"], "children": [clean(c) for c in phase["children"]]}

    return [clean(p) for p in roots]


def phase_profile(env: dict) -> dict:
    with tempfile.TemporaryDirectory(prefix="specc-profile-") as tmp:
        stats_path = os.path.join(tmp, "build.prof")
        proc = _run([sys.executable, "-c", DRIVER, tmp, stats_path], env)
        imported, first, second = (float(x) for x in proc.stdout.split()[-3:])
        stats = pstats.Stats(stats_path)
    build_keys = [k for k in stats.stats if _matches(k, *BUILD_FUNCTION)]
    total = stats.stats[build_keys[0]][3] if build_keys else None
    phases = phase_tree(stats, build_keys[0]) if build_keys else []
    hottest = sorted(stats.stats.items(), key=lambda kv: -kv[1][2])[:12]
    return {
        "cli_import_s": imported, "first_build_s": first, "second_build_s": second,
        "profiled_build_s": total, "phases": phases,
        "other_s": None if total is None else total - sum(p["seconds"] for p in phases),
        "hottest_self_s": [{"function": f"{os.path.relpath(f) if f.startswith(ROOT) else f}:{line}({name})",
                            "self_s": value[2], "calls": value[1]}
                           for (f, line, name), value in hottest],
    }


def profile_build(env: dict, runs: int = 3) -> dict:
    return {"startup_s": startup_time(env, runs), "imports": import_profile(env, runs),
            "build": phase_profile(env)}


def print_profile(profile: dict) -> None:
    imports, build = profile["imports"], profile["build"]
    print(f"interpreter startup (python -c pass): {profile['startup_s']:.3f} s")
    print(f"imports (-X importtime, self times summed): {imports['total_s']:.3f} s; by package:")
    for package, seconds in list(imports["by_package_s"].items())[:10]:
        print(f"  {package:<28} {seconds:7.3f} s")
    print("slowest top-level imports (cumulative):")
    for module, seconds in list(imports["top_level_s"].items())[:10]:
        print(f"  {module:<28} {seconds:7.3f} s")
    print(f"in one process: import specc.cli {build['cli_import_s']:.3f} s, first build {build['first_build_s']:.3f} s "
          f"(loads numpy, yaml, ...), second build {build['second_build_s']:.3f} s")
    total = build["profiled_build_s"]
    if total is None:
        print("profiled build: specc.build.build not found in the profile")
        return
    print(f"phases of a build with every module loaded (cProfile, {total:.3f} s with its overhead; "
          "a phase's time includes the phases listed under it):")

    def show(phase, depth):
        label = "  " * depth + phase["label"]
        print(f"  {label:<50} {phase['seconds']:7.3f} s  {100 * phase['seconds'] / total:5.1f} %")
        for child in phase["children"]:
            show(child, depth + 1)

    for phase in build["phases"]:
        show(phase, 0)
    print(f"  {'other (file moves, directory, checks)':<50} {build['other_s']:7.3f} s  "
          f"{100 * build['other_s'] / total:5.1f} %")
    print("hottest functions (self time):")
    for row in build["hottest_self_s"][:8]:
        print(f"  {row['self_s']:7.3f} s {row['calls']:>7} calls  {row['function']}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="runs for startup and import timings (3)")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--no-bytecode-cache", action="store_true",
                        help="run with the environment as it is (see compile_speed.py)")
    args = parser.parse_args()
    pycache = None if args.no_bytecode_cache else tempfile.mkdtemp(prefix="specc-bench-pycache-")
    try:
        profile = profile_build(child_env(pycache), args.runs)
    finally:
        if pycache:
            shutil.rmtree(pycache, ignore_errors=True)
    if args.json:
        print(json.dumps(profile, indent=2))
    else:
        print_profile(profile)
    return 0


if __name__ == "__main__":
    sys.exit(main())
