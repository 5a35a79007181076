"""Classification metrics, all derived from one confusion matrix.

A confusion matrix adds across batches and across processes (one
all-reduce), so every metric of a distributed evaluation is exact. Precision,
recall and F1 are macro averages over the classes that occur in the labels or
the predictions (scikit-learn's `average="macro"`, with 0 where a class was
never predicted).
"""

from __future__ import annotations

import numpy as np
import torch


class Tally:
    """Running confusion matrix and loss sum of one pass over a split."""

    def __init__(self, num_classes: int, device: torch.device | None = None):
        # The sums live on the device of the predictions: on a GPU, adding a batch never waits for it.
        self.num_classes = num_classes
        self.confusion = torch.zeros(num_classes * num_classes, dtype=torch.int64, device=device)
        self.loss_sum = torch.zeros((), dtype=torch.float64, device=device)
        self.count = 0

    def add(self, predictions: torch.Tensor, labels: torch.Tensor, loss_sum: torch.Tensor | float = 0.0) -> None:
        c = self.num_classes
        self.confusion += torch.bincount(labels * c + predictions, minlength=c * c)
        self.loss_sum += loss_sum
        self.count += int(labels.shape[0])

    def as_tensor(self) -> torch.Tensor:
        """Everything in one float64 vector, for an all-reduce."""
        return torch.cat([self.confusion.cpu().double(), self.loss_sum.cpu().reshape(1),
                          torch.tensor([float(self.count)], dtype=torch.float64)])

    @classmethod
    def from_tensor(cls, vector: torch.Tensor, num_classes: int) -> "Tally":
        tally = cls(num_classes)
        tally.confusion = vector[:-2].round().long()
        tally.loss_sum = vector[-2].clone()
        tally.count = int(round(float(vector[-1])))
        return tally

    def matrix(self) -> np.ndarray:
        """rows: true class, columns: predicted class."""
        return self.confusion.reshape(self.num_classes, self.num_classes).cpu().numpy()

    def results(self, wanted=("accuracy",)) -> dict:
        out = {"loss": float(self.loss_sum) / max(1, self.count)}
        out.update(scores(self.matrix(), wanted))
        return out


def scores(matrix: np.ndarray, wanted=("accuracy",)) -> dict:
    total = matrix.sum()
    out = {"accuracy": float(np.trace(matrix) / total) if total else 0.0}
    if {"precision", "recall", "f1"} & set(wanted):
        true_pos = np.diag(matrix).astype(np.float64)
        predicted, actual = matrix.sum(axis=0), matrix.sum(axis=1)
        present = (predicted + actual) > 0
        precision = np.divide(true_pos, predicted, out=np.zeros_like(true_pos), where=predicted > 0)
        recall = np.divide(true_pos, actual, out=np.zeros_like(true_pos), where=actual > 0)
        denom = precision + recall
        f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(true_pos), where=denom > 0)
        for key, per_class in (("precision", precision), ("recall", recall), ("f1", f1)):
            if key in wanted:
                out[key] = float(per_class[present].mean()) if present.any() else 0.0
    if "confusion" in wanted:
        out["confusion"] = matrix.tolist()
    return out


def higher_is_better(metric: str) -> bool:
    return metric != "loss"
