"""Tiny chat models that `paperlab serve` can serve: a byte-level core Llama trained on the
`paperlab-v1` chat format (`paperlab.core.llm.chat`).

Tokens are `ByteTokenizer(special_tokens=True)` ids (bytes 0..255, BOS 256, EOS 257, PAD 258).
A training example is one conversation and the reply the model should give:

    ids     = BOS + render_chat(messages) + reply + EOS
    targets = -100 everywhere except the reply bytes and the EOS (the loss is on the reply only)

`targets` is aligned with `ids` (Hugging Face `labels` convention): the logits at position i are
scored against `targets[i + 1]`.

    cfg = TinyChatConfig(steps=300)
    model = train_chat_model([(solve_example, 1.0)], cfg, seed=0)
    chat_replies(model, [[{"role": "user", "content": "What is 12+30?"}]])   # ["42"]
    save_chat_model(model, "runs/adder", "adder")                            # servable directory
"""

from __future__ import annotations

import copy
import os
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from paperlab.core.data.text import ByteTokenizer
from paperlab.core.generate import generate
from paperlab.core.llama import Llama, LlamaConfig
from paperlab.core.llm.chat import ChatModelInfo, render_chat
from paperlab.core.train import TrainConfig, train

TOKENIZER = ByteTokenizer(special_tokens=True)
BOS, EOS, PAD = TOKENIZER.bos_id, TOKENIZER.eos_id, TOKENIZER.pad_id
IGNORE = -100  # the cross-entropy ignore_index: no loss on these positions

Messages = list[dict[str, str]]
ExampleFn = Callable[[random.Random], tuple[Messages, str]]  # rng -> (messages, reply)


