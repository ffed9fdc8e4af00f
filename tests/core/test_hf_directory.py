"""`Llama.from_pretrained(hf_dir)`: a Hugging Face directory (config.json + single or sharded
safetensors) loads in one call, with the logits of transformers' own model; configs that ask
for something `Llama` does not compute are refused in one line naming the field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from paperlab.core.hf import load_hf_directory
from paperlab.core.llama import Llama

transformers = pytest.importorskip("transformers")

SMALL = dict(
    vocab_size=97,
    hidden_size=32,
    intermediate_size=64,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=64,
)


def hf_llama(tmp_path: Path, *, shard: bool, **overrides) -> tuple[Path, object]:
    torch.manual_seed(0)
    model = transformers.LlamaForCausalLM(transformers.LlamaConfig(**{**SMALL, **overrides}))
    out = tmp_path / "hf"
    model.save_pretrained(out, max_shard_size="20KB" if shard else "5GB")
    return out, model.eval()


@pytest.mark.parametrize("shard", [False, True])
def test_hf_directory_loads_with_the_same_logits(tmp_path: Path, shard: bool) -> None:
    path, hf_model = hf_llama(tmp_path, shard=shard)
    assert (path / "model.safetensors.index.json").is_file() == shard
    ours = Llama.from_pretrained(path)
    x = torch.randint(0, SMALL["vocab_size"], (2, 20), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(ours(x), hf_model(x).logits, atol=1e-4, rtol=0)


def edit_config(path: Path, **changes) -> None:
    config = json.loads((path / "config.json").read_text())
    config.update(changes)
    (path / "config.json").write_text(json.dumps(config))


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        (dict(model_type="mistral", sliding_window=16), "sliding_window"),
        (dict(model_type="qwen2"), "model_type"),
        (dict(attention_bias=True), "attention_bias"),
        (dict(rope_scaling={"rope_type": "linear", "factor": 2.0}), "rope_type"),
    ],
)
def test_unsupported_configs_are_refused_naming_the_field(
    tmp_path: Path, changes: dict, named: str
) -> None:
    path, _ = hf_llama(tmp_path, shard=False)
    edit_config(path, **changes)
    with pytest.raises(ValueError, match=named):
        Llama.from_pretrained(path)


def test_mistral_whose_window_covers_the_context_loads(tmp_path: Path) -> None:
    path, _ = hf_llama(tmp_path, shard=False)
    edit_config(path, model_type="mistral", sliding_window=SMALL["max_position_embeddings"])
    assert isinstance(Llama.from_pretrained(path), Llama)


def test_missing_weights_and_shards_are_named(tmp_path: Path) -> None:
    path, _ = hf_llama(tmp_path, shard=True)
    shards = sorted(path.glob("model-*.safetensors"))
    shards[-1].unlink()
    with pytest.raises(FileNotFoundError, match="missing"):
        load_hf_directory(path)
    (path / "model.safetensors.index.json").unlink()
    for s in shards[:-1]:
        s.unlink()
    (path / "pytorch_model.bin").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match="convert them to safetensors"):
        load_hf_directory(path)
