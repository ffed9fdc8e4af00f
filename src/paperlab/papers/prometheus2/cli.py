"""`paperlab prometheus2 grade | merge`: grade a JSONL file with a Prometheus evaluator over any
OpenAI-compatible endpoint, and merge fine-tuned checkpoints of one base (Prometheus 2, Kim
et al. 2024, arXiv 2405.01535).

    paperlab prometheus2 grade items.jsonl --mode absolute --model prometheus --config paperlab.toml
    paperlab prometheus2 merge base/ absolute/ relative/ --method linear --out merged/

Grades are appended to the output JSONL as items complete; `--resume` continues a killed run
without repeating finished items. The summary is computed over every record in the output.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from paperlab.core.errors import UserError

GRADE_DESCRIPTION = """\
Grade every item of FILE.jsonl with a Prometheus evaluator LM (the official prompts, parser
anchored at the end of the output, the official sampling defaults), append one result line
per item as it completes, and print the parse-failure rate, the agreement with any labels
(Pearson for absolute grading, accuracy for relative grading), position consistency (relative)
and the cost."""

GRADE_EPILOG = """\
input lines (JSON objects):
  instruction       (required) the instruction the response(s) answer
  response          (required, absolute) the response to grade 1-5
  response_a, response_b  (required, relative) the two responses to compare
  rubric            (required unless criteria is given) the rubric text, or an object with
                    criteria and score1_description .. score5_description
  criteria, score1_description .. score5_description  (alternative to rubric)
  reference_answer  (optional) a reference answer (the official prompt with reference)
  label             (optional) the true score (absolute) or "A"/"B" (relative)
  id                (optional) unique id; the line number when absent

output: one JSON line per item with id, feedback, score (absolute) or winner, and with
position swapping swapped_winner and consistent (relative), attempts, cost and tokens; a
result that stayed unparseable after the regenerations is null. By default it is written
beside the input as FILE.prometheus-MODE.jsonl; an existing output is an error unless --resume.

examples:
  paperlab prometheus2 grade items.jsonl --mode absolute --model prometheus
  paperlab prometheus2 grade pairs.jsonl --mode relative --model prometheus --out graded.jsonl
  paperlab prometheus2 grade items.jsonl --mode absolute --model prometheus --resume
"""

MERGE_EPILOG = """\
methods: linear (weighted average of the fine-tuned weights), task_arithmetic, ties,
dare_linear, dare_ties (on task vectors, model - base). Checkpoints are safetensors files or
Hugging Face model folders (model.safetensors or a sharded index) fine-tuned from BASE.

examples:
  paperlab prometheus2 merge base/ abs/ rel/ --method linear --weights 0.5,0.5 --out merged/
  paperlab prometheus2 merge base/ abs/ rel/ --method dare_ties --density 0.5 --out m.safetensors
