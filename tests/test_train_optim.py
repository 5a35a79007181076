"""Optimizers, schedules and regularization of `specc train` against torch.optim and network3.py."""

import math
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import train_fixtures as tf
from specc.codegen.torch_module import to_torch
from specc.codegen.weights import init_weights
from specc.train.schedules import make_schedule


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models run fastest on one thread, and the machine running the tests is often shared."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def reference(session):
    """A second module with the session's initial weights, for hand-written PyTorch to train. In training mode
    it gives the scores its final softmax reads, as the session's module does (tested in test_train_loop.py):
    L-BFGS magnifies the rounding by which log(softmax(z)) and log_softmax(z) differ into visible weights."""
    module = to_torch(session.compiled.graph, init_weights(session.compiled.graph))
    assert module.train_on_scores("output")
    return module


def state(module) -> dict:
    return {k: v.copy() for k, v in module.spec_state().items()}


def assert_same(a: dict, b: dict, atol=1e-6):
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_allclose(a[k], b[k], atol=atol, rtol=1e-5, err_msg=k)


def nll_of_probs(module, x, y):
    """network3.py's log-likelihood cost, -log p of the label, computed from the scores (Theano's rewrite)."""
    return F.cross_entropy(module(x)["output"], y)


# --- optimizers --------------------------------------------------------------------------------

def _decay_groups(module, wd):
    weights = [p for _, p in module.spec_parameters() if p.dim() >= 2]
    others = [p for _, p in module.spec_parameters() if p.dim() < 2]
    return [{"params": weights, "weight_decay": wd}, {"params": others, "weight_decay": 0.0}]


OPTIMIZERS = {
    "sgd: {lr: 0.1, momentum: 0.9, nesterov: true}":
        lambda m: torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9, nesterov=True),
    "adagrad: {lr: 0.05}": lambda m: torch.optim.Adagrad(m.parameters(), lr=0.05),
    "rmsprop: {lr: 0.01, rho: 0.8}": lambda m: torch.optim.RMSprop(m.parameters(), lr=0.01, alpha=0.8),
    "adam: {lr: 0.01, betas: [0.8, 0.99], eps: 1.0e-6}":
        lambda m: torch.optim.Adam(m.parameters(), lr=0.01, betas=(0.8, 0.99), eps=1e-6),
    # specc decays weights only (two or more axes), as its l2 penalty does
    "adamw: {lr: 0.01, weight_decay: 0.1}": lambda m: torch.optim.AdamW(_decay_groups(m, 0.1), lr=0.01),
    "lbfgs: {lr: 0.5, history: 5}": lambda m: torch.optim.LBFGS(m.parameters(), lr=0.5, history_size=5),
}


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_optimizer_matches_torch(tmp_path, optimizer):
    session, trainer = tf.session(tmp_path, f"optimizer: {{{optimizer}}}\nbatch_size: 16")
    ref = reference(session)
    torch_opt = OPTIMIZERS[optimizer](ref)
    for x, y in tf.batches(3):
        trainer.step(x, y, 1.0)

        def closure():
            torch_opt.zero_grad()
            loss = nll_of_probs(ref, x, y)
            loss.backward()
            return loss

        torch_opt.step(closure)
    assert_same(state(session.module), state(ref), atol=1e-5)
    assert not np.allclose(state(ref)["dense_2.weight"], init_weights(session.compiled.graph)["dense_2.weight"])


# --- schedules ---------------------------------------------------------------------------------

EPOCHS, STEPS, LR0 = 6, 5, 0.1


