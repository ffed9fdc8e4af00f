"""McEval's harness, checked on itself (card `mceval` in PAPERS.md; Chai et al. 2024, 2406.07436).

No code LLM runs here, so the claims are the harness's own correctness, the property every
pass@k McEval reports rests on (Sec. 4: execution-based evaluation):

(1) canonical:  the canonical solution of every problem passes in every language whose
                toolchain is installed (a harness that fails correct code under-reports);
(2) mutants:    every deliberately wrong variant fails (one that passes wrong code
                over-reports);
(3) hostile:    timeouts, crashes and limit hits fail, never pass (the official harness counts
                some timeouts as passes), and the sandbox returns in bounded time;
(4) throughput: 2 workers evaluate at least 1.8x the samples per second of 1 worker.
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from dataclasses import dataclass

from paperlab.claims import Claim, PaperClaims, RunContext, all_of, at_least, at_most
from paperlab.papers.mceval.harness import Execution, execute
from paperlab.papers.mceval.languages import get_language
from paperlab.papers.mceval.problems import languages_with_problems, problems, solutions


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


def _languages(cfg: McEvalClaimsConfig) -> tuple[list[str], dict[str, str]]:
    """(languages to exercise, {language: why skipped})."""
    keys = list(cfg.languages) or languages_with_problems()
    ready, skipped = [], {}
    for key in keys:
        spec = get_language(key)
        if why := spec.why_missing():
            skipped[key] = why
        else:
            ready.append(key)
    return ready, skipped


def _programs(cfg: McEvalClaimsConfig, key: str) -> list:
    return list(solutions(key).values())[: cfg.max_problems]


def _map(fn, items, workers: int) -> list:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(fn, items))


def run_canonical(ctx: RunContext) -> dict[str, float]:
    cfg: McEvalClaimsConfig = ctx.config
    langs, skipped = _languages(cfg)
    jobs = [(key, s) for key in langs for s in _programs(cfg, key)]
    results = _map(lambda j: execute(get_language(j[0]), j[1].program()), jobs, cfg.workers)
    per_lang: dict[str, list[bool]] = {}
    failed = []
    for (key, s), ex in zip(jobs, results, strict=True):
        per_lang.setdefault(key, []).append(ex.passed)
        if not ex.passed:
            failed.append(f"{key}/{s.problem}: {ex.status} {ex.detail[-120:]!r}")
    ctx.notes["languages"] = ", ".join(langs)
    ctx.notes["skipped"] = "; ".join(f"{k} ({v})" for k, v in skipped.items()) or "none"
    ctx.notes["failed"] = failed[:10]
    _plot_languages(ctx, per_lang)
    n = len(results)
    return {
        "languages": len(langs),
        "languages_skipped": len(skipped),
        "programs": n,
        "canonical_pass_rate": sum(ex.passed for ex in results) / n if n else float("nan"),
        "problems_covered": len(problems()),
    }


def _plot_languages(ctx: RunContext, per_lang: dict[str, list[bool]]) -> None:
    names = sorted(per_lang)
    fig, ax = ctx.figure(figsize=(max(4, 0.5 * len(names) + 1), 3))
    ax.bar(names, [statistics.mean(per_lang[k]) for k in names], color="#36c")
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("canonical pass rate")
    ax.set_title("canonical solutions per language")
    ax.tick_params(axis="x", rotation=45)
    ctx.save_figure(fig, "canonical.png")


def run_mutants(ctx: RunContext) -> dict[str, float]:
    cfg: McEvalClaimsConfig = ctx.config
    langs, _ = _languages(cfg)
    jobs = [(key, s, w) for key in langs for s in _programs(cfg, key) for w in s.wrong_variants()]
    results = _map(lambda j: execute(get_language(j[0]), j[1].program(j[2])), jobs, cfg.workers)
    survivors = [
        f"{k}/{s.problem}" for (k, s, _), ex in zip(jobs, results, strict=True) if ex.passed
    ]
    ctx.notes["survivors"] = survivors[:10]
    n = len(results)
    return {
        "mutants": n,
        "mutants_failing": n - len(survivors),
        "mutant_fail_rate": (n - len(survivors)) / n if n else float("nan"),
    }


# hostile programs: (language, what, source, statuses that count as the expected failure)
HOSTILE = [
    ("python", "infinite loop", "while True:\n    pass\n", {"timeout", "signal"}),
    ("python", "sleeps past the wall clock", "import time\ntime.sleep(60)\n", {"timeout"}),
    ("python", "crash", "raise SystemExit(3)\n", {"error"}),
    ("python", "memory hog", "x = bytearray(8 << 30)\n", {"error", "signal"}),
    (
        "python",
        "output flood",
        "import sys\nwhile True:\n    sys.stdout.write('x' * 65536)\n",
        {"output_limit", "signal", "error"},
    ),
    ("shell", "fork bomb", "f() { f | f & }; f\nsleep 30\n", {"timeout", "error", "signal"}),
    ("shell", "ignores SIGTERM", "trap '' TERM\nwhile :; do :; done\n", {"timeout", "signal"}),
    ("c", "segfault", "int main(void) { int *p = 0; return *p; }\n", {"signal"}),
    ("c", "infinite loop", "int main(void) { for (;;) {} }\n", {"timeout", "signal"}),
]


def run_hostile(ctx: RunContext) -> dict[str, float]:
    from paperlab.papers.mceval.harness import RUN_LIMITS

    cfg: McEvalClaimsConfig = ctx.config
    limits = dataclasses.replace(RUN_LIMITS, wall_s=cfg.hostile_wall_s, cpu_s=cfg.hostile_wall_s)
    cases = [c for c in HOSTILE if not get_language(c[0]).missing_tools()]
    passed, unexpected, walls = 0, [], []
    for lang, what, source, expected in cases:
        t = time.perf_counter()
        ex: Execution = execute(get_language(lang), source, run_limits=limits)
        walls.append(time.perf_counter() - t)
        passed += ex.passed
        if ex.passed or ex.status not in expected:
            unexpected.append(f"{lang} {what}: {ex.status}")
    ctx.notes["unexpected"] = unexpected
    return {
        "hostile_programs": len(cases),
        "hostile_passed": passed,
        "unexpected_status": len(unexpected),
        # compile time of the C cases included, so allow a few seconds over the limit
        "slowest_s": max(walls) if walls else float("nan"),
        "slowest_allowed_s": cfg.hostile_wall_s + 10.0,
        "slowest_over_allowed_s": (max(walls) if walls else 0.0) - (cfg.hostile_wall_s + 10.0),
    }


def run_throughput(ctx: RunContext) -> dict[str, float]:
    cfg: McEvalClaimsConfig = ctx.config
    langs = [k for k in cfg.throughput_languages if not get_language(k).missing_tools()]
    jobs = [(k, s) for k in langs for s in list(solutions(k).values())[: cfg.throughput_problems]]

    def one(j):
        return execute(get_language(j[0]), j[1].program()).passed

    rates = {}
    for workers in (1, 2, 1, 2):  # interleaved, so drift in machine load hits both
        t = time.perf_counter()
        ok = _map(one, jobs, workers)
        rate = len(jobs) / (time.perf_counter() - t)
        rates.setdefault(workers, []).append(rate)
        if not all(ok):
            ctx.notes["throughput_failures"] = sum(not x for x in ok)
    r1, r2 = statistics.median(rates[1]), statistics.median(rates[2])
    return {"samples": len(jobs), "rate_1_worker": r1, "rate_2_workers": r2, "speedup": r2 / r1}


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
            run=run_canonical,
            ours="{programs:.0f} programs in {languages:.0f} languages: "
            "{canonical_pass_rate:.1%} pass ({languages_skipped:.0f} skipped: no toolchain)",
        ),
        Claim(
            id="mutants",
            statement="deliberately wrong solutions fail",
            paper_figure="tests tell wrong code from right (Sec. 3)",
            criterion=all_of(at_least("mutant_fail_rate", 1.0), at_least("mutants", 1)),
            run=run_mutants,
            ours="{mutants_failing:.0f} of {mutants:.0f} wrong variants fail",
        ),
        Claim(
            id="hostile",
            statement="timeouts, crashes and limit hits fail, in bounded time",
            paper_figure="the official harness counts some timeouts as passes (card pitfall)",
            criterion=all_of(
                at_most("hostile_passed", 0),
                at_most("unexpected_status", 0),
                at_most("slowest_over_allowed_s", 0.0),
            ),
            run=run_hostile,
            ours="{hostile_passed:.0f} of {hostile_programs:.0f} hostile programs pass; "
            "slowest {slowest_s:.1f}s",
        ),
        Claim(
            id="throughput",
            statement="2 workers evaluate >= 1.8x the samples per second of 1",
            paper_figure="parallel workers (our target: >= 1.8x on 2 cores)",
            criterion=at_least("speedup", 1.8, margin=0.1),
            run=run_throughput,
            ours="{speedup:.2f}x ({rate_2_workers:.1f} vs {rate_1_worker:.1f} samples/s)",
        ),
    ],
)
