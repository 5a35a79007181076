"""Reduced precision for built models: the fp16 and int8 pass pipelines, int8 calibration and the
accuracy guard (see docs/precision.md)."""

PRECISIONS = ("fp32", "fp16", "int8")
