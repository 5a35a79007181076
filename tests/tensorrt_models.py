"""Small hand-made ONNX models for the TensorRT tests, named as specc names nodes (`<layer>/<OpType>`)."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def model(nodes, inputs, outputs, initializers=(), opset=17, extra_opsets=()) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "case", inputs, outputs, initializer=list(initializers))
    imports = [helper.make_opsetid("", opset)] + [helper.make_opsetid(d, v) for d, v in extra_opsets]
    result = helper.make_model(graph, opset_imports=imports, producer_name="specc-tests")
    result.ir_version = 9
    return result


def tensor(name, elem=TensorProto.FLOAT, shape=("batch", 1, 8, 8)):
    return helper.make_tensor_value_info(name, elem, list(shape))


def const(name, array):
    return numpy_helper.from_array(np.asarray(array), name=name)


def small_convnet(opset=17, input_shape=("batch", 1, 8, 8)) -> onnx.ModelProto:
    """conv_1 (Conv + Relu) -> flatten_2 -> dense_3 (Gemm): what specc emits for a tiny spec."""
    rng = np.random.default_rng(0)
    return model(
        [helper.make_node("Conv", ["image", "conv_1.weight", "conv_1.bias"], ["conv_1/Conv"], name="conv_1/Conv",
                          kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
         helper.make_node("Relu", ["conv_1/Conv"], ["conv_1"], name="conv_1/relu"),
         helper.make_node("Flatten", ["conv_1"], ["flatten_2"], name="flatten_2", axis=1),
         helper.make_node("Gemm", ["flatten_2", "dense_3.weight", "dense_3.bias"], ["logits"], name="dense_3/Gemm",
                          transB=1)],
        [tensor("image", shape=input_shape)], [tensor("logits", shape=("batch", 10))],
        [const("conv_1.weight", rng.standard_normal((4, 1, 3, 3)).astype(np.float32)),
         const("conv_1.bias", np.zeros(4, np.float32)),
         const("dense_3.weight", rng.standard_normal((10, 4 * 8 * 8)).astype(np.float32) * 0.05),
         const("dense_3.bias", np.zeros(10, np.float32))], opset=opset)


def quantized_convnet(zero_point=0, zero_point_type=np.int8) -> onnx.ModelProto:
    """A Q/DQ pair in front of a Conv, as specc's int8 pass writes it (symmetric: zero point 0)."""
    rng = np.random.default_rng(1)
    return model(
        [helper.make_node("QuantizeLinear", ["image", "q.scale", "q.zero"], ["image_q"], name="conv_1/QuantizeLinear"),
         helper.make_node("DequantizeLinear", ["image_q", "q.scale", "q.zero"], ["image_dq"],
                          name="conv_1/DequantizeLinear"),
         helper.make_node("Conv", ["image_dq", "conv_1.weight"], ["out"], name="conv_1/Conv", kernel_shape=[3, 3])],
        [tensor("image")], [tensor("out", shape=("batch", 2, 6, 6))],
        [const("q.scale", np.float32(0.05)), const("q.zero", np.array(zero_point, zero_point_type)),
         const("conv_1.weight", rng.standard_normal((2, 1, 3, 3)).astype(np.float32))])


def fp16_in_graph() -> onnx.ModelProto:
    """fp16 precision written as Casts, as specc's fp16 pass does."""
    return model(
        [helper.make_node("Cast", ["image"], ["image_h"], name="conv_1/Cast", to=TensorProto.FLOAT16),
         helper.make_node("Relu", ["image_h"], ["relu_h"], name="relu_2"),
         helper.make_node("Cast", ["relu_h"], ["out"], name="output/Cast", to=TensorProto.FLOAT)],
        [tensor("image")], [tensor("out")])
