"""Prometheus 2's claims in miniature (Kim et al. 2024, arXiv 2405.01535).

(1) direct:         the merged evaluator's scores correlate with the true scores (Tables 2-3:
                    Pearson 0.6-0.7 with GPT-4-1106 on direct-assessment benchmarks).
(2) unified:        one merged model does both formats about as well as each single-format
                    expert does its own (Sec. 5).
(3) merge_vs_joint: merging the two experts beats training one model on both formats (Sec. 6,
                    Table 6); task arithmetic, TIES and DARE are reported side by side.

Miniature (miniature.py): a tiny byte-level base pre-trained on 2-digit arithmetic
(`paperlab.core.llm.evaluators`), then a format stage (both formats' prompts and reply shapes
with random results: it writes the format, not the grades), as the paper's experts start from
an instruction-tuned base; an absolute expert and a relative expert fine-tuned from it, a
joint model fine-tuned on both (as many examples as the two experts together), and the
experts' weight merges (merge.py; linear 0.5/0.5 as the 7B). The true 1-5 score of every
response is known by construction (`paperlab.core.data.graded`), standing in for GPT-4's and
the humans' scores. Every evaluator, the base included, is graded through `PrometheusJudge`
(over the in-process batched client, or `paperlab serve` with `serve=True`): Pearson,
pairwise accuracy, parse failures and position consistency. Each expert must do its own
format and the base must write both (the powering figures) or the claims are inconclusive.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from paperlab.claims import Claim, PaperClaims, Verdict, custom
from paperlab.papers.prometheus2 import experiments


@dataclass
class Prometheus2ClaimsConfig:
    # every field of the base and of the fine-tuning is set here, not left to the defaults of
    # `paperlab.core.llm.evaluators` (so a change there does not move these figures)
    dim: int = 64
    n_layers: int = 3
    n_heads: int = 4
    max_seq_len: int = 192  # the longest prompt + reply of the miniature is ~110 bytes
    base_steps: int = 600
    base_lr: float = 1e-2
    base_warmup: int = 50
    answer_weight: float = 0.3  # the base's mix: answering the questions / comparing numbers
    compare_weight: float = 0.7
    # the base's format stage (miniature.format_stage): both formats' shapes, random results;
    # 0 = none (the experts then start from the arithmetic base: every merge was unparseable)
    format_steps: int = 200
    format_lr: float = 3e-3
    expert_steps: int = 400
    finetune_lr: float = 3e-3
    finetune_warmup: int = 20
    batch_size: int = 32
    eval_items: int = 150
    eval_pairs: int = 150
    temperature: float = 1.0  # the official sampling (top_p 0.9)
    parse_retries: int = 1  # DEVIATION: official 10; grading time (README, "Time")
    concurrency: int = 16
    workers: int = 2  # fine-tuning threads, and grading servers (serve=True)
    serve: bool = False  # grade over HTTP through `paperlab serve` (same outputs, ~10x the CPU)

    def __post_init__(self) -> None:
        if self.format_steps < 0 or self.format_lr <= 0:
            raise ValueError("prometheus2: format_steps must be >= 0 and format_lr > 0")
        for name in ("dim", "n_layers", "base_steps", "expert_steps", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"prometheus2: {name}={getattr(self, name)} must be >= 1")
        for name in ("eval_items", "eval_pairs"):
            if getattr(self, name) < 3:
                raise ValueError(f"prometheus2: {name}={getattr(self, name)} must be >= 3")
        if self.base_lr <= 0 or self.finetune_lr <= 0:
            raise ValueError("prometheus2: base_lr and finetune_lr must be > 0")
        if self.temperature < 0:
            raise ValueError(f"prometheus2: temperature={self.temperature} must be >= 0")
        if self.parse_retries < 0 or self.concurrency < 1 or self.workers < 1:
            raise ValueError("prometheus2: parse_retries >= 0, concurrency and workers >= 1")
        self.base_config()
        self.finetune_config(1)

    def base_config(self):
        from paperlab.core.llm.evaluators import EvaluatorBaseConfig

        try:
            return EvaluatorBaseConfig(
                dim=self.dim,
                n_layers=self.n_layers,
                n_heads=self.n_heads,
                max_seq_len=self.max_seq_len,
                steps=self.base_steps,
                batch_size=self.batch_size,
                lr=self.base_lr,
                warmup=self.base_warmup,
                weight_decay=0.0,
                data_share=1.0,
                digits=2,
                ops="+-",
                answer_weight=self.answer_weight,
                compare_weight=self.compare_weight,
            )
        except ValueError as e:
            raise ValueError(f"prometheus2: {e}") from None

    def finetune_config(self, scale: int):
        """The experts' schedule (`scale` 1); the joint model's is `scale` 2 (Sec. 6)."""
        from paperlab.core.llm.evaluators import FinetuneConfig

        try:
            return FinetuneConfig(
                steps=scale * self.expert_steps,
                batch_size=self.batch_size,
                lr=self.finetune_lr,
                warmup=self.finetune_warmup,
                weight_decay=0.0,
            )
        except ValueError as e:
            raise ValueError(f"prometheus2: {e}") from None


PRESETS = {
    "tiny": dict(
        dim=32,
        n_layers=2,
        base_steps=30,
        format_steps=10,
        expert_steps=20,
        batch_size=16,
        eval_items=12,
        eval_pairs=12,
        parse_retries=1,
    ),
    "default": {},
    "full": dict(
        base_steps=3000, format_steps=1000, expert_steps=1500, eval_items=500, eval_pairs=500
    ),
}


# Criteria, fixed before the runs (not config fields: --set cannot move a goalpost)
MIN_EXPERT_PEARSON = 0.5  # powering: the absolute expert grades its own format
MIN_EXPERT_ACCURACY = 0.7  # powering: the relative expert ranks its own format
# powering: the shared base writes both formats (outputs that parse, each format), as the
# paper's instruction-tuned base does before the experts split
MIN_BASE_PARSE = 0.9
MIN_MERGED_PEARSON = 0.6  # direct: the paper's 0.6-0.7 with GPT-4-1106
UNIFIED_TOLERANCE = 0.05  # unified: merged at most this far below each expert
MERGE_TOLERANCE = 0.02  # merge_vs_joint: below joint by less -> inconclusive


def _nan(x: float) -> float:
    return -math.inf if math.isnan(x) else x


def powered(m: Mapping[str, float]) -> str | None:
    """Why the miniature cannot test the claim (None when it can): the experts must do their
    own format, and the shared base must write both formats."""
    p, a = _nan(float(m["expert_pearson"])), _nan(float(m["expert_accuracy"]))
    if p < MIN_EXPERT_PEARSON or a < MIN_EXPERT_ACCURACY:
        return (
            f"the experts do not do their own format (absolute Pearson {p:.2f} < "
            f"{MIN_EXPERT_PEARSON} or relative accuracy {a:.2f} < {MIN_EXPERT_ACCURACY})"
        )
    parse = _nan(float(m["base_parse"]))
    if parse < MIN_BASE_PARSE:
        return (
            f"the shared base does not write the formats (parse rate {parse:.2f} < "
            f"{MIN_BASE_PARSE}, the worse format)"
        )
    return None


def judge_direct(m: Mapping[str, float]) -> tuple[Verdict, str]:
    if (why := powered(m)) is not None:
        return "inconclusive", why
    r = _nan(float(m["merged_pearson"]))
    if r >= MIN_MERGED_PEARSON:
        return "holds", f"merged Pearson {r:.3f} >= {MIN_MERGED_PEARSON}"
    return "fails", f"merged Pearson {r:.3f} < {MIN_MERGED_PEARSON}"


def judge_unified(m: Mapping[str, float]) -> tuple[Verdict, str]:
    if (why := powered(m)) is not None:
        return "inconclusive", why
    dp, da = _nan(float(m["pearson_gap"])), _nan(float(m["accuracy_gap"]))
    text = f"merged - expert: Pearson {dp:+.3f}, accuracy {da:+.3f}"
    if min(dp, da) >= -UNIFIED_TOLERANCE:
        return "holds", text
    return "fails", text + f" (below -{UNIFIED_TOLERANCE})"


def judge_merge(m: Mapping[str, float]) -> tuple[Verdict, str]:
    if (why := powered(m)) is not None:
        return "inconclusive", why
    gain = _nan(float(m["merge_gain"]))
    text = f"merged {m['merged_mean']:.3f} vs joint {m['joint_mean']:.3f} (mean of Pearson, acc.)"
    if gain >= 0:
        return "holds", text
    if gain > -MERGE_TOLERANCE:
        return "inconclusive", text + f": below joint by less than {MERGE_TOLERANCE}"
    return "fails", text


PAPER = PaperClaims(
    config=Prometheus2ClaimsConfig,
    presets=PRESETS,
    claims=[
        Claim(
            id="direct",
            statement="the merged evaluator's scores correlate with the true scores",
            paper_figure="Pearson 0.6-0.7 with GPT-4-1106 (Tables 2-3)",
            criterion=custom(
                f"merged Pearson >= {MIN_MERGED_PEARSON}, with experts that grade (absolute "
                f"Pearson >= {MIN_EXPERT_PEARSON}, relative accuracy >= {MIN_EXPERT_ACCURACY}) "
                f"from a base that writes both formats (parse rate >= {MIN_BASE_PARSE})",
                judge_direct,
            ),
            run=experiments.run_direct,
            ours="merged Pearson {merged_pearson:.2f} (absolute expert {expert_pearson:.2f}); "
            "parse failures {merged_abs_parse_failures:.2f}; base parses {base_parse:.2f}",
        ),
        Claim(
            id="unified",
            statement="one merged evaluator does both formats as well as each expert does its own",
            paper_figure="the merged model matches or beats the single-format models (Sec. 5)",
            criterion=custom(
                f"merged >= expert - {UNIFIED_TOLERANCE} on Pearson and on accuracy",
                judge_unified,
            ),
            run=experiments.run_unified,
            ours="Pearson {merged_pearson:.2f} vs {expert_pearson:.2f}, accuracy "
            "{merged_accuracy:.2f} vs {expert_accuracy:.2f} (merged vs expert)",
        ),
        Claim(
            id="merge_vs_joint",
            statement="merging two single-format evaluators beats training one on both formats",
            paper_figure="weight merging above joint training on both formats (Sec. 6)",
            criterion=custom(
                f"merged mean (Pearson, accuracy) >= joint (within {MERGE_TOLERANCE}: "
                "inconclusive)",
                judge_merge,
            ),
            run=experiments.run_merge_vs_joint,
            ours="merged {merged_mean:.2f} vs joint {joint_mean:.2f}; TIES {ties_pearson:.2f}/"
            "{ties_accuracy:.2f}, DARE-TIES {dare_ties_pearson:.2f}/{dare_ties_accuracy:.2f}",
        ),
    ],
)
