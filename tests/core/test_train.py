"""The shared training loop: schedule, learning, determinism, clipping, hooks, exact resume,
and DDP under torchrun."""

import math
import os
import signal
import subprocess
import sys
import textwrap

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from paperlab.core.checkpoint import load_checkpoint
from paperlab.core.train import (
    TrainConfig,
    configure_optimizer,
    dist_info,
    lr_at,
    shard,
    train,
)

W_TRUE = torch.tensor([[1.0], [-2.0], [0.5], [3.0]])


def make_model(seed: int = 0, dropout: float = 0.0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Dropout(dropout), nn.Linear(16, 1))


def regression_batch(step: int) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.randn(32, 4)  # the global RNG on purpose: seeding and resume must cover it
    return x, x @ W_TRUE


def fixed_batch(step: int) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.randn(32, 4, generator=torch.Generator().manual_seed(step))
    return x, x @ W_TRUE


def mse(model: nn.Module, batch) -> torch.Tensor:
    x, y = batch
    return nn.functional.mse_loss(model(x), y)


def quiet(**overrides) -> TrainConfig:
    return TrainConfig(**{"steps": 30, "lr": 1e-2, "progress": False, **overrides})


def params_of(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def assert_bitwise_equal(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_lr_warms_up_linearly_then_decays_by_cosine_to_the_minimum():
    cfg = TrainConfig(steps=110, lr=1.0, warmup_steps=10, min_lr_ratio=0.1)
    lrs = [lr_at(s, cfg) for s in range(cfg.steps)]
    assert lrs[:10] == pytest.approx([(s + 1) / 10 for s in range(10)])
    assert lrs[10] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:], strict=False))  # monotone decay
    assert lrs[60] == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 50 / 99)))
    assert lrs[-1] == pytest.approx(0.1)
    assert lr_at(500, cfg) == pytest.approx(0.1)  # past the end: stays at the minimum
    flat = TrainConfig(steps=5, lr=0.3, min_lr_ratio=1.0)
    assert [lr_at(s, flat) for s in range(5)] == pytest.approx([0.3] * 5)


def test_config_rejects_nonsense():
    with pytest.raises(ValueError, match="min_lr_ratio"):
        TrainConfig(steps=3, min_lr_ratio=2.0)
    with pytest.raises(ValueError, match="steps"):
        TrainConfig(steps=-1)


def test_train_learns_a_tiny_regression():
    model = make_model()
    history = train(model, mse, regression_batch, quiet(steps=200, log_every=10))
    assert history["step"][0] == 0 and history["step"][-1] == 199
    assert len(history["loss"]) == len(history["lr"]) == len(history["grad_norm"]) == 21
    assert history["loss"][-1] < 0.05 * history["loss"][0]
    assert history["lr"][0] == pytest.approx(1e-2) and history["lr"][-1] == pytest.approx(1e-3)


def test_weight_decay_only_on_matrices():
    model = make_model()
    decayed, plain = configure_optimizer(model, quiet(weight_decay=0.1)).param_groups
    assert [p.dim() for p in decayed["params"]] == [2, 2] and decayed["weight_decay"] == 0.1
    assert [p.dim() for p in plain["params"]] == [1, 1] and plain["weight_decay"] == 0.0


def test_same_seed_gives_bitwise_identical_params():
    runs = []
    for _ in range(2):
        model = make_model(dropout=0.1)
        train(model, mse, regression_batch, quiet(seed=3))
        runs.append(params_of(model))
    assert_bitwise_equal(*runs)
    other = make_model(dropout=0.1)
    train(other, mse, regression_batch, quiet(seed=4))
    assert not torch.equal(params_of(other)["0.weight"], runs[0]["0.weight"])


def test_grad_clipping_bounds_the_update():
    """With plain SGD at lr 1 the update *is* the gradient, so its norm is the clipped norm."""

    def run(grad_clip):
        model = make_model()
        sgd = torch.optim.SGD(model.parameters(), lr=1.0)
        before, updates = [params_of(model)], []

        def on_step(step, m, history):
            after = params_of(m)
            delta = torch.cat([(after[k] - before[-1][k]).flatten() for k in after])
            updates.append(delta.norm().item())
            before.append(after)

        cfg = quiet(steps=5, lr=1.0, min_lr_ratio=1.0, grad_clip=grad_clip)
        big = lambda step: (torch.randn(32, 4), 100 * torch.randn(32, 1))  # noqa: E731
        history = train(model, mse, big, cfg, optimizer=sgd, on_step=on_step)
        return history["grad_norm"], updates

    norms, updates = run(grad_clip=0.5)
    assert all(n > 0.5 for n in norms)  # the recorded norm is the one before clipping
    assert updates == pytest.approx([0.5] * 5, rel=1e-4)
    norms, updates = run(grad_clip=None)
    assert updates == pytest.approx(norms, rel=1e-4)


