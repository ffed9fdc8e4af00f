"""Better & Faster Large Language Models via Multi-token Prediction (Gloeckle, Youbi Idrissi,
Rozière, Lopez-Paz, Synnaeve; arXiv 2404.19737, 2024).

Idea: train a language model to predict the next n tokens at once. A shared transformer trunk
feeds n independent output heads (one transformer layer each) and a shared unembedding; head i
predicts token t + i and the loss is the sum of the n cross-entropies (Sec. 2). The trunk loses
n - 1 layers, so the model has exactly the parameters of its next-token twin. Training runs the
heads one at a time, each forward + backward into the trunk's output, so only one head's logits
are ever alive (Sec. 2, Fig. 2). At inference head 1 alone is an ordinary next-token model, and
heads 2..n can draft tokens that head 1 verifies in the next forward: greedy self-speculative
decoding with the output of plain greedy decoding (Sec. 3.2).

Claims: up to 3x faster inference with self-speculative decoding (6.4x for 8-byte prediction);
peak training memory O(V + d) instead of O(nV + d); multi-token training helps induction in
small models (Sec. 4.1) but small models do not gain (or lose) on next-token quality — the
benefits grow with scale (Sec. 3.1).

Public API: ``MTPConfig``, ``MultiTokenLlama``, ``mtp_loss``, ``efficient_backward``,
``make_loss_fn`` (for ``paperlab.core.train``), ``greedy_generate``,
``self_speculative_generate``, ``SpeculativeResult``, ``DraftHeads``; the copy task in
``paperlab.papers.mtp.induction``. See README.md for what is scaled down and the differences
from the paper.
"""

from paperlab.papers.mtp.model import (
    IGNORE_INDEX,
    MTPConfig,
    MultiTokenLlama,
    efficient_backward,
    head_loss,
    head_losses,
    make_loss_fn,
    mtp_loss,
)
from paperlab.papers.mtp.speculative import (
    DraftHeads,
    SpeculativeResult,
    greedy_generate,
    self_speculative_generate,
)

__all__ = [
    "IGNORE_INDEX",
    "DraftHeads",
    "MTPConfig",
    "MultiTokenLlama",
    "SpeculativeResult",
    "efficient_backward",
    "greedy_generate",
    "head_loss",
    "head_losses",
    "make_loss_fn",
    "mtp_loss",
    "self_speculative_generate",
]
