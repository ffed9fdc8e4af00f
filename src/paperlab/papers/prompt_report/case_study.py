"""The MMLU case study (Sec. 6.1) as a runner over any multiple-choice set and any endpoint.

The paper's six techniques on gpt-3.5-turbo (2,800 MMLU questions): zero-shot, zero-shot CoT,
zero-shot CoT + self-consistency, few-shot, few-shot CoT, few-shot CoT + self-consistency;
self-consistency takes 3 samples at temperature 0.5, every other prompt runs at 0 (Sec. 6.1.3).
Answers are read with the paper's extractor (`prompts.paper_extract`, Sec. 6.1.4).

    techniques = case_study_techniques(KNNSelector(pool, k=3))
    table = client.run(run_case_study(Endpoint(client, "gpt"), items, techniques))
    print(results_table(table))
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from paperlab.core.errors import UserError
from paperlab.core.mc import LETTERS, Accuracy, MCItem, ReadReport, accuracy, read_mc_jsonl
from paperlab.papers.prompt_report import prompts as P
from paperlab.papers.prompt_report.multi import SelfConsistency
from paperlab.papers.prompt_report.techniques import (
    Endpoint,
    FewShot,
    FewShotCoT,
    Outcome,
    ZeroShot,
    ZeroShotCoT,
)

CASE_STUDY = (
    "zero-shot",
    "zero-shot-cot",
    "zero-shot-cot+sc",
    "few-shot",
    "few-shot-cot",
    "few-shot-cot+sc",
)
# gpt-3.5-turbo on 2,800 MMLU questions (Sec. 6.1, Figure 6.5), the figures the text gives
PAPER_ACCURACY = {"zero-shot": 0.627, "zero-shot-cot": 0.547, "few-shot-cot": 0.692}
SC_SAMPLES, SC_TEMPERATURE = 3, 0.5  # Sec. 6.1.3


def case_study_techniques(
    selector: Any,
    *,
    instruction: str = P.BASE_INSTRUCTION,
    fmt: str = "paper2",
    thought: str = P.ZERO_SHOT_COT,
    samples: int = SC_SAMPLES,
    temperature: float = SC_TEMPERATURE,
    style: str = "letter",
) -> dict[str, Any]:
    """The six techniques of the case study, by name (CASE_STUDY order). `selector` picks the
    few-shot exemplars (selection.py); `thought` is the zero-shot CoT inducer; `style` how
    answers are written and read (prompts.STYLES: the paper's letters by default)."""
    kw = dict(instruction=instruction, fmt=fmt, style=style)
    zs_cot = ZeroShotCoT(thought=thought, **kw)
    fs_cot = FewShotCoT(selector=selector, **kw)
    sc = dict(n=samples, temperature=temperature)
    out = {
        "zero-shot": ZeroShot(**kw),
        "zero-shot-cot": zs_cot,
        "zero-shot-cot+sc": SelfConsistency(zs_cot, **sc),
        "few-shot": FewShot(selector=selector, **kw),
        "few-shot-cot": fs_cot,
        "few-shot-cot+sc": SelfConsistency(fs_cot, **sc),
    }
    return out


# every runnable technique by name (`paperlab prompt-report bench --techniques ...`)
TECHNIQUES = (
    *CASE_STUDY,
    "role",
    "emotion",
    "thread-of-thought",
    "plan-and-solve",
    "step-back",
    "least-to-most",
    "universal-self-consistency",
    "self-refine",
    "chain-of-verification",
    "self-calibration",
)


def make_technique(
    name: str,
    selector: Any = None,
    *,
    instruction: str = P.BASE_INSTRUCTION,
    fmt: str = "paper2",
    samples: int = SC_SAMPLES,
    temperature: float = SC_TEMPERATURE,
    style: str = "letter",
) -> Any:
    """The technique called `name` (one of TECHNIQUES); few-shot ones need a `selector`.
    Role and emotion prompting wrap zero-shot; the self-criticism techniques wrap zero-shot
    CoT; universal self-consistency samples zero-shot CoT."""
    from paperlab.papers.prompt_report import multi
    from paperlab.papers.prompt_report import techniques as T

    if name not in TECHNIQUES:
        raise UserError(f"unknown technique {name!r}; choose from {', '.join(TECHNIQUES)}")
    if name.startswith("few-shot") and selector is None:
        raise UserError(f"technique {name!r} needs exemplars: give a pool of solved items")
    if name in CASE_STUDY:
        six = case_study_techniques(
            selector,
            instruction=instruction,
            fmt=fmt,
            samples=samples,
            temperature=temperature,
            style=style,
        )
        return six[name]
    kw = dict(instruction=instruction, fmt=fmt, style=style)
    cot = T.ZeroShotCoT(**kw)
    return {
        "role": lambda: T.Role(T.ZeroShot(**kw)),
        "emotion": lambda: T.Emotion(T.ZeroShot(**kw)),
        "thread-of-thought": lambda: T.thread_of_thought(**kw),
        "plan-and-solve": lambda: T.plan_and_solve(**kw),
        "step-back": lambda: multi.StepBack(cot),
        "least-to-most": lambda: multi.LeastToMost(fmt=fmt, style=style),
        "universal-self-consistency": lambda: multi.UniversalSelfConsistency(
            cot, n=samples, temperature=temperature
        ),
        "self-refine": lambda: multi.SelfRefine(cot),
        "chain-of-verification": lambda: multi.ChainOfVerification(cot),
        "self-calibration": lambda: multi.SelfCalibration(cot),
    }[name]()


@dataclass
class TechniqueResult:
    name: str
    outcomes: list[Outcome]
    correct: list[bool]
    accuracy: Accuracy
    unparsed: int  # answers the extractor could not read (scored wrong, as in the paper)
    calls: int
    extra: dict[str, float] = field(default_factory=dict)


async def run_technique(
    ep: Endpoint,
    items: Sequence[MCItem],
    technique: Any,
    *,
    concurrency: int = 8,
    progress: bool = False,
) -> TechniqueResult:
    """`technique` on every item (at most `concurrency` at once), scored."""
    import asyncio

    from tqdm.auto import tqdm

    if concurrency < 1:
        raise ValueError(f"concurrency must be >= 1, got {concurrency}")
    scored = [x for x in items if x.answer is not None]
    if not scored:
        raise ValueError("items: no item has a correct answer to score against")
    gate = asyncio.Semaphore(concurrency)
    bar = tqdm(total=len(scored), desc=technique.name, disable=not progress, leave=False)

    async def one(item: MCItem) -> Outcome:
        async with gate:
            out = await technique.run(ep, item)
        bar.update(1)
        return out

    try:
        outcomes = list(await asyncio.gather(*(one(x) for x in scored)))
    finally:
        bar.close()
    correct = [o.answer == x.answer for o, x in zip(outcomes, scored, strict=True)]
    return TechniqueResult(
        technique.name,
        outcomes,
        correct,
        accuracy(correct),
        unparsed=sum(o.answer is None for o in outcomes),
        calls=sum(len(o.calls) for o in outcomes),
    )


async def run_case_study(
    ep: Endpoint,
    items: Sequence[MCItem],
    techniques: Mapping[str, Any],
    *,
    concurrency: int = 8,
    progress: bool = False,
) -> dict[str, TechniqueResult]:
    """Every technique on every item, one technique after another; name -> result."""
    return {
        name: await run_technique(ep, items, t, concurrency=concurrency, progress=progress)
        for name, t in techniques.items()
    }


def results_table(results: Mapping[str, TechniqueResult], *, paper: bool = True) -> str:
    """A markdown table: technique, accuracy, 95% bootstrap interval, n, unparsed, calls per
    item (and the paper's gpt-3.5-turbo figure where it gives one)."""
    head = "| technique | accuracy | 95% interval | n | unparsed | calls/item |"
    rule = "|---|---|---|---|---|---|"
    if paper:
        head, rule = head + " paper (gpt-3.5-turbo) |", rule + "---|"
    rows = [head, rule]
    for name, r in results.items():
        a = r.accuracy
        row = (
            f"| {name} | {a.value:.3f} | [{a.low:.3f}, {a.high:.3f}] | {a.n} | {r.unparsed} | "
            f"{r.calls / max(a.n, 1):.1f} |"
        )
        if paper:
            fig = PAPER_ACCURACY.get(name)
            row += f" {fig:.3f} |" if fig is not None else " - |"
        rows.append(row)
    return "\n".join(rows)


def write_records(results: Mapping[str, TechniqueResult], items: Sequence[MCItem], path) -> Path:
    """Every call of every technique on every item as JSONL (written to a temp file, then
    renamed into place)."""
    file = Path(path)
    tmp = file.with_name(f".{file.name}.tmp-{os.getpid()}")
    scored = [x for x in items if x.answer is not None]
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            for name, r in results.items():
                for item, o in zip(scored, r.outcomes, strict=True):
                    rec = {
                        "technique": name,
                        "id": item.id,
                        "answer": item.answer_letter,
                        "predicted": o.letter,
                        "correct": o.answer == item.answer,
                        "info": o.info,
                        "calls": [c.to_dict() for c in o.calls],
                    }
                    f.write(json.dumps(rec, ensure_ascii=False) + "\n")
        os.replace(tmp, file)
    finally:
        tmp.unlink(missing_ok=True)
    return file


# ---------------------------------------------------------------------------------------------
# Data in: JSONL (core.mc) or MMLU's released CSV (question, A, B, C, D, answer; no header)


def read_mc_csv(path: str | os.PathLike) -> ReadReport:
    """Items of an MMLU-style CSV. A row without a question and four options is skipped and
    reported with its row number; an answer label that is not A-D is an error naming the file,
    row and label (a wrong label file would silently score every item wrong)."""
    file = Path(path)
    if not file.is_file():
        raise UserError(f"no such file {file}")
    items, skipped = [], []
    subject = file.stem.removesuffix("_test").removesuffix("_dev").removesuffix("_val")
    with open(file, newline="", encoding="utf-8") as f:
        for n, row in enumerate(csv.reader(f), 1):
            if not any(cell.strip() for cell in row):
                continue
            if len(row) != 6:
                skipped.append(f"row {n}: {len(row)} columns, need question, A, B, C, D, answer")
                continue
            label = row[5].strip().upper()
            if label not in LETTERS:
                raise UserError(f"{file}: row {n}: unknown answer label {row[5]!r} (need A-D)")
            try:
                items.append(
                    MCItem(row[0], tuple(row[1:5]), LETTERS.index(label), subject, f"{subject}-{n}")
                )
            except ValueError as e:
                skipped.append(f"row {n}: {e}")
    return ReadReport(items, skipped)


def load_items(path: str | os.PathLike) -> ReadReport:
    """Items from `.jsonl` (core.mc's format) or `.csv` (MMLU's)."""
    file = Path(path)
    if file.suffix.lower() == ".csv":
        return read_mc_csv(file)
    if file.suffix.lower() in (".jsonl", ".json"):
        try:
            return read_mc_jsonl(file)
        except FileNotFoundError as e:
            raise UserError(str(e)) from None
    raise UserError(f"{file}: unknown data format {file.suffix!r}; give a .jsonl or .csv file")
