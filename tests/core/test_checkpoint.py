"""Safetensors checkpoints: round trips are exact, tied weights survive, writes are atomic,
and bad files fail with a message naming the file."""

import json
import os

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from paperlab.core import checkpoint
from paperlab.core.checkpoint import load_checkpoint, save_checkpoint


class TiedLM(nn.Module):
    """Embedding and output head share one matrix, as in GPT-2 / small LLaMAs."""

    def __init__(self, vocab: int = 11, dim: int = 6):
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, vocab, bias=False)
        self.head.weight = self.embed.weight

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return self.head(self.norm(self.embed(idx)))


def stepped(model: nn.Module, optimizer: torch.optim.Optimizer, steps: int = 3) -> None:
    for _ in range(steps):
        model(torch.arange(8)).square().mean().backward()
        optimizer.step()
        optimizer.zero_grad()


def assert_same_state(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        if isinstance(a[key], torch.Tensor):
            assert torch.equal(a[key], b[key]), key
        else:
            assert a[key] == b[key], key


def test_model_and_optimizer_round_trip_exactly(tmp_path):
    torch.manual_seed(0)
    model = TiedLM()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, betas=(0.8, 0.9))
    stepped(model, optimizer)
    meta = {"step": 3, "note": "hello", "history": {"loss": [1.5, 0.5]}}
    save_checkpoint(tmp_path / "ckpt.safetensors", model, optimizer=optimizer, meta=meta)

    torch.manual_seed(1)
    model2 = TiedLM()
    optimizer2 = torch.optim.AdamW(model2.parameters(), lr=0.5)
    loaded = load_checkpoint(tmp_path / "ckpt.safetensors", model2, optimizer=optimizer2)

    assert loaded == meta
    assert_same_state(model.state_dict(), model2.state_dict())
    for s1, s2 in zip(optimizer.state.values(), optimizer2.state.values(), strict=True):
        assert_same_state(s1, s2)
    assert optimizer2.param_groups[0]["betas"] == (0.8, 0.9)  # a tuple again, not a JSON list
    assert optimizer2.param_groups[0]["lr"] == 1e-2
    stepped(model, optimizer)  # and the next steps agree bit for bit
    stepped(model2, optimizer2)
    assert_same_state(model.state_dict(), model2.state_dict())


def test_tied_weights_are_stored_once_and_stay_tied(tmp_path):
    model = TiedLM()
    path = save_checkpoint(tmp_path / "tied.safetensors", model)
    with safe_open(str(path), framework="pt") as f:
        assert set(f.keys()) == {"model.embed.weight", "model.norm.weight", "model.norm.bias"}
        assert json.loads(f.metadata()["model.aliases"]) == {"head.weight": "embed.weight"}

    fresh = TiedLM()
    load_checkpoint(path, fresh)
    assert fresh.head.weight is fresh.embed.weight
    assert torch.equal(fresh.head.weight, model.embed.weight)
    assert torch.equal(fresh(torch.arange(5)), model(torch.arange(5)))


def test_overlapping_views_are_saved_as_copies(tmp_path):
    """Tensors sharing storage that are *not* the same view (safetensors refuses them)."""

    class Views(nn.Module):
        def __init__(self):
            super().__init__()
            base = torch.arange(12.0)
            self.register_buffer("whole", base)
            self.register_buffer("part", base[2:8].view(2, 3))

    model = Views()
    path = save_checkpoint(tmp_path / "views.safetensors", model)
    fresh = Views()
    fresh.whole.zero_()
    load_checkpoint(path, fresh, strict=True)
    assert torch.equal(fresh.whole, torch.arange(12.0))


def test_sgd_state_with_none_buffers_round_trips(tmp_path):
    model = nn.Linear(3, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)  # momentum_buffer is None
    model(torch.ones(1, 3)).sum().backward()
    optimizer.step()
    save_checkpoint(tmp_path / "sgd.safetensors", model, optimizer=optimizer)
    optimizer2 = torch.optim.SGD(model.parameters(), lr=0.3)
    load_checkpoint(tmp_path / "sgd.safetensors", model, optimizer=optimizer2)
    assert optimizer2.state_dict()["state"] == optimizer.state_dict()["state"]
    assert optimizer2.param_groups[0]["lr"] == 0.1


