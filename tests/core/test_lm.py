"""The shared recipes of core: the byte-LM recipe (core.lm), eval_mode (core.train) and the
model checkpoints with a kind (core.checkpoint.save_model / load_model)."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

from paperlab.core.checkpoint import load_model, read_checkpoint_meta, save_model
from paperlab.core.llama import Llama, LlamaConfig
from paperlab.core.lm import (
    ByteLM,
    byte_lm_loss,
    corpus_batches,
    next_token_loss,
    recipe_fields,
    train_byte_lm,
)
from paperlab.core.train import eval_mode

TINY = dict(vocab_size=256, dim=16, n_layers=1, n_heads=2, multiple_of=16, max_seq_len=32)


def tiny_llama(seed: int = 0) -> Llama:
    torch.manual_seed(seed)
    return Llama(LlamaConfig(**TINY))


# -- core.lm -----------------------------------------------------------------------------------


def test_byte_lm_training_is_seeded_learns_and_records_its_seconds():
    recipe = ByteLM(steps=12, lr=3e-3, batch_size=4, seq_len=32)
    a, b = tiny_llama(), tiny_llama()
    before = byte_lm_loss(a, seq_len=32, batch_size=4, batches=2)
    ha = train_byte_lm(a, recipe, seed=3)
    hb = train_byte_lm(b, recipe, seed=3)
    assert ha["loss"] == hb["loss"] and len(ha["loss"]) == 12
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(pa, pb)
    assert len(ha["seconds"]) == 1 and ha["seconds"][0] > 0  # one wall time per training
    assert not a.training  # left in eval mode
    assert byte_lm_loss(a, seq_len=32, batch_size=4, batches=2) < before
    c = tiny_llama()
    train_byte_lm(c, recipe, seed=4)  # other batches, other weights
    assert not torch.equal(next(a.parameters()), next(c.parameters()))


def test_corpus_batches_are_shifted_windows_of_the_split():
    x, y = next(corpus_batches("val", 3, 20, seed=0))
    assert x.shape == y.shape == (3, 20)
    assert torch.equal(x[:, 1:], y[:, :-1])
    x2, _ = next(corpus_batches("val", 3, 20, seed=0))
    assert torch.equal(x, x2)


def test_next_token_loss_is_cross_entropy_of_the_shifted_batch():
    model = tiny_llama()
    x, y = next(corpus_batches("train", 2, 16, seed=1))
    expected = nn.functional.cross_entropy(model(x).reshape(-1, 256), y.reshape(-1))
    assert torch.allclose(next_token_loss(model, (x, y)), expected)


def test_byte_lm_loss_restores_the_mode_and_is_fixed():
    model = tiny_llama()
    model.train()
    a = byte_lm_loss(model, seq_len=16, batch_size=2, batches=2)
    assert model.training
    assert byte_lm_loss(model, seq_len=16, batch_size=2, batches=2) == a
    with pytest.raises(ValueError, match="batches"):
        byte_lm_loss(model, seq_len=16, batches=0)


@pytest.mark.parametrize(
    "field, value", [("steps", 0), ("batch_size", 0), ("seq_len", -1), ("lr", 0.0)]
)
def test_byte_lm_recipe_errors_name_the_field(field, value):
    kwargs = {"steps": 5, "lr": 1e-3, field: value}
    with pytest.raises(ValueError, match=field):
        ByteLM(**kwargs)


def test_train_byte_lm_refuses_another_recipe_type():
    with pytest.raises(TypeError, match="recipe"):
        train_byte_lm(tiny_llama(), {"steps": 1}, seed=0)  # type: ignore[arg-type]


def test_recipe_fields_takes_the_named_config_fields():
    @dataclasses.dataclass
    class Cfg:
        steps: int = 7
        lr: float = 2e-3
        seq_len: int = 64
        other: str = "x"

    recipe = recipe_fields(Cfg(), "steps", "lr", "seq_len")
    assert (recipe.steps, recipe.lr, recipe.seq_len, recipe.batch_size) == (7, 2e-3, 64, 16)
    warm = recipe.train_config(seed=0, progress=False, desc="x")
    assert warm.warmup_steps == 1 and warm.steps == 7  # 10% of 7 rounds to at least 1


# -- eval_mode ---------------------------------------------------------------------------------


class Two(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Dropout(0.5)
        self.b = nn.Dropout(0.5)


def test_eval_mode_restores_each_submodules_own_mode():
    m, other = Two(), Two()
    m.train()
    m.b.eval()  # a mixed state: it must come back as it was
    other.eval()
    with eval_mode(m, other):
        assert not any(x.training for x in [*m.modules(), *other.modules()])
    assert (m.training, m.a.training, m.b.training) == (True, True, False)
    assert not any(x.training for x in other.modules())


def test_eval_mode_restores_on_an_exception():
    m = Two().train()
    with pytest.raises(RuntimeError, match="boom"), eval_mode(m):
        raise RuntimeError("boom")
    assert all(x.training for x in m.modules())


# -- save_model / load_model -------------------------------------------------------------------


def build(config: dict) -> Llama:
    return Llama(LlamaConfig(**config))


def test_save_model_round_trips_with_its_config_and_meta(tmp_path):
    model = tiny_llama(seed=5)
    path = save_model(tmp_path / "m.safetensors", model, kind="test-lm", config=TINY, steps=3)
    loaded, meta = load_model(path, build, kind="test-lm")
    assert meta["config"] == TINY and meta["steps"] == 3
    assert read_checkpoint_meta(path, kind="test-lm")["steps"] == 3
    x = torch.randint(0, 256, (1, 8))
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))


def test_load_model_checks_the_kind_and_the_config(tmp_path):
    path = save_model(tmp_path / "m.safetensors", tiny_llama(), kind="test-lm", config=TINY)
    with pytest.raises(ValueError, match="expected a other-kind checkpoint, found test-lm"):
        load_model(path, build, kind="other-kind")
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_model(tmp_path / "nowhere.safetensors", build, kind="test-lm")
    from paperlab.core.checkpoint import save_checkpoint

    bare = save_checkpoint(tmp_path / "bare.safetensors", tiny_llama(), kind="test-lm")
    with pytest.raises(ValueError, match="without its config"):
        load_model(bare, build, kind="test-lm")


def test_checkpoint_file_and_kind(tmp_path):
    from paperlab.core.checkpoint import checkpoint_file, checkpoint_kind

    assert (
        checkpoint_file(tmp_path / "a.safetensors", "m.safetensors") == tmp_path / "a.safetensors"
    )
    assert checkpoint_file(tmp_path / "dir", "m.safetensors") == tmp_path / "dir" / "m.safetensors"
    path = save_model(tmp_path / "m.safetensors", tiny_llama(), kind="test-lm", config=TINY)
    assert checkpoint_kind(path) == "test-lm"
    from safetensors.torch import save_file

    save_file({"x": torch.zeros(1)}, str(tmp_path / "plain.safetensors"))
    with pytest.raises(ValueError, match="not a paperlab checkpoint"):
        checkpoint_kind(tmp_path / "plain.safetensors")
