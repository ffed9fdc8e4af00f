"""Mixture-of-Agents' claims in miniature (Wang et al. 2024, arXiv 2406.04692).

(1) accuracy:  MoA (3 layers: 6 proposers, 6 proposers with references, an aggregator) beats
               the best single model it is made of (Sec. 3.2: AlpacaEval 2.0 LC 65.1% vs 57.5%
               for GPT-4o; every MoA beats its best member).
(2) diversity: different proposers beat several samples of one model (Sec. 3.3, Table 3:
               6 different proposers 61.3% vs one proposer sampled 6 times 56.7%); that
               baseline is "Self-MoA". Majority voting over the proposers is reported alongside.
(3) calls:     a query costs proposers x (layers - 1) + 1 calls, counted by the server.
(4) parallel:  proposers of a layer run concurrently: the wall time of a query is the sum of
               each layer's slowest call (parallel efficiency >= 0.9).

(1) and (2) are judged only when the miniature is powered: given layer 1's references (the
prompts MoA-Lite's aggregator got), the aggregator answering greedily must score at least what
a majority vote over the same references scores (MIN_AGGREGATOR_VS_MAJORITY); else they are
inconclusive. Greedy, because a vote is deterministic: the figure measures reading, not the
sampling at 0.7 that MoA itself keeps (Sec. 3.1).

Miniature: the models are tiny chat models trained here on made-up facts (miniature.py),
trained once per config (and kept in the disk cache), served by `paperlab serve` in a child
process until the paper's run ends, and queried over HTTP with the real client, so the whole
pipeline runs as it would against vLLM or Ollama (world.py). With `--config FILE` naming real
models in a `[moa]` table, the same claims run on those models (3-digit multiplication).
The experiments are in experiments.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from paperlab.claims import Claim, Criterion, PaperClaims, Verdict, at_least, at_most, custom
from paperlab.core.llm.tiny import TinyChatConfig
from paperlab.core.stats import improves
from paperlab.papers.moa import experiments


@dataclass
class MoAClaimsConfig:
    layers: int = 3  # including the aggregator's (the paper's default)
    n_facts: int = 150  # the questions (miniature.py): every fact is asked once
    # what share of the facts each proposer knows: their number is the number of proposers
    proposer_rates: tuple[float, ...] = (0.6, 0.55, 0.5, 0.45, 0.4, 0.35)
    aggregator_rate: float = 0.5
    proposer_synth: float = 0.2  # share of fine-tuning examples with references
    # the aggregator's fine-tuning: the share of examples with references (the rest: its own
    # facts, alone), and of those the share about facts it never saw, with one reference per
    # proposer and the right code the plurality (miniature.agreement_task; the rest: noisy
    # references about the facts it knows). 1 and 1: a pure reader that knows no facts of its
    # own (issue 18: every recipe with facts of its own read layer 1 below a majority vote)
    aggregator_synth: float = 1.0
    aggregator_agree: float = 1.0
    # its agreement examples' made-up codes collide (miniature.agreement_task(skew=...)), as
    # the proposers' do; 0: uniform
    aggregator_skew: float = 1.0
    dim: int = 64
    n_layers: int = 2
    # the shared base learns to read references (miniature.py): first mostly-right ones (where
    # to look), then one per proposer, the right code their plurality, ties going to the
    # earlier reference (how to weigh them)
    base_easy_steps: int = 500
    base_steps: int = 500
    proposer_steps: int = 300  # each model's own facts
    # the aggregator's reading, from the base (in-process on layer 1's answers, 750 answers,
    # a majority vote 79.5%: 300 steps 78.4-78.7%; 800 steps 79.3%, skewed 78.8-80.0% over two
    # seeds); with facts of its own, 600 read no better than 300: they wore the reading down
    aggregator_steps: int = 800
    batch_size: int = 32
    lr: float = 5e-3
    # DEVIATION: the aggregator's fine-tuning is gentler than the others': at 5e-3 its own facts
    # wore the base's reading down (layer 1's answers: 80.9% -> 74.9-77.6%; at 2e-3: 80.4%),
    # and its reading polishes at 2e-3 (800 steps: 78.8-80.0%; 300 steps at 5e-3: 78.7%)
    aggregator_lr: float = 2e-3
    temperature: float = 0.7  # Sec. 3.1
    aggregator_temperature: float = 0.7
    concurrency: int = 16  # queries in flight during the accuracy evaluation
    timing_queries: int = 8  # the parallel claim: queries run one at a time
    # with --config (real models): 3-digit multiplication, n_facts questions
    real_op: str = "*"
    real_digits: int = 3
    real_max_tokens: int = 512

    def __post_init__(self) -> None:
        if self.layers < 2 or not self.proposer_rates:
            raise ValueError("moa: need layers >= 2 and at least one proposer rate")
        rates = [
            *self.proposer_rates,
            self.aggregator_rate,
            self.proposer_synth,
            self.aggregator_synth,
            self.aggregator_agree,
        ]
        if not all(0.0 <= r <= 1.0 for r in rates):
            raise ValueError("moa: knowledge rates and synth shares must lie in [0, 1]")
        if self.aggregator_skew < 0:
            raise ValueError("moa: aggregator_skew must be >= 0")
        if self.base_easy_steps < 0:
            raise ValueError("moa: base_easy_steps must be >= 0")
        if min(self.n_facts, self.timing_queries, self.concurrency) < 1:
            raise ValueError("moa: n_facts, timing_queries and concurrency must be >= 1")
        if self.real_op not in ("+", "*"):
            raise ValueError("moa: real_op must be + or *")
        self.proposer_model()  # validates sizes and schedule
        self.base_model(lr=self.aggregator_lr)

    def proposer_model(self) -> TinyChatConfig:
        return self.base_model(steps=self.proposer_steps)

    def base_model(self, steps: int | None = None, lr: float | None = None) -> TinyChatConfig:
        return TinyChatConfig(
            dim=self.dim,
            n_layers=self.n_layers,
            lr=self.lr if lr is None else lr,
            steps=self.base_steps if steps is None else steps,
            batch_size=self.batch_size,
            max_seq_len=256,
        )


PRESETS = {
    "tiny": dict(
        n_facts=30,
        proposer_rates=(0.6, 0.5, 0.4),
        base_easy_steps=20,
        base_steps=30,
        proposer_steps=30,
        aggregator_steps=30,
        dim=32,
        batch_size=16,
        timing_queries=2,
    ),
    "default": {},
    "full": dict(
        n_facts=400,
        base_easy_steps=600,
        base_steps=2000,
        proposer_steps=1200,
        aggregator_steps=1200,
        timing_queries=20,
    ),
}

# Criteria, fixed before the runs (not config fields: --set cannot move a goalpost). accuracy
# and diversity: a paired gain whose 90% bootstrap interval lies above 0 (core.stats.improves),
# judged only once the miniature is powered: given layer 1's references, the aggregator must
# reach at least the accuracy of a plain majority vote over the same references (else it
# cannot read them, and a "fails" would measure our aggregator, not MoA).
MIN_AGGREGATOR_VS_MAJORITY = 0.0  # aggregator accuracy - majority accuracy, same references
MIN_EFFICIENCY = 0.9  # parallel: sum over layers of the slowest call / wall time
EFFICIENCY_MARGIN = 0.05  # within this below MIN_EFFICIENCY: inconclusive


def powered(criterion: Criterion) -> Criterion:
    """`criterion`, once the aggregator reads its references at least as well as a majority
    vote over them; inconclusive (with the two accuracies) when it does not."""

    def judge(m: Mapping[str, float]) -> tuple[Verdict, str]:
        agg, vote = m["aggregator_l1_acc"], m["majority_l1_acc"]
        if agg - vote < MIN_AGGREGATOR_VS_MAJORITY:
            return "inconclusive", (
                f"not powered: given layer 1's references the aggregator (greedy) scores "
                f"{agg:.1%}, below a majority vote over them ({vote:.1%})"
            )
        verdict, reason = criterion.judge(m)
        return verdict, f"{reason} (powered: aggregator, greedy, {agg:.1%} >= majority {vote:.1%})"

    return custom(
        f"{criterion.text}, once aggregator_l1_acc - majority_l1_acc >= "
        f"{MIN_AGGREGATOR_VS_MAJORITY:g} (else inconclusive)",
        judge,
    )


PAPER = PaperClaims(
    config=MoAClaimsConfig,
    presets=PRESETS,
    claims=[
        Claim(
            id="accuracy",
            statement="MoA beats the best single model it is built from",
            paper_figure="AlpacaEval 2.0 LC win 65.1% (MoA) vs 57.5% (GPT-4o); every MoA beats "
            "its best member",
            criterion=powered(improves("gain", "gain_ci_low", "MoA - best single")),
            run=experiments.run_accuracy,
            ours="MoA {moa_acc:.1%} vs best single {best_single_acc:.1%} ({best_single}); "
            "lite {moa_lite_acc:.1%}",
        ),
        Claim(
            id="diversity",
            statement="different proposers beat samples of one model (Self-MoA)",
            paper_figure="6 different proposers 61.3% vs 1 proposer x 6 samples 56.7% (Table 3)",
            criterion=powered(improves("gain", "gain_ci_low", "MoA - Self-MoA")),
            run=experiments.run_diversity,
            ours="MoA {moa_acc:.1%} vs Self-MoA {self_moa_acc:.1%} vs majority {majority_acc:.1%}",
        ),
        Claim(
            id="calls",
            statement="a query costs proposers x (layers - 1) + 1 calls",
            paper_figure="6 x 2 + 1 = 13 calls for 3 layers of 6",
            criterion=at_most("mismatches", 0),
            run=experiments.run_calls,
            ours="{moa_calls:.0f} (MoA), {moa_lite_calls:.0f} (lite), {self_moa_calls:.0f} "
            "(Self-MoA) calls per query, as expected",
        ),
        Claim(
            id="parallel",
            timed=True,
            statement="a layer's proposers run concurrently: wall = sum of slowest calls",
            paper_figure="wall time ~ layers x slowest call",
            criterion=at_least("parallel_efficiency", MIN_EFFICIENCY, margin=EFFICIENCY_MARGIN),
            run=experiments.run_parallel,
            ours="efficiency {parallel_efficiency:.2f}; {speedup_vs_sequential:.1f}x faster "
            "than one call at a time",
        ),
    ],
)
