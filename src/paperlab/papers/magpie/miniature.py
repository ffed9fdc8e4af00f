"""The miniature's models: a base LM, its aligned chat model, and fine-tuned copies of the base.

- **base**: a byte-level core `Llama` pre-trained on plain text (the Python standard library's
  sources, `core.lm.train_byte_lm`); it has never seen the chat format or the tasks.
- **aligned** ("the official instruct model"): the base tuned on human-written instructions of
  the exact tasks (`tasks.py`) in paperlab's chat format (`user: ...\\nassistant: ...`).
- **Magpie-tuned**: a fresh copy of the base tuned on (instruction, response) pairs synthesised
  from the aligned model (synthesis.py), loss on the response only (standard SFT).

    base = pretrain_base(cfg, seed=0)
    aligned = align(base, cfg, seed=0)                     # a copy; base is untouched
    tuned = finetune(base, [("Add 3 and 4.", "7")], cfg, seed=0)
    accuracy(tuned, held_out_set(100, seed=0))
"""

from __future__ import annotations

import copy
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from paperlab.core.llama import Llama
from paperlab.core.llm.chat import render_chat
from paperlab.core.llm.tiny import BOS, EOS, IGNORE, PAD, TOKENIZER, TinyChatConfig, chat_replies
from paperlab.core.lm import ByteLM, train_byte_lm
from paperlab.core.train import TrainConfig, train
from paperlab.papers.magpie import tasks

Pair = tuple[str, str]  # (instruction, response)


@dataclass(frozen=True)
class ModelConfig:
    """Sizes and schedules of the miniature's models."""

    dim: int = 96
    n_layers: int = 3
    n_heads: int = 4
    max_seq_len: int = 128
    base_steps: int = 300  # plain-text pre-training
    base_lr: float = 3e-3
    align_steps: int = 1200  # the aligned model's instruction tuning (fresh examples)
    finetune_steps: int = 600  # SFT of a base copy on a fixed set of pairs
    batch_size: int = 48
    lr: float = 3e-3

    def tiny_chat(self, steps: int) -> TinyChatConfig:
        return TinyChatConfig(
            dim=self.dim,
            n_layers=self.n_layers,
            n_heads=self.n_heads,
            max_seq_len=self.max_seq_len,
            steps=max(steps, 1),
            batch_size=self.batch_size,
            lr=self.lr,
        )


def new_model(cfg: ModelConfig, seed: int) -> Llama:
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return Llama(cfg.tiny_chat(1).llama_config())


def pretrain_base(
    cfg: ModelConfig, *, seed: int, progress: bool = False, device: str = "cpu"
) -> Llama:
    """A fresh model pre-trained on plain text only (no chat format, no tasks), trained on
    `device` and returned on the CPU (where it is served and cached)."""
    model = new_model(cfg, seed)
    if cfg.base_steps:
        recipe = ByteLM(steps=cfg.base_steps, lr=cfg.base_lr, batch_size=16, seq_len=128)
        train_byte_lm(
            model, recipe, seed=seed, progress=progress, desc="magpie base", device=device
        )
    return model.cpu().eval()


def encode_pair(instruction: str, response: str, *, user_loss: bool) -> tuple[list[int], list[int]]:
    """(ids, targets) of one conversation in the chat format; targets are -100 on the prompt
    (unless `user_loss`: then only the BOS is), the reply bytes and EOS are targets."""
    prompt = TOKENIZER.encode(render_chat([{"role": "user", "content": instruction}]), bos=True)
    answer = TOKENIZER.encode(response, eos=True)
    prompt_targets = [IGNORE] + prompt[1:] if user_loss else [IGNORE] * len(prompt)
    return prompt + answer, prompt_targets + answer


def _batch(
    examples: Sequence[tuple[list[int], list[int]]], max_len: int
) -> tuple[torch.Tensor, torch.Tensor]:
    examples = [(x[:max_len], y[:max_len]) for x, y in examples]
    T = max(len(x) for x, _ in examples)
    ids = torch.full((len(examples), T), PAD, dtype=torch.long)
    targets = torch.full((len(examples), T), IGNORE, dtype=torch.long)
    for row, (x, y) in enumerate(examples):
        ids[row, : len(x)] = torch.tensor(x)
        targets[row, : len(y)] = torch.tensor(y)
    return ids, targets


