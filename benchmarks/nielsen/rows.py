"""Michael Nielsen's MNIST table ("Neural Networks and Deep Learning", chapter 6, network3.py) and the spec
that reproduces each row, plus our own networks that try to beat it.

Nielsen's protocol: 50,000 training images, 10,000 held out for validation, the test accuracy reported at
the epoch of best validation accuracy; mini-batch 10, plain SGD. The accuracies are his, as printed in the
chapter (http://neuralnetworksanddeeplearning.com/chap6.html).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Row:
    key: str                 # the table's row label: 1..8 for Nielsen's rows, a name for ours
    spec: str                # file name under specs/
    network: str             # one line for the table
    nielsen: float | None    # his test accuracy in percent (None: a network of ours)


ROWS = (
    Row("1", "nielsen_shallow.yaml", "784-100-10, sigmoid, 60 epochs, eta 0.1", 97.80),
    Row("2", "nielsen_conv1.yaml", "conv 20x5x5 + maxpool 2, 100 sigmoid", 98.78),
    Row("3", "nielsen_conv2.yaml", "two conv-pool layers (20, 40), 100 sigmoid", 99.06),
    Row("4", "nielsen_relu.yaml", "as 3 with ReLU, l2 0.1, eta 0.03", 99.23),
    Row("5", "nielsen_expanded.yaml", "as 4 on the expanded data (250,000 images)", 99.37),
    Row("6", "nielsen_extra_fc.yaml", "as 5 plus a second 100-unit ReLU layer", 99.43),
    Row("7", "nielsen_final.yaml", "2 x 1000 ReLU with dropout 0.5, 40 epochs, expanded", 99.60),
    Row("8", "nielsen_ensemble.yaml", "vote of 5 row-7 networks", 99.67),
    Row("ours", "mnist_best.yaml", "BN convnet, affine augmentation, Adam one-cycle", None),
    Row("ours x5", "mnist_best_ensemble.yaml", "mean of 5 mnist_best networks", None),
)

# What `run.py` trains when no spec is named: the table's single networks (the ensembles train 5 each).
DEFAULT_SPECS = tuple(row.spec for row in ROWS if row.key in ("1", "2", "3", "4", "5", "6", "7", "ours"))


def row_of(spec_file: str) -> Row | None:
    return next((row for row in ROWS if row.spec == spec_file), None)
