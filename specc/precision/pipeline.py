"""The passes a precision adds after the standard pipeline, and int8's calibration between them.

    fp16: convert_to_fp16 -> cancel_casts -> dead_code_elimination
    int8: split_activations -> sink_relu -> (calibrate on the float graph) -> quantize_int8 -> dead_code_elimination

The passes are not part of the standard pipeline (`build.passes` does not name them): `build` runs
them when the precision asks for them and lists them in the manifest's `passes`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from specc.passes import PassManager
from specc.passes.cancel_casts import CancelCasts
from specc.passes.convert_to_fp16 import ConvertToFp16
from specc.passes.dead_code_elimination import DeadCodeElimination
from specc.passes.quantize_int8 import QuantizeInt8
from specc.passes.sink_relu import SinkRelu
from specc.passes.split_activations import SplitActivations



@dataclass
class Lowered:
    graph: object
    passes: list = field(default_factory=list)    # names, in the order run
    changes: dict = field(default_factory=dict)   # pass name -> counts of what it changed
    calibration: dict | None = None               # int8: data, samples, method (the manifest's entry)


def _run(graph, passes: tuple, done: Lowered):
    verify = os.environ.get("SPECC_VERIFY_PASSES") == "1"
    graph, report = PassManager(passes, verify_each=verify).run_with_report(graph)
    done.passes += [p.name for p in passes]
    done.changes.update({name: counts for name, counts in report.items() if counts})
    return graph


def lower_precision(graph, precision: str, keep_fp32=(), calibration=None) -> Lowered:
    """Write `precision` into the (optimized, float32) graph. int8 needs a `CalibrationSet`."""
    keep = tuple(keep_fp32)
    done = Lowered(graph)
    if precision == "fp16":
        done.graph = _run(graph, (ConvertToFp16(keep), CancelCasts(), DeadCodeElimination()), done)
    elif precision == "int8":
        from specc.precision.calibration import activation_ranges

        graph = _run(graph, (SplitActivations(keep), SinkRelu()), done)
        ranges, maxima = activation_ranges(graph, calibration)
        done.graph = _run(graph, (QuantizeInt8(ranges, calibration.per_channel, keep, maxima), DeadCodeElimination()),
                          done)
        done.calibration = calibration.manifest()
    return done
