"""The Prompt Report's MMLU case study in miniature (Schulhoff et al. 2024, arXiv 2406.06608,
Sec. 6.1; gpt-3.5-turbo on 2,800 MMLU questions: zero-shot 0.627, zero-shot CoT 0.547,
few-shot CoT 0.692, the best).

(1) few_shot:          few-shot prompting does at least as well as zero-shot, for a model
                       trained to read exemplars (exemplars chosen by KNN, Sec. 2.2.1.2).
(2) self_consistency:  self-consistency (3 samples at T 0.5, the majority; Sec. 6.1.3) does at
                       least as well as a single sample of the same model at the same
                       temperature (pooled over the case study's two SC techniques).
(3) case_study:        the full six-technique table, whatever it shows, judged on the paper's
                       headline: few-shot CoT is the best of the six.

Powering: the model must be above chance (25%) zero-shot or few-shot by MIN_ABOVE_CHANCE
(else every claim is inconclusive); the SC claim also needs its single samples above chance
and samples that disagree at least sometimes (identical samples make SC a no-op).

Miniature (miniature.py): a tiny chat model trained here on made-up facts asked as four-option
questions, knowing half of them, trained on the prompt shapes of the six techniques (so it can
read exemplars and follow the CoT inducer); served by `paperlab serve` and queried over HTTP
through the real client, as any endpoint. With `--config FILE` naming a model in a
`[prompt_report]` table, the same claims run on that model over core.mc's synthetic questions
with the paper's instruction and question format. The experiments are in experiments.py.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from paperlab.claims import Claim, Criterion, PaperClaims, Verdict, custom
from paperlab.core.llm.tiny import TinyChatConfig
from paperlab.papers.prompt_report import experiments

SELECTORS = ("knn", "random")


@dataclass
class PromptReportConfig:
    # the miniature's facts and what the reader knows (miniature.py)
    n_facts: int = 60
    known_rate: float = 0.5
    same_shot_rate: float = 0.3  # training: an exemplar about the same (known) fact
    shots: int = 2  # exemplars per few-shot prompt
    n_items: int = 120  # test questions (each fact asked twice)
    pool_items: int = 120  # the labelled pool exemplars are chosen from
    selector: str = "knn"  # how the case study picks exemplars: knn (MiniLM) or random
    # the reader: a tiny byte-level chat model
    dim: int = 64
    n_layers: int = 3
    steps: int = 500
    batch_size: int = 32
    lr: float = 5e-3
    # the case study (Sec. 6.1.3)
    samples: int = 3
    sc_temperature: float = 0.5
    max_tokens: int = 32
    concurrency: int = 8
    # with --config (a real model): core.mc's synthetic questions
    real_items: int = 200
    real_max_tokens: int = 512

    def __post_init__(self) -> None:
        for name in ("n_facts", "shots", "n_items", "samples", "concurrency", "max_tokens"):
            if getattr(self, name) < 1:
                raise ValueError(f"prompt_report: {name} must be >= 1, got {getattr(self, name)}")
        if self.pool_items <= self.shots:
            raise ValueError("prompt_report: pool_items must exceed shots")
        for name in ("known_rate", "same_shot_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"prompt_report: {name} must lie in [0, 1]")
        if self.sc_temperature <= 0:
            raise ValueError("prompt_report: sc_temperature must be > 0")
        if self.selector not in SELECTORS:
            raise ValueError(f"prompt_report: selector must be one of {SELECTORS}")
        if min(self.real_items, self.real_max_tokens) < 1:
            raise ValueError("prompt_report: real_items and real_max_tokens must be >= 1")
        self.model()  # validates sizes and schedule

    def model(self) -> TinyChatConfig:
        return TinyChatConfig(
            dim=self.dim,
            n_layers=self.n_layers,
            steps=self.steps,
            batch_size=self.batch_size,
            lr=self.lr,
            max_seq_len=64 + 100 * (self.shots + 1),  # a few-shot CoT prompt and its reply
        )


PRESETS = {
    "tiny": dict(
        n_facts=12,
        steps=15,
        batch_size=8,
        dim=32,
        n_layers=2,
        n_items=12,
        pool_items=12,
        selector="random",
        max_tokens=12,
    ),
    "default": {},
    "full": dict(n_facts=120, steps=1500, n_items=600, pool_items=240, shots=3, real_items=2800),
}

# Criteria, fixed before the runs (module constants: --set cannot move a goalpost).
CHANCE = 0.25  # four options
MIN_ABOVE_CHANCE = 0.10  # powering: best of zero-shot / few-shot >= chance + this
MIN_DISAGREEMENT = 0.02  # SC powering: share of items whose samples are not all the same
# "at least as well": the 90% bootstrap interval of the paired difference must not reach
# below -NON_INFERIORITY; it fails when the whole interval lies below 0
NON_INFERIORITY = 0.03


def powered(criterion: Criterion, extra: Callable[[Mapping[str, float]], str] | None = None):
    """`criterion`, once the model is above chance (and `extra(m)` names no other gap)."""

    def judge(m: Mapping[str, float]) -> tuple[Verdict, str]:
        best = m["powering_acc"]
        if best < CHANCE + MIN_ABOVE_CHANCE:
            return "inconclusive", (
                f"not powered: best of zero-shot/few-shot {best:.1%} < "
                f"{CHANCE + MIN_ABOVE_CHANCE:.0%} (chance {CHANCE:.0%})"
            )
        gap = extra(m) if extra else ""
        if gap:
            return "inconclusive", f"not powered: {gap}"
        verdict, reason = criterion.judge(m)
        return verdict, f"{reason} (powered: best of zero-shot/few-shot {best:.1%})"

    return custom(
        f"{criterion.text}, once max(zero-shot, few-shot) >= {CHANCE + MIN_ABOVE_CHANCE:.2f}",
        judge,
    )


def at_least_as_good(what: str) -> Criterion:
    """Holds when the 90% interval of gain stays above -NON_INFERIORITY; fails when it lies
    wholly below 0; inconclusive otherwise."""

    def judge(m: Mapping[str, float]) -> tuple[Verdict, str]:
        g, lo, hi = m["gain"], m["gain_ci_low"], m["gain_ci_high"]
        span = f"{what}: {g:+.3f} (90% interval [{lo:+.3f}, {hi:+.3f}])"
        if lo > -NON_INFERIORITY:
            return "holds", f"{span}, above -{NON_INFERIORITY}"
        if hi < 0:
            return "fails", f"{span}, wholly below 0"
        return "inconclusive", f"{span} reaches below -{NON_INFERIORITY}"

    return custom(f"gain 90% interval low > -{NON_INFERIORITY} (fails: high < 0)", judge)


def best_of_six(m: Mapping[str, float]) -> tuple[Verdict, str]:
    """Few-shot CoT is the best: holds when no technique scores above it; fails when the best
    other one beats it with a 90% interval above 0; inconclusive in between."""
    g, hi = m["gain"], m["gain_ci_high"]
    if g >= 0:
        return "holds", f"few-shot CoT is the best ({g:+.3f} over the next)"
    if hi < 0:
        return "fails", f"few-shot CoT trails the best technique by {-g:.3f} (interval below 0)"
    return "inconclusive", f"few-shot CoT trails the best by {-g:.3f}, interval reaches 0"


def sc_powering(m: Mapping[str, float]) -> str:
    if m["single_sample_acc"] < CHANCE + MIN_ABOVE_CHANCE:
        return f"a single sample at T 0.5 scores {m['single_sample_acc']:.1%}, near chance"
    if m["sample_disagreement"] < MIN_DISAGREEMENT:
        return f"the samples disagree on only {m['sample_disagreement']:.1%} of items"
    return ""


PAPER = PaperClaims(
    config=PromptReportConfig,
    presets=PRESETS,
    claims=[
        Claim(
            id="few_shot",
            statement="few-shot prompting >= zero-shot, for a model that can read exemplars",
            paper_figure="few-shot CoT 0.692 vs zero-shot 0.627 (gpt-3.5-turbo, MMLU)",
            criterion=powered(at_least_as_good("few-shot - zero-shot")),
            run=experiments.run_few_shot,
            ours="few-shot (KNN) {few_shot_acc:.1%} vs zero-shot {zero_shot_acc:.1%}; "
            "random exemplars {few_shot_random_acc:.1%}",
        ),
        Claim(
            id="self_consistency",
            statement="self-consistency (3 samples, T 0.5, majority) >= one sample",
            paper_figure="Sec. 6.1.3: 3 samples at T 0.5; SC did not beat few-shot CoT at T 0",
            criterion=powered(at_least_as_good("SC - single sample"), sc_powering),
            run=experiments.run_self_consistency,
            ours="SC {sc_acc:.1%} vs a single sample {single_sample_acc:.1%} (T 0.5); "
            "samples disagree on {sample_disagreement:.0%} of items",
        ),
        Claim(
            id="case_study",
            statement="the six-technique MMLU table; few-shot CoT is the best of the six",
            paper_figure="zero-shot 0.627, zero-shot CoT 0.547, few-shot CoT 0.692 (the best)",
            criterion=powered(custom("few-shot CoT >= every other technique", best_of_six)),
            run=experiments.run_case_study_claim,
            ours="ZS {zero_shot_acc:.1%}, ZS-CoT {zero_shot_cot_acc:.1%}, ZS-CoT+SC "
            "{zero_shot_cot_sc_acc:.1%}, FS {few_shot_acc:.1%}, FS-CoT {few_shot_cot_acc:.1%}, "
            "FS-CoT+SC {few_shot_cot_sc_acc:.1%}",
        ),
    ],
)
