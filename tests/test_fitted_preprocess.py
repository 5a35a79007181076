"""`mean_image` and `zca`: fitted on the training set, then the same numbers in torch and ONNX Runtime."""

import numpy as np
import onnxruntime as ort
import pytest
import torch

from specc.codegen.onnx_export import to_onnx
from specc.codegen.torch_module import to_torch
from specc.codegen.weights import init_weights
from specc.compiler import compile_spec
from specc.diagnostics import SpeccError
from specc.limits import DEFAULT_LIMITS
from specc.train.fitted import fit_preprocessing
from specc.train.mnist import sample_path


def compiled(tmp_path, input_decl, *steps):
    """A model whose output is its preprocessed input (`identity` network)."""
    path = tmp_path / "fit.yaml"
    body = "\n".join(f"  - {s}" for s in steps)
    path.write_text(f"specc: 1\nname: fit\ninputs:\n  x: {input_decl}\npreprocess:\n{body}\nnetwork:\n  - identity\n")
    return compile_spec(str(path), DEFAULT_LIMITS).graph


def both(graph, fitted, x):
    """(torch output, ONNX Runtime output) of the graph with the fitted buffers."""
    weights = init_weights(graph)
    weights.update(fitted)
    module = to_torch(graph, weights).eval()
    with torch.no_grad():
        out_torch = module(torch.from_numpy(x))["output"].numpy()
    session = ort.InferenceSession(to_onnx(graph, weights).SerializeToString(), providers=["CPUExecutionProvider"])
    return out_torch, session.run(None, {"x": x})[0]


def test_mean_image_centres_the_training_set(tmp_path):
    x = np.load(sample_path())["x_train"][:, None]  # (2000, 1, 28, 28) uint8, real MNIST
    graph = compiled(tmp_path, "{shape: [1, 28, 28], dtype: uint8}", "scale: ${1/255}", "mean_image")
    fitted = fit_preprocessing(graph, x)
    assert set(fitted) == {"preprocess.mean_image_2.mean"}
    assert not graph.params["preprocess.mean_image_2.mean"].trainable
    mean = fitted["preprocess.mean_image_2.mean"]
    assert mean.shape == (1, 28, 28) and mean.dtype == np.float32
    np.testing.assert_allclose(mean, x.mean(axis=0) / 255, atol=1e-6)  # of the scaled pixels: steps run in order
    out_torch, out_onnx = both(graph, fitted, x)
    assert np.abs(out_torch.mean(axis=0)).max() < 1e-5
    np.testing.assert_allclose(out_onnx, out_torch, atol=1e-4)


def correlated(n, shape, seed=0):
    """Gaussian data with a strongly non-diagonal covariance and a non-zero mean."""
    rng = np.random.default_rng(seed)
    d = int(np.prod(shape))
    mixing = rng.standard_normal((d, d)) + 3 * np.eye(d)
    return (rng.standard_normal((n, d)) @ mixing + 5).astype(np.float32).reshape((n,) + shape)


def test_zca_whitens_the_training_set(tmp_path):
    x = correlated(4000, (3, 4, 4))
    graph = compiled(tmp_path, "{shape: [3, 4, 4]}", "zca: {eps: 1.0e-6}")
    fitted = fit_preprocessing(graph, x)
    mean, whiten = fitted["preprocess.zca_1.mean"], fitted["preprocess.zca_1.whiten"]
    assert mean.shape == (48,) and whiten.shape == (48, 48)
    np.testing.assert_allclose(whiten, whiten.T, atol=1e-5)
    out_torch, out_onnx = both(graph, fitted, x)
    assert out_torch.shape == x.shape
    flat = out_torch.reshape(len(x), -1).astype(np.float64)
    assert np.abs(flat.mean(axis=0)).max() < 1e-3
    assert np.abs(np.cov(flat, rowvar=False, bias=True) - np.eye(48)).max() < 1e-2
    assert np.abs(np.cov(x.reshape(len(x), -1), rowvar=False) - np.eye(48)).max() > 1  # it was not white before
    np.testing.assert_allclose(out_onnx, out_torch, atol=1e-4)


def test_fitting_sees_the_model_input_path(tmp_path):
    """NHWC uint8 input: fitting runs the model's own layout transpose and cast before the step."""
    x = np.random.default_rng(1).integers(0, 256, (300, 5, 6, 2), dtype=np.uint8)
    graph = compiled(tmp_path, "{shape: [5, 6, 2], dtype: uint8, layout: NHWC}", "mean_image")
    mean = fit_preprocessing(graph, x)["preprocess.mean_image_1.mean"]
    np.testing.assert_allclose(mean, x.mean(axis=0).transpose(2, 0, 1), rtol=1e-6)
    out_torch, out_onnx = both(graph, {"preprocess.mean_image_1.mean": mean}, x)
    np.testing.assert_allclose(out_onnx, out_torch, atol=1e-4)


def test_unfitted_steps_are_the_identity(tmp_path):
    x = correlated(8, (2, 3, 3))
    graph = compiled(tmp_path, "{shape: [2, 3, 3]}", "mean_image", "zca")
    out_torch, out_onnx = both(graph, {}, x)
    np.testing.assert_allclose(out_torch, x, atol=1e-5)
    np.testing.assert_allclose(out_onnx, x, atol=1e-5)
    fitted = fit_preprocessing(graph, correlated(500, (2, 3, 3)))
    assert set(fitted) == {"preprocess.mean_image_1.mean", "preprocess.zca_2.mean", "preprocess.zca_2.whiten"}
    # zca is fitted on the output of the fitted mean_image: its own mean is then ~0.
    assert np.abs(fitted["preprocess.zca_2.mean"]).max() < 1e-4


def test_zca_on_large_inputs_is_refused(tmp_path):
    with pytest.raises(SpeccError) as info:
        compiled(tmp_path, "{shape: [3, 40, 40]}", "zca")
    diagnostic = info.value.diagnostics[0]
    assert diagnostic.code == "E060" and "4800x4800" in diagnostic.message and "4096" in diagnostic.message
    assert "resize" in diagnostic.hint
