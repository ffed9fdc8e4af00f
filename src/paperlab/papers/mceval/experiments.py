"""McEval's experiments: the harness run on our problems' canonical solutions, their wrong
variants, hostile programs and a throughput comparison (`run_<claim>(ctx) -> figures`)."""

from __future__ import annotations

import dataclasses
import statistics
import time
from typing import Any

from paperlab.claims import RunContext
from paperlab.papers.mceval.harness import Execution, execute
from paperlab.papers.mceval.languages import get_language
from paperlab.papers.mceval.problems import languages_with_problems, problems, solutions


def ready_languages(cfg: Any) -> tuple[list[str], dict[str, str]]:
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


def canonical_solutions(cfg: Any, key: str) -> list:
    """The first `cfg.max_problems` solutions of a language."""
    return list(solutions(key).values())[: cfg.max_problems]


def thread_map(fn, items, workers: int) -> list:
    """`fn` over `items` in `workers` threads, results in order."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(fn, items))


def run_canonical(ctx: RunContext) -> dict[str, float]:
    cfg = ctx.config
    langs, skipped = ready_languages(cfg)
    jobs = [(key, s) for key in langs for s in canonical_solutions(cfg, key)]
    results = thread_map(lambda j: execute(get_language(j[0]), j[1].program()), jobs, cfg.workers)
    per_lang: dict[str, list[bool]] = {}
    failed = []
    for (key, s), ex in zip(jobs, results, strict=True):
        per_lang.setdefault(key, []).append(ex.passed)
        if not ex.passed:
            failed.append(f"{key}/{s.problem}: {ex.status} {ex.detail[-120:]!r}")
    ctx.notes["languages"] = ", ".join(langs)
    ctx.notes["skipped"] = "; ".join(f"{k} ({v})" for k, v in skipped.items()) or "none"
    ctx.notes["failed"] = failed[:10]
    plot_languages(ctx, per_lang)
    n = len(results)
    return {
        "languages": len(langs),
        "languages_skipped": len(skipped),
        "programs": n,
        "canonical_pass_rate": sum(ex.passed for ex in results) / n if n else float("nan"),
        "problems_covered": len(problems()),
    }


def plot_languages(ctx: RunContext, per_lang: dict[str, list[bool]]) -> None:
    names = sorted(per_lang)
    fig, ax = ctx.figure(figsize=(max(4, 0.5 * len(names) + 1), 3))
    ax.bar(names, [statistics.mean(per_lang[k]) for k in names], color="#36c")
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("canonical pass rate")
    ax.set_title("canonical solutions per language")
    ax.tick_params(axis="x", rotation=45)
    ctx.save_figure(fig, "canonical.png")


def run_mutants(ctx: RunContext) -> dict[str, float]:
    cfg = ctx.config
    langs, _ = ready_languages(cfg)
    jobs = [
        (key, s, w)
        for key in langs
        for s in canonical_solutions(cfg, key)
        for w in s.wrong_variants()
    ]
    results = thread_map(
        lambda j: execute(get_language(j[0]), j[1].program(j[2])), jobs, cfg.workers
    )
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


def run_hostile(ctx: RunContext, *, slack_s: float) -> dict[str, float]:
    """Each hostile program under a `hostile_wall_s` limit; `slack_s`: the time allowed over
    that limit for a program to come back (compile time of the C cases included)."""
    from paperlab.papers.mceval.harness import RUN_LIMITS

    cfg = ctx.config
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
        "slowest_s": max(walls) if walls else float("nan"),
        "slowest_allowed_s": cfg.hostile_wall_s + slack_s,
        "slowest_over_allowed_s": (max(walls) if walls else 0.0) - (cfg.hostile_wall_s + slack_s),
    }


def run_throughput(ctx: RunContext) -> dict[str, float]:
    cfg = ctx.config
    langs = [k for k in cfg.throughput_languages if not get_language(k).missing_tools()]
    jobs = [(k, s) for k in langs for s in list(solutions(k).values())[: cfg.throughput_problems]]

    def one(j):
        return execute(get_language(j[0]), j[1].program()).passed

    rates = {}
    for workers in (1, 2, 1, 2):  # interleaved, so drift in machine load hits both
        t = time.perf_counter()
        ok = thread_map(one, jobs, workers)
        rate = len(jobs) / (time.perf_counter() - t)
        rates.setdefault(workers, []).append(rate)
        if not all(ok):
            ctx.notes["throughput_failures"] = sum(not x for x in ok)
    r1, r2 = statistics.median(rates[1]), statistics.median(rates[2])
    return {"samples": len(jobs), "rate_1_worker": r1, "rate_2_workers": r2, "speedup": r2 / r1}