@dataclass
class TinyChatConfig:
    """Model size and training schedule of a tiny chat model."""

    dim: int = 64
    n_layers: int = 3  # 2 layers learn 3-digit addition far more slowly (the carries)
    n_heads: int = 4
    max_seq_len: int = 384  # longest example (prompt + reply + BOS/EOS), and generation limit
    steps: int = 600
    batch_size: int = 64
    lr: float = 5e-3
    warmup: int = 30
    weight_decay: float = 0.1

    def __post_init__(self) -> None:
        for name in ("dim", "n_layers", "n_heads", "max_seq_len", "steps", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"TinyChatConfig.{name}={getattr(self, name)}: must be >= 1")
        if self.dim % self.n_heads or (self.dim // self.n_heads) % 2:
            raise ValueError(
                f"TinyChatConfig: dim={self.dim} must split into n_heads={self.n_heads} "
                "heads of even size"
            )
        if self.lr <= 0 or self.warmup < 0 or self.weight_decay < 0:
            raise ValueError("TinyChatConfig: lr > 0, warmup >= 0 and weight_decay >= 0 please")

    def llama_config(self) -> LlamaConfig:
        return LlamaConfig(
            vocab_size=TOKENIZER.vocab_size,
            dim=self.dim,
            n_layers=self.n_layers,
            n_heads=self.n_heads,
            max_seq_len=self.max_seq_len,
            multiple_of=32,
        )


def encode_example(messages: Sequence[dict[str, str]], reply: str) -> tuple[list[int], list[int]]:
    """(ids, targets) of one example; targets are -100 except on the reply bytes and EOS."""
    prompt = TOKENIZER.encode(render_chat(messages), bos=True)
    answer = TOKENIZER.encode(reply, eos=True)
    return prompt + answer, [IGNORE] * len(prompt) + answer


def _collate(examples: Sequence[tuple[list[int], list[int]]]) -> tuple[torch.Tensor, ...]:
    """Right-pad a batch to its longest example: PAD ids, ignored targets."""
    T = max(len(ids) for ids, _ in examples)
    ids = torch.full((len(examples), T), PAD, dtype=torch.long)
    targets = torch.full((len(examples), T), IGNORE, dtype=torch.long)
    for row, (x, y) in enumerate(examples):
        ids[row, : len(x)] = torch.tensor(x)
        targets[row, : len(y)] = torch.tensor(y)
    return ids, targets


def _reply_loss(model: Llama, groups: list[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
    """Mean cross-entropy over all reply tokens of a batch held as per-task padded groups."""
    total, count = 0.0, 0
    for ids, targets in groups:
        logits = model(ids[:, :-1])  # right padding comes after the reply: causally unseen
        labels = targets[:, 1:].reshape(-1)
        total = total + F.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), labels, ignore_index=IGNORE, reduction="sum"
        )
        count += int((labels != IGNORE).sum())
    return total / max(count, 1)


def train_chat_model(
    tasks: Sequence[tuple[ExampleFn, float]],
    cfg: TinyChatConfig,
    *,
    seed: int,
    device: str = "cpu",
    progress: bool = False,
    desc: str = "",
    model: Llama | None = None,
) -> Llama:
    """Train a fresh model (or `model`, made by `init_model`) on a weighted mix of tasks: each
    example of each batch comes from a task drawn with probability proportional to its weight.
    The examples of one task are padded together (to their longest), so a few long examples do
    not pad a batch of short ones; the loss is the mean over all reply tokens of the batch.
    Everything is seeded by `seed` (the initial weights, the task draws and the examples, via
    `random.Random(seed)`)."""
    if not tasks:
        raise ValueError("train_chat_model: give at least one (example_fn, weight) task")
    fns, weights = zip(*tasks, strict=True)
    if any(w < 0 for w in weights) or sum(weights) <= 0:
        raise ValueError(f"train_chat_model: task weights must be >= 0, not all 0; got {weights}")
    rng = random.Random(seed)
    model = init_model(cfg, seed) if model is None else model

    def batch(step: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        by_task: dict[int, list] = {}
        for task in rng.choices(range(len(fns)), weights=weights, k=cfg.batch_size):
            ids, targets = encode_example(*fns[task](rng))
            if len(ids) > cfg.max_seq_len:
                raise ValueError(
                    f"train_chat_model: an example of {len(ids)} tokens exceeds "
                    f"max_seq_len={cfg.max_seq_len}; raise TinyChatConfig.max_seq_len"
                )
            by_task.setdefault(task, []).append((ids, targets))
        return [_collate(examples) for _, examples in sorted(by_task.items())]

    train_cfg = TrainConfig(
        steps=cfg.steps,
        lr=cfg.lr,
        warmup_steps=min(cfg.warmup, cfg.steps),
        weight_decay=cfg.weight_decay,
        log_every=max(1, cfg.steps // 20),
        progress=progress,
        seed=seed,
        desc=desc or "tiny chat",
    )
    train(model, _reply_loss, batch, train_cfg, device=device)
    return model.eval()


def init_model(cfg: TinyChatConfig, seed: int) -> Llama:
    """A freshly initialised model; its weights depend on `seed` only."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return Llama(cfg.llama_config())


@dataclass
class ChatJob:
    """One model of a zoo: its name, task mix, size and schedule, seed."""

    name: str
    tasks: Sequence[tuple[ExampleFn, float]]
    cfg: TinyChatConfig
    seed: int
    init: Llama | None = None  # start from a copy of this trained model (a shared base)


def train_chat_models(
    jobs: Sequence[ChatJob], *, workers: int = 2, device: str = "cpu", progress: bool = False
) -> dict[str, Llama]:
    """Train several tiny models at once, `workers` threads with one torch thread each: small
    models use a core poorly, so this is ~1.5x faster than one after another on 2 cores. The
    result does not depend on `workers`: weights are initialised here, one after another, and
    training draws nothing from torch's global RNG (no dropout)."""
    from concurrent.futures import ThreadPoolExecutor

    from paperlab.core.device import torch_threads

    models = {
        job.name: copy.deepcopy(job.init) if job.init is not None else init_model(job.cfg, job.seed)
        for job in jobs
    }

    def run(job: ChatJob) -> None:
        train_chat_model(
            job.tasks,
            job.cfg,
            seed=job.seed,
            device=device,
            progress=progress,
            desc=job.name,
            model=models[job.name],
        )

    with torch_threads(1), ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for future in [pool.submit(run, job) for job in jobs]:
            future.result()
    return models


def save_chat_model(model: Llama, directory: str | os.PathLike, model_id: str) -> Path:
    """Write a directory `paperlab serve` can serve: model.safetensors + paperlab_chat.json."""
    directory = Path(directory)
    model.save_pretrained(directory)
    ChatModelInfo(model_id).save(directory)
    return directory


def load_chat_model(
    directory: str | os.PathLike, *, device: str = "cpu"
) -> tuple[Llama, ChatModelInfo]:
    """The model and its chat metadata from a directory written by `save_chat_model`."""
    info = ChatModelInfo.load(directory)  # first: the clearer error for a non-chat directory
    model = Llama.from_pretrained(directory, device=device)
    if model.config.vocab_size != TOKENIZER.vocab_size:
        raise ValueError(
            f"{directory}: vocab_size={model.config.vocab_size}, but a byte chat model has "
            f"{TOKENIZER.vocab_size}"
        )
    return model.eval(), info


@torch.inference_mode()
def chat_replies(
    model: Llama,
    conversations: Sequence[Sequence[dict[str, str]]],
    *,
    max_new_tokens: int = 8,
    temperature: float = 0.0,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
    batch_size: int = 64,
) -> list[str]:
    """The model's reply to each conversation (greedy at temperature 0), decoded in left-padded
    batches of `batch_size`; generation stops at EOS, which is not part of the reply."""
    prompts = [TOKENIZER.encode(render_chat(c), bos=True) for c in conversations]
    replies = []
    for start in range(0, len(prompts), batch_size):
        outputs = generate(
            model,
            prompts[start : start + batch_size],
            max_new_tokens=max_new_tokens,
            temperature=temperature,
            top_p=top_p,
            stop_tokens=(EOS,),
            generator=generator,
            pad_token_id=PAD,
        )
        replies += [TOKENIZER.decode(out) for out in outputs]
    return replies