def test_hooks_metrics_and_eval_land_in_history():
    calls = []

    def loss_with_metrics(model, batch):
        loss = mse(model, batch)
        return loss, {"double": 2 * loss.detach()}

    def eval_fn(model):
        assert not model.training and not torch.is_grad_enabled()
        return {"mse": mse(model, regression_batch(0)).item()}

    history = train(
        make_model(),
        loss_with_metrics,
        regression_batch,
        quiet(steps=10, eval_every=4),
        eval_fn=eval_fn,
        on_step=lambda step, model, hist: calls.append((step, model.training, len(hist["loss"]))),
    )
    assert calls == [(s, True, s + 1) for s in range(10)]
    assert history["double"] == pytest.approx([2 * v for v in history["loss"]])
    assert history["eval_step"] == [3, 7, 9] and len(history["eval_mse"]) == 3


def test_manual_backward_matches_automatic_backward():
    def two_halves(model, batch):  # what multi-token prediction does: backward piece by piece
        x, y = batch
        total = 0.0
        for part in (slice(0, 16), slice(16, 32)):
            loss = nn.functional.mse_loss(model(x[part]), y[part]) / 2
            loss.backward()
            total += loss.detach()
        return total

    auto, manual = make_model(), make_model()
    h_auto = train(auto, mse, regression_batch, quiet())
    h_manual = train(manual, two_halves, regression_batch, quiet(manual_backward=True))
    for key, value in params_of(auto).items():
        torch.testing.assert_close(params_of(manual)[key], value, rtol=1e-5, atol=1e-6)
    assert h_manual["loss"] == pytest.approx(h_auto["loss"], rel=1e-5)


class StopAt:
    """An on_step hook that presses Ctrl-C after a given step."""

    def __init__(self, step: int):
        self.step = step

    def __call__(self, step, model, history):
        if step == self.step:
            raise KeyboardInterrupt


@pytest.mark.parametrize("source", ["callable", "iterable"])
def test_ctrl_c_then_resume_equals_uninterrupted_training(tmp_path, source):
    def data():
        if source == "callable":
            return regression_batch
        return iter([fixed_batch(step) for step in range(30)])  # re-made by the re-run

    reference = make_model(dropout=0.2)
    h_ref = train(reference, mse, data(), quiet())

    path = tmp_path / "run.safetensors"
    cfg = quiet(checkpoint_path=str(path), resume=True)
    with pytest.raises(KeyboardInterrupt):
        train(make_model(dropout=0.2), mse, data(), cfg, on_step=StopAt(12))
    assert load_checkpoint(path, make_model())["step"] == 13

    resumed = make_model(dropout=0.2)  # the same command again, fresh process state
    h_res = train(resumed, mse, data(), cfg)
    assert_bitwise_equal(params_of(resumed), params_of(reference))
    timing = {"seconds"}  # wall time differs run to run; everything else is bitwise
    assert {k: v for k, v in h_res.items() if k not in timing} == {
        k: v for k, v in h_ref.items() if k not in timing
    }
    assert [p.name for p in tmp_path.iterdir()] == ["run.safetensors"]


class SigintDuringStep(torch.optim.SGD):
    """SGD that receives a real SIGINT (Ctrl-C) in the middle of its ``at``-th step."""

    def __init__(self, params, at: int):
        super().__init__(params, lr=0.1)
        self.calls, self.at = 0, at

    def step(self, closure=None):
        self.calls += 1
        if self.calls == self.at:
            # raise(3) delivers to this thread before it returns; os.kill(getpid()) may be
            # taken by another thread later, after the update (a race under load)
            signal.raise_signal(signal.SIGINT)
        return super().step(closure)


