"""Lowerings: IR -> PyTorch module, IR -> ONNX model (TensorRT joins in a later issue)."""