"""


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add `prometheus2` (with `grade` and `merge`) to the top-level subparsers."""
    top = subparsers.add_parser(
        "prometheus2",
        help="grade with a Prometheus evaluator; merge evaluator weights (arXiv 2405.01535)",
        description="Prometheus 2: an open evaluator LM (Kim et al. 2024).",
    )
    sub = top.add_subparsers(dest="prometheus2_command", metavar="SUBCOMMAND", required=True)
    p = sub.add_parser(
        "grade",
        help="grade a JSONL file (absolute 1-5 or relative A/B)",
        description=GRADE_DESCRIPTION,
        epilog=GRADE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("file", type=Path, metavar="FILE.jsonl", help="the items to grade")
    p.add_argument(
        "--mode",
        choices=("absolute", "relative"),
        required=True,
        help="absolute: a score 1-5 per response; relative: the better of two responses",
    )
    p.add_argument(
        "--model", required=True, metavar="NAME", help="the grader, a model in the config"
    )
    p.add_argument("--config", type=Path, metavar="FILE", help="LLM config TOML (./paperlab.toml)")
    p.add_argument(
        "--out", type=Path, metavar="FILE", help="output JSONL (FILE.prometheus-MODE.jsonl)"
    )
    p.add_argument("--resume", action="store_true", help="continue an existing output file")
    p.add_argument("--no-cache", action="store_true", help="do not use the request cache")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument(
        "--concurrency", type=int, default=8, metavar="N", help="items graded at once (8)"
    )
    p.add_argument("--seed", type=int, default=0, help="sampling seed sent with requests (0)")
    p.add_argument(
        "--parse-retries",
        type=int,
        default=10,
        metavar="N",
        help="regenerate an unparseable output up to N more times (10, the official)",
    )
    p.add_argument("--temperature", type=float, default=1.0, help="(1.0, the official)")
    p.add_argument("--top-p", type=float, default=0.9, help="(0.9, the official)")
    p.add_argument("--max-tokens", type=int, default=1024, help="(1024, the official)")
    p.add_argument(
        "--no-swap", action="store_true", help="relative: do not also grade the B/A ordering"
    )
    p.add_argument(
        "--system-in-user",
        action="store_true",
        help="put the system prompt into the user message (chat templates without system)",
    )

    m = sub.add_parser(
        "merge",
        help="merge fine-tuned checkpoints of one base (linear, TIES, DARE, ...)",
        description="Merge models fine-tuned from BASE into one safetensors checkpoint.",
        epilog=MERGE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    m.add_argument("base", type=Path, metavar="BASE", help="the base checkpoint (file or folder)")
    m.add_argument("models", type=Path, nargs="+", metavar="MODEL", help="fine-tuned checkpoints")
    m.add_argument(
        "--method", required=True, help="linear|task_arithmetic|ties|dare_linear|dare_ties"
    )
    m.add_argument(
        "--out",
        type=Path,
        required=True,
        help="a .safetensors file, or a folder (model.safetensors)",
    )
    m.add_argument("--weights", metavar="W1,W2,...", help="one weight per model (method default)")
    m.add_argument(
        "--density", type=float, default=1.0, help="fraction kept by TIES/DARE, in (0, 1] (1.0)"
    )
    m.add_argument("--seed", type=int, default=0, help="seed of DARE's drop masks (0)")
    m.add_argument("--force", action="store_true", help="replace an existing output")
    return top


def run(args: argparse.Namespace) -> int:
    if args.prometheus2_command == "grade":
        return grade(args)
    if args.prometheus2_command == "merge":
        return merge(args)
    raise UserError(f"prometheus2: unknown subcommand {args.prometheus2_command!r}")


# -- grade: input -------------------------------------------------------------------------------


def _rubric(item: Mapping[str, Any], where: str):
    from paperlab.papers.prometheus2.prompts import Rubric

    rubric = item.get("rubric")
    try:
        if isinstance(rubric, Mapping):
            return Rubric.from_mapping(rubric)
        if isinstance(rubric, str):
            if not rubric.strip():
                raise ValueError("field 'rubric' is empty")
            return rubric
        if rubric is not None:
            raise ValueError("field 'rubric' must be a string or an object")
        if "criteria" in item or any(f"score{i}_description" in item for i in range(1, 6)):
            return Rubric.from_mapping(item)
    except ValueError as e:
        raise UserError(f"{where}: {e}") from None
    raise UserError(f"{where}: missing 'rubric' (or 'criteria' with score1..5_description)")


def load_items(path: Path, mode: str) -> list[dict[str, Any]]:
    """The input items, each checked; a problem is one UserError naming file:line. Each item
    gains `_rubric` (a Rubric or the rubric text)."""
    from paperlab.core.llm.results import read_jsonl

    items = read_jsonl(path)
    lines = [
        n for n, text in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if text.strip()
    ]
    keys = ("instruction", "response") if mode == "absolute" else _RELATIVE_KEYS
    for item, n in zip(items, lines, strict=True):
        where = f"{path}:{n}"
        if mode == "relative":  # the official field names are response_A / response_B
            for low, up in (("response_a", "response_A"), ("response_b", "response_B")):
                if low not in item and up in item:
                    item[low] = item[up]
        for key in keys:
            if key not in item:
                raise UserError(f"{where}: missing required field {key!r}")
            if not isinstance(item[key], str):
                raise UserError(f"{where}: field {key!r} must be a string")
        ref = item.get("reference_answer")
        if ref is not None and not isinstance(ref, str):
            raise UserError(f"{where}: field 'reference_answer' must be a string")
        item["_rubric"] = _rubric(item, where)
        label = item.get("label")
        if label is None:
            continue
        if mode == "absolute" and (isinstance(label, bool) or not isinstance(label, int | float)):
            raise UserError(f"{where}: field 'label' must be a number in absolute mode")
        if mode == "relative" and label not in ("A", "B"):
            raise UserError(f'{where}: field \'label\' must be "A" or "B" in relative mode')
    return items


_RELATIVE_KEYS = ("instruction", "response_a", "response_b")


def default_output(path: Path, mode: str) -> Path:
    return path.with_name(f"{path.stem}.prometheus-{mode}.jsonl")


# -- grade: the run -----------------------------------------------------------------------------


def grade(args: argparse.Namespace) -> int:
    from paperlab.core.llm.cache import RequestCache, default_cache_path
    from paperlab.core.llm.client import LLMClient
    from paperlab.core.llm.config import load_config
    from paperlab.core.llm.results import JsonlResults
    from paperlab.papers.prometheus2.judge import PrometheusJudge, SamplingConfig

    if args.concurrency < 1:
        raise UserError("--concurrency must be >= 1")
    try:
        sampling = SamplingConfig(
            temperature=args.temperature,
            top_p=args.top_p,
            max_tokens=args.max_tokens,
            parse_retries=args.parse_retries,
        )
    except ValueError as e:
        raise UserError(str(e).replace("SamplingConfig.", "--").replace("_", "-")) from None
    config = load_config(args.config)
    items = load_items(args.file, args.mode)
    out = args.out or default_output(args.file, args.mode)
    if out.resolve() == args.file.resolve():
        raise UserError(f"--out {out} is the input file")
    cache = None if args.no_cache else RequestCache(default_cache_path())
    client = LLMClient(config, cache=cache)
    try:
        judge = PrometheusJudge(
            client=client,
            model=args.model,  # an unknown model fails here, before any output
            sampling=sampling,
            seed=args.seed,
            position_swap=not args.no_swap,
            system_in_user=args.system_in_user,
            concurrency=args.concurrency,
        )
        results = JsonlResults(out, resume=args.resume)
    except BaseException:
        if cache is not None:
            cache.close()
        raise
    try:
        _check_resumed(results, args.mode)
        done, failures = asyncio.run(_grade_all(judge, items, results, args))
        records = results.records()
    finally:
        results.close()
        if cache is not None:
            cache.close()
    print(f"prometheus2: graded {done} items now ({len(records)} in {out})")
    print(summary(items, records, args.mode, client))
    if failures:
        first_id, first_error = failures[0]
        print(
            f"prometheus2: {len(failures)} items failed (rerun with --resume to retry them); "
            f"first: id {first_id!r}: {first_error}",
            file=sys.stderr,
        )
        return 1
    return 0


def _check_resumed(results, mode: str) -> None:
    key = "score" if mode == "absolute" else "winner"
    for record in results.records():
        if key not in record:
            raise UserError(
                f"{results.path}: not written by a {mode} grade (record id "
                f"{record.get('id')!r}); choose another --out"
            )


async def _grade_all(judge, items: Sequence[Mapping[str, Any]], results, args):
    from paperlab.core.llm.results import map_to_jsonl

    async def one(item: Mapping[str, Any]) -> dict[str, Any]:
        ref = item.get("reference_answer")
        if args.mode == "absolute":
            g = await judge.absolute_grade(
                item["instruction"], item["response"], item["_rubric"], ref
            )
        else:
            g = await judge.relative_grade(
                item["instruction"], item["response_a"], item["response_b"], item["_rubric"], ref
            )
        extra = {"label": item["label"]} if item.get("label") is not None else {}
        return {**extra, **g.record()}

    try:
        return await map_to_jsonl(
            items,
            one,
            results,
            concurrency=args.concurrency,
            progress=not args.no_progress,
            desc=f"prometheus2 {args.mode}",
        )
    finally:
        await judge.client.aclose()


def _fmt(x: float) -> str:
    return "nan" if math.isnan(x) else f"{x:.3f}"


def summary(
    items: Sequence[Mapping[str, Any]], records: Sequence[Mapping[str, Any]], mode: str, client
) -> str:
    """Parse failures, agreement with labels, position consistency and cost, as text."""
    from paperlab.core.stats import pearson

    ids = {item["id"] for item in items}
    records = [r for r in records if r["id"] in ids]
    key = "score" if mode == "absolute" else "winner"
    n = len(records)
    parsed = [r for r in records if r[key] is not None]
    lines = [f"items: {n}  parsed: {len(parsed)}  parse failures: {n - len(parsed)}"]
    if n:
        attempts = [a for r in records for a in r["attempts"]]
        lines.append(f"mean attempts per request: {sum(attempts) / len(attempts):.2f}")
    labelled = [r for r in parsed if r.get("label") is not None]
    if mode == "absolute" and len(labelled) >= 2:
        r = pearson([x["score"] for x in labelled], [x["label"] for x in labelled])
        lines.append(f"pearson with the labels ({len(labelled)} items): {_fmt(r)}")
    if mode == "relative":
        if labelled:
            acc = sum(x["winner"] == x["label"] for x in labelled) / len(labelled)
            lines.append(f"accuracy against the labels ({len(labelled)} pairs): {acc:.3f}")
        both = [r["consistent"] for r in records if r.get("consistent") is not None]
        if both:
            lines.append(
                f"position consistency (A/B vs B/A, {len(both)} pairs): {sum(both) / len(both):.3f}"
            )
    total = client.usage.total
    lines.append(
        f"cost of this run: {total.calls} calls ({total.cached} cached), ${total.cost:.4f}"
    )
    return "\n".join(lines)


# -- merge --------------------------------------------------------------------------------------


def merge(args: argparse.Namespace) -> int:
    from paperlab.papers.prometheus2.merge import METHODS, merge_checkpoints

    if args.method not in METHODS:
        raise UserError(
            f"--method: unknown merge method {args.method!r}; known: {', '.join(METHODS)}"
        )
    weights = None
    if args.weights is not None:
        try:
            weights = [float(w) for w in args.weights.split(",")]
        except ValueError:
            raise UserError(f"--weights {args.weights!r}: comma-separated numbers please") from None
    if not 0 < args.density <= 1:
        raise UserError(f"--density {args.density}: must be in (0, 1]")
    out = args.out if args.out.suffix == ".safetensors" else args.out / "model.safetensors"
    if out.exists() and not args.force:
        raise UserError(f"{out} exists; pass --force to replace it")
    for p in (args.base, *args.models):
        if not p.exists():
            raise UserError(f"{p}: no such checkpoint")
    try:
        written = merge_checkpoints(
            args.base,
            args.models,
            args.out,
            method=args.method,
            weights=weights,
            density=args.density,
            seed=args.seed,
        )
    except ValueError as e:  # "models[i]" -> the path the user gave
        text = re.sub(r"models\[(\d+)\]", lambda m: str(args.models[int(m[1])]), str(e))
        raise UserError(text.splitlines()[0]) from None
    print(f"prometheus2: merged {len(args.models)} models ({args.method}) into {written}")
    return 0