@pytest.fixture
def default_sigint():
    """Python's own Ctrl-C handler for the test: an earlier test in the same process may have
    left another one installed (a server's exit handler), which `train` then defers to."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_ctrl_c_during_the_update_finishes_it_and_saves(tmp_path, default_sigint):
    path = tmp_path / "ckpt.safetensors"
    model = make_model()
    cfg = quiet(steps=10, checkpoint_path=str(path))
    with pytest.raises(KeyboardInterrupt):
        train(model, mse, fixed_batch, cfg, optimizer=SigintDuringStep(model.parameters(), at=4))
    saved = make_model(seed=9)
    assert load_checkpoint(path, saved)["step"] == 4
    reference = make_model()
    sgd = torch.optim.SGD(reference.parameters(), lr=0.1)
    with pytest.raises(KeyboardInterrupt):  # four whole steps, then stop
        train(reference, mse, fixed_batch, quiet(steps=10), optimizer=sgd, on_step=StopAt(3))
    assert_bitwise_equal(params_of(saved), params_of(reference))
    assert_bitwise_equal(params_of(model), params_of(reference))


def test_periodic_checkpoints_hold_model_optimizer_and_step(tmp_path):
    path = tmp_path / "ckpt.safetensors"
    seen = []

    def on_step(step, model, history):
        if path.exists():
            seen.append(load_checkpoint(path, make_model())["step"])

    model = make_model()
    train(
        model,
        mse,
        regression_batch,
        quiet(steps=9, checkpoint_path=str(path), checkpoint_every=4),
        on_step=on_step,
    )
    assert sorted(set(seen)) == [4, 8]
    fresh = make_model(seed=5)
    opt = configure_optimizer(fresh, quiet())
    meta = load_checkpoint(path, fresh, optimizer=opt)
    assert meta["step"] == 9 and meta["config"]["checkpoint_every"] == 4
    assert_bitwise_equal(params_of(fresh), params_of(model))
    assert int(opt.state[opt.param_groups[0]["params"][0]]["step"]) == 9


def test_batches_running_out_is_a_clear_error():
    with pytest.raises(ValueError, match="batches ran out at step 3"):
        train(make_model(), mse, [regression_batch(s) for s in range(3)], quiet(steps=5))


def test_a_non_finite_loss_stops_training_naming_the_step(tmp_path):
    """The step whose loss is nan is not applied; the steps before it are checkpointed."""
    model = make_model()
    seen = {}

    def loss_fn(m, batch):
        loss = mse(m, batch)
        return loss * float("nan") if batch[0].shape[0] == 1 else loss

    def batches(step):
        x, y = fixed_batch(step)
        return (x[:1], y[:1]) if step == 3 else (x, y)

    def remember(step, m, history):
        seen[step] = params_of(m)

    ckpt = tmp_path / "ckpt.safetensors"
    with pytest.raises(FloatingPointError, match=r"the loss is nan at step 3 .* 3 steps are done"):
        train(model, loss_fn, batches, quiet(steps=10, checkpoint_path=str(ckpt)), on_step=remember)
    assert_bitwise_equal(params_of(model), seen[2])  # step 3 changed nothing
    assert all(torch.isfinite(v).all() for v in params_of(model).values())
    assert load_checkpoint(ckpt, make_model())["step"] == 3


def test_shard_and_dist_info():
    assert shard(list(range(10)), 1, 3) == [1, 4, 7]
    assert list(shard(iter(range(10)), 0, 4)) == [0, 4, 8]
    assert torch.equal(shard(torch.arange(6), 1, 2), torch.tensor([1, 3, 5]))
    assert dist_info() == (0, 1)


DDP_SCRIPT = """
import sys
import torch
from safetensors.torch import save_file
from torch import nn
from paperlab.core.train import TrainConfig, dist_info, shard, train

out = sys.argv[1]
rank, world = dist_info()
torch.manual_seed(100 + rank)  # different inits: DDP must broadcast rank 0's
model = nn.Linear(4, 1)
g = torch.Generator().manual_seed(0)
x = torch.randn(64, 4, generator=g)
y = x @ torch.tensor([[1.0], [-2.0], [0.5], [3.0]])
xs, ys = shard(x, rank, world), shard(y, rank, world)  # each rank its half of the data

def loss_fn(model, batch):
    return nn.functional.mse_loss(model(batch[0]), batch[1])

cfg = TrainConfig(steps=25, lr=0.05, progress=False, checkpoint_path=f"{out}/ckpt.safetensors")
history = train(model, loss_fn, lambda step: (xs, ys), cfg)
state = {k: v.contiguous() for k, v in model.state_dict().items()}
state["first_loss"] = torch.tensor(history["loss"][0])
save_file(state, f"{out}/rank{rank}.safetensors")
"""


def test_ddp_under_torchrun_keeps_ranks_identical(tmp_path):
    script = tmp_path / "ddp_train.py"
    script.write_text(textwrap.dedent(DDP_SCRIPT))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    proc = subprocess.run(
        [*cmd, str(script), str(tmp_path)], env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    rank0, rank1 = (load_file(str(tmp_path / f"rank{r}.safetensors")) for r in (0, 1))
    assert rank0["first_loss"] != rank1["first_loss"]  # they really saw different data
    for key in ("weight", "bias"):
        assert torch.equal(rank0[key], rank1[key])
    assert (tmp_path / "ckpt.safetensors").exists()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []

    # DDP averages the two halves' gradients = one process on the whole batch
    torch.manual_seed(100)
    single = nn.Linear(4, 1)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 4, generator=g)
    batch = (x, x @ W_TRUE)
    train(single, mse, lambda step: batch, TrainConfig(steps=25, lr=0.05, progress=False))
    torch.testing.assert_close(single.weight.detach(), rank0["weight"], rtol=1e-4, atol=1e-5)
