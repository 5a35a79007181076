"""Fitting the preprocessing steps that learn from the training set: `mean_image` and `zca`.

The chain from the first input to the last fitted step runs through the ops'
own torch lowerings (the input adapters, `scale`, `gcn`, ...), in order, so a
fitted step sees exactly what the model will feed it: in `scale: 1/255` then
`mean_image`, the mean is of the scaled pixels. Each fitted step gets one pass
over the training set in chunks, accumulating in float64; the steps after it
in that pass use the values just fitted.

    mean_image:  mean = (1/n) sum_i x_i                               (per value)
    zca:         mean = (1/n) sum_i x_i,  C = (1/n) sum_i (x_i - mean)(x_i - mean)^T = U S U^T,
                 whiten = U diag(1 / sqrt(S + eps)) U^T                (symmetric: x W = W x)
"""

from __future__ import annotations

import numpy as np
import torch

from specc.ops import STEPS

FITTED_STEPS = ("mean_image", "zca")
CHUNK = 4096  # examples per forward pass: bounds memory on large training sets


def fit_preprocessing(graph, train_x: np.ndarray) -> dict:
    """Buffers of every fitted preprocessing step, by tensor name (`preprocess.zca_1.whiten`), computed on
    `train_x` (raw training examples in the input's layout and dtype, as `load_dataset` returns them)."""
    chain = _preprocess_chain(graph)
    fitted: dict = {}
    for position, node in enumerate(chain):
        if node.op not in FITTED_STEPS:
            continue
        before = chain[:position]
        if node.op == "mean_image":
            total = _accumulate(before, graph, fitted, train_x, lambda x: x.sum(axis=0))
            fitted[_name(graph, node, "mean")] = (total / len(train_x)).astype(np.float32)
        else:
            mean, whiten = _zca(before, graph, fitted, train_x, node.attrs["eps"])
            fitted[_name(graph, node, "mean")] = mean
            fitted[_name(graph, node, "whiten")] = whiten
    return fitted


def _zca(before: list, graph, fitted: dict, train_x: np.ndarray, eps: float) -> tuple:
    n = len(train_x)
    mean = _accumulate(before, graph, fitted, train_x, lambda x: x.reshape(len(x), -1).sum(axis=0)) / n

    def scatter(x):
        centred = x.reshape(len(x), -1) - mean
        return centred.T @ centred

    covariance = _accumulate(before, graph, fitted, train_x, scatter) / n
    eigenvalues, vectors = np.linalg.eigh(covariance)
    eigenvalues = np.clip(eigenvalues, 0.0, None)  # round-off can make the smallest slightly negative
    whiten = (vectors * (1.0 / np.sqrt(eigenvalues + eps))) @ vectors.T
    return mean.astype(np.float32), whiten.astype(np.float32)


def _accumulate(chain: list, graph, fitted: dict, train_x: np.ndarray, statistic) -> np.ndarray:
    """sum over chunks of statistic(chain(chunk) as float64)."""
    steps = [(_opdef(node), dict(node.attrs), {local: torch.from_numpy(array) for local, array in
                                               _buffers(graph, node, fitted).items()}) for node in chain]
    total = np.zeros(())  # broadcasts against the first chunk's statistic
    with torch.no_grad():
        for start in range(0, len(train_x), CHUNK):
            x = torch.from_numpy(np.ascontiguousarray(train_x[start:start + CHUNK]))
            for op, attrs, params in steps:
                x = op.torch_forward(attrs, params, [x], False)
            part = statistic(x.numpy().astype(np.float64))
            total = total + part
    return total


def _preprocess_chain(graph) -> list:
    """The nodes from the first input through its adapters (layout, cast) and preprocessing steps."""
    current, chain = graph.inputs[0], []
    for node in graph.nodes:
        if node.category in ("internal", "preprocess") and node.inputs and node.inputs[0] is current:
            chain.append(node)
            current = node.output
    last = max((i for i, n in enumerate(chain) if n.op in FITTED_STEPS), default=-1)
    return chain[:last + 1]


def _opdef(node):
    return STEPS[node.category][node.op]


def _buffers(graph, node, fitted: dict) -> dict:
    """local name -> array for the node's data: the values fitted so far, else its initial values."""
    from specc.codegen.weights import tensor_rng

    prefix = node.name + "."
    result = {}
    for name, info in graph.params.items():
        if info.node != node.name:
            continue
        local = name[len(prefix):]
        result[local] = fitted[name] if name in fitted else np.asarray(_opdef(node).init_tensor(
            dict(node.attrs), local, tuple(info.shape), tensor_rng(graph.seed, name)), np.float32)
    return result


def _name(graph, node, local: str) -> str:
    name = f"{node.name}.{local}"
    assert name in graph.params, f"{name} is not a tensor of the graph"
    return name
