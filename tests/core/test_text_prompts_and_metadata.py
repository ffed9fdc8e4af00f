"""code_prompts (fixed decoding prompts from the validation corpus) and
read_safetensors_metadata (a checkpoint's metadata and kind, without loading tensors)."""

from __future__ import annotations

import json

import pytest
import torch

from paperlab.core.checkpoint import read_safetensors_metadata, save_safetensors_atomic
from paperlab.core.data.text import code_prompts, load_corpus
from paperlab.core.llama import Llama, LlamaConfig


def find(data: torch.Tensor, prompt: list[int]) -> list[int]:
    """Start offsets of `prompt` in `data`."""
    p = torch.tensor(prompt, dtype=data.dtype)
    windows = data.unfold(0, len(p), 1)
    candidates = torch.nonzero(windows[:, 0] == p[0]).flatten().tolist()
    return [i for i in candidates if torch.equal(windows[i], p)]


def test_code_prompts_are_fixed_slices_at_line_starts():
    prompts = code_prompts(6, 48)
    assert prompts == code_prompts(6, 48)  # deterministic
    assert len(prompts) == 6 and all(len(p) == 48 for p in prompts)
    assert all(0 <= t < 256 for p in prompts for t in p)
    val = load_corpus(split="val")
    starts = []
    for p in prompts:
        found = find(val, p)
        assert found, "every prompt is a contiguous piece of the validation split"
        start = found[0]
        assert start == 0 or int(val[start - 1]) == ord("\n")
        starts.append(start)
    assert starts == sorted(starts) and len(set(starts)) == 6  # spread over the split, in order
    assert starts[-1] > len(val) // 2
    assert code_prompts(2, 48, split="train") != code_prompts(2, 48)


def test_code_prompts_rejects_bad_sizes():
    for n, length in ((0, 10), (3, 0), (-1, 5)):
        with pytest.raises(ValueError, match="code_prompts"):
            code_prompts(n, length)
    with pytest.raises(ValueError, match="split"):
        code_prompts(1, 10, split="test")


def test_read_metadata_and_kind(tmp_path):
    path = save_safetensors_atomic(
        {"w": torch.zeros(2, 3)}, tmp_path / "x.safetensors", {"paperlab_model": "Thing", "a": "1"}
    )
    assert read_safetensors_metadata(path) == {"paperlab_model": "Thing", "a": "1"}
    assert read_safetensors_metadata(str(path), kind="Thing")["a"] == "1"
    with pytest.raises(ValueError, match="expected a Other checkpoint, found Thing"):
        read_safetensors_metadata(path, kind="Other")

    plain = save_safetensors_atomic({"w": torch.zeros(1)}, tmp_path / "plain.safetensors", {})
    assert read_safetensors_metadata(plain) == {}
    with pytest.raises(ValueError, match="found no paperlab model"):
        read_safetensors_metadata(plain, kind="Thing")


def test_read_metadata_of_a_llama_checkpoint(tmp_path):
    model = Llama(LlamaConfig(vocab_size=8, dim=16, n_layers=1, n_heads=2, ffn_hidden=16))
    path = model.save_pretrained(tmp_path / "m.safetensors")
    meta = read_safetensors_metadata(path, kind="Llama")
    assert LlamaConfig.from_dict(json.loads(meta["paperlab_config"])) == model.config


def test_read_metadata_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_safetensors_metadata(tmp_path / "missing.safetensors")
    with pytest.raises(FileNotFoundError):
        read_safetensors_metadata(tmp_path)  # a directory is not a checkpoint file
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00not json at all!")
    with pytest.raises(ValueError, match="not a readable safetensors file"):
        read_safetensors_metadata(bad)
