"""McEval's tasks on our problems: build the records, ask a model, turn answers into samples.

McEval (Chai et al. 2024, arXiv 2406.07436, Sec. 3) asks three kinds of question in every
language: *generation* (write the function from its description), *completion* (fill in a
masked single line, multi-line run or span of a solution) and *explanation* (explain the
code in prose, then regenerate it from the explanation alone; both steps are the model's).
All are judged by executing the resulting program with the task's tests (`harness.py`).

A record is McEval's official JSON line, plus our fields:

    {"task_id": "Python/1", "prompt", "canonical_solution", "test", "entry_point",
     "signature", "docstring", "instruction", "raw_generation": [answer, ...],
     "language": "python", "task": "generation", "problem": "gcd"}

and for completion tasks "prefix", "suffix" and "masked" (the program is prefix + the
answer's fill + suffix). The language is the "language" field, else the task_id's prefix
(McEval's names "Python", "CPP", "C#", "CommonLisp", ... resolve via `get_language`).

    records = build_tasks(["python"], KINDS)
    records = asyncio.run(generate(client, "qwen", records, samples=5))
    samples = samples_from_records(records)          # -> harness.evaluate_samples
"""

from __future__ import annotations

import asyncio
import random
import re
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from paperlab.claims import UserError
from paperlab.core.llm.client import LLMClient
from paperlab.core.llm.results import JsonlResults, gather_bounded, map_to_jsonl, read_jsonl
from paperlab.papers.mceval.extract import extract_code, fenced_blocks
from paperlab.papers.mceval.harness import Sample
from paperlab.papers.mceval.languages import LanguageSpec, get_language
from paperlab.papers.mceval.problems import Problem, Solution, problems, solutions

KINDS = (
    "generation",
    "completion_single_line",
    "completion_multi_line",
    "completion_span",
    "explanation",
)
COMPLETION_KINDS = KINDS[1:4]
ID_SUFFIX = {
    "generation": "",
    "completion_single_line": "/single",
    "completion_multi_line": "/multi",
    "completion_span": "/span",
    "explanation": "/explain",
}
FILL = "<FILL>"  # where the masked code was, in a completion prompt
MAX_SPAN_TOKENS = 6  # a span is 1..6 tokens of one line, never the whole line

# -- prompts (our own wording) ----------------------------------------------------------------

# DEVIATION: prompts show the canonical solution's opening lines up to its signature, so a
# model sees each language's conventions (e.g. Bash booleans as exit codes); McEval's prompts
# carry a language-specific signature to the same end.
HEAD_PROMPT = "\nStart it like this:\n```{tag}\n{head}\n```\n"

GENERATION_PROMPT = """\
Write a function named `{entry_point}` in {language} for this task.

Task: {description}
Signature (in neutral types): {signature}
{head}
Reply with the complete {language} code of the function (and any helpers or imports it \
needs) in one fenced code block. Do not write tests or a main program."""

COMPLETION_WHAT = {
    "completion_single_line": "One line of its code is missing",
    "completion_multi_line": "Several consecutive lines of its code are missing",
    "completion_span": "Part of one line of its code is missing",
}

COMPLETION_PROMPT = """\
The {language} function `{entry_point}` below solves this task: {description}
{what}; the gap is marked {fill}.

```{tag}
{code}
```

Reply with only the missing code, in one fenced code block: not the whole function."""

EXPLAIN_PROMPT = """\
Explain what the following {language} function `{entry_point}` does and how it works, \
concisely but precisely enough that a programmer could rewrite it from your explanation alone. \
Write prose only: no code.

```{tag}
{code}
```"""

REGENERATE_PROMPT = """\
Write a function named `{entry_point}` in {language} from this description of it:

{explanation}
{head}
Reply with the complete {language} code of the function (and any helpers or imports it \
needs) in one fenced code block. Do not write tests or a main program."""


# -- building tasks ---------------------------------------------------------------------------


def build_tasks(
    languages: Sequence[str], kinds: Sequence[str] = ("generation",), *, seed: int = 0
) -> list[dict[str, Any]]:
    """Records for every problem with a solution in each of `languages`, for each of `kinds`
    (see `KINDS`). Completion masks are drawn deterministically from (seed, task_id)."""
    for kind in kinds:
        if kind not in KINDS:
            raise UserError(f"unknown task kind {kind!r}; known: {', '.join(KINDS)}")
    index = {pid: i for i, pid in enumerate(problems(), 1)}
    records = []
    for name in languages:
        spec = get_language(name)
        for pid, sol in solutions(spec.key).items():
            for kind in kinds:
                records.append(_record(spec, problems()[pid], sol, index[pid], kind, seed))
    return records


