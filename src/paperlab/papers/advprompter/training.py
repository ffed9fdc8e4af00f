"""AdvPrompterTrain (Sec. 3.2, Alg. 1; the official ``main.py``) and the evaluations.

Per batch of refused requests: the prompter samples a suffix; AdvPrompterOpt finds a better
one; the pair goes into a prioritised replay buffer with priority relu(L_init - L_opt) +
jailbroken (zero-priority pairs are dropped); then up to 8 NLL updates of the prompter's LoRA
weights on batches sampled from the buffer with probability proportional to priority^1.5.
Targets are augmented as in the official data loader. The prompter (with its optimizer and
the buffer) is checkpointed after every epoch, so Ctrl-C keeps the finished epochs and
``resume`` continues from them.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from paperlab.core.checkpoint import load_checkpoint, save_checkpoint
from paperlab.core.train import TrainConfig, train
from paperlab.papers.advprompter.models import (
    continuation_loss,
    greedy_replies,
    prompt_ids,
    sample_suffixes,
    target_loss,
)
from paperlab.papers.advprompter.opt import OptParams, advprompter_opt
from paperlab.papers.advprompter.world import (
    Request,
    WordTokenizer,
    augment_target,
    is_refusal,
)

CHECKPOINT_KIND = "AdvPrompterPrompter"


class ReplayBuffer:
    """A prioritised replay buffer (torchrl's ``PrioritizedSampler`` over a ``ListStorage`` in
    the official code): ``capacity`` items, the oldest overwritten first; a batch is drawn with
    replacement with probability proportional to priority^alpha."""

    def __init__(self, capacity: int = 256, alpha: float = 1.5) -> None:
        if capacity < 1 or alpha < 0:
            raise ValueError(f"ReplayBuffer: capacity={capacity} >= 1, alpha={alpha} >= 0")
        self.capacity, self.alpha = capacity, alpha
        self.items: list[tuple[str, str, str]] = []  # (instruct, target, suffix)
        self.priorities: list[float] = []
        self.cursor = 0

    def __len__(self) -> int:
        return len(self.items)

    def add(self, item: tuple[str, str, str], priority: float) -> None:
        if priority <= 0:
            return  # "zero priority are not added to buffer"
        if len(self.items) < self.capacity:
            self.items.append(item)
            self.priorities.append(priority)
        else:
            self.items[self.cursor], self.priorities[self.cursor] = item, priority
        self.cursor = (self.cursor + 1) % self.capacity

    def probabilities(self) -> torch.Tensor:
        p = torch.tensor(self.priorities, dtype=torch.float64) ** self.alpha
        return p / p.sum()

    def sample(self, n: int, generator: torch.Generator | None = None) -> list:
        idx = torch.multinomial(self.probabilities(), n, replacement=True, generator=generator)
        return [self.items[i] for i in idx.tolist()]

    def state(self) -> dict:
        return {"items": self.items, "priorities": self.priorities, "cursor": self.cursor}

    def load_state(self, state: dict) -> None:
        self.items = [tuple(x) for x in state["items"]]
        self.priorities = list(state["priorities"])
        self.cursor = state["cursor"]


@dataclass(frozen=True)
class PrompterTraining:
    """The official ``train`` block (conf/train.yaml), epochs scaled down."""

    epochs: int = 10  # DEVIATION: the claims run 3 epochs over 96 requests (paper: 10 x 312)
    batch_size: int = 8
    lr: float = 5e-4  # Adam on the LoRA weights
    buffer_size: int = 256
    priority_alpha: float = 1.5
    num_updates: int = 8
    augment_target: bool = True
    opt: OptParams = field(default_factory=OptParams)

    def __post_init__(self) -> None:
        if self.epochs < 0 or self.batch_size < 1 or self.num_updates < 1 or self.lr <= 0:
            raise ValueError("PrompterTraining: epochs >= 0, batch_size, num_updates >= 1, lr > 0")


def prompter_nll(prompter: nn.Module, tok: WordTokenizer, pairs) -> torch.Tensor:
    """The prompter's regression loss: mean NLL of the suffix tokens given the request."""
    prompts = [prompt_ids(tok, x) for x, _, _ in pairs]
    suffixes = [tok.encode(s) for _, _, s in pairs]
    return continuation_loss(prompter, prompts, suffixes).mean()


