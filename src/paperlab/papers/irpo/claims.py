"""Iterative RPO's claims in miniature (Pang, Yuan, Cho, He, Sukhbaatar, Weston 2024,
arXiv 2404.19733).

(1) iterations:     accuracy rises over the iterations (Sec. 3.1, Table 1: Llama-2-70B-Chat on
                    GSM8K 55.6 -> 81.6 greedy over 4 iterations; MATH 12.5 -> 20.8; ARC-Challenge
                    77.8 -> 86.7).
(2) nll_term:       DPO + NLL beats DPO alone (Sec. 3.1, Table 1 and Fig. 2: without the NLL term
                    the first iteration reaches 61.8 vs 73.1 on GSM8K).
(3) chosen_logprob: under DPO alone the log-probability of the chosen (winning) sequences falls
                    during training; with the NLL term it does not (Sec. 3.1, Fig. 3).
(4) majority_vote:  majority voting over samples scores at least greedy decoding (Sec. 3.1:
                    88.7 maj@32 vs 81.6 greedy).

Miniature: a tiny core Llama (2 layers, width 64) over a 19-symbol character vocabulary, on
chains of additions and subtractions with a chain of thought (task.py). M0 is that model
fine-tuned on a few thousand gold chains, stopped while it still errs (the powering figure
``m0_acc`` must lie in [M0_ACC_LOW, M0_ACC_HIGH] and at least MIN_PAIR_FRACTION of the training
problems must yield a pair, else every claim is inconclusive). Both arms start from the same M0
per seed and see the same problems; accuracy differences are judged by a paired bootstrap over
test problems pooled across seeds (90% interval), and the per-seed spread is reported.
The runs are in experiments.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial

from paperlab.claims import Claim, PaperClaims, Verdict, custom
from paperlab.papers.irpo import experiments
from paperlab.papers.irpo.loss import NLL_MODES


@dataclass
class IRPOClaimsConfig:
    seeds: int = 2  # independent M0s and runs (chaotic results: judged over the seeds)
    workers: int = 2  # processes for independent trainings (1 = in this process)
    dim: int = 64
    n_layers: int = 2
    n_heads: int = 4
    chain_steps: int = 3  # operations per problem
    max_operand: int = 9
    sft_examples: int = 2000  # gold chains of thought M0 is fine-tuned on
    sft_steps: int = 400  # stopped early on purpose: M0 must still err (see m0_acc)
    sft_lr: float = 3e-3
    sft_batch: int = 32
    train_problems: int = 2000  # the problems Iterative RPO samples on (answers only)
    test_problems: int = 300
    iterations: int = 3
    samples: int = 8  # N
    pairs: int = 4  # K
    temperature: float = 0.8
    beta: float = 0.1
    alpha: float = 1.0  # the DPO + NLL arm (the other arm has alpha = 0)
    nll: str = "sequence"
    dpo_steps: int = 150  # optimizer steps per iteration (~1 epoch of the pairs)
    batch_size: int = 32  # pairs per step
    lr: float = 2e-4
    maj_k: int = 8

    def __post_init__(self) -> None:
        positive = (
            "seeds workers dim n_layers n_heads chain_steps max_operand sft_examples sft_steps "
            "sft_batch train_problems test_problems iterations samples pairs dpo_steps "
            "batch_size maj_k"
        ).split()
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be >= 1")
        if self.dim % self.n_heads:
            raise ValueError(f"dim={self.dim} must be divisible by n_heads={self.n_heads}")
        if self.nll not in NLL_MODES:
            raise ValueError(f"nll={self.nll!r}: choose one of {', '.join(NLL_MODES)}")
        if min(self.sft_lr, self.lr, self.beta, self.temperature) <= 0 or self.alpha <= 0:
            raise ValueError("sft_lr, lr, beta, temperature and alpha must be > 0")


# Criteria, fixed before the runs (not config fields: --set cannot move a goalpost)
M0_ACC_LOW, M0_ACC_HIGH = 0.10, 0.80  # M0 must leave both winners and losers
MIN_PAIR_FRACTION = 0.20  # of the training problems yielding >= 1 preference pair
MIN_GAIN = 0.02  # the smallest accuracy gain that counts as "rises"

PRESETS = {
    "tiny": dict(
        seeds=2,
        workers=1,
        dim=32,
        sft_examples=64,
        sft_steps=20,
        train_problems=16,
        test_problems=16,
        iterations=2,
        samples=4,
        pairs=2,
        dpo_steps=3,
        batch_size=4,
        maj_k=3,
    ),
    "default": {},
    "full": dict(
        seeds=3,
        iterations=4,
        samples=30,
        pairs=10,
        train_problems=4000,
        test_problems=500,
        dpo_steps=800,  # ~1 epoch of ~25k pairs
        maj_k=32,
    ),
}


def _powered(m: Mapping[str, float]) -> str | None:
    acc, frac = m["m0_acc"], m["pair_fraction"]
    if not M0_ACC_LOW <= acc <= M0_ACC_HIGH:
        return f"not powered: M0 greedy accuracy {acc:.3f} outside [{M0_ACC_LOW}, {M0_ACC_HIGH}]"
    if frac < MIN_PAIR_FRACTION:
        return f"not powered: only {frac:.2f} of the problems gave a pair (< {MIN_PAIR_FRACTION})"
    return None


def _judge_gain(diff: str, low: str, what: str, m: Mapping[str, float]) -> tuple[Verdict, str]:
    text = f"{what} {m[diff]:+.3f} (90% interval low {m[low]:+.3f}); M0 acc {m['m0_acc']:.3f}"
    if (why := _powered(m)) is not None:
        return "inconclusive", f"{text} -> {why}"
    if m[diff] <= 0:
        return "fails", text
    if m[low] > 0 and m[diff] >= MIN_GAIN:
        return "holds", text
    return "inconclusive", f"{text} -> positive, but within noise or below {MIN_GAIN}"


def _judge_logprob(m: Mapping[str, float]) -> tuple[Verdict, str]:
    if (why := _powered(m)) is not None:  # (no pairs: no log-prob change was measured)
        return "inconclusive", why
    dpo, nll = m["dpo_chosen_change"], m["dpo_nll_chosen_change"]
    text = f"iteration 1, winners' log-prob change: DPO {dpo:+.2f}, DPO+NLL {nll:+.2f} nats"
    if dpo >= 0 or nll <= dpo:
        return "fails", text
    if nll >= 0:
        return "holds", text
    return "inconclusive", f"{text} -> falls under both, less with NLL"


def _judge_majority(m: Mapping[str, float]) -> tuple[Verdict, str]:
    d, high = m["maj_minus_greedy"], m["maj_minus_greedy_high"]
    text = f"maj@{m['k']:.0f} - greedy = {d:+.3f} (90% interval high {high:+.3f})"
    if (why := _powered(m)) is not None:
        return "inconclusive", f"{text} -> {why}"
    if d >= 0:
        return "holds", text
    return ("fails" if high < 0 else "inconclusive"), text


PAPER = PaperClaims(
    config=IRPOClaimsConfig,
    presets=PRESETS,
    claims=[
        Claim(
            id="iterations",
            statement="Iterative RPO (DPO + NLL on the model's own CoT samples) raises accuracy "
            "over the iterations",
            paper_figure="Table 1: GSM8K 55.6 -> 73.1 -> 78.0 -> 81.1 -> 81.6 (greedy, "
            "Llama-2-70B-Chat); MATH 12.5 -> 20.8; ARC-Challenge 77.8 -> 86.7",
            criterion=custom(
                f"acc(M_T) - acc(M_0) > 0 with its paired 90% interval above 0 and >= "
                f"{MIN_GAIN} holds; <= 0 fails; needs M0 acc in [{M0_ACC_LOW}, {M0_ACC_HIGH}] "
                f"and >= {MIN_PAIR_FRACTION} of problems with a pair",
                partial(_judge_gain, "gain", "gain_low", "acc(M_T) - acc(M_0) ="),
            ),
            run=experiments.run_iterations,
            ours="greedy M0 {dpo_nll_greedy_acc_m0:.3f} -> M1 {dpo_nll_greedy_acc_m1:.3f} -> "
            "final {final_acc:.3f} (gain {gain:+.3f}, seed std {gain_seed_std:.3f})",
        ),
        Claim(
            id="nll_term",
            statement="DPO + NLL beats DPO alone after the same iterations",
            paper_figure="Table 1 / Fig. 2: iteration 1 on GSM8K, DPO + NLL 73.1 vs DPO 61.8",
            criterion=custom(
                f"acc(DPO+NLL) - acc(DPO) > 0 with its paired 90% interval above 0 and >= "
                f"{MIN_GAIN} holds; <= 0 fails",
                partial(_judge_gain, "nll_minus_dpo", "nll_minus_dpo_low", "DPO+NLL - DPO ="),
            ),
            run=experiments.run_nll_ablation,
            ours="final greedy DPO+NLL {acc_dpo_nll:.3f} vs DPO {acc_dpo:.3f} "
            "(gains over M0: {gain_dpo_nll:+.3f} vs {gain_dpo:+.3f})",
        ),
        Claim(
            id="chosen_logprob",
            statement="Under DPO alone the winners' log-probability falls during training; "
            "with the NLL term it does not",
            paper_figure="Fig. 3: chosen log-probs decrease under DPO, increase under DPO + NLL",
            criterion=custom(
                "change under DPO < 0 and change under DPO+NLL >= 0 holds; DPO >= 0 or "
                "DPO+NLL <= DPO fails; both falling (less with NLL) inconclusive",
                _judge_logprob,
            ),
            run=experiments.run_chosen_logprob,
            ours="winners' log-prob change, iteration 1: DPO {dpo_chosen_change:+.2f}, "
            "DPO+NLL {dpo_nll_chosen_change:+.2f} nats (losers: {dpo_rejected_change:+.2f}, "
            "{dpo_nll_rejected_change:+.2f})",
        ),
        Claim(
            id="majority_vote",
            statement="Majority voting over k samples scores at least greedy decoding",
            paper_figure="Sec. 3.1: GSM8K 88.7 maj@32 vs 81.6 greedy (iteration 4)",
            criterion=custom(
                "maj@k - greedy >= 0 holds; < 0 with the 90% interval below 0 fails",
                _judge_majority,
            ),
            run=experiments.run_majority,
            ours="final maj@{k:.0f} {maj_acc_final:.3f} vs greedy {greedy_acc_final:.3f} "
            "(all iterations: {maj_minus_greedy:+.3f})",
        ),
    ],
)
