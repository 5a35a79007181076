"""int8 calibration: sample inputs, run the float32 graph on them, and the range (amax) of every activation.

The samples are raw model inputs (pixels 0..255 for MNIST): the graph contains its preprocessing, so
calibration sees exactly what the built model computes. They come from `--calibration-data FILE.npz`
(array `x`), or `build.calibration.data`: `train` (the spec's training set, `training.data`) or a
`.npz` path relative to the spec. The graph runs in torch, node by node, on batches; each float value
adds to its statistics, so memory stays one batch of activations whatever the sample count.

Methods (symmetric ranges: amax of |x|):
- minmax: the largest |x| seen;
- percentile: the `percentile`-th percentile of |x| (outliers clipped);
- entropy: the threshold whose 128-level quantization of the |x| histogram loses the least
  information (KL divergence), as TensorRT's entropy calibrator chooses it.
"""

from __future__ import annotations

import os
import zipfile
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from specc.diagnostics import Span, error

DEFAULTS = {"data": "train", "samples": 512, "method": "minmax", "percentile": 99.99, "per_channel": True}
HISTOGRAM_BINS = 2048
LEVELS = 128  # positive int8 levels a symmetric scale spreads |x| over
BATCH = 64


@dataclass
class CalibrationSet:
    x: np.ndarray   # (samples, *input features) raw inputs in the input's dtype
    source: str     # "train", or the file it came from
    method: str
    percentile: float
    per_channel: bool

    def manifest(self) -> dict:
        entry = {"data": self.source, "samples": int(len(self.x)), "method": self.method,
                 "per_channel": self.per_channel}
        if self.method == "percentile":
            entry["percentile"] = self.percentile
        return entry


def calibration_config(build_cfg: dict) -> dict:
    return {**DEFAULTS, **(build_cfg.get("calibration") or {})}


def load_calibration_set(spec, graph, *, data_file: str | None = None, data_dir: str | None = None,
                         limits=None) -> CalibrationSet:
    """The samples `build.calibration` (or `--calibration-data`) names, checked against the model's input."""
    cfg = calibration_config(spec.build)
    span = spec.span_of("build", "calibration", "data")
    if len(graph.inputs) != 1:
        raise error("E084", f"int8 calibration feeds one input; this model has {len(graph.inputs)}",
                    span, "build this model with `precision: fp16` or `fp32`")
    if data_file is not None:
        x, source = _read_npz(data_file, Span(data_file)), os.path.basename(data_file)
    elif cfg["data"] == "train":
        x, source = _training_set(spec, graph, data_dir, limits), "train"
    else:
        from specc.parser.extends import resolve_spec_path

        path = resolve_spec_path(cfg["data"], spec.path, span, limits, os.path.dirname(os.path.realpath(spec.path)),
                                 "`build.calibration.data`")
        x, source = _read_npz(path, span), cfg["data"]
    x = _fit_input(x, graph.inputs[0], span, source)
    if len(x) > cfg["samples"]:  # a seeded subset, in the data's own order
        keep = np.sort(np.random.default_rng(graph.seed).choice(len(x), cfg["samples"], replace=False))
        x = x[keep]
    return CalibrationSet(x, source, cfg["method"], cfg["percentile"], cfg["per_channel"])


def _training_set(spec, graph, data_dir, limits) -> np.ndarray:
    if not spec.training or "data" not in spec.training:
        raise error("E084", "`build.calibration.data: train` needs the spec's `training.data`, which it does not have",
                    spec.span_of("build", "calibration"),
                    "pass --calibration-data FILE.npz (an array `x` of raw inputs), or set "
                    "`build.calibration.data` to such a file")
    from specc.train.data import data_spans, load_dataset

    decl = spec.inputs[0]
    kwargs = {"limits": limits} if limits is not None else {}
    dataset = load_dataset(spec.training["data"], spec_path=spec.path, input_shape=tuple(decl.shape),
                           input_dtype=decl.dtype, data_dir=data_dir, seed=spec.seed, layout=decl.layout,
                           spans=data_spans(spec), **kwargs)
    return dataset.train.x


def _read_npz(path: str, span: Span) -> np.ndarray:
    if not os.path.isfile(path):
        raise error("E084", f"calibration data not found: {path}", span, "give an .npz file with an array `x`")
    try:
        with np.load(path, allow_pickle=False) as archive:
            if "x" not in archive.files:
                raise error("E084", f"{path} has no array `x` (it has: {', '.join(archive.files) or 'none'})", span,
                            "save the calibration inputs as `x`: np.savez(path, x=inputs)")
            x = archive["x"]
        if not isinstance(x, np.ndarray):  # a member that is no .npy comes back as its raw bytes
            raise ValueError("its member x.npy is not a .npy array")
        return x
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise error("E084", f"{path} is not a readable .npz file ({exc})", span, "np.savez(path, x=inputs)") from None


