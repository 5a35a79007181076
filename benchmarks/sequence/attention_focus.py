"""Where does the trained attention of specs/attention_task.yaml look? The evidence that it learned to
attend, not only that the model scores well.

    python benchmarks/sequence/attention_focus.py RUN_DIR/model.safetensors [--spec specs/attention_task.yaml]

On the test split of the task's .npz it reports:
  - the attention weight on the answer's position (marker + 1), averaged over the test sequences, and
    how often it is the largest of the 24 weights;
  - the model's test accuracy as built, and the accuracy with the same weights when the attention is
    replaced by a plain mean over the positions (the weights a_j all 1/24): the ablation shows that the
    model's accuracy comes from where the attention looks.
The attention weights are recomputed from the layer's inputs (`query`, `keys`) and its stored tensors with
the same formula as the op's lowerings: e_j = v . tanh(W_q q + W_k k_j), a = softmax(e).
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np
import torch

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
sys.path.insert(0, ROOT)

from specc.codegen.torch_module import to_torch  # noqa: E402
from specc.codegen.weights import load_weights  # noqa: E402
from specc.compiler import compile_spec  # noqa: E402
from specc.limits import DEFAULT_LIMITS  # noqa: E402
from make_attention_task import MARKER  # noqa: E402


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("weights")
    parser.add_argument("--spec", default=os.path.join(ROOT, "specs", "attention_task.yaml"))
    args = parser.parse_args(argv)
    graph = compile_spec(args.spec, DEFAULT_LIMITS).graph
    attention = next(n for n in graph.nodes if n.op == "attention")
    classifier = [n for n in graph.nodes if n.op == "dense"][-1]
    for name, value in (("query", attention.inputs[0]), ("keys", attention.inputs[1])):
        graph.set_output(name, value)
    weights = load_weights(args.weights, graph)
    module = to_torch(graph, weights).eval()
    data_path = os.path.join(os.path.dirname(args.spec), "data", "attention_task.npz")
    with np.load(data_path) as archive:
        x, y = archive["x_test"].astype(np.int64), archive["y_test"].astype(np.int64)
    with torch.no_grad():
        out = module(torch.from_numpy(x))
    q, k = out["query"].numpy(), out["keys"].numpy()
    w = {local: weights[value.name] for local, value in attention.params.items()}
    scores = np.tanh((q @ w["query_weight"].T)[:, None, :] + k @ w["key_weight"].T) @ w["score_weight"][0]
    a = np.exp(scores - scores.max(1, keepdims=True))
    a /= a.sum(1, keepdims=True)
    answer = np.argmax(x == MARKER, axis=1) + 1
    rows = np.arange(len(x))
    on_answer = a[rows, answer]
    predicted = out["output"].numpy().argmax(1)
    head = {local: weights[value.name] for local, value in classifier.params.items()}
    uniform = k.mean(1) @ head["weight"].T + head["bias"]
    print(f"{len(x):,} test sequences of {x.shape[1]} positions")
    print(f"attention weight on the answer's position: mean {on_answer.mean():.3f}, median {np.median(on_answer):.3f}; "
          f"the largest weight in {np.mean(a.argmax(1) == answer):.1%} of sequences")
    print(f"test accuracy as built: {np.mean(predicted == y):.2%}; with the attention replaced by a uniform mean "
          f"over the positions: {np.mean(uniform.argmax(1) == y):.2%} (chance 10%)")


if __name__ == "__main__":
    main()