def sft_loss(model: Llama, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """Mean next-token cross-entropy over the target positions (HF `labels` convention)."""
    ids, targets = batch
    logits = model(ids[:, :-1])
    return F.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), targets[:, 1:].reshape(-1), ignore_index=IGNORE
    )


def _tune(
    model: Llama,
    sample: Callable[[random.Random], Pair],
    steps: int,
    cfg: ModelConfig,
    *,
    seed: int,
    user_loss: bool,
    progress: bool,
    desc: str,
    device: str = "cpu",
) -> Llama:
    rng = random.Random(seed)

    def batch(step: int) -> tuple[torch.Tensor, torch.Tensor]:
        pairs = [sample(rng) for _ in range(cfg.batch_size)]
        return _batch([encode_pair(i, r, user_loss=user_loss) for i, r in pairs], cfg.max_seq_len)

    tcfg = TrainConfig(
        steps=steps,
        lr=cfg.lr,
        warmup_steps=min(30, steps),
        weight_decay=0.1,
        log_every=max(1, steps // 20),
        progress=progress,
        seed=seed,
        desc=desc,
    )
    if steps:
        train(model, sft_loss, batch, tcfg, device=device)
    return model.cpu().eval()


def align(
    base: Llama,
    cfg: ModelConfig,
    *,
    seed: int,
    progress: bool = False,
    sample: Callable[[random.Random], Pair] = tasks.human_example,
    device: str = "cpu",
) -> Llama:
    """The aligned model: a copy of `base` tuned on fresh human-written task instructions
    (`sample(rng) -> (instruction, reply)`).

    DEVIATION: the loss covers the user's turn as well as the reply. An LLM's instruction
    tuning usually masks the user's turn, and Magpie's premise is that the aligned model has
    learned the query distribution anyway (from pre-training on such text and from its
    alignment data); a tiny model trained from plain Python sources learns nothing about
    queries unless it is trained on them."""
    model = copy.deepcopy(base)
    return _tune(
        model,
        sample,
        cfg.align_steps,
        cfg,
        seed=seed,
        user_loss=True,
        progress=progress,
        desc="magpie aligned",
        device=device,
    )


def finetune(
    base: Llama,
    pairs: Sequence[Pair],
    cfg: ModelConfig,
    *,
    seed: int,
    progress: bool = False,
    desc: str = "magpie sft",
    user_loss: bool = False,
    device: str = "cpu",
) -> Llama:
    """A fresh copy of `base` tuned on `pairs` (drawn uniformly with replacement); the loss is
    on the response only (standard SFT) unless `user_loss` (the aligned model's recipe)."""
    if not pairs:
        raise ValueError("finetune: no (instruction, response) pairs to tune on")
    model = copy.deepcopy(base)
    pairs = list(pairs)
    return _tune(
        model,
        lambda rng: rng.choice(pairs),
        cfg.finetune_steps,
        cfg,
        seed=seed,
        user_loss=user_loss,
        progress=progress,
        desc=desc,
        device=device,
    )


def replies(model: Llama, instructions: Sequence[str], *, max_new_tokens: int = 12) -> list[str]:
    """Greedy replies in the chat format."""
    return chat_replies(
        model,
        [[{"role": "user", "content": i}] for i in instructions],
        max_new_tokens=max_new_tokens,
    )


def scores(model: Llama, items: Sequence[Pair]) -> list[float]:
    """1.0 per held-out item answered exactly, else 0.0."""
    out = replies(model, [i for i, _ in items])
    return [float(tasks.is_correct(r, a)) for r, (_, a) in zip(out, items, strict=True)]


def accuracy(model: Llama, items: Sequence[Pair]) -> float:
    s = scores(model, items)
    return sum(s) / max(len(s), 1)


__all__ = [
    "BOS",
    "EOS",
    "ModelConfig",
    "Pair",
    "accuracy",
    "align",
    "encode_pair",
    "finetune",
    "new_model",
    "pretrain_base",
    "replies",
    "scores",
    "sft_loss",
]
