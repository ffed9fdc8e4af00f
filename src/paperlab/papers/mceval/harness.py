"""Execution-based evaluation (McEval Sec. 4): put the code in the language's file, compile it
and run it with its tests in `paperlab.core.sandbox`; a sample passes only when every step
exits 0 within its limits. A timeout, a crash, a limit hit, a compile error or missing code
is a failure, never a pass (the official harness counts some timeouts as passes).

    ex = execute(get_language("python"), "def f():\\n    return 1\\n\\nassert f() == 1\\n")
    ex.passed, ex.status, ex.detail

`evaluate_file` runs a JSONL of samples (McEval's official format or ours, `io.py`) with
parallel workers, appending one result line per sample as it finishes, resumable.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from paperlab.claims import UserError
from paperlab.core.llm.results import JsonlResults, map_to_jsonl
from paperlab.core.sandbox import Limits, Sandbox
from paperlab.papers.mceval.extract import mean_pass_at_k
from paperlab.papers.mceval.languages import LanguageSpec, get_language

# run limits for one program (scaled per language by LanguageSpec.timeout_scale); compilers
# get more time, memory and processes (javac and rustc start many threads)
RUN_LIMITS = Limits(wall_s=10.0, cpu_s=10.0, processes=64)
COMPILE_LIMITS = Limits(wall_s=60.0, cpu_s=60.0, processes=256, memory_bytes=None)
DETAIL_CHARS = 800  # the tail of a failed step's output kept in results


@dataclass
class Execution:
    """What running one program with its tests gave."""

    passed: bool
    status: str  # "passed", or why not: compile_error / error / timeout / signal / ...
    stage: str  # the step that decided it: "compile", "run" or "" (nothing ran)
    detail: str  # the tail of the deciding step's stderr/stdout
    wall_s: float
    isolation: tuple[str, ...] = ()

    def record(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def limits_for(spec: LanguageSpec, base: Limits, *, scale: float = 1.0) -> Limits:
    """`base` with the language's address-space limit (none if `base` has none) and its
    wall/CPU time scaled."""
    s = spec.timeout_scale * scale
    memory = None if base.memory_bytes is None else spec.memory
    return dataclasses.replace(
        base, wall_s=base.wall_s * s, cpu_s=base.cpu_s * s, memory_bytes=memory
    )


def execute(
    spec: LanguageSpec,
    source: str,
    *,
    run_limits: Limits = RUN_LIMITS,
    compile_limits: Limits = COMPILE_LIMITS,
) -> Execution:
    """Compile (if the language is compiled) and run `source` in a fresh sandbox."""
    start = time.perf_counter()
    if not spec.executable:
        return Execution(False, "not_executable", "", f"{spec.name} is scored by comparison", 0.0)
    if why := spec.why_missing():
        return Execution(False, "toolchain_missing", "", why, 0.0)
    if not source.strip():
        return Execution(False, "no_code", "", "the answer held no code for this language", 0.0)
    with Sandbox(env=spec.env) as box:
        box.write(spec.file, source)
        steps = (
            [("compile", spec.compile, limits_for(spec, compile_limits))] if spec.compile else []
        )
        steps.append(("run", spec.run, limits_for(spec, run_limits)))
        for stage, argv, limits in steps:
            argv = [a.format(file=spec.file, dir=box.path) for a in argv]
            r = box.run(argv, limits=limits)
            if not r.passed:
                status = "compile_error" if stage == "compile" and r.status == "error" else r.status
                detail = "\n".join(x for x in (r.detail, r.stderr, r.stdout) if x.strip())
                detail = detail.strip()[-DETAIL_CHARS:]
                wall = time.perf_counter() - start
                return Execution(False, status, stage, detail, wall, r.isolation)
        return Execution(True, "passed", "run", "", time.perf_counter() - start, r.isolation)


# ---------------------------------------------------------------------------------------------
# A file of samples


@dataclass
class Sample:
    """One program to judge: `code` (already extracted) with the tests of its task."""

    id: str  # "<task id>#<sample index>"
    task_id: str
    language: str  # a key of LANGUAGES
    code: str
    test: str

    def program(self) -> str:
        return self.code.rstrip("\n") + "\n\n" + self.test.lstrip("\n")


def evaluate_samples(
    samples: Sequence[Sample],
    out: str | Path,
    *,
    workers: int = 2,
    resume: bool = False,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Execute every sample (those already in `out` are skipped with `resume`), `workers` at a
    time, appending {"id", "task_id", "language", passed, status, ...} to `out` as each
    finishes; returns all result records of `out`."""
    if workers < 1:
        raise UserError(f"--workers must be >= 1, not {workers}")
    items = [dataclasses.asdict(s) for s in samples]

    async def one(item: Mapping[str, Any]) -> dict[str, Any]:
        spec, sample = get_language(item["language"]), Sample(**item)
        # no code in the answer: a failure without running the tests alone
        source = sample.program() if sample.code.strip() else ""
        ex = await asyncio.to_thread(execute, spec, source)
        return {"task_id": item["task_id"], "language": spec.key, **ex.record()}

    with JsonlResults(out, resume=resume) as results:
        asyncio.run(
            map_to_jsonl(
                items, one, results, concurrency=workers, progress=progress, desc="samples"
            )
        )
        return results.records()


def summarize(records: Sequence[Mapping[str, Any]], ks: Sequence[int] = (1, 5, 10)) -> dict:
    """Per language: tasks, samples, pass@k for each k not above the fewest samples of a task,
    and the failure statuses seen."""
    by_lang: dict[str, dict[str, list[bool]]] = {}
    statuses: dict[str, dict[str, int]] = {}
    for r in records:
        by_lang.setdefault(r["language"], {}).setdefault(r["task_id"], []).append(r["passed"])
        if not r["passed"]:
            s = statuses.setdefault(r["language"], {})
            s[r["status"]] = s.get(r["status"], 0) + 1
    out = {}
    for lang, tasks in sorted(by_lang.items()):
        nc = [(len(v), sum(v)) for v in tasks.values()]
        fewest = min(n for n, _ in nc)
        row: dict[str, Any] = {"tasks": len(nc), "samples": sum(n for n, _ in nc)}
        for k in ks:
            if k <= fewest:
                row[f"pass@{k}"] = mean_pass_at_k(nc, k)
        row["failures"] = statuses.get(lang, {})
        out[lang] = row
    return out
