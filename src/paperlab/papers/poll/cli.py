"""`paperlab poll judge`: judge a JSONL file of answers with a panel of LLM judges (PoLL,
Verga et al. 2024, arXiv 2404.18796) and report agreement with human labels and cost.

    paperlab poll judge answers.jsonl --jury command-r,gpt-35,haiku --config paperlab.toml

Results are appended to the output JSONL as items complete; `--resume` continues a killed run
without repeating finished items. The summary is computed over every record in the output.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from paperlab.claims import UserError
from paperlab.core.llm.cache import RequestCache, default_cache_path
from paperlab.core.llm.client import LLMClient
from paperlab.core.llm.config import load_config
from paperlab.core.llm.results import JsonlResults, map_to_jsonl, read_jsonl
from paperlab.core.stats import kendall_tau, pearson
from paperlab.papers.poll.poll import (
    PANEL,
    PanelOfJudges,
    judge_table,
    label_agreement,
    ranking_agreement,
    system_scores,
)

DESCRIPTION = """\
Judge every answer in FILE.jsonl with a panel of LLM judges (PoLL: a jury of diverse models,
pooled by majority vote in qa mode, by the mean in score mode), append one result line per
item as it completes, and print each judge's and the panel's agreement with the human labels,
per-system results with ranking correlations, and the cost per judge."""

EPILOG = """\
input lines (JSON objects):
  question  (required) the question or instruction
  answer    (required) the answer to judge
  reference (optional) a reference answer; used by qa mode unless --no-reference
  label     (optional) human judgment: true/false in qa mode, a number in score mode
  system    (optional) which system produced the answer: per-system results and rankings
  id        (optional) unique id; the line number when absent

output: one JSON line per item with id, system/label (if given), votes per judge and the
verdict (qa) or scores per judge and their mean (score), cost, costs and attempts per judge.
By default it is written beside the input as FILE.poll.jsonl (qa) or FILE.poll-score.jsonl
(score); an existing output is an error unless --resume.

The jury may also come from the config: [poll] jury = ["a", "b", "c"].

examples:
  paperlab poll judge answers.jsonl --jury j0,j1,j2
  paperlab poll judge answers.jsonl --jury j0,j1,j2 --mode score --out scores.jsonl
  paperlab poll judge answers.jsonl --jury j0,j1,j2 --resume      # after an interruption