def _fit_input(x: np.ndarray, value, span: Span, source: str) -> np.ndarray:
    features = tuple(value.type.shape[1:])
    fits = x.ndim == len(features) + 1 and all(not isinstance(d, int) or d == n for d, n in zip(features, x.shape[1:]))
    if not fits:
        raise error("E084", f"calibration data from {source} has shape {list(x.shape)}; the input "
                    f"`{value.name}` takes (N, {', '.join(map(str, features))})", span,
                    "give raw inputs shaped like the model's input, the batch axis first")
    if len(x) == 0:
        raise error("E084", f"calibration data from {source} holds no samples", span)
    if x.dtype.kind == "f" and value.type.dtype == "uint8":
        raise error("E084", f"calibration data from {source} is {x.dtype}; the input `{value.name}` is uint8",
                    span, "give the raw uint8 inputs the model receives")
    return x.astype(value.type.dtype, copy=False)


# --- statistics ---------------------------------------------------------
@contextmanager
def probing(graph, values: list):
    """The graph with `values` as extra outputs (named `probe:<value>`), restored afterwards."""
    saved = dict(graph.outputs)
    graph.outputs.update({f"probe:{v.name}": v for v in values})
    try:
        yield
    finally:
        graph.outputs.clear()
        graph.outputs.update(saved)


def float_values(graph) -> list:
    values = [v for v in graph.inputs if v.type.dtype in ("float32", "float16")]
    return values + [v for n in graph.nodes for v in n.outputs if v.type.dtype in ("float32", "float16")]


def run_batches(graph, x: np.ndarray, values: list, batch: int = BATCH):
    """Yields {value name: np.ndarray} per batch of `x`, running the graph in torch (inference mode)."""
    import torch

    from specc.codegen.torch_module import to_torch

    with probing(graph, values):
        module = to_torch(graph).eval()
        with torch.no_grad():
            for start in range(0, len(x), batch):
                out = module(torch.from_numpy(np.ascontiguousarray(x[start:start + batch])))
                yield {v.name: out[f"probe:{v.name}"].float().numpy() for v in values}


def activation_ranges(graph, calib: CalibrationSet) -> tuple[dict, dict]:
    """(value name -> amax by the calibration method, value name -> largest |x| seen), for every float
    activation of the graph and its float inputs."""
    values = float_values(graph)
    amax = {v.name: 0.0 for v in values}
    for arrays in run_batches(graph, calib.x, values):
        for name, a in arrays.items():
            amax[name] = max(amax[name], float(np.abs(a).max()) if a.size else 0.0)
    if calib.method == "minmax":
        return amax, amax
    hist = {name: np.zeros(HISTOGRAM_BINS, np.int64) for name in amax}
    for arrays in run_batches(graph, calib.x, values):
        for name, a in arrays.items():
            if amax[name] > 0:
                hist[name] += np.histogram(np.abs(a), HISTOGRAM_BINS, (0.0, amax[name]))[0]
    pick = percentile_amax if calib.method == "percentile" else entropy_amax
    return {name: pick(hist[name], amax[name], calib.percentile) if amax[name] > 0 else 0.0 for name in amax}, amax


def percentile_amax(hist: np.ndarray, amax: float, percentile: float) -> float:
    """The |x| below which `percentile` % of the values lie (upper edge of that histogram bin)."""
    cdf = np.cumsum(hist) / max(hist.sum(), 1)
    index = int(np.searchsorted(cdf, percentile / 100.0))
    return amax * min(index + 1, len(hist)) / len(hist)


def entropy_amax(hist: np.ndarray, amax: float, _percentile: float = 0.0, stride: int = 2) -> float:
    """TensorRT's entropy calibration: for each candidate threshold (a bin edge), the reference P is the
    histogram up to it with everything beyond added to its last bin; Q is P's bins merged into 128 levels
    and spread back evenly over the bins that held values. The threshold of least KL(P || Q) wins (the
    largest one among equals). The first bin (exact zeros) counts as much as the second."""
    hist = hist.astype(np.float64)
    hist[0] = hist[1]  # the spike of exact zeros (after a ReLU, half the values) would dominate every
    bins = len(hist)   # merged level 0 and pull the threshold down; TensorRT's calibrator discounts it too
    best, best_i = np.inf, bins
    for i in range(LEVELS, bins + 1, stride):
        reference = hist[:i].copy()
        reference[-1] += hist[i:].sum()
        level = (np.arange(i) * LEVELS) // i
        held = hist[:i] > 0
        counts = np.bincount(level, weights=hist[:i], minlength=LEVELS)
        spread = np.bincount(level, weights=held, minlength=LEVELS)
        q = np.where(held, counts[level] / np.maximum(spread[level], 1), 0.0)
        p = reference / reference.sum()
        q = q / max(q.sum(), 1e-300)
        mask = p > 0
        divergence = float(np.sum(p[mask] * np.log(p[mask] / np.maximum(q[mask], 1e-12))))
        if divergence <= best:
            best, best_i = divergence, i
    return amax * best_i / bins
