"""AdvPrompterOpt (Sec. 3.3, Alg. 2 of the paper; the official ``advprompteropt.py``).

A suffix is built token by token, up to ``max_new_tokens``. At each step, for each beam:

1. the prompter's next-token distribution (with the repetition penalty on the suffix so far)
   proposes candidates: ``top_k / beams_in`` tokens sampled without replacement at
   temperature 0.6, the prompter's argmax always among them;
2. each candidate is scored by the frozen base's log-prob of it minus ``lambda`` (100) times
   the change it brings to the target's teacher-forced loss on the affirmative target (tokens
   weighted 1/t), added to its beam's running score;
3. the next beams (4) are sampled without replacement from softmax(score / 0.6) over all
   candidates of a request, the best one always kept; the last step keeps the best only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from paperlab.papers.advprompter.models import prompt_ids, target_loss
from paperlab.papers.advprompter.world import WordTokenizer


@dataclass(frozen=True)
class OptParams:
    """The official ``train.q_params`` (conf/train.yaml), max_new_tokens scaled down."""

    max_new_tokens: int = 6  # DEVIATION: 30 Llama tokens in the paper; 6 words here
    num_beams: int = 4
    top_k: int = 48  # candidates per request and step, shared among the beams
    lambda_val: float = 100.0
    repetition_penalty: float = 1.2
    cand_temperature: float = 0.6
    beam_temperature: float = 0.6

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1 or self.num_beams < 1:
            raise ValueError("OptParams: max_new_tokens and num_beams must be >= 1")
        if self.top_k % self.num_beams:
            raise ValueError(f"OptParams: top_k={self.top_k} must divide by num_beams")


def apply_repetition_penalty(logits: torch.Tensor, prev_ids: torch.Tensor, penalty: float):
    """CTRL's rule (as the official code): the logits of tokens already in the suffix are
    divided by ``penalty`` when positive and multiplied by it when negative."""
    picked = logits.gather(1, prev_ids)
    picked = torch.where(picked < 0, picked * penalty, picked / penalty)
    return logits.scatter(1, prev_ids, picked)


def _next_logits(model: nn.Module, tok: WordTokenizer, instructs, suffix_ids) -> torch.Tensor:
    rows = [prompt_ids(tok, x) + s for x, s in zip(instructs, suffix_ids, strict=True)]
    device = next(model.parameters()).device
    return model(torch.tensor(rows, device=device))[:, -1].float().cpu()  # equal lengths


def sample_keep_best(scores: torch.Tensor, n: int, temperature: float, gen) -> torch.Tensor:
    """n indices per row sampled without replacement from softmax(scores / T), the argmax
    always first (the official ``always_include_best``)."""
    best = scores.argmax(-1, keepdim=True)
    others = scores.scatter(1, best, float("-inf"))
    if n == 1:
        return best
    probs = torch.softmax(others / temperature, -1)
    sampled = torch.multinomial(probs, n - 1, replacement=False, generator=gen)
    return torch.cat([best, sampled], 1)


@torch.no_grad()
def advprompter_opt(
    prompter: nn.Module,
    target: nn.Module,
    tok: WordTokenizer,
    instructs: Sequence[str],
    targets: Sequence[str],
    allowed: torch.Tensor,
    params: OptParams = OptParams(),
    *,
    generator: torch.Generator | None = None,
) -> list[str]:
    """One optimised suffix per request (the best final beam)."""
    bs, p = len(instructs), params
    losses = target_loss(target, tok, instructs, targets)  # (bs,) without a suffix
    scores = torch.zeros(bs)
    beams: list[list[int]] = [[] for _ in range(bs)]  # suffix ids, bs * n_in rows
    n_in = 1
    for step in range(p.max_new_tokens):
        n_out = 1 if step == p.max_new_tokens - 1 else p.num_beams
        inst = [x for x in instructs for _ in range(n_in)]
        tgt = [y for y in targets for _ in range(n_in)]
        # (1) candidates from the prompter, scored by the base (adapters off)
        logits_q = _next_logits(prompter, tok, inst, beams)
        with prompter.disable_adapter():
            logits_b = _next_logits(prompter, tok, inst, beams)
        if step > 0:
            prev = torch.tensor(beams)
            logits_q = apply_repetition_penalty(logits_q, prev, p.repetition_penalty)
            logits_b = apply_repetition_penalty(logits_b, prev, p.repetition_penalty)
        logits_q = logits_q.masked_fill(~allowed, float("-inf"))
        logprobs_b = torch.log_softmax(logits_b.masked_fill(~allowed, float("-inf")), -1)
        k = p.top_k // n_in
        cand = sample_keep_best(logits_q, k, p.cand_temperature, generator)  # (bs*n_in, k)
        # (2) target loss of every extended suffix; score = base logprob - lambda * loss change
        ext = [b + [c] for b, row in zip(beams, cand.tolist(), strict=True) for c in row]
        texts = [f"{x} {tok.decode(s)}" for x, s in zip(_rep(inst, k), ext, strict=True)]
        cand_losses = target_loss(target, tok, texts, _rep(tgt, k)).view(-1, k)
        delta = cand_losses - losses[:, None]
        cand_scores = scores[:, None] + logprobs_b.gather(1, cand) - p.lambda_val * delta
        # (3) next beams sampled from the scores of all candidates of a request
        flat_scores = cand_scores.view(bs, n_in * k)
        pick = sample_keep_best(flat_scores, n_out, p.beam_temperature, generator)
        beams = [ext[i * n_in * k + j] for i in range(bs) for j in pick[i].tolist()]
        losses = cand_losses.view(bs, n_in * k).gather(1, pick).reshape(-1)
        scores = flat_scores.gather(1, pick).reshape(-1)
        n_in = n_out
    return [tok.decode(b) for b in beams]


def _rep(items: Sequence, k: int) -> list:
    return [x for x in items for _ in range(k)]
