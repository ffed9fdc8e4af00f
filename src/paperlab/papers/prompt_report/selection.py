"""Exemplar selection for few-shot prompts (Sec. 2.2.1.2): random, or the K nearest neighbours
of the test question in a sentence-embedding space (Liu et al. 2021; MiniLM here).

Both are deterministic: the random draw is seeded by the selector's seed and the item, and
the item itself (same question and options) is never its own exemplar.

    knn = KNNSelector(pool, k=3)                 # all-MiniLM-L6-v2 embeddings, cosine
    shots = knn.select(item)
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Sequence

import numpy as np

from paperlab.core.mc import MCItem
from paperlab.papers.prompt_report.prompts import question_text

Embed = Callable[[Sequence[str]], np.ndarray]  # texts -> (N, D) unit-norm rows


def _check(pool: Sequence[MCItem], k: int) -> list[MCItem]:
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive int, got {k!r}")
    usable = [x for x in pool if x.answer is not None]
    if len(usable) <= k:
        raise ValueError(
            f"pool: need more than k={k} items with a correct answer, got {len(usable)}"
        )
    return usable


def _same(a: MCItem, b: MCItem) -> bool:
    return a.question == b.question and a.options == b.options


class RandomSelector:
    """`k` exemplars drawn uniformly from the pool, a fixed draw per (seed, item)."""

    name = "random"

    def __init__(self, pool: Sequence[MCItem], k: int = 3, *, seed: int = 0):
        self.pool, self.k, self.seed = _check(pool, k), k, seed

    def select(self, item: MCItem) -> list[MCItem]:
        key = hashlib.sha256(f"{self.seed}|{item.question}|{item.options}".encode()).digest()
        rng = random.Random(int.from_bytes(key[:8], "big"))
        candidates = [x for x in self.pool if not _same(x, item)]
        return rng.sample(candidates, self.k)


def minilm_embedder(device: str = "cpu") -> Embed:
    """all-MiniLM-L6-v2 (`paperlab.core.embed.MiniLM`, offline) as a function: unit-norm rows."""
    from paperlab.core.embed import MiniLM

    return MiniLM(device=device).encode


class KNNSelector:
    """The `k` pool items most similar to the test item (cosine of embeddings of the question
    and its options), most similar last, so the closest exemplar sits next to the question
    (Liu et al. 2021 order them this way). Ties: the earlier pool item wins."""

    name = "knn"

    def __init__(self, pool: Sequence[MCItem], k: int = 3, *, embed: Embed | None = None):
        self.pool, self.k = _check(pool, k), k
        self.embed = embed or minilm_embedder()
        self.vectors = np.asarray(self.embed([self.text_of(x) for x in self.pool]), dtype=float)

    @staticmethod
    def text_of(item: MCItem) -> str:
        """The text embedded for an item: its question and lettered options."""
        return question_text(item, "mmlu").removesuffix("\nAnswer:")

    def select(self, item: MCItem) -> list[MCItem]:
        query = np.asarray(self.embed([self.text_of(item)]), dtype=float)[0]
        sims = self.vectors @ query
        order = sorted(range(len(self.pool)), key=lambda i: (-sims[i], i))
        chosen = [i for i in order if not _same(self.pool[i], item)][: self.k]
        return [self.pool[i] for i in reversed(chosen)]
