"""specc: a declarative model-spec compiler (YAML -> typed IR -> PyTorch / ONNX)."""

__version__ = "0.1.0"
