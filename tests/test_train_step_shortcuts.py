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


def _loss_and_gradients(session, loss_fn, x, y):
    session.module.zero_grad(set_to_none=True)
    loss = loss_fn(x, y)
    loss.backward()
    return loss.detach(), [p.grad.clone() for _, p in session.module.spec_parameters()]


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_a_softmax_classifier_trains_on_its_scores(tmp_path, smoothing):
    """In training mode the module gives the scores its final softmax reads, and the loss takes log_softmax
    of them: the value and gradient of the log-likelihood of the probabilities, with one op fewer each way.
    Evaluation mode still gives the probabilities."""
    from specc.train.losses import PROBS, SCORES, floored_log, smoothed_nll

    s, _ = tf.session(tmp_path, f"epochs: 1\nbatch_size: 16\nloss: {{cross_entropy: {{label_smoothing: {smoothing}}}}}")
    assert (s.kind, s.train_kind) == (PROBS, SCORES)
    x, y = tf.batches(1)[0]
    scores = s.module.train()(x)["output"]
    probabilities = s.module.eval()(x)["output"]
    assert torch.equal(torch.softmax(scores, dim=-1), probabilities)
    s.module.train()
    loss, grads = _loss_and_gradients(s, lambda x, y: s.train_loss(s.module(x)["output"], y), x, y)
    s.module.eval()  # the same weights through the softmax (the network has no dropout or batchnorm)
    want, want_grads = _loss_and_gradients(
        s, lambda x, y: smoothed_nll(floored_log(s.module(x)["output"]), y, smoothing), x, y)
    torch.testing.assert_close(loss, want, rtol=1e-6, atol=1e-7)
    for got, expected in zip(grads, want_grads):
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("loss, network", [("bce", "mlp"), ("mse", "mlp"), ("cross_entropy", "logits")])
def test_other_losses_and_outputs_train_on_what_the_model_gives(tmp_path, loss, network):
    """bce and mse compare probabilities with one-hot targets, and a network ending in scores has no softmax to
    leave out: training mode gives what evaluation mode gives."""
    s, _ = tf.session(tmp_path, f"epochs: 1\nbatch_size: 16\nloss: {loss}", network=network)
    assert s.train_kind == s.kind
    x, _ = tf.batches(1)[0]
    assert torch.equal(s.module.train()(x)["output"], s.module.eval()(x)["output"])


def test_a_saturated_softmax_trains_on_finite_scores(tmp_path):
    """Scores 200 apart round the softmax's smaller probabilities to exactly 0, whose plain log is -inf; the loss
    on the scores needs no floor and stays finite, gradient included."""
    s, _ = tf.session(tmp_path, "epochs: 1\nbatch_size: 16")
    with torch.no_grad():
        for _, param in s.module.spec_parameters():
            param.mul_(200.0)
    x, y = tf.batches(1)[0]
    assert bool((s.module.eval()(x)["output"] == 0).any())
    s.module.train()
    loss, grads = _loss_and_gradients(s, lambda x, y: s.train_loss(s.module(x)["output"], y), x, y)
    assert torch.isfinite(loss) and all(torch.isfinite(g).all() for g in grads)
