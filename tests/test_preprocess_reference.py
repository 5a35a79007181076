"""GCN and LCN against NumPy transcriptions of SPEC.md's formulas, through both lowerings."""

import numpy as np
import onnxruntime as ort
import pytest
import torch

from specc.codegen.onnx_export import to_onnx
from specc.codegen.torch_module import to_torch
from specc.codegen.weights import init_weights
from specc.compiler import compile_spec
from specc.limits import Limits


def gcn_reference(x, s=1.0, lam=0.0, eps=1e-8):
    """X' = s (X - mean(X)) / max(eps, sqrt(lambda + mean((X - mean(X))^2))), per image."""
    out = np.empty_like(x, dtype=np.float64)
    for i, image in enumerate(x.astype(np.float64)):
        centered = image - image.mean()
        out[i] = s * centered / max(eps, np.sqrt(lam + np.mean(centered ** 2)))
    return out


def lcn_reference(x, size=9, sigma=None, eps=1e-4):
    """Subtract the weighted local mean (window over all channels, weights summing to 1 over the
    pixels inside the image); divide by max(eps, mean local std over the image, local std)."""
    n, c, h, w = x.shape
    r = np.arange(size) - size // 2
    if sigma == "box":
        window = np.ones((size, size))
    else:
        sigma = size / 4 if sigma is None else sigma
        window = np.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / (2 * sigma ** 2))
    out = np.empty_like(x, dtype=np.float64)
    x = x.astype(np.float64)
    half = size // 2
    for b in range(n):
        mean = np.zeros((h, w))
        centered = np.empty((c, h, w))
        weights_at = np.zeros((h, w))
        for i in range(h):
            for j in range(w):
                total, weight = 0.0, 0.0
                for dy in range(-half, half + 1):
                    for dx in range(-half, half + 1):
                        y, z = i + dy, j + dx
                        if 0 <= y < h and 0 <= z < w:
                            wt = window[dy + half, dx + half]
                            total += wt * x[b, :, y, z].sum()
                            weight += wt * c
                mean[i, j] = total / weight
                weights_at[i, j] = weight
        centered = x[b] - mean
        local_std = np.zeros((h, w))
        for i in range(h):
            for j in range(w):
                total = 0.0
                for dy in range(-half, half + 1):
                    for dx in range(-half, half + 1):
                        y, z = i + dy, j + dx
                        if 0 <= y < h and 0 <= z < w:
                            total += window[dy + half, dx + half] * (centered[:, y, z] ** 2).sum()
                local_std[i, j] = np.sqrt(total / weights_at[i, j])
        divisor = np.maximum(eps, np.maximum(local_std.mean(), local_std))
        out[b] = centered / divisor
    return out


def _spec(tmp_path, shape, step):
    path = tmp_path / "pre.yaml"
    path.write_text(f"specc: 1\nname: pre\ninputs:\n  x: {{shape: {list(shape)}}}\n"
                    f"preprocess:\n  - {step}\nnetwork:\n  - identity\n")
    graph = compile_spec(str(path), Limits()).graph
    weights = init_weights(graph)
    module = to_torch(graph, weights).eval()
    session = ort.InferenceSession(to_onnx(graph, weights).SerializeToString(), providers=["CPUExecutionProvider"])
    return module, session


def _both(module, session, x):
    with torch.no_grad():
        via_torch = module(torch.from_numpy(x))["output"].numpy()
    via_onnx = session.run(None, {"x": x})[0]
    return via_torch, via_onnx


@pytest.mark.parametrize("args,kw", [
    ("{}", {}),
    ("{scale: 55, lambda: 10, eps: 1e-8}", {"s": 55.0, "lam": 10.0, "eps": 1e-8}),
    ("{scale: 1, lambda: 0, eps: 1.0}", {"eps": 1.0}),
])
def test_gcn_matches_formula(tmp_path, args, kw):
    module, session = _spec(tmp_path, (3, 8, 8), f"gcn: {args}")
    x = np.random.default_rng(0).uniform(0, 1, (4, 3, 8, 8)).astype(np.float32)
    x[1] = 0.25  # a constant image: the eps floor matters
    want = gcn_reference(x, **kw)
    for got in _both(module, session, x):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("args,kw", [
    ("{size: 5}", {"size": 5}),
    ("{size: 3, sigma: box, eps: 0.01}", {"size": 3, "sigma": "box", "eps": 0.01}),
    ("{size: 7, sigma: 1.0}", {"size": 7, "sigma": 1.0}),
])
def test_lcn_matches_formula(tmp_path, args, kw):
    module, session = _spec(tmp_path, (2, 10, 9), f"lcn: {args}")
    x = np.random.default_rng(1).uniform(0, 1, (2, 2, 10, 9)).astype(np.float32)
    want = lcn_reference(x, **kw)
    for got in _both(module, session, x):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_normalize_resize_crop_uint8_nhwc(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("specc: 1\nname: p\ninputs:\n  x: {shape: [12, 10, 3], dtype: uint8, layout: NHWC}\n"
                    "preprocess:\n  - scale: ${1/255}\n  - normalize: {mean: [0.5, 0.4, 0.3], std: [0.2, 0.25, 0.3]}\n"
                    "  - resize: [9, 8]\n  - center_crop: [5, 6]\nnetwork:\n  - identity\n")
    graph = compile_spec(str(path), Limits()).graph
    weights = init_weights(graph)
    module = to_torch(graph, weights).eval()
    session = ort.InferenceSession(to_onnx(graph, weights).SerializeToString(), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(2).integers(0, 256, (2, 12, 10, 3)).astype(np.uint8)
    nchw = x.transpose(0, 3, 1, 2).astype(np.float32) / 255
    nchw = (nchw - np.array([0.5, 0.4, 0.3]).reshape(1, 3, 1, 1)) / np.array([0.2, 0.25, 0.3]).reshape(1, 3, 1, 1)
    resized = torch.nn.functional.interpolate(torch.from_numpy(nchw.astype(np.float32)), size=(9, 8),
                                              mode="bilinear", align_corners=False).numpy()
    want = resized[:, :, 2:7, 1:7]
    for got in _both(module, session, x):
        assert got.shape == (2, 3, 5, 6)
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
