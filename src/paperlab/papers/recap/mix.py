"""Recap-CLIP's caption mixing and the captioner adapter.

Sec. 5.1 of the paper trains CLIP on Recap-DataComp-1B with a mixing ratio p: each sample's
text is its original web caption with probability p and its recaption otherwise (drawn afresh
every time the sample is seen); p = 0 is recaptions only, p = 1 the original DataComp-1B.

    texts = mixed_captions(org, re, p=0.8, seed=0)      # (indices, step) -> captions
    train_clip(model, images, texts, steps=600)          # core.clip
    captioner = ImageLLMCaptioner(image_llm)            # images -> captions, for the pipeline
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from paperlab.core.imagellm import ImageLLM

PROMPT = "describe the image"  # the captioner's one instruction (LLaVA's detailed-caption ask)


def check_p(p: float) -> float:
    """``p`` as a float in [0, 1], else a ValueError naming it."""
    if isinstance(p, bool) or not isinstance(p, int | float) or not 0.0 <= float(p) <= 1.0:
        raise ValueError(f"p={p!r}: the share of original captions must be in [0, 1]")
    return float(p)


def mixed_captions(
    original: Sequence[str], recaption: Sequence[str], *, p: float, seed: int = 0
) -> Callable[[Tensor, int], list[str]]:
    """``(indices, step) -> captions``: sample i gets ``original[i]`` with probability ``p``,
    else ``recaption[i]``; the coin depends only on (seed, step, position), so a repeated or
    resumed run sees the same texts (usable as ``core.clip.train_clip``'s ``texts``)."""
    p = check_p(p)
    if len(original) != len(recaption):
        raise ValueError(f"mixed_captions: {len(original)} originals, {len(recaption)} recaptions")

    def texts(indices: Tensor, step: int) -> list[str]:
        gen = torch.Generator().manual_seed(seed * 1_000_003 + step + 7)
        coins = torch.rand(len(indices), generator=gen) < p
        return [
            original[i] if use else recaption[i]
            for i, use in zip(indices.tolist(), coins.tolist(), strict=True)
        ]

    return texts


class ImageLLMCaptioner:
    """A :class:`~paperlab.core.imagellm.ImageLLM` as the pipeline's captioner: images
    (B, 3, H, W) -> one greedy caption each for :data:`PROMPT` (picklable, for Ray)."""

    def __init__(self, model: ImageLLM, *, max_new_tokens: int = 160, prompt: str = PROMPT):
        self.model = model.eval()
        self.max_new_tokens = max_new_tokens
        self.prompt = prompt

    @property
    def image_size(self) -> int:
        return self.model.config.image_size

    def __call__(self, images: Tensor) -> list[str]:
        return self.model.generate(
            images, [self.prompt] * len(images), max_new_tokens=self.max_new_tokens
        )
