"""McEval's harness, checked on itself (Chai et al. 2024, arXiv 2406.07436).

No code LLM runs here, so the claims are the harness's own correctness, the property every
pass@k McEval reports rests on (Sec. 4: execution-based evaluation):

(1) canonical:  the canonical solution of every problem passes in every language whose
                toolchain is installed (a harness that fails correct code under-reports);
(2) mutants:    every deliberately wrong variant fails (one that passes wrong code
                over-reports);
(3) hostile:    timeouts, crashes and limit hits fail, never pass (the official harness counts
                some timeouts as passes), and the sandbox returns in bounded time;
(4) throughput: 2 workers evaluate at least 1.8x the samples per second of 1 worker.

The experiments are in experiments.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

from paperlab.claims import Claim, PaperClaims, all_of, at_least, at_most
from paperlab.papers.mceval import experiments
from paperlab.papers.mceval.languages import get_language


@dataclass
class McEvalClaimsConfig:
    languages: tuple[str, ...] = ()  # () = every language with problems and a toolchain here
    max_problems: int = 20  # per language
    workers: int = 2
    throughput_languages: tuple[str, ...] = ("python", "shell", "c")
    throughput_problems: int = 10
    hostile_wall_s: float = 2.0  # the wall-clock limit the hostile programs run under

    def __post_init__(self) -> None:
        if self.max_problems < 1 or self.throughput_problems < 1:
            raise ValueError("mceval: max_problems and throughput_problems must be >= 1")
        if self.workers < 1:
            raise ValueError("mceval: workers must be >= 1")
        if self.hostile_wall_s <= 0:
            raise ValueError(f"mceval: hostile_wall_s={self.hostile_wall_s} must be > 0")
        for key in (*self.languages, *self.throughput_languages):
            get_language(key)  # one clear error for an unknown language


PRESETS = {
    "tiny": dict(
        languages=("python", "shell"),
        max_problems=3,
        throughput_languages=("python",),
        throughput_problems=4,
    ),
    "default": {},
    "full": dict(throughput_problems=20),
}


# Criteria, fixed before the runs (not config fields: --set cannot move a goalpost)
HOSTILE_SLACK_S = 10.0  # hostile: time allowed over the wall limit (compiling the C cases)
MIN_SPEEDUP = 1.8  # throughput: 2 workers vs 1 on 2 cores
SPEEDUP_MARGIN = 0.1  # within this below MIN_SPEEDUP: inconclusive


PAPER = PaperClaims(
    config=McEvalClaimsConfig,
    presets=PRESETS,
    claims=[
        Claim(
            id="canonical",
            statement="canonical solutions pass in every installed language",
            paper_figure="execution-based pass@1 over 40 languages (Sec. 4) assumes correct "
            "code passes",
            criterion=all_of(at_least("canonical_pass_rate", 1.0), at_least("languages", 1)),
            run=experiments.run_canonical,
            ours="{programs:.0f} programs in {languages:.0f} languages: "
            "{canonical_pass_rate:.1%} pass ({languages_skipped:.0f} skipped: no toolchain)",
        ),
        Claim(
            id="mutants",
            statement="deliberately wrong solutions fail",
            paper_figure="tests tell wrong code from right (Sec. 3)",
            criterion=all_of(at_least("mutant_fail_rate", 1.0), at_least("mutants", 1)),
            run=experiments.run_mutants,
            ours="{mutants_failing:.0f} of {mutants:.0f} wrong variants fail",
        ),
        Claim(
            id="hostile",
            statement="timeouts, crashes and limit hits fail, in bounded time",
            paper_figure="the official harness counts some timeouts as passes",
            criterion=all_of(
                at_most("hostile_passed", 0),
                at_most("unexpected_status", 0),
                at_most("slowest_over_allowed_s", 0.0),
            ),
            run=partial(experiments.run_hostile, slack_s=HOSTILE_SLACK_S),
            ours="{hostile_passed:.0f} of {hostile_programs:.0f} hostile programs pass; "
            "slowest {slowest_s:.1f}s",
        ),
        Claim(
            id="throughput",
            statement="2 workers evaluate >= 1.8x the samples per second of 1",
            paper_figure="parallel workers (our target: >= 1.8x on 2 cores)",
            criterion=at_least("speedup", MIN_SPEEDUP, margin=SPEEDUP_MARGIN),
            run=experiments.run_throughput,
            ours="{speedup:.2f}x ({rate_2_workers:.1f} vs {rate_1_worker:.1f} samples/s)",
        ),
    ],
)
