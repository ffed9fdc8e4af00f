"""Kangaroo: Lossless Self-Speculative Decoding via Double Early Exiting (Liu, Tang, Liu,
Ni, Han, Wang; Huawei Noah's Ark Lab; arXiv 2404.18911, 2024).

Idea: the draft model of speculative decoding is the target LLM's own first l layers (the
first early exit) plus a light adapter (one attention layer and norms) that maps the shallow
hidden state to the target's LM head; the target is frozen and the adapter is trained to match
the full model's next-token distribution. Drafting stops as soon as the draft's top-1
confidence drops below a threshold eta, or after gamma tokens (the second early exit), and
the remaining layers l+1..L verify every drafted token in one forward over the cached
exit-layer hidden states, so the shallow layers never run twice. Greedy output is exactly the
target's; with sampling, the speculative acceptance rule keeps the target's distribution.

Claim: up to 1.68x wall-time speedup on Spec-Bench (Vicuna-7B) with 88.7% fewer extra
parameters than Medusa-1 (67M vs 591M), a consistent token acceptance rate, and the double
early exit (the eta threshold) and the adapter each matter (Sec. 4, Table 3, Fig. 5).

Public API: ``KangarooAdapter`` (``for_model``, ``save_pretrained`` / ``from_pretrained``),
``train_adapter``, ``evaluate_adapter``, ``soft_cross_entropy``, ``KangarooDecoder``
(``generate(prompt, max_new_tokens=, temperature=, top_k=, top_p=, generator=,
stop_tokens=)``) and ``KangarooResult``. See README.md for what is scaled down and the
differences from the paper.
"""

from paperlab.papers.kangaroo.adapter import (
    AdapterLayer,
    KangarooAdapter,
    adapter_loss,
    evaluate_adapter,
    soft_cross_entropy,
    teacher,
    train_adapter,
)
from paperlab.papers.kangaroo.decoding import KangarooDecoder, KangarooResult

__all__ = [
    "AdapterLayer",
    "KangarooAdapter",
    "KangarooDecoder",
    "KangarooResult",
    "adapter_loss",
    "evaluate_adapter",
    "soft_cross_entropy",
    "teacher",
    "train_adapter",
]
