"""A miniature of the induction experiment (Gloeckle et al. 2024, Sec. 4.1, Fig. 7).

The paper replaces character names in children's stories by random two-token names and
measures how well a model predicts a name's second token when the name comes back: a pure
induction task. Here the same capability in its barest form: a sequence is k random tokens
(k varies, so the copy offset is not a fixed position), a separator, and the same k tokens
again; head 1's accuracy on the copy half measures induction.

    x = [a_1 .. a_k] SEP [a_1 .. a_k] PAD ...        (tokens 0..V-1, SEP = V, PAD = V + 1)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from paperlab.core.train import TrainConfig, eval_mode, train
from paperlab.papers.mtp.model import IGNORE_INDEX, MTPConfig, MultiTokenLlama, make_loss_fn


# DEVIATION: the paper's probe is the second token of random two-token names in children's
# stories, with models trained on the stories; here a synthetic copy task stands in for both,
# scored (by default) on every token like language modelling, induction read off the copy half.
@dataclass(frozen=True)
class CopyTask:
    """Sequences [a_1 .. a_k] SEP [a_1 .. a_k] PAD.., k uniform in [min_len, max_len], the a_i
    distinct tokens of 0..vocab-1 (one copy source each); SEP = vocab, PAD = vocab + 1."""

    vocab: int = 32
    min_len: int = 4
    max_len: int = 12
    loss_on_prefix: bool = True  # score the random prefix too (LM-style), or the copy half only

    @property
    def vocab_size(self) -> int:
        return self.vocab + 2

    @property
    def seq_len(self) -> int:
        return 2 * self.max_len + 1

    def batch(
        self, batch_size: int, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(inputs, targets, copy_mask), each (B, 2 * max_len + 1).

        `targets` follow the next-token convention (targets[:, t] = x[:, t + 1]) with
        IGNORE_INDEX on padding, and on the random prefix unless `loss_on_prefix`. `copy_mask`
        marks the targets in the copy half: where induction is measured."""
        T = self.seq_len
        sep, pad = self.vocab, self.vocab + 1
        seq = torch.full((batch_size, T + 1), pad, dtype=torch.long)
        copy = torch.zeros((batch_size, T + 1), dtype=torch.bool)
        lengths = torch.randint(self.min_len, self.max_len + 1, (batch_size,), generator=generator)
        for b, k in enumerate(lengths.tolist()):
            tokens = torch.randperm(self.vocab, generator=generator)[:k]
            seq[b, :k], seq[b, k], seq[b, k + 1 : 2 * k + 1] = tokens, sep, tokens
            copy[b, k + 1 : 2 * k + 1] = True
        inputs, targets, copy = seq[:, :-1], seq[:, 1:].clone(), copy[:, 1:]
        scored = (targets != pad) if self.loss_on_prefix else copy
        targets[~scored] = IGNORE_INDEX
        return inputs, targets, copy


@torch.no_grad()
def copy_accuracy(model: MultiTokenLlama, inputs, targets, copy_mask) -> float:
    """Head 1's argmax accuracy on the copy half (the induction score)."""
    logits = model.unembed(model.head_hidden(0, model.trunk(inputs)))  # (B, T, V)
    hits = logits.argmax(-1)[copy_mask] == targets[copy_mask]
    return float(hits.float().mean())


def train_copy_task(
    task: CopyTask,
    *,
    n_future: int,
    n_layers: int,
    dim: int,
    steps: int,
    batch_size: int,
    lr: float,
    eval_every: int,
    seed: int,
    progress: bool = False,
) -> tuple[list[int], list[float]]:
    """Train one model on the copy task; return (eval steps, head-1 copy accuracies)."""
    torch.manual_seed(seed)
    config = MTPConfig(
        vocab_size=task.vocab_size,
        dim=dim,
        n_layers=n_layers,
        n_heads=max(1, dim // 16),
        ffn_hidden=2 * dim,
        max_seq_len=task.seq_len,
        n_future=n_future,
    )
    model = MultiTokenLlama(config=config)
    probe = task.batch(256, torch.Generator().manual_seed(10_000 + seed))
    data = torch.Generator().manual_seed(seed + 1)
    eval_steps: list[int] = []
    accuracies: list[float] = []

    def on_step(step: int, m: MultiTokenLlama, history) -> None:
        if (step + 1) % eval_every == 0 or step + 1 == steps:
            with eval_mode(m):
                eval_steps.append(step + 1)
                accuracies.append(copy_accuracy(m, *probe))

    cfg = TrainConfig(
        steps=steps,
        lr=lr,
        warmup_steps=min(20, steps // 10),
        weight_decay=0.0,
        manual_backward=True,
        progress=progress,
        seed=seed,
        desc=f"copy task n={n_future}",
    )
    batches = lambda step: task.batch(batch_size, data)[:2]  # noqa: E731
    train(model, make_loss_fn(efficient=True), batches, cfg, on_step=on_step)
    return eval_steps, accuracies


def steps_to_threshold(
    eval_steps: Sequence[int], accuracies: Sequence[float], threshold: float, *, censored: float
) -> float:
    """First evaluated step with accuracy >= threshold; `censored` if it was never reached."""
    hits = (s for s, a in zip(eval_steps, accuracies, strict=True) if a >= threshold)
    return float(next(hits, censored))
