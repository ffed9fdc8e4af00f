"""Magpie's claims in miniature (Xu et al. 2024, arXiv 2406.08464).

(1) extraction: an aligned model given nothing but its pre-query template writes user
                instructions that are well-formed and diverse (Sec. 2-3: 4M instructions from
                Llama-3-8B/70B-Instruct, most rated average or better, spread over the task
                categories).
(2) sft:        a fresh copy of the base model fine-tuned on the filtered Magpie data performs
                comparably to the aligned ("official instruct") model it was extracted from
                (Sec. 4, Table 1: Llama-3-8B base + Magpie-Pro-300K-Filtered, AlpacaEval 2 LC
                25.08 vs 22.92 for Llama-3-8B-Instruct).
(3) filter:     the filtered data trains better than a random raw subset of the same size
                (Table 1: the 300K-Filtered sets above the 300K-Raw sets).

Miniature: the aligned model is a tiny byte-level chat model trained here (a base pre-trained on
plain text, then tuned on exact tasks: made-up facts, letter counting, one-digit sums and
maxima, capital letters);
it is served by `paperlab serve` and the records come from `/v1/completions` with `user: ` (the
pre-query template of our format) and `/v1/chat/completions`, through the official `openai`
client. Tags are exact rules over the task family, deduplication is MiniLM at distance 0.05, the
filter is the official one. Models are scored on a held-out set of exact task instructions.

Powering: (2) and (3) are judged only when the aligned model is clearly better than the base
(MIN_ALIGNED_GAIN) and the extraction yields task instructions (MIN_TASK_RATE); otherwise they
are inconclusive. The experiments are in experiments.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from paperlab.claims import Claim, Criterion, PaperClaims, Verdict, all_of, at_least, custom
from paperlab.core.stats import improves
from paperlab.papers.magpie import experiments
from paperlab.papers.magpie.curate import QUALITY_LEVELS


@dataclass
class MagpieClaimsConfig:
    dim: int = 64
    n_layers: int = 3
    n_heads: int = 4
    batch_size: int = 32
    lr: float = 5e-3
    base_steps: int = 100  # plain-text pre-training of the base
    base_lr: float = 3e-3
    align_steps: int = 800  # the aligned model's instruction tuning
    finetune_steps: int = 800  # SFT of a base copy on the Magpie data (and on the raw subset)
    n_synth: int = 2000  # conversations extracted from the aligned model
    instruction_max_tokens: int = 64
    response_max_tokens: int = 16
    newline_stop: bool = True  # the official default: the instruction ends at its first newline
    concurrency: int = 8  # requests in flight to the server
    dedup_threshold: float = 0.05  # gen_dis.py's default
    min_quality: str = "average"
    n_eval: int = 350  # held-out instructions (50 per task)

    def __post_init__(self) -> None:
        for name in ("dim", "n_layers", "n_heads", "batch_size", "n_synth", "n_eval"):
            if getattr(self, name) < 1:
                raise ValueError(f"magpie: {name} must be >= 1, got {getattr(self, name)}")
        for name in ("base_steps", "align_steps", "finetune_steps"):
            if getattr(self, name) < 0:
                raise ValueError(f"magpie: {name} must be >= 0, got {getattr(self, name)}")
        for name in ("instruction_max_tokens", "response_max_tokens", "concurrency"):
            if getattr(self, name) < 1:
                raise ValueError(f"magpie: {name} must be >= 1, got {getattr(self, name)}")
        if self.lr <= 0 or self.base_lr <= 0:
            raise ValueError("magpie: lr and base_lr must be > 0")
        if self.dedup_threshold < 0:
            raise ValueError("magpie: dedup_threshold must be >= 0")
        if self.min_quality not in QUALITY_LEVELS:
            raise ValueError(f"magpie: min_quality must be one of {QUALITY_LEVELS}")
        if self.dim % self.n_heads or (self.dim // self.n_heads) % 2:
            raise ValueError("magpie: dim must split into n_heads heads of even size")


PRESETS = {
    "tiny": dict(
        dim=32,
        n_layers=1,
        n_heads=2,
        batch_size=8,
        base_steps=5,
        align_steps=20,
        finetune_steps=10,
        n_synth=24,
        n_eval=21,
        instruction_max_tokens=24,
        response_max_tokens=8,
    ),
    "default": {},
    "full": dict(
        dim=128,
        n_layers=4,
        align_steps=3000,
        base_steps=600,
        finetune_steps=1500,
        n_synth=4000,
        n_eval=700,
    ),
}

# Criteria, fixed before the runs (not config fields).
MIN_TASK_RATE = 0.7  # extracted instructions that parse as one of the tasks
# distinct instruction strings / generated, relative to as many human-written instructions
# (the task family's instance spaces are finite: 800 human instructions are ~68% distinct)
MIN_DISTINCT_VS_HUMAN = 0.8
MIN_COVERAGE = 1.0  # every task of the aligned model's tuning appears among the extractions
MIN_ALIGNED_GAIN = 0.3  # powering: aligned accuracy - base accuracy on the held-out set
COMPARABLE_MARGIN = 0.05  # (2): Magpie-tuned >= aligned - this margin is "comparable"


def powered(criterion: Criterion) -> Criterion:
    """`criterion`, once the aligned model is clearly better than the base and the extraction
    yields task instructions; inconclusive (with the figures) otherwise."""

    def judge(m: Mapping[str, float]) -> tuple[Verdict, str]:
        gain = m["aligned_acc"] - m["base_acc"]
        if gain < MIN_ALIGNED_GAIN or m["task_rate"] < MIN_TASK_RATE or "magpie_acc" not in m:
            return "inconclusive", (
                f"not powered: aligned {m['aligned_acc']:.1%} vs base {m['base_acc']:.1%} "
                f"(need +{MIN_ALIGNED_GAIN:.0%}), task instructions {m['task_rate']:.1%} "
                f"(need {MIN_TASK_RATE:.0%})"
            )
        verdict, reason = criterion.judge(m)
        return (
            verdict,
            f"{reason} (powered: aligned {m['aligned_acc']:.1%} vs base {m['base_acc']:.1%})",
        )

    return custom(
        f"{criterion.text}, once aligned_acc - base_acc >= {MIN_ALIGNED_GAIN:g} and task_rate "
        f">= {MIN_TASK_RATE:g} (else inconclusive)",
        judge,
    )


def comparable(m: Mapping[str, float]) -> tuple[Verdict, str]:
    d = m["magpie_acc"] - m["aligned_acc"]
    text = f"Magpie-tuned {m['magpie_acc']:.1%} vs aligned {m['aligned_acc']:.1%} ({d:+.1%})"
    if d >= -COMPARABLE_MARGIN:
        return "holds", f"{text}: within {COMPARABLE_MARGIN:.0%} or better"
    return "fails", f"{text}: more than {COMPARABLE_MARGIN:.0%} below"


PAPER = PaperClaims(
    config=MagpieClaimsConfig,
    presets=PRESETS,
    claims=[
        Claim(
            id="extraction",
            statement="the pre-query template alone makes an aligned model write well-formed, "
            "diverse instructions",
            paper_figure="4M instructions from Llama-3-8B/70B-Instruct; most input quality "
            ">= average; all task categories represented",
            criterion=all_of(
                at_least("task_rate", MIN_TASK_RATE),
                at_least("distinct_vs_human", MIN_DISTINCT_VS_HUMAN),
                at_least("task_coverage", MIN_COVERAGE),
            ),
            run=experiments.run_extraction,
            ours="{task_rate:.1%} task instructions, {distinct_rate:.1%} distinct (human "
            "{human_distinct_rate:.1%}), "
            "{duplicate_rate:.1%} near-duplicates, {task_coverage:.0%} of tasks covered "
            "(base model, same template: {base_task_rate:.1%})",
        ),
        Claim(
            id="sft",
            statement="the base fine-tuned on filtered Magpie data is comparable to the aligned "
            "model",
            paper_figure="AlpacaEval 2 LC 25.08 (Llama-3-8B + Magpie-Pro-300K-Filtered) vs "
            "22.92 (Llama-3-8B-Instruct)",
            criterion=powered(
                custom(f"magpie_acc >= aligned_acc - {COMPARABLE_MARGIN}", comparable)
            ),
            run=experiments.run_sft,
            ours="Magpie-tuned {magpie_acc:.1%} vs aligned {aligned_acc:.1%} vs base "
            "{base_acc:.1%} ({n_train:.0f} pairs)",
        ),
        Claim(
            id="filter",
            statement="the filtered data trains better than a random raw subset of the same size",
            paper_figure="300K-Filtered above 300K-Raw (Table 1)",
            criterion=powered(improves("filtered_vs_raw", "filtered_vs_raw_low", "filtered - raw")),
            run=experiments.run_filter,
            ours="filtered {magpie_acc:.1%} vs raw {raw_acc:.1%}; kept {kept_rate:.1%} "
            "({kept_task_rate:.1%} task instructions vs {raw_task_rate:.1%} in raw)",
        ),
    ],
)