"""


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add `poll` (with its `judge` subcommand) to the top-level subparsers."""
    p_poll = subparsers.add_parser(
        "poll",
        help="judge answers with a panel of LLM judges (PoLL, arXiv 2404.18796)",
        description="Panel of LLM evaluators (Verga et al. 2024).",
    )
    sub = p_poll.add_subparsers(dest="poll_command", metavar="SUBCOMMAND", required=True)
    p = sub.add_parser(
        "judge",
        help="judge a JSONL file of answers with a jury of models",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("file", type=Path, metavar="FILE.jsonl", help="the answers to judge")
    p.add_argument(
        "--jury", metavar="A,B,C", help="judges: model names in the config (or [poll] jury)"
    )
    p.add_argument("--config", type=Path, metavar="FILE", help="LLM config TOML (./paperlab.toml)")
    p.add_argument(
        "--out", type=Path, metavar="FILE", help="output JSONL (FILE.poll.jsonl beside the input)"
    )
    p.add_argument("--resume", action="store_true", help="continue an existing output file")
    p.add_argument(
        "--mode",
        choices=("qa", "score"),
        default="qa",
        help="qa: True/False per judge, majority vote; score: 1-5 per judge, mean (qa)",
    )
    p.add_argument(
        "--no-reference", action="store_true", help="qa mode: ignore the reference answers"
    )
    p.add_argument(
        "--concurrency", type=int, default=8, metavar="N", help="items judged at once (8)"
    )
    p.add_argument("--no-cache", action="store_true", help="do not use the request cache")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def run(args: argparse.Namespace) -> int:
    if args.poll_command == "judge":
        return judge(args)
    raise UserError(f"poll: unknown subcommand {args.poll_command!r}")


# -- input ----------------------------------------------------------------------------------------


def load_items(path: Path, mode: str) -> list[dict[str, Any]]:
    """The input items, each field checked; a problem is a UserError naming file:line."""
    items = read_jsonl(path)
    lines = [
        n for n, text in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if text.strip()
    ]
    for item, n in zip(items, lines, strict=True):
        where = f"{path}:{n}"
        for key in ("question", "answer"):
            if key not in item:
                raise UserError(f"{where}: missing required field {key!r}")
            if not isinstance(item[key], str):
                raise UserError(f"{where}: field {key!r} must be a string")
        for key in ("reference", "system"):
            if item.get(key) is not None and not isinstance(item[key], str):
                raise UserError(f"{where}: field {key!r} must be a string")
        label = item.get("label")
        if label is None:
            continue
        if mode == "qa" and not isinstance(label, bool):
            raise UserError(f"{where}: field 'label' must be true or false in qa mode")
        if mode == "score" and (isinstance(label, bool) or not isinstance(label, (int, float))):
            raise UserError(f"{where}: field 'label' must be a number in score mode")
    return items


def parse_jury(text: str | None, config_jury: Any) -> list[str]:
    if text is not None:
        jury = [name.strip() for name in text.split(",") if name.strip()]
    elif isinstance(config_jury, list) and all(isinstance(j, str) for j in config_jury):
        jury = list(config_jury)
    elif config_jury is None:
        raise UserError("no jury: pass --jury a,b,c or set [poll] jury in the config")
    else:
        raise UserError("[poll] jury in the config must be a list of model names")
    if not jury:
        raise UserError("--jury names no judges")
    duplicates = sorted({j for j in jury if jury.count(j) > 1})
    if duplicates:
        raise UserError(f"--jury names {', '.join(duplicates)} more than once")
    return jury


def default_output(path: Path, mode: str) -> Path:
    suffix = ".poll.jsonl" if mode == "qa" else ".poll-score.jsonl"
    return path.with_name(path.stem + suffix)


# -- the run --------------------------------------------------------------------------------------


def judge(args: argparse.Namespace) -> int:
    if args.concurrency < 1:
        raise UserError("--concurrency must be >= 1")
    config = load_config(args.config)
    jury = parse_jury(args.jury, config.section("poll").get("jury"))
    items = load_items(args.file, args.mode)
    out = args.out or default_output(args.file, args.mode)
    if out.resolve() == args.file.resolve():
        raise UserError(f"--out {out} is the input file")
    cache = None if args.no_cache else RequestCache(default_cache_path())
    client = LLMClient(config, cache=cache)
    panel = PanelOfJudges(client, jury)  # unknown judge names fail here, before any output
    results = JsonlResults(out, resume=args.resume)
    try:
        _check_resumed(results, jury, args.mode)
        done, failures = asyncio.run(_judge_all(panel, items, results, args))
        records = results.records()
    finally:
        results.close()
        if cache is not None:
            cache.close()
    print(f"poll: judged {done} items now ({len(records)} in {out})")
    print(summary(items, records, jury, args.mode, client))
    if failures:
        first_id, first_error = failures[0]
        print(
            f"poll: {len(failures)} items failed (rerun with --resume to retry them); "
            f"first: id {first_id!r}: {first_error}",
            file=sys.stderr,
        )
        return 1
    return 0


def _check_resumed(results: JsonlResults, jury: Sequence[str], mode: str) -> None:
    key = "votes" if mode == "qa" else "scores"
    for record in results.records():
        if key not in record or set(record[key]) != set(jury):
            raise UserError(
                f"{results.path}: written by another jury or mode (record id "
                f"{record.get('id')!r}); choose another --out"
            )


async def _judge_all(
    panel: PanelOfJudges, items: Sequence[Mapping[str, Any]], results: JsonlResults, args
) -> tuple[int, list[tuple[Any, str]]]:
    async def one(item: Mapping[str, Any]) -> dict[str, Any]:
        if args.mode == "qa":
            reference = None if args.no_reference else item.get("reference")
            judged = await panel.judge_qa(item["question"], item["answer"], reference)
        else:
            judged = await panel.score(item["question"], item["answer"])
        extra = {k: item[k] for k in ("system", "label") if item.get(k) is not None}
        return {**extra, **judged.record()}

    try:
        return await map_to_jsonl(
            items,
            one,
            results,
            concurrency=args.concurrency,
            progress=not args.no_progress,
            desc="poll",
        )
    finally:
        await panel.client.aclose()


# -- the summary ----------------------------------------------------------------------------------


def _fmt(x: float) -> str:
    return "nan" if math.isnan(x) else f"{x:.3f}"


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows
    )


