"""Evaluation passes: a model (or several) over one split, into a `Tally` of confusion and loss."""

from __future__ import annotations

import torch

from specc.train.device import to_device
from specc.train.distributed import SINGLE, World
from specc.train.metrics import Tally

EVAL_BATCH = 256  # evaluation holds no gradients; a larger batch only saves Python overhead


@torch.no_grad()
def evaluate(predict, x: torch.Tensor, y: torch.Tensor, loss_fn, num_classes: int, world: World = SINGLE,
             batch_size: int = EVAL_BATCH, device: torch.device | None = None) -> Tally:
    """`predict(x) -> output` (eval mode) on host tensors `x`, `y`, each batch copied to `device` (the
    predictor's; default the CPU). Each process takes a contiguous share; the tallies are summed."""
    device = device or torch.device("cpu")
    n = len(y)
    lo, hi = n * world.rank // world.size, n * (world.rank + 1) // world.size
    tally = Tally(num_classes, device)
    for start in range(lo, hi, batch_size):
        end = min(start + batch_size, hi)
        xb, yb = to_device(x[start:end], device), to_device(y[start:end], device)
        out = predict(xb)
        loss = loss_fn(out, yb) * len(yb) if loss_fn is not None else 0.0
        tally.add(out.argmax(dim=-1), yb, loss)
    if world.size > 1:
        tally = Tally.from_tensor(world.all_reduce_sum(tally.as_tensor()), num_classes)
    return tally


def module_predictor(module, output: str):
    module.eval()
    return lambda x: module(x)[output]


# --- `specc eval` -------------------------------------------------------------------------------

ALL_METRICS = ("accuracy", "precision", "recall", "f1", "confusion")


def evaluate_spec(spec_path: str, weights_path: str, *, data_dir: str | None = None, limits=None,
                  dataset=None, device: str = "cpu") -> dict:
    """Metrics of a spec with trained weights (a run's model.safetensors, or an ensemble's) on the test split,
    computed on `device` (`auto`, `cpu` or `cuda`, as `specc eval --device`)."""
    from specc.compiler import compile_spec
    from specc.limits import DEFAULT_LIMITS
    from specc.train.config import training_config
    from specc.train.device import describe, resolve_device
    from specc.train.feed import Arrays, load_arrays
    from specc.train.losses import PROBS, make_loss

    limits = limits or DEFAULT_LIMITS
    where = resolve_device(device, spec_path)
    compiled = compile_spec(spec_path, limits)
    spec, graph = compiled.spec, compiled.graph
    if dataset is None and not (spec.training and spec.training.get("data")):
        from specc.diagnostics import Span, error

        raise error("E100", "specc eval reads the test split named by `training.data`, and the spec has none",
                    Span(spec.path), "add e.g. `training: {data: {dataset: mnist}}`")
    output = next(iter(graph.outputs))
    num_classes = graph.outputs[output].type.shape[-1]
    predict, kind, members = load_predictor(graph, weights_path, where)  # before the data: a bad path fails fast
    arrays = Arrays.from_dataset(dataset) if dataset is not None else \
        load_arrays(compiled, data_dir, limits, num_classes)
    if arrays.test_x is None:
        from specc.diagnostics import Span, error

        raise error("E100", f"the data set `{arrays.name}` has no test split", Span(spec.path),
                    "give the data set a test split (e.g. x_test/y_test in an .npz)")
    cfg = training_config(spec.training or {"epochs": 1, "batch_size": 1, "loss": "cross_entropy",
                                            "optimizer": "sgd", "schedule": "constant"})
    loss = make_loss(*cfg.loss, kind if members == 1 else PROBS)
    tally = evaluate(predict, host_tensor(arrays.test_x), host_tensor(arrays.test_y), loss, num_classes,
                     device=where)
    return {"spec": spec_path, "weights": weights_path, "members": members, "data": arrays.name, "split": "test",
            "examples": tally.count, "device": describe(where), "metrics": tally.results(ALL_METRICS)}


def host_tensor(array) -> torch.Tensor:
    """A tensor sharing the array's memory. Data sets may be read-only arrays (memory-mapped or from a
    buffer); evaluation and training only read them, so torch's warning about that would only alarm."""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return torch.from_numpy(array)


def load_predictor(graph, weights_path: str, device: torch.device | None = None):
    """(predict, output kind, members) for a single model's or an ensemble's weights file, on `device`."""
    from specc.codegen.weights import load_weights
    from specc.train.device import torch_model
    from specc.train.ensemble import PREFIX, EnsemblePredictor, is_ensemble_file, member_weights
    from specc.train.losses import output_kind

    output = next(iter(graph.outputs))
    kind = output_kind(graph, output)
    tensors = _read_tensors(weights_path)
    if is_ensemble_file(tensors):
        from safetensors import safe_open

        from specc.ensemble_build import ensemble_metadata

        with safe_open(weights_path, "np") as handle:
            metadata = handle.metadata() or {}
        indices = {int(PREFIX.match(key).group(1)) for key in tensors}  # is_ensemble_file: every key matches
        combine = ensemble_metadata(metadata, weights_path, sorted(indices))["combine"]
        members = member_weights(tensors, graph, weights_path)
        modules = [torch_model(graph, w, device) for w in members]
        return EnsemblePredictor(modules, kind, combine), kind, len(members)
    return module_predictor(torch_model(graph, load_weights(weights_path, graph), device), output), kind, 1


def _read_tensors(path: str) -> dict:
    import os

    from specc.codegen.weights import missing_weights, unreadable_weights

    if not os.path.isfile(path):
        raise missing_weights(path)
    try:
        from safetensors.numpy import load_file

        return load_file(path)
    except Exception as exc:  # safetensors raises its own error types for malformed headers
        raise unreadable_weights(path, exc) from None


def format_report(report: dict) -> str:
    m = report["metrics"]
    what = f"{report['members']} members" if report["members"] > 1 else "1 model"
    lines = [f"{report['data']} {report['split']} split: {report['examples']:,} examples, {what}"]
    for key in ("accuracy", "precision", "recall", "f1"):
        lines.append(f"  {key:<10} {m[key]:.2%}")
    lines.append(f"  {'loss':<10} {m['loss']:.4f}")
    matrix = m["confusion"]
    if len(matrix) <= 20:
        width = max(4, len(str(max(max(row) for row in matrix))) + 1)
        lines.append("confusion (rows: true class, columns: predicted class)")
        lines.append("    " + "".join(f"{c:>{width}}" for c in range(len(matrix))))
        lines += [f"{r:>4}" + "".join(f"{v:>{width}}" for v in row) for r, row in enumerate(matrix)]
    return "\n".join(lines)
