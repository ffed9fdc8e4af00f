"""MaskGIT (Chang et al. 2022, arXiv 2202.04200), the generator TiTok uses (Sec. 3.3, 4.1).

A bidirectional transformer over [class token ; N image tokens] learns to predict masked
tokens. Training masks ceil(gamma(r) * N) random tokens per image, r ~ U[0, 1). Sampling starts
from all [MASK] and, in T steps, predicts every masked token in parallel, keeps the most
confident ones and re-masks the rest so that mask_counts(N, T)[t] tokens stay masked after
step t. Classifier-free guidance runs a doubled batch (class / null class).

Token space (as TiTok's generator): [0, V) image codes, V = [MASK], V+1 .. V+C the classes,
V+1+C the null class (class dropout and the unconditional half of CFG).

    model = MaskGIT(codebook_size=256, seq_len=8, num_classes=12)
    loss = maskgit_loss(model, tokens, labels)
    ids = model.generate(labels, num_steps=8, cfg_scale=3.0)       # (B, 8)
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from paperlab.core.train import eval_mode
from paperlab.core.vit import Transformer, init_weights
from paperlab.papers.titok.saving import Pretrained, check_labels

Schedule = Literal["arccos", "cosine"]
SCHEDULES: tuple[str, ...] = ("arccos", "cosine")


def mask_ratio(r: Tensor | float, schedule: Schedule = "arccos") -> Tensor:
    """gamma(r): the share of tokens masked at progress r in [0, 1] (1 at r=0, 0 at r=1).

    "cosine" is MaskGIT's gamma(r) = cos(pi/2 r) (Sec. 3.3); "arccos" is TiTok's generator
    default, gamma(r) = arccos(r) / (pi/2) (TiTok's maskgit.py / masking utilities)."""
    r = torch.as_tensor(r, dtype=torch.float64)
    if schedule == "cosine":
        return torch.cos(r * math.pi / 2)
    if schedule == "arccos":
        return torch.arccos(r.clamp(-1.0, 1.0)) / (math.pi / 2)
    raise ValueError(f"unknown mask schedule {schedule!r}; choose one of {', '.join(SCHEDULES)}")


def mask_counts(n_tokens: int, num_steps: int, schedule: Schedule = "arccos") -> list[int]:
    """How many of ``n_tokens`` stay masked after each of the ``num_steps`` decoding steps.

    After step t (0-based) floor(N * gamma((t+1)/T)) tokens stay masked, clamped so that every
    step reveals at least one token and every step but the last keeps at least one masked; the
    last step reveals everything (TiTok's sampler). Monotone decreasing, ending at 0."""
    if n_tokens < 1 or num_steps < 1:
        raise ValueError(f"mask_counts: n_tokens={n_tokens} and num_steps={num_steps} must be >= 1")
    if num_steps > n_tokens:
        raise ValueError(
            f"mask_counts: num_steps={num_steps} > n_tokens={n_tokens}: a step could reveal no "
            f"token; use num_steps <= {n_tokens}"
        )
    counts, previous = [], n_tokens
    for step in range(num_steps):
        if step == num_steps - 1:
            counts.append(0)
            break
        target = math.floor(n_tokens * float(mask_ratio((step + 1) / num_steps, schedule)))
        previous = max(1, min(previous - 1, target))
        counts.append(previous)
    return counts


def gumbel_noise(shape: torch.Size, generator: torch.Generator | None, device) -> Tensor:
    """Standard Gumbel noise -log(-log(u)), u ~ U(0, 1), drawn on the CPU with ``generator``."""
    u = torch.rand(shape, generator=generator).clamp(1e-20, 1.0 - 1e-7)
    return (-torch.log(-torch.log(u))).to(device)


def cfg_scale_at(step: int, num_steps: int, scale: float, schedule: str) -> float:
    """The guidance scale at a decoding step. "constant": ``scale``. "linear": ramps from 1
    (plain conditional) at the first step to ``scale`` as decoding ends, as TiTok's
    guidance_decay="linear" (its scale g is ours minus 1: ours = 1 + g * step / T)."""
    if schedule == "constant":
        return scale
    if schedule == "linear":
        return 1.0 + (scale - 1.0) * step / num_steps
    raise ValueError(f"unknown cfg schedule {schedule!r}; choose constant or linear")


def guided_logits(cond: Tensor, uncond: Tensor, scale: float) -> Tensor:
    """Classifier-free guidance: uncond + scale * (cond - uncond) (scale 1 = conditional)."""
    return uncond + scale * (cond - uncond)


class MaskGIT(Pretrained, nn.Module):
    """Bidirectional transformer over [class token ; seq_len image tokens] -> code logits."""

    kind = "titok-maskgit"

    def __init__(
        self,
        *,
        codebook_size: int,
        seq_len: int,
        num_classes: int,
        dim: int = 64,
        depth: int = 2,
        n_heads: int = 4,
        dropout: float = 0.0,
    ):
        super().__init__()
        self.config = dict(
            codebook_size=codebook_size,
            seq_len=seq_len,
            num_classes=num_classes,
            dim=dim,
            depth=depth,
            n_heads=n_heads,
            dropout=dropout,
        )
        self.codebook_size, self.seq_len, self.num_classes = codebook_size, seq_len, num_classes
        self.mask_token_id = codebook_size
        self.null_class_id = codebook_size + 1 + num_classes
        self.token_embed = nn.Embedding(codebook_size + num_classes + 2, dim)
        self.pos_embed = nn.Parameter(torch.zeros(1, seq_len + 1, dim))
        # DEVIATION: pre-LN ViT blocks from paperlab.core.vit; TiTok's generator is a post-LN
        # BERT (24 layers, 768 wide, dropout 0.1) with absolute position embeddings.
        self.transformer = Transformer(dim=dim, depth=depth, n_heads=n_heads, dropout=dropout)
        self.head = nn.Linear(dim, codebook_size)  # logits over the image codes only
        self.apply(init_weights)
        nn.init.trunc_normal_(self.token_embed.weight, std=0.02)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)

    def condition(self, labels: Tensor, drop: Tensor | None = None) -> Tensor:
        """Class labels (B,) -> class token ids; rows where ``drop`` is True get the null class."""
        check_labels(labels, self.num_classes)
        ids = labels + self.codebook_size + 1
        return ids if drop is None else torch.where(drop, self.null_class_id, ids)

    def forward(self, ids: Tensor, labels: Tensor, drop: Tensor | None = None) -> Tensor:
        """ids (B, N) with [MASK] = codebook_size, labels (B,) -> logits (B, N, codebook_size)."""
        if ids.shape[1] != self.seq_len:
            raise ValueError(f"MaskGIT: got {ids.shape[1]} tokens, expected {self.seq_len}")
        tokens = torch.cat([self.condition(labels, drop)[:, None], ids], dim=1)
        h = self.transformer(self.token_embed(tokens) + self.pos_embed)
        return self.head(h[:, 1:])  # drop the class position

    def _logits(self, ids: Tensor, labels: Tensor, scale: float | None) -> Tensor:
        if scale is None:
            return self(ids, labels)
        B = ids.shape[0]
        drop = torch.arange(2 * B, device=ids.device) >= B  # [conditional ; null class]
        both = self(ids.repeat(2, 1), labels.repeat(2), drop)
        return guided_logits(both[:B], both[B:], scale)

    @torch.no_grad()
    def generate(
        self,
        labels: Tensor,
        *,
        num_steps: int = 8,
        schedule: Schedule = "arccos",
        temperature: float = 1.0,
        randomness_temperature: float = 4.5,
        cfg_scale: float | None = None,
        cfg_schedule: Literal["constant", "linear"] = "linear",
        generator: torch.Generator | None = None,
        trace: list[Tensor] | None = None,
    ) -> Tensor:
        """Iterative parallel decoding (MaskGIT Sec. 3.2) -> token ids (B, seq_len).

        Each step samples every position from softmax(logits / temperature); a masked position's
        confidence is the log-probability of its sample plus Gumbel noise scaled by
        randomness_temperature * (1 - (t+1)/T) (annealed, MaskGIT's choice temperature); the
        ``mask_counts`` least confident positions are masked again. ``cfg_scale`` None = no
        guidance. ``trace`` (a list) receives the ids after every step.

        DEVIATION: TiTok's sampler draws tokens by Gumbel-max with the annealed randomness
        temperature itself and ranks them by raw logits; here (as in the MaskGIT paper) tokens
        are sampled at ``temperature`` and ranked by log-probability + annealed Gumbel noise."""
        labels = labels.to(self.pos_embed.device)  # runs on the model's device
        with eval_mode(self):
            B, N = labels.shape[0], self.seq_len
            counts = mask_counts(N, num_steps, schedule)
            ids = torch.full((B, N), self.mask_token_id, dtype=torch.long, device=labels.device)
            for step, n_masked in enumerate(counts):
                scale = None
                if cfg_scale is not None:
                    scale = cfg_scale_at(step, num_steps, cfg_scale, cfg_schedule)
                logits = self._logits(ids, labels, scale).float()
                log_probs = F.log_softmax(logits / max(temperature, 1e-6), dim=-1)
                if temperature > 0:  # Gumbel-max draw == a sample from softmax(logits / T)
                    noise = gumbel_noise(log_probs.shape, generator, ids.device)
                    sampled = (log_probs + noise).argmax(-1)
                else:
                    sampled = log_probs.argmax(-1)
                is_mask = ids == self.mask_token_id
                confidence = log_probs.gather(-1, sampled[..., None]).squeeze(-1)
                annealed = randomness_temperature * (1.0 - (step + 1) / num_steps)
                confidence = confidence + annealed * gumbel_noise((B, N), generator, ids.device)
                confidence = confidence.masked_fill(~is_mask, math.inf)  # revealed tokens stay
                ids = torch.where(is_mask, sampled, ids)
                if n_masked:
                    lowest = confidence.argsort(dim=-1)[:, :n_masked]
                    ids = ids.scatter(1, lowest, self.mask_token_id)
                if trace is not None:
                    trace.append(ids.clone())
        return ids


