"""The accuracy guard: the reduced-precision model against the float32 one, on held-out data.

Both models run in ONNX Runtime as built (the bytes that are written) on the spec's test split (its
validation split when the data set has no test split). The report holds the top-1 agreement of the
two and the accuracy of each; a drop beyond `build.max_accuracy_drop` percentage points is an error
(E085) that names the layers adding the most error: each quantized (or float16) layer's output is
compared with the float32 model's, relative L2 error, and the layers are ranked by how much error
they add to what their input already carried.
"""

from __future__ import annotations

import os
from contextlib import contextmanager

import numpy as np

from specc.diagnostics import SpeccError, error

BATCH = 256
LAYER_SAMPLES = 256  # per-layer errors: enough to rank layers, cheap in torch


@contextmanager
def _offline():
    """Load a data set only if it is on this machine: the default check must never download."""
    saved = os.environ.get("SPECC_OFFLINE")
    os.environ["SPECC_OFFLINE"] = "1"
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("SPECC_OFFLINE", None)
        else:
            os.environ["SPECC_OFFLINE"] = saved


def held_out(spec, data_dir=None, limits=None, required=False):
    """(x, y, split name) of the spec's held-out data, or (None, None, why not) when the check is optional
    and the data is not available offline. With `required`, a missing data set is an error."""
    if not spec.training or "data" not in spec.training:
        if required:
            raise error("E084", "--check-accuracy needs held-out data: the spec has no `training.data`",
                        spec.network_span, "add `training.data` (its test split is used)")
        return None, None, "the spec names no data set (`training.data`)"
    from specc.train.data import data_spans, load_dataset

    decl = spec.inputs[0]
    kwargs = {"limits": limits} if limits is not None else {}
    try:
        if required:
            dataset = load_dataset(spec.training["data"], spec_path=spec.path, input_shape=tuple(decl.shape),
                                   input_dtype=decl.dtype, data_dir=data_dir, seed=spec.seed, layout=decl.layout,
                                   spans=data_spans(spec), **kwargs)
        else:
            with _offline():
                dataset = load_dataset(spec.training["data"], spec_path=spec.path, input_shape=tuple(decl.shape),
                                       input_dtype=decl.dtype, data_dir=data_dir, seed=spec.seed,
                                       layout=decl.layout, spans=data_spans(spec), **kwargs)
    except SpeccError as exc:
        if required:
            raise
        return None, None, f"the data set is not available offline ({exc.diagnostics[0].code})"
    split, name = (dataset.test, "test") if dataset.test is not None else (dataset.val, "validation")
    if split is None:
        if required:
            raise error("E084", "--check-accuracy needs held-out data: the data set has no test or validation split",
                        spec.span_of("training", "data"), "add a test split to the data set")
        return None, None, "the data set has no test or validation split"
    return split.x, split.y, name


def _session(model_bytes: bytes):
    import onnxruntime as ort

    return ort.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])


def predictions(model_bytes: bytes, x: np.ndarray) -> np.ndarray:
    """Top-1 class per example of the model's first output (N, classes)."""
    session = _session(model_bytes)
    name = session.get_inputs()[0].name
    out = [session.run(None, {name: x[i:i + BATCH]})[0] for i in range(0, len(x), BATCH)]
    return np.concatenate(out).reshape(len(x), -1).argmax(axis=1)


def compare(fp32_model: bytes, reduced_model: bytes, x: np.ndarray, y: np.ndarray | None) -> dict:
    """Top-1 agreement of the two models, and each one's accuracy (percent) when labels are given."""
    want, got = predictions(fp32_model, x), predictions(reduced_model, x)
    report = {"samples": int(len(x)), "top1_agreement": round(100.0 * float(np.mean(want == got)), 3)}
    if y is not None:
        report["accuracy_fp32"] = round(100.0 * float(np.mean(want == y)), 3)
        report["accuracy"] = round(100.0 * float(np.mean(got == y)), 3)
        report["drop"] = round(report["accuracy_fp32"] - report["accuracy"], 3)
    return report