def jailbroken(target: nn.Module, tok: WordTokenizer, instructs, suffixes) -> list[bool]:
    prompts = [f"{x} {s}".strip() for x, s in zip(instructs, suffixes, strict=True)]
    return [not is_refusal(r) for r in greedy_replies(target, tok, prompts)]


def train_prompter(
    prompter: nn.Module,
    target: nn.Module,
    tok: WordTokenizer,
    train_set: Sequence[Request],
    allowed: torch.Tensor,
    recipe: PrompterTraining,
    *,
    seed: int,
    checkpoint: str | Path | None = None,
    resume: bool = False,
    progress: bool = False,
    on_epoch: Callable[[int, dict], None] | None = None,
    meta: dict | None = None,
    device: str = "cpu",
) -> dict:
    """Train the prompter's LoRA weights in place (Alg. 1); return the history per epoch
    (``opt_jailbroken``, ``loss_init``, ``loss_opt``, ``nll``, ``buffer``)."""
    if not train_set:
        raise ValueError("train_prompter: the training set of requests is empty")
    params = [p for p in prompter.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=recipe.lr)
    buffer = ReplayBuffer(recipe.buffer_size, recipe.priority_alpha)
    history: dict[str, list[float]] = {}
    start = 0
    if resume and checkpoint is not None and Path(checkpoint).exists():
        saved = load_checkpoint(checkpoint, prompter, optimizer=optimizer, kind=CHECKPOINT_KIND)
        start, history = saved["epoch"], saved["history"]
        buffer.load_state(saved["buffer"])
    gen = torch.Generator().manual_seed(seed)
    prompter.to(device)
    target.to(device).eval()
    for epoch in range(start, recipe.epochs):
        gen.manual_seed(seed * 7919 + epoch)
        rng = random.Random(seed * 7919 + epoch)
        order = list(train_set)
        rng.shuffle(order)
        batches = [
            order[i : i + recipe.batch_size] for i in range(0, len(order), recipe.batch_size)
        ]
        stats: dict[str, list[float]] = {}
        bar = tqdm(batches, desc=f"prompter epoch {epoch + 1}", leave=False, disable=not progress)
        for b, batch in enumerate(bar):
            instructs = [r.text for r in batch]
            targets = [
                augment_target(r.target, rng) if recipe.augment_target else r.target for r in batch
            ]
            prompter.eval()
            with torch.no_grad():
                suffix0 = sample_suffixes(
                    prompter,
                    tok,
                    instructs,
                    allowed,
                    length=recipe.opt.max_new_tokens,
                    generator=gen,
                )
                full0 = [f"{x} {s}" for x, s in zip(instructs, suffix0, strict=True)]
                loss_init = target_loss(target, tok, full0, targets)
                suffix = advprompter_opt(
                    prompter, target, tok, instructs, targets, allowed, recipe.opt, generator=gen
                )
                full = [f"{x} {s}" for x, s in zip(instructs, suffix, strict=True)]
                loss_opt = target_loss(target, tok, full, targets)
                jb = jailbroken(target, tok, instructs, suffix)
            priority = torch.relu(loss_init - loss_opt) + torch.tensor(jb, dtype=torch.float)
            for i in range(len(batch)):
                buffer.add((instructs[i], targets[i], suffix[i]), float(priority[i]))
            nll = _finetune(prompter, tok, buffer, optimizer, recipe, gen, (seed, epoch, b), device)
            for key, value in (
                ("loss_init", loss_init.mean()),
                ("loss_opt", loss_opt.mean()),
                ("opt_jailbroken", sum(jb) / len(jb)),
                ("nll", nll),
            ):
                if value == value:  # skip NaN (no update yet)
                    stats.setdefault(key, []).append(float(value))
        for key, values in stats.items():
            history.setdefault(key, []).append(sum(values) / len(values))
        history.setdefault("buffer", []).append(len(buffer))
        if checkpoint is not None:  # the finished epoch is kept (Ctrl-C loses only the next)
            saved = {"epoch": epoch + 1, "history": history, "buffer": buffer.state()}
            save_checkpoint(
                checkpoint,
                prompter,
                optimizer=optimizer,
                meta=(meta or {}) | saved,
                kind=CHECKPOINT_KIND,
            )
        if on_epoch is not None:
            on_epoch(epoch, history)
    prompter.eval()
    return history