def _record(spec: LanguageSpec, prob: Problem, sol: Solution, n: int, kind: str, seed: int):
    task_id = f"{spec.name}/{n}{ID_SUFFIX[kind]}"
    code = sol.solution
    entry = prob.signature.split("(", 1)[0].strip()
    head = code_head(code, entry)
    rec: dict[str, Any] = {
        "task_id": task_id,
        "language": spec.key,
        "task": kind,
        "problem": prob.id,
        "prompt": head,
        "canonical_solution": code,
        "test": sol.test,
        "entry_point": entry,
        "signature": prob.signature,
        "docstring": prob.description,
    }
    fmt = dict(
        language=spec.name,
        entry_point=entry,
        description=prob.description,
        tag=fence_tag(spec),
        signature=prob.signature,
    )
    if kind in COMPLETION_KINDS:
        prefix, masked, suffix = mask(code, entry, kind, random.Random(f"{seed}:{task_id}"))
        rec.update(prefix=prefix, suffix=suffix, masked=masked)
        rec["prompt"] = prefix + FILL + suffix
        rec["instruction"] = COMPLETION_PROMPT.format(
            **fmt, what=COMPLETION_WHAT[kind], fill=FILL, code=rec["prompt"].strip("\n")
        )
    elif kind == "explanation":
        rec["instruction"] = EXPLAIN_PROMPT.format(**fmt, code=code.strip("\n"))
    else:
        rec["instruction"] = GENERATION_PROMPT.format(**fmt, head=_head_block(rec, spec))
    return rec


def fence_tag(spec: LanguageSpec) -> str:
    """The tag we put on a code fence for `spec`: its first tag without spaces/underscores."""
    return next((t for t in spec.tags if " " not in t and "_" not in t), spec.key)


def code_head(code: str, entry_point: str) -> str:
    """The solution up to and including the first line naming `entry_point` (its signature,
    with any imports before it); McEval's `prompt`. "" when no line names it."""
    lines = code.splitlines()
    for i, line in enumerate(lines):
        if re.search(rf"(?<![\w-]){re.escape(entry_point)}(?![\w-])", line):
            return "\n".join(lines[: i + 1])
    return ""


def _head_block(rec: Mapping[str, Any], spec: LanguageSpec) -> str:
    head = rec.get("prompt") or ""
    return HEAD_PROMPT.format(tag=fence_tag(spec), head=head) if head.strip() else ""


# -- masking (McEval Sec. 3: single-line, multi-line and span completion) ---------------------

_TOKEN = re.compile(r"\w+|[^\w\s]+")


def mask(code: str, entry_point: str, kind: str, rng: random.Random) -> tuple[str, str, str]:
    """(prefix, masked, suffix) with prefix + masked + suffix == code.

    Only body lines are masked: those after the signature line (`code_head`) with a word
    character in them (not a lone "}" or "end"). Single-line: one such line; multi-line: a
    run of 2-4 non-blank body lines starting and ending on such lines (1 line if the body is
    shorter); span: 1-6 tokens of one line, never the whole line. For line kinds the prefix
    ends with the first masked line's indentation and `masked` is dedented by it, so a fill
    is re-indented the same way (`assemble`).
    """
    lines = code.splitlines(keepends=True)
    start = len(code_head(code, entry_point).splitlines())
    body = [i for i in range(start, len(lines)) if re.search(r"\w", lines[i])]
    if not body:  # no signature found or nothing after it: any line with a word in it
        body = [i for i, line in enumerate(lines) if re.search(r"\w", line)]
    if not body:
        raise UserError("mceval: cannot mask a solution without code")
    if kind == "completion_span":
        return _mask_span(lines, body, rng)
    first = last = rng.choice(body)
    if kind == "completion_multi_line":
        runs = [
            (a, b)
            for a in body
            for b in body
            if 1 <= b - a <= 3 and all(lines[i].strip() for i in range(a, b + 1))
        ]
        if runs:
            first, last = rng.choice(runs)
    elif kind != "completion_single_line":
        raise UserError(f"not a completion kind: {kind!r}")
    region = "".join(lines[first : last + 1]).rstrip()
    indent = _indent(region)
    prefix = "".join(lines[:first]) + indent
    suffix = code[len(prefix) - len(indent) + len(region) :]
    return prefix, textwrap.dedent(region), suffix


def _mask_span(lines: list[str], body: list[int], rng: random.Random) -> tuple[str, str, str]:
    def tokens(i: int) -> list[re.Match]:
        return list(_TOKEN.finditer(lines[i]))

    rich = [i for i in body if len(tokens(i)) >= 2] or body
    i = rng.choice(rich)
    toks = tokens(i)
    longest = min(MAX_SPAN_TOKENS, max(1, len(toks) - 1))
    n = rng.randint(1, longest)
    a = rng.randrange(len(toks) - n + 1)
    lo, hi = toks[a].start(), toks[a + n - 1].end()
    before = "".join(lines[:i])
    return before + lines[i][:lo], lines[i][lo:hi], lines[i][hi:] + "".join(lines[i + 1 :])