def torch_lrs(make, per_step: bool, stepper=None) -> list:
    param = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([param], lr=LR0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sched = make(opt)
        out = []
        for epoch in range(EPOCHS):
            for step in range(STEPS):
                if stepper:
                    stepper(sched, epoch, step)
                out.append(opt.param_groups[0]["lr"])
                if per_step and not stepper:
                    opt.step()
                    sched.step()
            if not per_step and not stepper:
                opt.step()
                sched.step()
    return out


def ours(name, args) -> list:
    lr = make_schedule(name, args, LR0, EPOCHS, STEPS)
    return [lr(e, s) for e in range(EPOCHS) for s in range(STEPS)]


SCHEDULES = [
    ("constant", {}, lambda o: torch.optim.lr_scheduler.ConstantLR(o, factor=1.0), False, None),
    ("step", {"every": 2, "gamma": 0.5}, lambda o: torch.optim.lr_scheduler.StepLR(o, 2, 0.5), False, None),
    ("exponential", {"k": 0.3}, lambda o: torch.optim.lr_scheduler.ExponentialLR(o, math.exp(-0.3)), False, None),
    ("inverse_time", {"k": 0.5}, lambda o: torch.optim.lr_scheduler.LambdaLR(o, lambda t: 1 / (1 + 0.5 * t)),
     False, None),
    ("cosine", {"min_lr": 0.01}, lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, EPOCHS, 0.01), False, None),
    ("one_cycle", {"max_lr": 1.0, "pct_start": 0.3},
     lambda o: torch.optim.lr_scheduler.OneCycleLR(o, max_lr=1.0, total_steps=EPOCHS * STEPS, pct_start=0.3,
                                                   div_factor=1.0 / LR0, cycle_momentum=False), True, None),
    ("cyclic", {"period": 2}, lambda o: torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(o, T_0=2), True,
     lambda sched, e, s: sched.step(e + s / STEPS)),
    ("warmup", {"epochs": 2}, lambda o: torch.optim.lr_scheduler.LinearLR(
        o, start_factor=1 / (2 * STEPS), total_iters=2 * STEPS - 1), True, None),
]


@pytest.mark.parametrize("name,args,make,per_step,stepper", SCHEDULES, ids=[s[0] for s in SCHEDULES])
def test_schedule_matches_torch(name, args, make, per_step, stepper):
    np.testing.assert_allclose(ours(name, args), torch_lrs(make, per_step, stepper), rtol=1e-9, atol=1e-12)


def test_schedule_formulas_as_the_spec_writes_them():
    exp = make_schedule("exponential", {"k": 0.2}, 1.0, 10, 3)
    inv = make_schedule("inverse_time", {"k": 0.2}, 1.0, 10, 3)
    for t in range(10):
        assert exp(t, 2) == pytest.approx(math.exp(-0.2 * t))
        assert inv(t, 1) == pytest.approx(1 / (1 + 0.2 * t))


def test_loop_sets_the_scheduled_lr(tmp_path):
    from specc.train.run import train

    spec = tf.write_spec(tmp_path, "epochs: 4\nbatch_size: 32\noptimizer: {sgd: {lr: 0.2}}\n"
                                   "schedule: {step: {every: 2, gamma: 0.1}}")
    result = train(spec, str(tmp_path / "run"), options=tf.options())
    rows = [__import__("json").loads(line) for line in open(tmp_path / "run" / "metrics.jsonl")]
    assert [r["lr"] for r in rows] == pytest.approx([0.2, 0.2, 0.02, 0.02])
    assert result.epochs_run == 4


# --- regularization: network3.py's l2 ------------------------------------------------------------

def test_l2_is_network3s(tmp_path):
    """network3.py: cost = log-likelihood + 0.5*lmbda*sum(w**2)/num_training_batches, weights only."""
    lmbda, eta = 5.0, 0.1
    session, trainer = tf.session(tmp_path, f"batch_size: 16\noptimizer: {{sgd: {{lr: {eta}}}}}\n"
                                            f"regularization: {{l2: {lmbda}}}")
    batches_per_epoch = 256 // 16
    assert session.steps_per_epoch == batches_per_epoch
    ref = reference(session)
    x, y = tf.batches(1)[0]
    trainer.step(x, y, 1.0)
    weights = [p for _, p in ref.spec_parameters() if p.dim() >= 2]
    cost = nll_of_probs(ref, x, y) + 0.5 * lmbda * sum((w ** 2).sum() for w in weights) / batches_per_epoch
    cost.backward()
    with torch.no_grad():
        for _, p in ref.spec_parameters():
            p -= eta * p.grad
    assert_same(state(session.module), state(ref))
    # the biases were not penalized: their step is the plain gradient step
    ref2 = reference(session)
    nll_of_probs(ref2, x, y).backward()
    bias = dict(ref2.spec_parameters())["dense_2.bias"]
    np.testing.assert_allclose(state(session.module)["dense_2.bias"], (bias - eta * bias.grad).detach().numpy(),
                               atol=1e-6)