def compared_layers(reduced_graph) -> list:
    """The reduced graph's layers whose outputs mean what the float32 graph's same-named nodes do."""
    quantized = [n for n in reduced_graph.nodes if n.op in ("conv_qdq", "gemm_qdq")]
    if quantized:
        return quantized
    return [n for n in reduced_graph.nodes if n.category != "internal" and n.output.type.dtype == "float16"]


def _before_pair(value):
    """The float value a Q/DQ pair quantizes, for the pair's output; else the value itself: a layer's
    own error includes the quantization of its input."""
    dq = value.producer
    if dq is not None and dq.op == "dequantize_linear" and dq.inputs and dq.inputs[0].producer is not None \
            and dq.inputs[0].producer.op == "quantize_linear":
        return dq.inputs[0].producer.inputs[0]
    return value


def layer_errors(fp32_graph, reduced_graph, x: np.ndarray) -> list:
    """[(layer, relative error of its output, error it adds)], largest added error first. The error a
    layer adds is its output's minus that of the float value it reads (before its input's Q/DQ pair)."""
    import torch

    from specc.ops.activations import torch_activation
    from specc.precision.calibration import run_batches

    x = x[:LAYER_SAMPLES]
    layers = [(n, fp32_graph.node(n.name)) for n in compared_layers(reduced_graph)]
    layers = [(n, f) for n, f in layers if f is not None and f.output.type.shape == n.output.type.shape]
    if not layers:
        return []
    reduced = {v.name: [] for n, _ in layers for v in (_before_pair(n.inputs[0]), n.output)}
    full = {v.name: [] for _, f in layers for v in (f.inputs[0], f.output)}
    for graph, store in ((reduced_graph, reduced), (fp32_graph, full)):
        values = [v for n in graph.nodes for v in n.outputs if v.name in store] + \
                 [v for v in graph.inputs if v.name in store]
        for arrays in run_batches(graph, x, values):
            for name, a in arrays.items():
                store[name].append(a)

    def rel(a, b) -> float:
        return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-12))

    rows = []
    for node, ref in layers:
        out = np.concatenate(reduced[node.output.name])
        act = node.meta.get("activation", "linear")
        if act != "linear":
            out = torch_activation(act, torch.from_numpy(out)).numpy()
        err = rel(out, np.concatenate(full[ref.output.name]))
        read = np.concatenate(reduced[_before_pair(node.inputs[0]).name])
        err_in = rel(read, np.concatenate(full[ref.inputs[0].name]))
        rows.append((node.layer, round(err, 5), round(max(err - err_in, 0.0), 5)))
    return sorted(rows, key=lambda row: -row[2])


def check_drop(report: dict, max_drop: float, precision: str, layers: list, span, method: str | None = None) -> None:
    """E085 when the accuracy dropped more than `max_drop` points; names the layers adding the most error."""
    if "drop" not in report or report["drop"] <= max_drop:
        return
    worst = ", ".join(f"`{name}` (+{added:.3f})" for name, _, added in layers[:3]) or "none found"
    raise error("E085", f"the {precision} model's top-1 accuracy is {report['accuracy']:.2f}% against "
                f"{report['accuracy_fp32']:.2f}% for fp32 on {report['samples']:,} held-out examples: a drop of "
                f"{report['drop']:.2f} points, over `build.max_accuracy_drop` ({max_drop})", span,
                f"the layers adding the most error (relative, to their input's): {worst}; keep them in fp32 with "
                f"`build.keep_fp32`{_calibration_advice(method)}, or raise `max_accuracy_drop`")


def _calibration_advice(method: str | None) -> str:
    if method is None:
        return ""
    other = "`method: minmax`" if method != "minmax" else "`method: entropy` or `percentile`"
    return f", calibrate with more samples or {other}"