def _indent(text: str) -> str:
    """The leading whitespace common to the non-blank lines of `text`."""
    widths = [re.match(r"[ \t]*", line).group() for line in text.splitlines() if line.strip()]
    common = widths[0] if widths else ""
    for w in widths[1:]:
        while not w.startswith(common):
            common = common[:-1]
    return common


def _reindent(text: str, indent: str) -> str:
    """`text` with `indent` before every non-blank line but the first (the prefix holds it)."""
    lines = text.split("\n")
    return "\n".join([lines[0]] + [indent + ln if ln.strip() else ln for ln in lines[1:]])


def fill_from_answer(answer: str, spec: LanguageSpec) -> str:
    """The code of a completion answer: the body of its fenced block (the one tagged with the
    language if several), else the bare answer; one pair of inline backticks around it is
    dropped too (`x + 1`)."""
    blocks = fenced_blocks(answer)
    if blocks:
        tagged = [b for t, b in blocks if t in spec.tags]
        untagged = [b for t, b in blocks if not t]
        answer = (tagged or untagged or [blocks[0][1]])[0]
    text = answer.strip("\n")
    if re.fullmatch(r"\s*`[^`\n]+`\s*", text):
        text = text.strip().strip("`")
    return text


def assemble(record: Mapping[str, Any], fill: str) -> str:
    """The program of a completion record with `fill` in the masked place. Line kinds: the
    fill is dedented and re-indented at the masked line's indentation (from the prefix);
    span: the fill is stripped of surrounding whitespace."""
    prefix, suffix = record["prefix"], record["suffix"]
    if record.get("task") == "completion_span":
        return prefix + fill.strip() + suffix
    indent = prefix[prefix.rfind("\n") + 1 :]
    body = textwrap.dedent(fill.strip("\n")).rstrip()
    return prefix + _reindent(body, indent) + suffix


# -- records -> samples -----------------------------------------------------------------------


def record_language(record: Mapping[str, Any]) -> LanguageSpec:
    """The record's language: its "language" field, else its task_id's prefix."""
    name = record.get("language") or str(record.get("task_id", "")).split("/", 1)[0]
    return get_language(name)


def samples_from_records(
    records: Sequence[Mapping[str, Any]], *, use_canonical: bool = False
) -> list[Sample]:
    """One `Sample` per answer in each record's raw_generation (id "<task_id>#<i>"), its code
    extracted per task kind: `extract_code` for generation and explanation, prefix + fill +
    suffix for completions. With `use_canonical`, one sample per record from its canonical
    solution instead (for completions: the masked text as the fill, through `assemble`)."""
    out = []
    for n, rec in enumerate(records, 1):
        task_id = rec.get("task_id") if isinstance(rec, Mapping) else None
        where = f"mceval record {task_id!r}" if task_id else f"mceval record #{n}"
        if not task_id:
            raise UserError(f"{where}: no task_id")
        try:
            spec = record_language(rec)
        except UserError as e:
            raise UserError(f"{where}: {e}") from None
        kind = rec.get("task", "generation")
        if kind not in KINDS:
            raise UserError(f"{where}: unknown task {kind!r}; known: {', '.join(KINDS)}")
        if not isinstance(rec.get("test"), str):
            raise UserError(f"{where}: no 'test' (the code the answer is run with)")
        if kind in COMPLETION_KINDS and not all(
            isinstance(rec.get(k), str) for k in ("prefix", "suffix")
        ):
            raise UserError(f"{where}: a {kind} record needs 'prefix' and 'suffix'")
        if use_canonical:
            canonical = rec.get("canonical_solution")
            if not isinstance(canonical, str):
                raise UserError(f"{where}: no 'canonical_solution'")
            if kind in COMPLETION_KINDS:
                if not isinstance(rec.get("masked"), str):
                    raise UserError(f"{where}: no 'masked' (the canonical fill)")
                codes = [assemble(rec, rec["masked"])]
            else:
                codes = [canonical]
        else:
            answers = rec.get("raw_generation")
            if not isinstance(answers, list):
                raise UserError(f"{where}: no 'raw_generation' list (generate answers first)")
            codes = [code_of_answer(rec, spec, a if isinstance(a, str) else "") for a in answers]
        for i, code in enumerate(codes):
            out.append(Sample(f"{task_id}#{i}", task_id, spec.key, code, rec["test"]))
    return out


def code_of_answer(record: Mapping[str, Any], spec: LanguageSpec, answer: str) -> str:
    """The program text judged for one answer to `record`."""
    if record.get("task", "generation") in COMPLETION_KINDS:
        fill = fill_from_answer(answer, spec)
        return assemble(record, fill) if fill.strip() else ""
    return extract_code(answer, spec)


