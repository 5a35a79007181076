"""Lowerings: IR -> PyTorch module, IR -> ONNX model, and ONNX -> TensorRT engine (`tensorrt_engine`, checked
statically by `tensorrt_check`)."""