def test_bfloat16_round_trips(tmp_path):
    model = nn.Linear(4, 4).to(torch.bfloat16)
    save_checkpoint(tmp_path / "bf16.safetensors", model)
    fresh = nn.Linear(4, 4).to(torch.bfloat16)
    load_checkpoint(tmp_path / "bf16.safetensors", fresh)
    assert fresh.weight.dtype == torch.bfloat16
    assert torch.equal(fresh.weight, model.weight)


def test_write_is_atomic_and_failures_leave_nothing(tmp_path, monkeypatch):
    path = tmp_path / "run" / "ckpt.safetensors"
    model = nn.Linear(3, 3)
    save_checkpoint(path, model, meta={"version": 1})
    assert [p.name for p in path.parent.iterdir()] == ["ckpt.safetensors"]  # no temp files
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask  # like any new file, not 0600

    def crash_midway(tensors, filename, metadata=None):
        with open(filename, "wb") as f:
            f.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint, "save_file", crash_midway)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, nn.Linear(3, 3), meta={"version": 2})
    assert [p.name for p in path.parent.iterdir()] == ["ckpt.safetensors"]
    assert load_checkpoint(path, nn.Linear(3, 3)) == {"version": 1}  # the old one, intact


def test_meta_must_be_json(tmp_path):
    with pytest.raises(ValueError, match="meta must be JSON-serialisable"):
        save_checkpoint(tmp_path / "x.safetensors", nn.Linear(2, 2), meta={"f": object()})
    assert list(tmp_path.iterdir()) == []


def test_missing_file_names_the_path(tmp_path):
    path = tmp_path / "nope.safetensors"
    with pytest.raises(FileNotFoundError, match="nope.safetensors"):
        load_checkpoint(path, nn.Linear(2, 2))


def test_corrupt_file_names_the_path(tmp_path):
    path = tmp_path / "corrupt.safetensors"
    path.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all")
    with pytest.raises(ValueError, match=r"corrupt\.safetensors: not a readable safetensors"):
        load_checkpoint(path, nn.Linear(2, 2))
    save_checkpoint(path, nn.Linear(2, 2))  # a truncated real checkpoint
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(ValueError, match="corrupt.safetensors"):
        load_checkpoint(path, nn.Linear(2, 2))


def test_plain_safetensors_file_is_not_a_checkpoint(tmp_path):
    path = tmp_path / "plain.safetensors"
    save_file({"weight": torch.zeros(2, 2)}, str(path))
    with pytest.raises(ValueError, match="not a paperlab checkpoint"):
        load_checkpoint(path, nn.Linear(2, 2))
    save_file(
        {"model.weight": torch.zeros(2, 2)}, str(path), {"format": checkpoint.FORMAT, "meta": "{"}
    )
    with pytest.raises(ValueError, match="plain.safetensors: corrupt checkpoint metadata"):
        load_checkpoint(path, nn.Linear(2, 2))


def test_wrong_keys_and_shapes_are_named(tmp_path):
    path = save_checkpoint(tmp_path / "lin.safetensors", nn.Linear(2, 2))
    with pytest.raises(ValueError, match=r"missing \['0.bias', '0.weight'\].*unexpected \['bias'"):
        load_checkpoint(path, nn.Sequential(nn.Linear(2, 2)))
    with pytest.raises(
        ValueError,
        match=r"lin.safetensors: .*shapes.*weight: \(2, 2\) in the file, \(3, 2\) in the model",
    ):
        load_checkpoint(path, nn.Linear(2, 3))
    with pytest.raises(ValueError, match="has no optimizer state"):
        model = nn.Linear(2, 2)
        load_checkpoint(path, model, optimizer=torch.optim.AdamW(model.parameters()))


def test_optimizer_with_other_groups_is_refused(tmp_path):
    model = nn.Linear(2, 2)
    path = save_checkpoint(
        tmp_path / "opt.safetensors", model, optimizer=torch.optim.AdamW(model.parameters())
    )
    split = torch.optim.AdamW([{"params": [model.weight]}, {"params": [model.bias]}])
    with pytest.raises(ValueError, match="opt.safetensors: optimizer state has"):
        load_checkpoint(path, model, optimizer=split)