def summary(
    items: Sequence[Mapping[str, Any]],
    records: Sequence[Mapping[str, Any]],
    jury: Sequence[str],
    mode: str,
    client: LLMClient,
) -> str:
    """Agreement with labels, per-system results and rankings, and cost, as printable text."""
    by_id = {item["id"]: item for item in items}
    records = [r for r in records if r["id"] in by_id]
    inputs = [by_id[r["id"]] for r in records]
    per_judge, pooled = ("votes", "verdict") if mode == "qa" else ("scores", "mean")
    table = judge_table(records, jury, per_judge=per_judge, pooled=pooled)
    parts = []

    labelled = [i for i, item in enumerate(inputs) if item.get("label") is not None]
    if labelled:
        labels = [inputs[i]["label"] for i in labelled]
        sub = {rater: [column[i] for i in labelled] for rater, column in table.items()}
        parts.append(f"agreement with the labels ({len(labelled)} labelled items):")
        parts.append(_label_table(sub, labels, mode))

    systems = [item.get("system") for item in inputs]
    if any(s is not None for s in systems):
        parts.append(_systems_section(table, inputs, systems, mode))

    usage = client.usage.models
    rows = [["rater", "calls", "cached", "cost $"]]
    for name in jury:
        u = usage.get(name)
        rows.append(
            [
                name,
                str(u.calls if u else 0),
                str(u.cached if u else 0),
                f"{u.cost if u else 0.0:.4f}",
            ]
        )
    total = client.usage.total
    rows.append([PANEL, str(total.calls), str(total.cached), f"{total.cost:.4f}"])
    parts.append("cost of this run (cached calls are free):")
    parts.append(_table(rows))
    return "\n".join(parts)


def _label_table(table: Mapping[str, Sequence[Any]], labels: Sequence[Any], mode: str) -> str:
    if mode == "qa":
        stats = label_agreement(table, labels)
        rows = [["rater", "accuracy", "kappa", "unparsed"]]
        for rater, s in stats.items():
            rows.append([rater, _fmt(s["accuracy"]), _fmt(s["kappa"]), str(int(s["unparsed"]))])
        return _table(rows)
    rows = [["rater", "pearson", "kendall_tau", "unparsed"]]
    for rater, column in table.items():
        pairs = [(v, y) for v, y in zip(column, labels, strict=True) if v is not None]
        if len(pairs) >= 2:
            x, y = zip(*pairs, strict=True)
            r, tau = pearson(x, y), kendall_tau(x, y)
        else:
            r = tau = math.nan
        rows.append([rater, _fmt(r), _fmt(tau), str(len(column) - len(pairs))])
    return _table(rows)


def _systems_section(table, inputs, systems, mode: str) -> str:
    kept = [i for i, s in enumerate(systems) if s is not None]
    names = [systems[i] for i in kept]
    what = "fraction judged correct" if mode == "qa" else "mean score"
    what += "; abstentions skipped"
    scores = {
        rater: system_scores([column[i] for i in kept], names) for rater, column in table.items()
    }
    labels = [inputs[i].get("label") for i in kept]
    has_labels = any(y is not None for y in labels)
    if has_labels:
        scores = {"labels": system_scores(labels, names), **scores}
    order = sorted(set(names))
    rows = [["system", *scores]]
    for system in order:
        rows.append([str(system), *(_fmt(scores[r][system]) for r in scores)])
    out = [f"per system ({what}):", _table(rows)]
    if has_labels:
        rows = [["rater", "kendall_tau", "pearson"]]
        for rater in table:
            tau, r = ranking_agreement(scores[rater], scores["labels"])
            rows.append([rater, _fmt(tau), _fmt(r)])
        out += ["system ranking vs the labels' ranking:", _table(rows)]
    return "\n".join(out)
