"""GPU runtimes for `specc predict` and benchmarks: a TensorRT engine, or an ONNX model on ONNX Runtime's
CUDA and TensorRT execution providers. Each has the call shape of the CPU path:
`run(model_path, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]`, and a session class that keeps the
loaded model for repeated runs."""
