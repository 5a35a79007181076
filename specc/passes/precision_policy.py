"""What the precision passes keep in float32 and what int8 quantizes, shared by them.

`build.keep_fp32` names layers (a block use names every layer inside it) or ops; these ops are
always kept, whatever the spec says: their sums of exponentials and their mean/variance
statistics lose too much in float16 or int8 (softmax of logits above ~11 overflows exp() in
float16; gcn's eps of 1e-8 is below float16's smallest number).
"""

from __future__ import annotations

DEFAULT_KEEP_FP32 = ("softmax", "log_softmax", "layernorm", "gcn", "lcn",
                     "tta_view")  # moves pixels only; ONNX Runtime's CPU GridSample and Pad take no float16

# Layers that int8 computes: a convolution or a matrix product by a weight. Dense on a sequence
# (rank > 2, lowered as MatMul + Add) stays float: neither runtime fuses that form with Q/DQ.
INT8_COMPUTE = ("conv", "dense", "gemm")

# A conv or dense reading fewer channels (features) per group than this stays float: ONNX Runtime's x86
# int8 convolution is slower than its float one there (nielsen_final's first conv, 1 channel 5x5:
# 4.5 ms in int8 against 1.2 ms in float at batch 64; docs/precision.md has the measurements).
MIN_INT8_CHANNELS = 16

# Ops that move values without computing new ones: a Q/DQ pair on each side with the same scale
# lets ONNX Runtime run them on int8 (it drops the pair), and TensorRT moves the pair across them.
INT8_PASSTHROUGH = ("maxpool", "flatten", "reshape", "permute")


def keeps_fp32(node, keep: tuple = ()) -> bool:
    """Whether `node` stays float32: a default op, an op named in `keep`, or a layer (or block use) in it."""
    if node.op in DEFAULT_KEEP_FP32 or node.op in keep:
        return True
    return any(n == node.name or n == node.layer or node.name.startswith(n + ".") for n in keep)


def int8_compute(node, keep: tuple = ()) -> bool:
    """Whether `quantize_int8` turns `node` into an int8 layer (int8 input, int8 weight)."""
    if node.op not in INT8_COMPUTE or keeps_fp32(node, keep) or "weight" not in node.params:
        return False
    if node.op != "conv" and node.inputs[0].type.rank != 2:
        return False
    x = node.inputs[0].type
    channels = x.shape[1] // node.attrs.get("groups", 1) if node.op == "conv" else x.shape[-1]
    return channels >= MIN_INT8_CHANNELS
