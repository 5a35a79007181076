"""Train Nielsen's MNIST table (and our networks against it) with `specc train`, several runs at a time,
and collect the results into results.json and the table of docs/nielsen.md.

    python benchmarks/nielsen/run.py [SPEC ...] [--device auto|cpu|cuda]
        [--epochs-scale F | --epochs N] [--unscaled NAME ...] [--deadline SECONDS]
        [--parallel K] [--threads-per-run T] [--cores LIST]
        [--data DIR] [--limit-train N] [--limit-test N] [--sample]
        [--out DIR] [--runs DIR] [--timing] [--note TEXT] [--doc FILE]

SPEC: spec files or names under specs/ (default: rows 1-7 of the table and mnist_best.yaml; the
ensembles, which train five networks each, only when named). Each spec trains in its own `specc train`
process, at most K at a time, in a run directory under --runs (default OUT/runs), its output in
OUT/logs/<name>.log. With K x T cores available (--cores, default every core this process may use), run
slot i is pinned to its own T cores (sched_setaffinity before the process starts, `--threads T`), so K
runs share a machine fairly; with fewer cores the runs are not pinned, and results.json says so.

Shorter protocols are recorded as such: --epochs-scale F trains round(F x epochs) (at least 1) of each
spec's epochs, --epochs N trains N, except for the specs named by --unscaled; --deadline SECONDS stops
every run still training that long after the start (SIGINT, as Ctrl-C: the epochs done so far are in its
metrics.jsonl, and the kept epoch among them is reported). --limit-train N trains on the first N MNIST
training images (and --limit-test on the first test images), --sample on the MNIST sample bundled with
specc (no data files needed): both for quick dry runs. --timing marks the
results as a timing measurement: docs/nielsen.md lists them under seconds per epoch, not as accuracies.
Ctrl-C or SIGTERM stops every run the same way, even when the runner was started in the background,
and still writes results.json with what the runs have so far (their status: interrupted).

OUT/results.json holds, per run: the test accuracy at the epoch of best validation accuracy, the epochs
asked for and run, wall time, seconds per epoch (training, and evaluation), device and threads; and the
machine (CPU model, logical CPUs, GPU, PyTorch). OUT/<name>/ holds each run's run.json, summary.json and
metrics.jsonl. OUT/nielsen-table.md is the rendered table; --doc FILE also writes it into FILE between its
result markers (see report.py).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from collect import copy_small_files, run_figures  # noqa: E402
from machine import ROOT, machine_info, parse_cpu_list  # noqa: E402
from report import render, update_doc  # noqa: E402
from rows import DEFAULT_SPECS, row_of  # noqa: E402

SPECS_DIR = os.path.join(ROOT, "specs")
STATUS_EVERY = 60.0     # seconds between progress lines
GRACE = 30.0            # seconds a run has to stop after SIGINT before it is killed
SAMPLE_TRAIN = 2000     # training images in specc's bundled MNIST sample


@dataclass
class Job:
    name: str                    # the spec's file name without .yaml
    spec: str                    # the spec file the run trains (a derived one with --limit-train)
    source: str                  # the spec file as named
    epochs_spec: int
    epochs: int                  # asked for
    run_dir: str
    log: str
    cores: list | None = None
    process: subprocess.Popen | None = None
    started: float | None = None
    ended: float | None = None
    status: str = "not started"
    extra: dict = field(default_factory=dict)


def spec_epochs(path: str) -> int:
    """training.epochs of a spec, `extends` merged."""
    sys.path.insert(0, ROOT)
    from specc.limits import DEFAULT_LIMITS
    from specc.parser.extends import load_with_extends

    return int(load_with_extends(path, DEFAULT_LIMITS).plain()["training"]["epochs"])


def find_spec(name: str) -> str:
    for candidate in (name, os.path.join(SPECS_DIR, name), os.path.join(SPECS_DIR, name + ".yaml")):
        if os.path.isfile(candidate):
            return os.path.abspath(candidate)
    raise SystemExit(f"run.py: no spec {name!r} (give a file, or a name under specs/)")


def planned_epochs(name: str, epochs: int, args) -> int:
    if name in args.unscaled:
        return epochs
    if args.epochs:
        return args.epochs
    return max(1, round(epochs * args.epochs_scale))


def core_slots(parallel: int, threads: int, cores: list[int]) -> list[list[int] | None]:
    """Disjoint sets of `threads` cores, one per run slot; [None] * parallel when there are not enough."""
    if parallel * threads > len(cores):
        return [None] * parallel
    return [cores[i * threads:(i + 1) * threads] for i in range(parallel)]


# --- a smaller MNIST for dry runs ---------------------------------------------------------------------

def limited_mnist(data_dir: str | None, out: str, train: int, test: int | None) -> str:
    """The first `train` training and `test` test images of MNIST as IDX files in OUT/data/."""
    sys.path.insert(0, ROOT)
    from specc.diagnostics import Span
    from specc.train.idx import read_idx, write_idx
    from specc.train.sources import IDX_PAIRS, find_file

    places = [p for p in (data_dir, os.environ.get("SPECC_MNIST_DIR"), os.environ.get("SPECC_DATA_DIR")) if p]
    places += [os.path.join(p, "mnist") for p in places]
    source = next((p for p in places if all(find_file(p, stem) for pair in IDX_PAIRS.values() for stem in pair)),
                  None)
    if source is None:
        raise SystemExit(f"run.py: --limit-train needs the MNIST IDX files: not found in {places or '(no --data)'}")
    target = os.path.join(out, "data", f"mnist-first-{train}")
    os.makedirs(target, exist_ok=True)
    for split, count in (("train", train), ("test", test)):
        for stem in IDX_PAIRS[split]:
            path = find_file(source, stem)
            array = read_idx(path, path, Span(path), 1 << 31)
            write_idx(os.path.join(target, stem), array[:count] if count else array)
    return target


def derived_spec(source: str, name: str, data: str | None, train: int, out: str) -> str:
    """`source` trained on the IDX files in `data` (None: the bundled MNIST sample), with a validation
    hold-out that fits `train` images."""
    path = os.path.join(out, "specs", f"{name}.yaml")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    what = f"the first {train:,} MNIST training images" if data else "the MNIST sample bundled with specc"
    dataset = f"{{dataset: idx, path: {json.dumps(data)}, validation: {train // 6}}}" if data else \
        f"{{dataset: mnist-sample, validation: {SAMPLE_TRAIN // 6}}}"
    with open(path, "w") as handle:
        handle.write(f"# {name} on {what} (written by benchmarks/nielsen/run.py)\n"
                     f"specc: 1\nextends: {json.dumps(source)}\nname: {name}\n"
                     f"training:\n  data: {dataset}\n")
    return path


# --- running ----------------------------------------------------------------------------------------

def start(job: Job, args, threads: int) -> None:
    os.makedirs(os.path.dirname(job.run_dir) or ".", exist_ok=True)
    command = [sys.executable, "-m", "specc", "train", job.spec, "-o", job.run_dir, "--epochs", str(job.epochs),
               "--device", args.device, "--threads", str(threads), "--no-progress", "--no-plots"]
    if args.data:
        command += ["--data", args.data]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, (ROOT, os.environ.get("PYTHONPATH")))),
           "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads), "PYTHONUNBUFFERED": "1",
           "SPECC_OFFLINE": "1"}  # never a download attempt on a machine without network: a clear error instead
    cores = job.cores
    log = open(job.log, "w")
    log.write(f"$ {shlex.join(command)}\n" + (f"# pinned to CPUs {cores}\n" if cores else ""))
    log.flush()
    job.process = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env,
                                   start_new_session=True,
                                   preexec_fn=(lambda: os.sched_setaffinity(0, cores)) if cores else None)
    log.close()
    job.started, job.status = time.monotonic(), "running"
    say(f"start {job.name}: {job.epochs} of {job.epochs_spec} epochs" + (f", CPUs {_cpus(cores)}" if cores else ""))


def stop_all(jobs: list[Job]) -> None:
    """Ctrl-C for every run at once, then up to GRACE seconds (shared) for them to stop; killed after that.
    One at a time, sixteen runs could take sixteen graces."""
    for job in jobs:
        try:
            os.killpg(job.process.pid, signal.SIGINT)
        except ProcessLookupError:
            pass
    until = time.monotonic() + GRACE
    for job in jobs:
        try:
            job.process.wait(timeout=max(0.0, until - time.monotonic()))
        except subprocess.TimeoutExpired:
            try:
                os.killpg(job.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            job.process.wait()
        job.status = "stopped at the deadline"


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def schedule(jobs: list[Job], slots: list, args, threads: int) -> None:
    pending, running = list(jobs), {}
    began = time.monotonic()
    deadline = began + args.deadline if args.deadline else None
    last_status = began
    while pending or running:
        for slot in range(len(slots)):
            if slot not in running and pending and (deadline is None or time.monotonic() < deadline):
                job = pending.pop(0)
                job.cores = slots[slot]
                start(job, args, threads)
                running[slot] = job
        for slot, job in list(running.items()):
            code = job.process.poll()
            if code is not None:
                job.ended = time.monotonic()
                job.status = "finished" if code == 0 else f"failed (exit {code})"
                say(f"{job.status}: {job.name} after {_minutes(job.ended - job.started)}" +
                    ("" if code == 0 else f"; see {job.log}"))
                del running[slot]
        now = time.monotonic()
        if deadline is not None and now >= deadline:
            for job in running.values():
                say(f"deadline: stopping {job.name}")
            stop_all(list(running.values()))
            for job in running.values():
                job.ended = time.monotonic()
            for job in pending:
                job.status = "not started (deadline)"
            return
        if now - last_status >= STATUS_EVERY and running:
            last_status = now
            for job in running.values():
                say(status_line(job, now))
        time.sleep(0.5)


def status_line(job: Job, now: float) -> str:
    from collect import read_metrics

    rows = read_metrics(job.run_dir)
    last = rows[-1] if rows else None
    where = f"epoch {len(rows)}/{job.epochs}" + (f", val {100 * last['val']['accuracy']:.2f}%" if last and
                                                   last.get("val") else "")
    return f"  {job.name}: {where}, {_minutes(now - job.started)}"


# --- results ----------------------------------------------------------------------------------------

def result_of(job: Job, args) -> dict:
    row = row_of(os.path.basename(job.source))
    figures = run_figures(job.run_dir)
    wall = round(job.ended - job.started, 1) if job.started and job.ended else None
    return {"spec": os.path.basename(job.source), "row": row.key if row else None,
            "network": row.network if row else None, "nielsen": row.nielsen if row else None,
            "status": job.status, "epochs_spec": job.epochs_spec, "epochs_planned": job.epochs,
            "shortened": job.epochs < job.epochs_spec or job.status != "finished",
            **figures, "wall_seconds": wall, "cores": job.cores, "limit_train": args.limit_train,
            "limit_test": args.limit_test, "sample": args.sample, "run_dir": job.run_dir, "log": job.log}


def main(argv=None) -> int:
    args = parse_args(argv)
    out = os.path.abspath(args.out)
    runs = os.path.abspath(args.runs or os.path.join(out, "runs"))
    os.makedirs(os.path.join(out, "logs"), exist_ok=True)
    cores = parse_cpu_list(args.cores) if args.cores else sorted(os.sched_getaffinity(0))
    threads = args.threads_per_run
    slots = core_slots(args.parallel, threads, cores)
    if slots[0] is None:
        say(f"{args.parallel} runs x {threads} threads > {len(cores)} CPUs: the runs are not pinned")
    data = limited_mnist(args.data, out, args.limit_train, args.limit_test) if args.limit_train else None

    jobs = []
    for named in args.specs or DEFAULT_SPECS:
        source = find_spec(named)
        name = os.path.basename(source)[:-5]
        spec = derived_spec(source, name, data, args.limit_train, out) if data or args.sample else source
        epochs = spec_epochs(source)
        jobs.append(Job(name, spec, source, epochs, planned_epochs(name, epochs, args), os.path.join(runs, name),
                        os.path.join(out, "logs", f"{name}.log")))
    for job in jobs:
        if os.path.exists(job.run_dir):
            raise SystemExit(f"run.py: {job.run_dir} exists; give another --out or --runs")

    created = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    say(f"{len(jobs)} runs, {args.parallel} at a time, device {args.device}, "
        f"{'epochs ' + str(args.epochs) if args.epochs else 'epochs x' + format(args.epochs_scale, 'g')}"
        + (f", deadline {args.deadline:g} s" if args.deadline else ""))
    machine = machine_info()
    began = time.monotonic()
    # Ctrl-C, and a SIGTERM or SIGINT sent to a runner started in the background (where a shell leaves
    # SIGINT ignored), all stop the runs and write what they have so far.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        schedule(jobs, slots, args, threads)
    except KeyboardInterrupt:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the results short
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        running = [job for job in jobs if job.status == "running"]
        stop_all(running)
        for job in running:
            job.status, job.ended = "interrupted", time.monotonic()
        say("interrupted: writing what the runs have so far")
    results = {"created": created, "command": shlex.join([sys.executable] + sys.argv),
               "options": {k: v for k, v in vars(args).items() if k != "specs"},
               "timing": args.timing, "note": args.note, "wall_seconds": round(time.monotonic() - began, 1),
               "machine": machine,
               "runs": [result_of(job, args) for job in jobs]}
    for job in jobs:
        copy_small_files(job.run_dir, os.path.join(out, job.name))
    with open(os.path.join(out, "results.json"), "w") as handle:
        json.dump(results, handle, indent=1)
    table = render([results])
    with open(os.path.join(out, "nielsen-table.md"), "w") as handle:
        handle.write(table)
    if args.doc:
        update_doc(args.doc, table)
    print(table)
    say(f"results in {os.path.join(out, 'results.json')}")
    return 1 if any(job.status.startswith("failed") for job in jobs) else 0


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("specs", nargs="*", metavar="SPEC", help="spec files or names under specs/ (default: rows "
                   "1-7 and mnist_best)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--epochs-scale", type=float, default=1.0, metavar="F",
                   help="train round(F x epochs) of each spec's epochs (at least 1)")
    p.add_argument("--epochs", type=int, default=0, metavar="N", help="train N epochs (overrides --epochs-scale)")
    p.add_argument("--unscaled", action="append", default=[], metavar="NAME",
                   help="train this spec's own epochs whatever --epochs-scale/--epochs say (repeatable)")
    p.add_argument("--deadline", type=float, default=0.0, metavar="SECONDS",
                   help="stop every run still training this long after the start")
    p.add_argument("--parallel", type=int, default=1, metavar="K", help="runs at a time")
    p.add_argument("--threads-per-run", type=int, default=1, metavar="T", help="CPU threads (and cores) per run")
    p.add_argument("--cores", metavar="LIST", help="CPUs to share out, e.g. 0-7 (default: all this process may use)")
    p.add_argument("--data", metavar="DIR", help="where the MNIST IDX files are (specc train --data)")
    p.add_argument("--limit-train", type=int, default=0, metavar="N", help="train on the first N training images")
    p.add_argument("--limit-test", type=int, default=0, metavar="N",
                   help="with --limit-train: test on the first N test images")
    p.add_argument("--sample", action="store_true", help="train on specc's bundled MNIST sample (2,000 images)")
    p.add_argument("--out", default="nielsen-out", metavar="DIR", help="results, logs and run records")
    p.add_argument("--runs", metavar="DIR", help="run directories (weights, checkpoints); default OUT/runs")
    p.add_argument("--timing", action="store_true", help="a timing measurement, not an accuracy result")
    p.add_argument("--note", default="", metavar="TEXT", help="a remark for the table's source line, e.g. the load")
    p.add_argument("--doc", metavar="FILE", help="also write the table into FILE (e.g. docs/nielsen.md)")
    args = p.parse_args(argv)
    for flag, value, low in (("--parallel", args.parallel, 1), ("--threads-per-run", args.threads_per_run, 1),
                             ("--limit-train", args.limit_train, 0), ("--limit-test", args.limit_test, 0),
                             ("--epochs", args.epochs, 0)):
        if value < low:
            p.error(f"{flag} must be at least {low}")
    if args.epochs_scale <= 0:
        p.error("--epochs-scale must be above 0")
    if args.limit_train and args.limit_train < 60:
        p.error("--limit-train must be at least 60 (a sixth is held out for validation)")
    if args.sample and args.limit_train:
        p.error("--sample and --limit-train both choose the data: give one")
    args.unscaled = [name.removesuffix(".yaml") for name in args.unscaled]
    return args


def say(text: str) -> None:
    stamp = _dt.datetime.now().strftime("%H:%M:%S")
    print(f"[{stamp}] {text}", flush=True)


def _minutes(seconds: float) -> str:
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes}m{rest:02d}s"


def _cpus(cores: list[int]) -> str:
    return ",".join(map(str, cores))


if __name__ == "__main__":
    sys.exit(main())
