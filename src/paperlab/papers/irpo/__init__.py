"""Iterative Reasoning Preference Optimization (Iterative RPO; Pang, Yuan, Cho, He, Sukhbaatar,
Weston; arXiv 2404.19733).

Idea: a model improves its own chain-of-thought (CoT) reasoning from answer labels alone. In
each iteration it samples N CoT + answer completions per training problem; completions with the
right final answer are winners, the others losers; up to K (winner, loser) pairs per problem
train the next model M_{t+1}, initialised from M_t, with DPO (reference M_t, beta = 0.1) plus a
length-normalised negative log-likelihood term on the winner (alpha = 1). The NLL term is what
makes it work on reasoning: under DPO alone the winners' probability falls too.

Claims: accuracy rises over iterations (Llama-2-70B-Chat, GSM8K 55.6 -> 81.6; 88.7 maj@32),
DPO + NLL beats DPO alone, the chosen log-prob falls under DPO only, majority vote >= greedy.
Miniature: a tiny Llama on multi-step arithmetic chains with CoT (see README.md).

Public API: ``dpo_nll_loss``, ``token_logps`` (the loss, ``nll="sequence"`` as in the paper or
``"tokens"`` as in TRL); ``IRPOConfig``, ``iterative_rpo``, ``IRPOResult``, ``sft``,
``sample_completions``, ``build_pairs``, ``Pair``, ``train_iteration``, ``evaluate``,
``save_iteration``, ``load_iteration``, ``tiny_llama``; the task: ``ChainProblem``,
``sample_chains``, ``final_answer``, ``is_correct``, ``CharTokenizer``, ``TOKENIZER``.
"""

from paperlab.papers.irpo.irpo import (
    IRPOConfig,
    IRPOResult,
    Pair,
    build_pairs,
    evaluate,
    iterative_rpo,
    last_iteration,
    load_iteration,
    pair_batch,
    sample_completions,
    save_iteration,
    sequence_logps,
    sft,
    tiny_llama,
    train_iteration,
)
from paperlab.papers.irpo.loss import NLL_MODES, dpo_nll_loss, token_logps
from paperlab.papers.irpo.task import (
    TOKENIZER,
    ChainProblem,
    CharTokenizer,
    final_answer,
    is_correct,
    sample_chains,
)

__all__ = [
    "NLL_MODES",
    "TOKENIZER",
    "ChainProblem",
    "CharTokenizer",
    "IRPOConfig",
    "IRPOResult",
    "Pair",
    "build_pairs",
    "dpo_nll_loss",
    "evaluate",
    "final_answer",
    "is_correct",
    "iterative_rpo",
    "last_iteration",
    "load_iteration",
    "pair_batch",
    "sample_chains",
    "sample_completions",
    "save_iteration",
    "sequence_logps",
    "sft",
    "tiny_llama",
    "token_logps",
    "train_iteration",
]
