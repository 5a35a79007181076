"""Work a training step leaves out to be fast gives exactly what doing it would: the floor of log p, the
running accuracy counted from a table of the epoch's predictions, and the torch module's execution plan
built once."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import train_fixtures as tf
from specc.codegen.torch_module import to_torch
from specc.train.losses import _TINY, floored_log
from specc.train.loop import ROW_BLOCK, _Sums, row_views

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def clamped_log(p):
    """The floor as the loss always computed it."""
    return torch.log(p.clamp_min(_TINY))


def loss_and_gradient(log, logits, y):
    z = logits.clone().requires_grad_()
    loss = F.nll_loss(log(torch.softmax(z, dim=-1)), y)
    loss.backward()
    return loss.detach(), z.grad


@pytest.mark.parametrize("scale, changes", [(1.0, False), (200.0, True)])
def test_floored_log_equals_the_clamped_log_in_value_and_gradient(scale, changes):
    """scale 200 saturates the softmax: some probabilities fall below the floor, some to exactly 0 (whose
    plain log would give -inf and a NaN gradient), and the clamp must then run."""
    rng = np.random.default_rng(0)
    logits = torch.from_numpy(rng.standard_normal((32, 10)).astype(np.float32)) * scale
    y = torch.from_numpy(rng.integers(0, 10, 32))
    p = torch.softmax(logits, dim=-1)
    assert bool((p < _TINY).any()) == changes and bool((p == 0).any()) == changes
    assert torch.equal(floored_log(p), clamped_log(p))
    loss, grad = loss_and_gradient(floored_log, logits, y)
    want_loss, want_grad = loss_and_gradient(clamped_log, logits, y)
    assert torch.equal(loss, want_loss) and torch.equal(grad, want_grad)
    if changes:  # the case the check is for: without the floor the result would differ
        assert not torch.equal(loss_and_gradient(torch.log, logits, y)[1], want_grad)


def test_floored_log_keeps_nan_and_empty_batches():
    p = torch.tensor([[0.5, float("nan")], [1e-35, 1.0]])
    assert torch.equal(floored_log(p).isnan(), clamped_log(p).isnan())
    assert floored_log(p)[1, 0] == clamped_log(p)[1, 0]
    assert floored_log(torch.empty(0, 3)).shape == (0, 3)


@pytest.mark.parametrize("device", [None, torch.device("cuda")])  # cuda: only the type matters (see _Sums)
@pytest.mark.parametrize("start", [0, 3])  # 3: an epoch resumed after its third mini-batch
def test_accuracy_from_the_epoch_table_equals_a_count_per_batch(device, start):
    rng = np.random.default_rng(1)
    steps, n = 40, 7
    labels = torch.from_numpy(rng.integers(0, 4, (steps, n)))
    outs = torch.from_numpy(rng.standard_normal((steps, n, 4)).astype(np.float32))
    outs[5, 2] = outs[5, 2, 0]  # a tie: the first of the equal classes is the prediction, in both ways
    table, each = _Sums(device=device, labels=labels, start=start), _Sums(device=device)
    for step in range(start, steps):
        out, y = outs[step], labels[step]
        loss = F.cross_entropy(out, y)
        assert table.add(loss, out, y) == each.add(loss, out, y)
        if step == 20:  # a progress update part-way reads the count so far
            table.settle()
            each.settle()
            assert (table.correct, table.count) == (each.correct, each.count)
    assert table.as_dict() == each.as_dict()
    assert each.correct == int((outs[start:].argmax(dim=-1) == labels[start:]).sum())


@pytest.mark.parametrize("start", [0, 3, ROW_BLOCK])
def test_row_views_are_the_rows_of_the_table_across_blocks(start):
    table = torch.arange((2 * ROW_BLOCK + 5) * 3).view(-1, 3)
    rows = list(row_views(table, start))
    assert len(rows) == len(table) - start
    assert all(torch.equal(row, table[start + i]) for i, row in enumerate(rows))
    rows[-1].fill_(-1)  # views: writing one writes the table (the accuracy table is filled this way)
    assert (table[-1] == -1).all()


def test_the_module_reads_parameters_replaced_after_it_was_built(tmp_path):
    """The execution plan is built once, but parameters are looked up at each call: a state loaded with
    `assign=True` (new Parameter and buffer objects) is what the next forward pass computes with."""
    s, _ = tf.session(tmp_path, "epochs: 1\nbatch_size: 16", network="bn")
    graph = s.compiled.graph
    module = to_torch(graph).eval()
    x = torch.from_numpy(tf.blobs(5, 0).x)
    doubled = {name: value.data.numpy() * 2 for name, value in graph.params.items()}
    module.load_state_dict({k: v * 2 for k, v in module.state_dict().items()}, assign=True)
    want = to_torch(graph, doubled).eval()(x)["output"]
    assert torch.equal(module(x)["output"], want)