def _finetune(prompter, tok, buffer, optimizer, recipe, gen, where, device) -> float:
    """Up to ``num_updates`` NLL steps on buffer batches, through core's training loop with the
    prompter's persistent Adam (constant lr, no clipping: the official plain Adam steps)."""
    if len(buffer) < recipe.batch_size:
        return float("nan")
    seed, epoch, b = where
    n = min(recipe.num_updates, len(buffer) // recipe.batch_size)
    batches = [buffer.sample(recipe.batch_size, gen) for _ in range(n)]
    cfg = TrainConfig(
        steps=n,
        lr=recipe.lr,
        min_lr_ratio=1.0,
        grad_clip=None,
        progress=False,
        seed=seed * 104_729 + epoch * 1009 + b,
    )
    hist = train(
        prompter,
        lambda m, pairs: prompter_nll(m, tok, pairs),
        batches,
        cfg,
        optimizer=optimizer,
        device=device,
    )
    prompter.eval()
    return hist["loss"][-1]


# ---------------------------------------------------------------------------------------------
# Evaluation


def asr_at_k(
    suffix_fn: Callable[[list[str]], list[str]],
    target: nn.Module,
    tok: WordTokenizer,
    test_set: Sequence[Request],
    k: int,
) -> dict[str, Any]:
    """ASR@1 and ASR@k: ``k`` suffixes per request from ``suffix_fn(instructs)``; a request
    counts at k when one of its k suffixes jailbreaks the target (the official
    ``hit_rate_at_n``). ASR@1 is the mean success of a single suffix over all k trials.

    DEVIATION: the official ASR@1 reads the first trial only; the mean over trials estimates
    the same probability with less noise."""
    if not test_set:
        raise ValueError("asr_at_k: the set of requests is empty")
    if k < 1:
        raise ValueError(f"asr_at_k: k must be >= 1, got {k}")
    instructs = [r.text for r in test_set]
    hits = torch.zeros(len(test_set), k)
    suffixes: list[str] = []
    for trial in range(k):
        s = suffix_fn(instructs)
        suffixes += s
        hits[:, trial] = torch.tensor(jailbroken(target, tok, instructs, s), dtype=torch.float)
    return {
        "asr1": float(hits.mean()),
        "asrk": float((hits.sum(1) > 0).float().mean()),
        "suffixes": suffixes,
    }


def task_accuracy(
    target: nn.Module, tok: WordTokenizer, reqs: Sequence[Request], suffixes: Sequence[str] = ()
) -> float:
    """Share of ordinary requests whose greedy reply names the right tool (and no refusal)."""
    suffixes = list(suffixes) or [""] * len(reqs)
    prompts = [f"{r.text} {s}".strip() for r, s in zip(reqs, suffixes, strict=True)]
    replies = greedy_replies(target, tok, prompts)
    ok = [
        f"use the {r.tool} ." in y and not is_refusal(y) for r, y in zip(reqs, replies, strict=True)
    ]
    return sum(ok) / len(ok)