def test_l1_elastic_net_and_decoupled_decay(tmp_path):
    eta, l1, l2, wd = 0.1, 0.3, 2.0, 0.5
    session, trainer = tf.session(tmp_path, f"batch_size: 16\noptimizer: {{sgd: {{lr: {eta}}}}}\n"
                                            f"regularization: {{elastic_net: {{l1: {l1}, l2: {l2}}}, "
                                            f"weight_decay: {wd}}}")
    nb = session.steps_per_epoch
    ref = reference(session)
    x, y = tf.batches(1)[0]
    trainer.step(x, y, 1.0)
    weights = [p for _, p in ref.spec_parameters() if p.dim() >= 2]
    cost = nll_of_probs(ref, x, y) + sum(0.5 * l2 * (w ** 2).sum() + l1 * w.abs().sum() for w in weights) / nb
    cost.backward()
    with torch.no_grad():
        for _, p in ref.spec_parameters():
            if p.dim() >= 2:
                p.mul_(1 - eta * wd)  # decoupled, before the update (AdamW's order)
            p -= eta * p.grad
    assert_same(state(session.module), state(ref))


def test_grad_clip_bounds_the_global_norm(tmp_path):
    session, trainer = tf.session(tmp_path, "batch_size: 16\noptimizer: {sgd: {lr: 1.0}}\ngrad_clip: 0.01")
    before = state(session.module)
    trainer.step(*tf.batches(1)[0], 1.0)
    after = state(session.module)
    norm = math.sqrt(sum(float(((after[k] - before[k]) ** 2).sum()) for k in before))
    assert norm == pytest.approx(0.01, rel=1e-4)


def test_lr_mult_scales_one_layer(tmp_path):
    eta = 0.1
    session, trainer = tf.session(tmp_path, f"batch_size: 16\noptimizer: {{sgd: {{lr: {eta}}}}}\n"
                                            "lr_mult: {dense_2: 0.1}")
    ref = reference(session)
    x, y = tf.batches(1)[0]
    trainer.step(x, y, 1.0)
    nll_of_probs(ref, x, y).backward()
    with torch.no_grad():
        for name, p in ref.spec_parameters():
            p -= eta * (0.1 if name.startswith("dense_2.") else 1.0) * p.grad
    assert_same(state(session.module), state(ref))


def test_init_from_freeze_and_reinit(tmp_path):
    from specc.codegen.weights import save_weights

    # a source model: the same layers with other values
    donor = {k: np.full_like(v, 0.01 * (i + 1)) for i, (k, v) in
             enumerate(init_weights(tf.session(tmp_path, "epochs: 1")[0].compiled.graph).items())}
    save_weights(str(tmp_path / "donor.safetensors"), donor)
    session, trainer = tf.session(tmp_path, "batch_size: 16\noptimizer: {sgd: {lr: 0.5}}\n"
                                            "init: {from: donor.safetensors, freeze: [dense_2], reinit: [dense_3]}")
    start = state(session.module)
    fresh = init_weights(session.compiled.graph)
    np.testing.assert_array_equal(start["dense_2.weight"], donor["dense_2.weight"])
    np.testing.assert_array_equal(start["dense_3.weight"], fresh["dense_3.weight"])  # reinit keeps the init
    for x, y in tf.batches(3):
        trainer.step(x, y, 1.0)
    end = state(session.module)
    np.testing.assert_array_equal(end["dense_2.weight"], donor["dense_2.weight"])    # frozen
    np.testing.assert_array_equal(end["dense_2.bias"], donor["dense_2.bias"])
    assert not np.allclose(end["dense_3.weight"], start["dense_3.weight"])           # trained
    assert "dense_2.weight" not in session.trainable.names


def test_init_from_reports_missing_tensors(tmp_path):
    from specc.codegen.weights import save_weights
    from specc.diagnostics import SpeccError

    save_weights(str(tmp_path / "partial.safetensors"), {"dense_2.weight": np.zeros((16, 36), np.float32)})
    with pytest.raises(SpeccError) as exc:
        tf.session(tmp_path, "init: {from: partial.safetensors}")
    text = str(exc.value)
    assert "E080" in text and "no tensor `dense_3.weight`" in text and "init.reinit" in text
