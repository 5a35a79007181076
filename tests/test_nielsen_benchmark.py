"""Nielsen's table: the specs follow network3.py's protocol row by row, and benchmarks/nielsen (runner,
collection, report, wheelhouse) does what docs/nielsen.md says."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import ROOT, SPECS
from specc.limits import DEFAULT_LIMITS

BENCH = os.path.join(ROOT, "benchmarks", "nielsen")
sys.path.insert(0, BENCH)

import collect  # noqa: E402
import report  # noqa: E402
import rows  # noqa: E402
import run as runner  # noqa: E402
import wheelhouse  # noqa: E402

# row: (spec, epochs, eta, l2, expanded data, dense layers' units, dropouts, Nielsen's accuracy)
PROTOCOL = {
    "1": ("nielsen_shallow", 60, 0.1, 0.0, False, [100, 10], 0, 97.80),
    "2": ("nielsen_conv1", 60, 0.1, 0.0, False, [100, 10], 0, 98.78),
    "3": ("nielsen_conv2", 60, 0.1, 0.0, False, [100, 10], 0, 99.06),
    "4": ("nielsen_relu", 60, 0.03, 0.1, False, [100, 10], 0, 99.23),
    "5": ("nielsen_expanded", 60, 0.03, 0.1, True, [100, 10], 0, 99.37),
    "6": ("nielsen_extra_fc", 60, 0.03, 0.1, True, [100, 100, 10], 0, 99.43),
    "7": ("nielsen_final", 40, 0.03, 0.0, True, [1000, 1000, 10], 3, 99.60),
    "8": ("nielsen_ensemble", 40, 0.03, 0.0, True, [1000, 1000, 10], 3, 99.67),
}


def resolved(name):
    from specc.compiler import compile_spec

    return compile_spec(os.path.join(SPECS, f"{name}.yaml"), DEFAULT_LIMITS)


@pytest.mark.parametrize("key", sorted(PROTOCOL))
def test_each_row_follows_network3s_protocol(key):
    name, epochs, eta, l2, expanded, units, dropouts, accuracy = PROTOCOL[key]
    compiled = resolved(name)
    training, graph = compiled.spec.training, compiled.graph
    assert training["data"]["dataset"] == "mnist" and training["data"]["validation"] == 10_000
    assert (training["epochs"], training["batch_size"]) == (epochs, 10)
    assert training["optimizer"] == ("sgd", {"lr": eta, "momentum": 0.0, "nesterov": False})  # plain SGD
    assert (training.get("regularization") or {}).get("l2", 0.0) == l2
    assert any(step.op == "expand" for step in compiled.spec.augment) == expanded
    assert [n.attrs["units"] for n in graph.nodes if n.op == "dense"] == units
    assert sum(n.op == "dropout" for n in graph.nodes) == dropouts
    assert graph.nodes[-1].op == "softmax"
    hidden = "sigmoid" if key in ("1", "2", "3") else "relu"
    assert {n.attrs["activation"] for n in graph.nodes if n.op in ("conv", "dense")} == {hidden, "linear"}
    row = rows.row_of(f"{name}.yaml")
    assert row.key == key and row.nielsen == accuracy


def test_network3_initialization():
    graph = resolved("nielsen_final").graph
    convs = [n for n in graph.nodes if n.op == "conv"]
    # N(0, 1/n_out) with n_out = filters * 5 * 5 / 4 (after 2x2 pooling), as ConvPoolLayer
    assert [n.attrs["init"] for n in convs] == [("normal", {"std": pytest.approx((f * 25 / 4) ** -0.5)})
                                                for f in (20, 40)]
    assert [n.attrs["init"] for n in graph.nodes if n.op == "dense"] == ["nielsen", "nielsen", "zeros"]


def test_ensembles_and_our_networks():
    assert resolved("nielsen_ensemble").spec.training["ensemble"] == {"members": 5, "combine": "vote"}
    ours = resolved("mnist_best").spec.training
    assert (ours["batch_size"], ours["data"]["validation"]) == (64, 5_000)  # 859 mini-batches an epoch
    assert ours["epochs"] <= 15 and ours["schedule"][0] == "one_cycle"
    assert resolved("mnist_best_ensemble").spec.training["ensemble"]["members"] in (3, 4, 5)
    assert set(rows.DEFAULT_SPECS) == {f"{PROTOCOL[k][0]}.yaml" for k in "1234567"} | {"mnist_best.yaml"}


def test_epochs_and_core_slots():
    args = runner.parse_args(["--epochs-scale", "0.25", "--unscaled", "mnist_best.yaml"])
    assert [runner.planned_epochs("nielsen_relu", 60, args), runner.planned_epochs("nielsen_final", 40, args),
            runner.planned_epochs("mnist_best", 14, args)] == [15, 10, 14]
    assert runner.planned_epochs("x", 60, runner.parse_args(["--epochs-scale", "0.001"])) == 1
    assert runner.planned_epochs("x", 60, runner.parse_args(["--epochs", "2"])) == 2
    assert runner.core_slots(4, 2, list(range(8))) == [[0, 1], [2, 3], [4, 5], [6, 7]]
    assert runner.core_slots(3, 2, [0, 1, 4, 5, 8, 9, 12]) == [[0, 1], [4, 5], [8, 9]]
    assert runner.core_slots(8, 2, list(range(8))) == [None] * 8  # not enough: not pinned
    from machine import parse_cpu_list

    assert parse_cpu_list("0-3,8,10-11") == [0, 1, 2, 3, 8, 10, 11]


def _write_run(directory, epochs_done, summary=None):
    os.makedirs(directory)
    history = [{"epoch": e, "val": {"accuracy": 0.9 + e / 100}, "test": {"accuracy": 0.91 + e / 100},
                "seconds": 10.0 + e, "eval_seconds": 2.0, "best": e != 3} for e in range(1, epochs_done + 1)]
    with open(os.path.join(directory, "metrics.jsonl"), "w") as handle:
        handle.writelines(json.dumps(row) + "\n" for row in history)
    with open(os.path.join(directory, "run.json"), "w") as handle:
        json.dump({"device": "cuda:0 (NVIDIA H200)", "threads": 1}, handle)
    if summary:
        with open(os.path.join(directory, "summary.json"), "w") as handle:
            json.dump(summary, handle)


def test_a_run_stopped_part_way_reports_its_kept_epoch(tmp_path):
    _write_run(tmp_path / "stopped", 3)  # epoch 3 did not improve: epoch 2 is kept
    figures = collect.run_figures(str(tmp_path / "stopped"))
    assert (figures["best_epoch"], figures["epochs_run"], figures["finished"]) == (2, 3, False)
    assert (figures["val_accuracy"], figures["test_accuracy"]) == (92.0, 93.0)
    assert figures["seconds_per_epoch"] == 12.0 and figures["device"] == "cuda:0 (NVIDIA H200)"

    summary = {"best": {"epoch": 4, "val": {"accuracy": 0.995}, "test": {"accuracy": 0.9951}}, "epochs_run": 4,
               "device": "cpu (2 threads)", "threads": 2}
    _write_run(tmp_path / "done", 4, summary)
    figures = collect.run_figures(str(tmp_path / "done"))
    assert (figures["test_accuracy"], figures["epochs_run"], figures["device"]) == (99.51, 4, "cpu (2 threads)")
    collect.copy_small_files(str(tmp_path / "done"), str(tmp_path / "copy"))
    assert sorted(os.listdir(tmp_path / "copy")) == ["metrics.jsonl", "run.json", "summary.json"]


def _results(created, runs, timing=False):
    return {"created": created, "timing": timing, "options": {"device": "cuda", "epochs_scale": 0.25,
                                                              "parallel": 8, "threads_per_run": 1},
            "machine": {"cpu": "Xeon", "nproc": 16, "usable_cpus": 16, "gpus": ["NVIDIA H200"], "torch": "2.x"},
            "runs": runs}


def _run(spec, test, **kw):
    return {"spec": spec, "status": "finished", "test_accuracy": test, "epochs_run": 15, "epochs_planned": 15,
            "epochs_spec": 60, "seconds_per_epoch": 30.0, "eval_seconds_per_epoch": 2.0, "wall_seconds": 500,
            "device": "cuda:0 (NVIDIA H200)", "threads": 1, **kw}


def test_report_tables_and_the_doc_markers(tmp_path):
    older = _results("2026-01-01T00:00:00", [_run("nielsen_relu.yaml", 98.0)])
    newer = _results("2026-02-01T00:00:00", [
        _run("nielsen_relu.yaml", 99.1, best_epoch=14),
        _run("nielsen_final.yaml", 99.2, status="stopped at the deadline", epochs_run=7, epochs_planned=10,
             epochs_spec=40)])
    timing = _results("2026-03-01T00:00:00", [_run("mnist_best.yaml", 50.0, seconds_per_epoch=55.0,
                                                  eval_seconds_per_epoch=5.0, device="cpu (2 threads)")],
                      timing=True)
    text = report.render([timing, newer, older])
    lines = text.splitlines()
    relu = next(line for line in lines if "`nielsen_relu`" in line and "99.23" in line)
    assert "| 99.10 |" in relu and "15 of 60 (best 14)" in relu and "[B]" in relu  # the newer file wins
    final = next(line for line in lines if "`nielsen_final`" in line and "99.60" in line)
    assert "7 of 40 (time limit, 10 planned)" in final
    shallow = next(line for line in lines if "`nielsen_shallow`" in line)
    assert "pending" in shallow
    best = next(line for line in lines if line.startswith("| ours |"))
    assert "pending" in best  # a timing measurement is no accuracy
    assert "| `mnist_best` | cpu (2 threads) | 1 | 55.0 | 5.0 | 15 | [C] |" in text  # 900 s / 60 s
    assert "- [A] 2026-01-01, device cuda: NVIDIA H200, Xeon, 16 logical CPUs" in text

    doc = tmp_path / "doc.md"
    doc.write_text(f"# Title\n\nbefore\n\n{report.BEGIN}\nold table\n{report.END}\n\nafter\n")
    report.update_doc(str(doc), text)
    report.update_doc(str(doc), text)
    written = doc.read_text()
    assert written.startswith("# Title\n\nbefore\n\n") and written.endswith("\n\nafter\n")
    assert "old table" not in written and written.count(report.BEGIN) == 1 and "| 99.10 |" in written


def test_sources_past_z_are_tagged_as_spreadsheet_columns():
    assert [report.source_tag(i) for i in (0, 25, 26, 27, 51, 52, 701, 702)] == \
        ["A", "Z", "AA", "AB", "AZ", "BA", "ZZ", "AAA"]
    many = [_results(f"2026-01-{1 + i // 24:02d}T{i % 24:02d}:00:00", [_run("nielsen_relu.yaml", 90.0 + i / 10)])
            for i in range(28)]
    text = report.render(many)
    assert "[AB]" in text and "- [AA] " in text and "[[]" not in text
    relu = next(line for line in text.splitlines() if "`nielsen_relu`" in line and "99.23" in line)
    assert "| 92.70 |" in relu and "[AB]" in relu  # the newest of the 28 files


def test_the_doc_has_the_markers_and_every_row():
    text = open(os.path.join(ROOT, "docs", "nielsen.md")).read()
    assert text.count(report.BEGIN) == 1 and text.count(report.END) == 1
    for row in rows.ROWS:
        assert f"`{row.spec[:-5]}`" in text


@pytest.mark.parametrize("filename, fits", [
    ("tqdm-4.70.1-py3-none-any.whl", True),
    ("sortedcontainers-2.4.0-py2.py3-none-any.whl", True),
    ("safetensors-0.8.0-cp310-abi3-manylinux_2_17_x86_64.manylinux2014_x86_64.whl", True),
    (f"pyyaml-6.0.4-cp3{sys.version_info.minor}-cp3{sys.version_info.minor}-manylinux2014_x86_64.whl", True),
    ("pyyaml-6.0.4-cp39-cp39-manylinux2014_x86_64.whl", False),
    ("pyyaml-6.0.4-cp311-cp311-macosx_11_0_arm64.whl", False),
    ("safetensors-0.8.0-cp399-abi3-manylinux2014_x86_64.whl", False),
])
def test_wheel_tags(filename, fits):
    assert wheelhouse.wheel_fits(filename) == fits


def test_runner_end_to_end_on_the_mnist_sample(tmp_path):
    """One real `specc train` process, pinned, collected and rendered."""
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, os.path.join(BENCH, "run.py"), "nielsen_shallow", "--sample", "--epochs",
                           "1", "--device", "cpu", "--threads-per-run", "1", "--out", str(out), "--doc",
                           str(tmp_path / "doc.md")], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    results = json.load(open(out / "results.json"))
    (result,) = results["runs"]
    assert result["status"] == "finished" and result["epochs_run"] == 1
    assert result["cores"] == sorted(os.sched_getaffinity(0))[:1]  # pinned
    assert result["test_accuracy"] > 30.0 and result["device"] == "cpu (1 thread)" and result["sample"]
    assert results["machine"]["nproc"] == os.cpu_count()
    assert os.path.isfile(out / "nielsen_shallow" / "summary.json")
    assert "| 1 of 60 (MNIST sample; best 1) |" in (tmp_path / "doc.md").read_text()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_an_interrupted_runner_still_writes_its_results(tmp_path, signum):
    """Started as `nohup ... &` starts it (SIGINT ignored), then stopped after its run's first epoch: the run is
    stopped like a deadline stops it and results.json reports it, kept epoch and all."""
    out = tmp_path / "out"
    log = open(tmp_path / "runner.log", "w")
    runner_process = subprocess.Popen(
        [sys.executable, os.path.join(BENCH, "run.py"), "nielsen_shallow", "--sample", "--epochs", "500", "--device",
         "cpu", "--threads-per-run", "1", "--out", str(out)], stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    metrics = out / "runs" / "nielsen_shallow" / "metrics.jsonl"
    until = time.monotonic() + 120
    while not (metrics.exists() and metrics.read_text().strip()) and time.monotonic() < until:
        assert runner_process.poll() is None, (tmp_path / "runner.log").read_text()
        time.sleep(0.2)
    runner_process.send_signal(signum)
    assert runner_process.wait(timeout=120) == 0, (tmp_path / "runner.log").read_text()
    (result,) = json.load(open(out / "results.json"))["runs"]
    assert result["status"] == "interrupted" and result["shortened"]
    assert 1 <= result["epochs_run"] < 500 and result["test_accuracy"] > 10.0
    assert "interrupted: writing what the runs have so far" in (tmp_path / "runner.log").read_text()


def test_shared_errors_count_overlaps_and_the_mean_ensemble():
    import shared_errors

    labels = np.array([0, 1, 2, 0])
    one_hot = np.eye(3)
    a = one_hot[[0, 1, 1, 1]] * 0.9 + 0.05    # wrong on images 2 and 3
    b = one_hot[[0, 2, 1, 0]] * 0.6 + 0.2     # wrong on 1 and 2, less sure
    figures = shared_errors.overlap([a, b], labels)
    assert figures["errors"] == [2, 2] and figures["images"] == 4
    assert figures["misclassified_by"] == {1: 2, 2: 1}  # images 1 and 3 by one run, image 2 by both
    assert figures["ensemble_errors"] == 2  # a, surer, decides images 1 (right) and 3 (wrong); 2 stays wrong
