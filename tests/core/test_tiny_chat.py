"""Tiny chat models: reply-only loss masks, learning a trivial task, save/load round trip."""

import random

import pytest
import torch

from paperlab.core.device import torch_threads
from paperlab.core.llm.chat import ChatModelInfo, render_chat
from paperlab.core.llm.tiny import (
    BOS,
    EOS,
    IGNORE,
    TinyChatConfig,
    chat_replies,
    encode_example,
    load_chat_model,
    save_chat_model,
    train_chat_model,
)

LETTERS = "abcd"


def echo_example(rng: random.Random) -> tuple[list[dict[str, str]], str]:
    """'say ab' -> 'ba': copy two letters in reverse order."""
    word = "".join(rng.choice(LETTERS) for _ in range(2))
    return [{"role": "user", "content": f"say {word}"}], word[::-1]


@pytest.fixture(scope="module")
def reverser():
    cfg = TinyChatConfig(
        dim=32, n_layers=2, n_heads=2, max_seq_len=40, steps=150, batch_size=32, lr=3e-3, warmup=10
    )
    with torch_threads(1):  # tiny ops: one thread is fastest
        return train_chat_model([(echo_example, 1.0)], cfg, seed=0)


def test_encode_example_puts_the_loss_on_the_reply_only():
    messages = [{"role": "user", "content": "hi"}]
    ids, targets = encode_example(messages, "ok")
    prompt = list(render_chat(messages).encode())
    assert ids == [BOS] + prompt + [ord("o"), ord("k"), EOS]
    assert targets == [IGNORE] * (1 + len(prompt)) + [ord("o"), ord("k"), EOS]


def test_config_validation():
    with pytest.raises(ValueError, match="n_heads"):
        TinyChatConfig(dim=30, n_heads=4)
    with pytest.raises(ValueError, match="steps"):
        TinyChatConfig(steps=0)


def test_trains_on_a_trivial_task_and_answers_it(reverser):
    words = [a + b for a in LETTERS for b in LETTERS]
    replies = chat_replies(reverser, [[{"role": "user", "content": f"say {w}"}] for w in words])
    assert replies == [w[::-1] for w in words]


def test_save_load_round_trip_gives_identical_replies(reverser, tmp_path):
    convs = [[{"role": "user", "content": f"say {w}"}] for w in ("ab", "dc", "aa")]
    save_chat_model(reverser, tmp_path / "m", "reverser")
    model, info = load_chat_model(tmp_path / "m")
    assert info == ChatModelInfo("reverser")
    assert chat_replies(model, convs) == chat_replies(reverser, convs)
    gen = torch.Generator().manual_seed(0)
    sampled = chat_replies(model, convs, temperature=1.0, top_p=0.9, generator=gen)
    assert len(sampled) == 3 and all(isinstance(s, str) for s in sampled)


def test_over_long_example_is_refused():
    def long_example(rng):
        return [{"role": "user", "content": "x" * 100}], "y"

    cfg = TinyChatConfig(dim=16, n_layers=1, n_heads=2, max_seq_len=64, steps=1)
    with pytest.raises(ValueError, match="max_seq_len"):
        train_chat_model([(long_example, 1.0)], cfg, seed=0)


def test_load_refuses_a_directory_without_chat_metadata(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a paperlab chat model"):
        load_chat_model(tmp_path)
