"""What `specc build` does for a precision below fp32: lower the graph, then guard the accuracy.

    precision = --precision, else build.precision
    fp16/int8: the precision passes after the standard pipeline (int8: calibrated on
               --calibration-data or build.calibration.data)
    guard:     --check-accuracy: always; --no-check-accuracy: never; by default when the build has
               weights from a file and the spec's data set is on this machine (untrained weights have
               no accuracy to keep, and a default check never downloads)
"""

from __future__ import annotations

from specc.precision.pipeline import Lowered, lower_precision


def reduce_precision(graph, spec, precision: str, *, calibration_data=None, data_dir=None, limits=None) -> Lowered:
    keep = tuple(spec.build.get("keep_fp32") or ())
    calibration = None
    if precision == "int8":
        from specc.precision.calibration import load_calibration_set

        calibration = load_calibration_set(spec, graph, data_file=calibration_data, data_dir=data_dir, limits=limits)
    return lower_precision(graph, precision, keep, calibration)


def guard_accuracy(spec, precision: str, model_bytes: bytes | None, fp32_graph, lowered: Lowered, *,
                   check: bool | None, weights: str | None, data_dir=None, limits=None) -> dict:
    """The manifest's `accuracy` entry; raises E085 when the drop is over `build.max_accuracy_drop`.
    `fp32_graph()` makes the float32 graph with the same weights and standard passes."""
    from specc.precision import accuracy

    if check is False:
        return {"checked": False, "reason": "--no-check-accuracy"}
    if check is None and not weights:
        return {"checked": False, "reason": "built with initial weights (give --weights, or --check-accuracy)"}
    if model_bytes is None:
        return {"checked": False, "reason": "the model is stored with external data (over 1.8 GB)"}
    if len(lowered.graph.inputs) != 1:
        return {"checked": False, "reason": "the model has several inputs; the check feeds one"}
    if len(lowered.graph.outputs) == 0 or next(iter(lowered.graph.outputs.values())).type.rank != 2:
        return {"checked": False, "reason": "the first output is not (batch, classes)"}
    x, y, split = accuracy.held_out(spec, data_dir, limits, required=check is True)
    if x is None:
        return {"checked": False, "reason": split}
    from specc.codegen.onnx_export import to_onnx

    reference = fp32_graph()
    report = accuracy.compare(to_onnx(reference, None, spec.build["opset"]).SerializeToString(), model_bytes, x, y)
    report = {"checked": True, "split": split, **report, "max_drop": spec.build.get("max_accuracy_drop", 1.0)}
    if report.get("drop", 0.0) > report["max_drop"]:
        layers = accuracy.layer_errors(reference, lowered.graph, x)
        method = lowered.calibration["method"] if lowered.calibration else None
        accuracy.check_drop(report, report["max_drop"], precision, layers, spec.span_of("build", "max_accuracy_drop"),
                            method)
    return report
