"""Losses on whatever the spec's trained output is.

The rule: the op that produces the output says what its values are.

| last op | values are | `cross_entropy` / `nll` | `bce` | `mse` |
|---|---|---|---|---|
| `softmax` | probabilities | on log p (network3.py's log-likelihood) | on p | on p |
| `sigmoid` (or a layer with `activation: sigmoid`) | probabilities | on log p | on p | on p |
| `log_softmax` | log-probabilities | on the values | on exp | on the values |
| anything else | scores (logits) | log_softmax inside the loss | with logits | on the values |

Cross-entropy on log p of a softmax has the same value and the same gradient
with respect to the logits as cross-entropy on the logits, so a spec that ends
in `softmax` trains as well as one that ends in `dense` (label smoothing
included: (1 - e) * nll + e * mean over classes of -log p, torch's definition). `mse` and `bce`
compare against one-hot targets. Accuracy is the argmax of the output, which
no rule changes.

Training goes one step further: under `cross_entropy` or `nll`, a (batch,
classes) output made by a final `softmax` is trained on the scores that
softmax reads (`SpeccModule.train_on_scores`), so the loss is log_softmax of
the scores, as PyTorch users write it and as Theano's rewrite of network3.py's
cost computed it. The session then holds two losses: `train_loss` on what the
model gives in training mode, `loss` on its (evaluation-mode) probabilities.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

PROBS, LOG_PROBS, SCORES = "probabilities", "log-probabilities", "scores"
_TINY = 1e-30  # log(0) would be -inf: a saturated softmax gives a large finite loss instead


def output_kind(graph, output: str) -> str:
    value = graph.outputs[output]
    node = _producer(graph, value)
    if node is None:
        return SCORES
    if node.op == "softmax" or node.op == "sigmoid" or (node.op in ("dense", "conv")
                                                        and node.attrs.get("activation") == "sigmoid"):
        return PROBS
    if node.op == "log_softmax":
        return LOG_PROBS
    return SCORES


def _producer(graph, value):
    producer = getattr(value, "producer", None)
    if producer is not None:
        return producer
    for node in graph.nodes:
        if any(out.name == value.name for out in getattr(node, "outputs", (node.output,))):
            return node
    return None


def log_scores(output: torch.Tensor, kind: str) -> torch.Tensor:
    """Values whose softmax is the model's class distribution: log p, log-probabilities or logits."""
    return floored_log(output) if kind == PROBS else output


def floored_log(p: torch.Tensor) -> torch.Tensor:
    """log(max(p, _TINY)). While every p is at least _TINY the floor changes neither the value nor the
    gradient, yet its clamp costs two ops a step, a visible share of a small mini-batch's step. On the CPU,
    where reading one number waits for nothing, the floor is applied only when some p is below it; on a GPU
    that read would stall the queue of work, so the clamp always runs."""
    if p.is_cpu and p.numel() and p.detach().min().item() >= _TINY:
        return torch.log(p)
    return torch.log(p.clamp_min(_TINY))


def probabilities(output: torch.Tensor, kind: str) -> torch.Tensor:
    if kind == PROBS:
        return output
    if kind == LOG_PROBS:
        return output.exp()
    return torch.softmax(output, dim=-1)


def make_loss(name: str, args: dict, kind: str):
    """loss(output, labels) -> mean loss over the batch."""
    if name in ("cross_entropy", "nll"):
        smoothing = args.get("label_smoothing", 0.0)
        if kind == SCORES:
            return lambda out, y: F.cross_entropy(out, y, label_smoothing=smoothing)
        return lambda out, y: smoothed_nll(log_scores(out, kind), y, smoothing)
    if name == "mse":
        return lambda out, y: F.mse_loss(out, F.one_hot(y, out.shape[-1]).to(out.dtype))
    if name == "bce":
        if kind == SCORES:
            return lambda out, y: F.binary_cross_entropy_with_logits(out, F.one_hot(y, out.shape[-1]).to(out.dtype))
        to_p = (lambda out: out) if kind == PROBS else torch.exp
        return lambda out, y: F.binary_cross_entropy(to_p(out), F.one_hot(y, out.shape[-1]).to(out.dtype))
    raise ValueError(f"unknown loss {name}")


def smoothed_nll(log_p: torch.Tensor, y: torch.Tensor, smoothing: float) -> torch.Tensor:
    """Cross-entropy on log-probabilities with torch's label smoothing: (1 - e) * nll + e * mean_c(-log p_c)."""
    nll = F.nll_loss(log_p, y)
    if not smoothing:
        return nll
    return (1.0 - smoothing) * nll - smoothing * log_p.mean(dim=-1).mean()


def distillation_loss(student_out, teacher_out, student_kind: str, teacher_kind: str, temperature: float):
    """Hinton et al. 2015: KL(teacher || student) between the distributions softened by T, times T^2
    so that its gradient keeps its scale as T changes."""
    t = temperature
    student = F.log_softmax(log_scores(student_out, student_kind) / t, dim=-1)
    teacher = F.log_softmax(log_scores(teacher_out, teacher_kind) / t, dim=-1)
    return F.kl_div(student, teacher, reduction="batchmean", log_target=True) * (t * t)