# ---------------------------------------------------------------------------------------------
# Training


def random_mask(
    batch: int, n_tokens: int, schedule: Schedule, generator: torch.Generator | None
) -> Tensor:
    """(B, N) bool: per image r ~ U[0, 1) and ceil(gamma(r) * N) (>= 1) positions chosen
    uniformly at random are masked (MaskGIT Sec. 3.2).

    DEVIATION: TiTok's code masks each token independently with probability gamma(r), which
    can mask nothing when N is small (N = 8 here); the exact count of MaskGIT never does."""
    r = torch.rand(batch, generator=generator)
    n_mask = torch.ceil(mask_ratio(r, schedule) * n_tokens).clamp(1, n_tokens)  # (B,)
    ranks = torch.rand(batch, n_tokens, generator=generator).argsort(-1).argsort(-1)
    return ranks < n_mask[:, None]


def masked_token_loss(
    logits: Tensor,
    targets: Tensor,
    mask: Tensor,
    *,
    label_smoothing: float = 0.1,
    unmasked_weight: float = 0.1,
) -> Tensor:
    """Cross-entropy with label smoothing, weighted 1 on masked and ``unmasked_weight`` on
    unmasked positions (TiTok's MLMLoss: label_smoothing 0.1, loss_weight_unmasked_token 0.1;
    ``unmasked_weight=0`` is MaskGIT's loss on the masked tokens only)."""
    per_token = F.cross_entropy(
        logits.reshape(-1, logits.shape[-1]),
        targets.reshape(-1),
        label_smoothing=label_smoothing,
        reduction="none",
    ).view_as(targets)
    weights = mask.float() + unmasked_weight * (~mask).float()
    return (per_token * weights).sum() / weights.sum().clamp_min(1e-8)


def maskgit_loss(
    model: MaskGIT,
    tokens: Tensor,
    labels: Tensor,
    *,
    schedule: Schedule = "arccos",
    class_dropout: float = 0.1,
    label_smoothing: float = 0.1,
    unmasked_weight: float = 0.1,
    generator: torch.Generator | None = None,
) -> Tensor:
    """One training loss: mask by the schedule, drop 10% of the labels to the null class."""
    B, N = tokens.shape
    mask = random_mask(B, N, schedule, generator).to(tokens.device)
    drop = (torch.rand(B, generator=generator) < class_dropout).to(tokens.device)
    inputs = tokens.masked_fill(mask, model.mask_token_id)
    logits = model(inputs, labels, drop)
    return masked_token_loss(
        logits, tokens, mask, label_smoothing=label_smoothing, unmasked_weight=unmasked_weight
    )