# -- asking a model ---------------------------------------------------------------------------


def _without_code(text: str) -> str:
    """An explanation with any fenced code blocks cut out (step 2 must see prose only).

    DEVIATION: a guard of ours; the paper only asks the model not to write code."""
    return re.sub(r"^(`{3,}|~{3,}).*?^\1[ \t]*$\n?", "", text, flags=re.DOTALL | re.MULTILINE)


async def answer_record(
    client: LLMClient,
    model: str,
    record: Mapping[str, Any],
    *,
    samples: int = 1,
    temperature: float = 0.2,
    max_tokens: int = 1024,
) -> dict[str, Any]:
    """`record` with "raw_generation" (`samples` answers) filled in. Explanation records take
    two calls per sample (McEval Sec. 3): explain the canonical code in prose, then, in a
    fresh conversation, write the function from that explanation alone (fenced code is cut
    out of it first); the explanations go to "explanation"."""
    rec = dict(record)
    kind = rec.get("task", "generation")
    where = f"mceval record {rec.get('task_id')!r}"

    async def ask(text: str, i: int) -> str:
        msgs = [{"role": "user", "content": text}]
        out = await client.chat(
            model, msgs, temperature=temperature, max_tokens=max_tokens, sample=i
        )
        return out.text

    if kind == "explanation":
        spec = record_language(rec)
        if not isinstance(rec.get("canonical_solution"), str):
            raise UserError(f"{where}: an explanation record needs 'canonical_solution'")
        entry = rec.get("entry_point", "")
        first = rec.get("instruction") or EXPLAIN_PROMPT.format(
            language=spec.name,
            entry_point=entry,
            tag=fence_tag(spec),
            code=rec["canonical_solution"].strip("\n"),
        )

        async def chain(i: int) -> tuple[str, str]:
            explanation = await ask(first, i)
            second = REGENERATE_PROMPT.format(
                language=spec.name,
                entry_point=entry,
                head=_head_block(rec, spec),
                explanation=_without_code(explanation).strip(),
            )
            return explanation, await ask(second, i)

        pairs = await asyncio.gather(*(chain(i) for i in range(samples)))
        rec["explanation"] = [e for e, _ in pairs]
        rec["raw_generation"] = [a for _, a in pairs]
        return rec
    if not isinstance(rec.get("instruction"), str):
        raise UserError(f"{where}: no 'instruction' to ask the model")
    rec["raw_generation"] = list(
        await asyncio.gather(*(ask(rec["instruction"], i) for i in range(samples)))
    )
    return rec


async def generate(
    client: LLMClient,
    model: str,
    records: Sequence[Mapping[str, Any]],
    *,
    samples: int = 1,
    temperature: float = 0.2,
    max_tokens: int = 1024,
    concurrency: int = 8,
) -> list[dict[str, Any]]:
    """Copies of `records` with `samples` answers each in "raw_generation" (see
    `answer_record`), `concurrency` records at a time (their samples run together; the
    client's per-model limit caps the requests in flight)."""
    if samples < 1 or concurrency < 1:
        raise UserError("mceval generate: samples and concurrency must be >= 1")

    async def one(rec: Mapping[str, Any]) -> dict[str, Any]:
        return await answer_record(
            client, model, rec, samples=samples, temperature=temperature, max_tokens=max_tokens
        )

    return await gather_bounded(records, one, concurrency)


async def generate_file(
    client: LLMClient,
    model: str,
    in_path: str | Path,
    out_path: str | Path,
    *,
    resume: bool = False,
    samples: int = 1,
    temperature: float = 0.2,
    max_tokens: int = 1024,
    concurrency: int = 8,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """`generate` from a JSONL of records to `out_path`, appending each record as it
    completes (keyed by task_id), so a killed run continues with `resume`. A record whose
    requests failed is left out and the run ends with one error; `resume` retries it.
    Returns all records of `out_path`."""
    if samples < 1 or concurrency < 1:
        raise UserError("mceval generate: samples and concurrency must be >= 1")
    records = read_jsonl(in_path, id_key="task_id")

    async def one(rec: Mapping[str, Any]) -> dict[str, Any]:
        return await answer_record(
            client, model, rec, samples=samples, temperature=temperature, max_tokens=max_tokens
        )

    with JsonlResults(out_path, resume=resume, id_key="task_id") as results:
        _, failures = await map_to_jsonl(
            records, one, results, concurrency=concurrency, progress=progress, desc="tasks"
        )
        if failures:
            task_id, error = failures[0]
            raise UserError(
                f"{len(failures)} task(s) failed, first {task_id}: {error}; "
                f"rerun with --resume to retry them"
            )
        return results.records()
