"""MMLU-Redux's claims in miniature (Gema et al. 2024, arXiv 2406.04127).

(1) rankings:  re-scoring on re-annotated questions changes how models rank, and most where the
               error rate is highest (Sec. 6: on Virology, where 57% of the questions are
               erroneous, the 14 HELM models reshuffle; over all questions the order barely
               moves). Here: per subject, the Kendall tau between the models' accuracies on the
               original labels and on the ok subset, over several corruption seeds; one subject
               at the paper's Virology error rate, the others at its MMLU-wide estimate (6.49%).
(2) detection: detecting the errors automatically is far from solved (Sec. 5): prompting programs
               differ, and a wrong ground truth is found only with knowledge (retrieval), which
               surface rules lack. Here: the tiny detector under each program (zero-shot,
               few-shot, zero-shot CoT, few-shot CoT; each with and without MiniLM retrieval) vs
               the heuristic baseline, F2 with the errors as the positive class.

Powering: (1) the models must differ in skill (best - worst accuracy on clean questions >=
MIN_SKILL_SPREAD); (2) retrieval must find the question's fact (top-1 hit rate >=
MIN_RETRIEVAL_HIT) and the best program must give the exact label on at least MIN_EXACT of the
test records. Otherwise the claim is inconclusive.

The miniature's models: simulated answer sheets of known skill (world.py), and a tiny detector
chat model trained here, served by `paperlab serve` and called through the LLM layer. The runs
are in experiments.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from paperlab.claims import Claim, PaperClaims, Verdict, custom
from paperlab.papers.mmlu_redux import experiments
from paperlab.papers.mmlu_redux.detect import METHODS


@dataclass
class MMLUReduxConfig:
    # the first subject is the high-error one (the paper's Virology)
    subjects: tuple[str, ...] = ("virology", "anatomy", "astronomy", "geography", "law")
    per_subject: int = 100  # facts, hence questions, per subject (MMLU-Redux: 100 per subject)
    high_error_rate: float = 0.57  # Virology (Sec. 3)
    low_error_rate: float = 0.0649  # the paper's estimate for MMLU as a whole
    # the models' knowledge: 14 models, as the 14 HELM models the paper re-scores
    answerer_shares: tuple[float, ...] = tuple(round(0.3 + 0.05 * i, 2) for i in range(14))
    rescore_seeds: int = 8  # corruption draws the rankings claim averages over
    n_test: int = 120  # detection test records (the paper's mix: 0.1 per error type)
    methods: tuple[str, ...] = METHODS
    retrieval: str = "minilm"  # or "lexical" (word overlap; the smoke scale, no model load)
    dim: int = 64
    n_layers: int = 3
    n_heads: int = 4
    max_seq_len: int = 640
    # DEVIATION (the recipe, 2026-12-07): lr 2e-3 (at 5e-3 the model never learnt to copy a code
    # from the passage), 600 steps of 12, the reading task at half the detection task's weight
    detector_steps: int = 600
    batch_size: int = 12
    lr: float = 2e-3
    reading_weight: float = 0.5  # the auxiliary reading task's weight (world.reading_task)
    concurrency: int = 8  # detection requests in flight

    def __post_init__(self) -> None:
        if len(self.subjects) < 2 or len(set(self.subjects)) != len(self.subjects):
            raise ValueError("mmlu_redux: subjects must be >= 2 distinct names")
        for name in ("per_subject", "rescore_seeds", "n_test", "detector_steps", "concurrency"):
            if getattr(self, name) < 1:
                raise ValueError(f"mmlu_redux: {name}={getattr(self, name)} must be >= 1")
        for name in ("high_error_rate", "low_error_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"mmlu_redux: {name} must lie in [0, 1]")
        if len(self.answerer_shares) < 2 or not all(0 <= s <= 1 for s in self.answerer_shares):
            raise ValueError("mmlu_redux: answerer_shares: >= 2 shares in [0, 1]")
        if self.retrieval not in ("minilm", "lexical"):
            raise ValueError(f"mmlu_redux: retrieval={self.retrieval!r}: minilm or lexical")
        unknown = [m for m in self.methods if m not in METHODS]
        if unknown or not self.methods:
            raise ValueError(f"mmlu_redux: methods: unknown {unknown}; choose from {METHODS}")
        if self.reading_weight < 0:
            raise ValueError(f"mmlu_redux: reading_weight={self.reading_weight} must be >= 0")
        experiments.detector_config(self)  # validates sizes and schedule


PRESETS = {
    "tiny": dict(
        per_subject=12,
        answerer_shares=(0.3, 0.6, 0.9),
        rescore_seeds=2,
        n_test=12,
        methods=("zero_shot",),
        retrieval="lexical",
        dim=32,
        n_layers=2,
        detector_steps=20,
        batch_size=8,
    ),
    "default": {},
    "full": dict(per_subject=200, rescore_seeds=20, n_test=400, detector_steps=2000),
}

# Criteria, fixed before the runs (not config fields: --set cannot move a goalpost).
TAU_GAP = 0.2  # rankings: mean tau on the high-error subject at least this far below the others
MIN_SKILL_SPREAD = 0.2  # powering: best - worst model accuracy on clean questions
F2_MARGIN = 0.05  # detection: the best program's F2 above the heuristic's by this much
RETRIEVAL_GAIN = 0.2  # detection: wrong-ground-truth F2 gained with retrieval
MIN_RETRIEVAL_HIT = 0.8  # powering: MiniLM's top-1 passage is the question's fact
MIN_EXACT = 0.5  # powering: the best program's exact-label accuracy
# powering: the retrieval program behind the wrong-ground-truth figure leaves at least this share
# of ok records ok (added 2026-12-07 after a run in which the detector flagged nearly every
# record that came with a passage and the claim held on that: stricter, disclosed in the README)
MIN_OK_KEPT = 0.5


def judge_rankings(m: Mapping[str, float]) -> tuple[Verdict, str]:
    if m["skill_spread"] < MIN_SKILL_SPREAD:
        return "inconclusive", f"not powered: skill spread {m['skill_spread']:.2f}"
    high, low, moved = m["tau_high"], m["tau_low"], m["moved_high"]
    text = f"tau {high:.2f} (high error) vs {low:.2f} (others); {moved:.1f} models move"
    if high <= low - TAU_GAP and moved >= 1:
        return "holds", text
    if high >= low:
        return "fails", text
    return "inconclusive", text + f" (gap below {TAU_GAP})"


def judge_detection(m: Mapping[str, float]) -> tuple[Verdict, str]:
    kept = m["ok_kept_with_retrieval"]
    if m["retrieval_hit"] < MIN_RETRIEVAL_HIT or m["best_exact"] < MIN_EXACT or kept < MIN_OK_KEPT:
        return "inconclusive", (
            f"not powered: retrieval hit {m['retrieval_hit']:.2f} (>= {MIN_RETRIEVAL_HIT}), "
            f"best exact-label accuracy {m['best_exact']:.2f} (>= {MIN_EXACT}), ok records "
            f"kept ok with retrieval {kept:.2f} (>= {MIN_OK_KEPT})"
        )
    best, heur = m["best_f2"], m["heur_overall_f2"]
    with_r, without = m["wrong_gt_f2_with_retrieval"], m["wrong_gt_f2_without_retrieval"]
    text = (
        f"best F2 {best:.2f} vs heuristic {heur:.2f}; wrong-ground-truth F2 {with_r:.2f} "
        f"with retrieval vs {without:.2f} without"
    )
    if best >= heur + F2_MARGIN and with_r >= without + RETRIEVAL_GAIN:
        return "holds", text
    if best <= heur or with_r <= without:
        return "fails", text
    return "inconclusive", text


PAPER = PaperClaims(
    config=MMLUReduxConfig,
    presets=PRESETS,
    claims=[
        Claim(
            id="rankings",
            statement="re-annotation changes model rankings, most where errors are most common",
            paper_figure="Virology (57% erroneous): the 14 HELM models reshuffle; over all "
            "questions the order barely moves (Sec. 6)",
            criterion=custom(
                f"tau_high <= tau_low - {TAU_GAP} and moved_high >= 1, once skill_spread >= "
                f"{MIN_SKILL_SPREAD}",
                judge_rankings,
            ),
            run=experiments.run_rankings,
            ours="Kendall tau {tau_high:.2f} on {high_subject} ({error_rate_high:.0%} errors) vs "
            "{tau_low:.2f} elsewhere ({error_rate_low:.1%}); {tau_all:.2f} over all",
        ),
        Claim(
            id="detection",
            statement="automatic error detection is far from solved; knowledge (retrieval) is "
            "what finds wrong ground truths",
            paper_figure="Sec. 5: no prompting method comes close to the annotators; CoT and "
            "retrieval help some models",
            criterion=custom(
                f"best_f2 >= heuristic F2 + {F2_MARGIN} and wrong-GT F2 with retrieval >= "
                f"without + {RETRIEVAL_GAIN}, once retrieval_hit >= {MIN_RETRIEVAL_HIT} and "
                f"best_exact >= {MIN_EXACT} and ok_kept_with_retrieval >= {MIN_OK_KEPT}",
                judge_detection,
            ),
            run=experiments.run_detection,
            ours="best {best_detector} F2 {best_f2:.2f} vs heuristic {heur_overall_f2:.2f}; "
            "wrong GT F2 {wrong_gt_f2_with_retrieval:.2f} with retrieval vs "
            "{wrong_gt_f2_without_retrieval:.2f} without; ok records kept ok with retrieval "
            "{ok_kept_with_retrieval:.2f}",
        ),
    ],
)
