"""`paperlab prompt-report list | render | make-data | train-reader | bench` (The Prompt Report,
Schulhoff et al. 2024, arXiv 2406.06608).

    paperlab prompt-report list --group ensembling
    paperlab prompt-report render few-shot-cot --data items.jsonl --pool pool.jsonl
    paperlab prompt-report bench items.jsonl --pool pool.jsonl --model gpt --config paperlab.toml

`bench` runs techniques (default: the case study's six) over a multiple-choice file (JSONL or
MMLU's CSV) against a model of the LLM config, prints the results table with 95% intervals and
can write every call (--records), the table (--out) and a bar plot (--plot).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from paperlab.core.errors import UserError

EPILOG = """examples:
  paperlab prompt-report list
  paperlab prompt-report list --group self_criticism --vocabulary
  paperlab prompt-report make-data --out items.jsonl --pool-out pool.jsonl
  paperlab prompt-report train-reader --out reader            # a servable tiny model
  paperlab serve reader --port 8000 &                          # then, with paperlab.toml:
  paperlab prompt-report bench items.jsonl --pool pool.jsonl --model reader --config paperlab.toml
  paperlab prompt-report bench mmlu_test.csv --pool mmlu_dev.csv --model gpt \
      --techniques zero-shot,few-shot-cot
  paperlab prompt-report render self-refine --data items.jsonl --index 0
"""


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    top = subparsers.add_parser(
        "prompt-report",
        help="The Prompt Report: technique taxonomy, techniques as programs, a benchmark",
        description="The Prompt Report (arXiv 2406.06608): the taxonomy of 58 text-based "
        "prompting techniques, techniques as runnable prompt programs, the MMLU case study.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = top.add_subparsers(dest="pr_command", metavar="SUBCOMMAND", required=True)

    ls = sub.add_parser("list", help="the taxonomy: techniques by group (and the vocabulary)")
    ls.add_argument("--group", help="only this group (zero_shot, few_shot, ...)")
    ls.add_argument("--vocabulary", action="store_true", help="also list the 33 terms")
    ls.add_argument("--json", action="store_true", help="print JSON instead of text")

    r = sub.add_parser("render", help="print the exact first prompt a technique sends")
    r.add_argument("technique", help="a technique name (see `bench --help`)")
    _data_args(r, required=False)
    r.add_argument("--index", type=int, default=0, help="which item of --data (0)")

    m = sub.add_parser("make-data", help="write the miniature's fact questions as JSONL")
    m.add_argument("--out", type=Path, required=True, help="test questions (JSONL)")
    m.add_argument("--pool-out", type=Path, help="also a labelled exemplar pool (JSONL)")
    m.add_argument("--n", type=int, default=120, help="questions (120)")
    m.add_argument("--facts", type=int, default=60, help="made-up facts (60)")
    m.add_argument("--seed", type=int, default=0, help="(0)")

    t = sub.add_parser("train-reader", help="train the miniature's reader, a servable model")
    t.add_argument("--out", type=Path, required=True, help="model directory to write")
    t.add_argument("--scale", default="default", help="config preset: tiny|default|full")
    t.add_argument("--seed", type=int, default=0, help="(0)")
    t.add_argument("--device", default="cpu", help="torch device (cpu)")

    b = sub.add_parser(
        "bench",
        help="run techniques over a multiple-choice file against a model",
        description="Techniques over MC questions; results table with 95% bootstrap "
        "intervals. Items without four options are skipped and counted.",
    )
    b.add_argument("data", type=Path, help="questions: .jsonl (question/options/answer) or .csv")
    b.add_argument("--pool", type=Path, help="solved items to draw few-shot exemplars from")
    _common(b)
    b.add_argument("--model", required=True, help="a model name of the LLM config")
    b.add_argument("--config", type=Path, help="LLM config TOML (default ./paperlab.toml)")
    b.add_argument("--techniques", help="comma-separated (default: the case study's six)")
    b.add_argument("--limit", type=int, help="only the first N questions")
    b.add_argument("--samples", type=int, default=3, help="self-consistency samples (3)")
    b.add_argument("--temperature", type=float, default=0.5, help="SC temperature (0.5)")
    b.add_argument("--max-tokens", type=int, default=512, help="max tokens per call (512)")
    b.add_argument("--concurrency", type=int, default=8, help="items in flight (8)")
    b.add_argument("--seed", type=int, default=0, help="base seed sent with requests (0)")
    b.add_argument("--out", type=Path, help="write the markdown table here")
    b.add_argument("--records", type=Path, help="write every call as JSONL here")
    b.add_argument("--plot", type=Path, help="write a bar plot (PNG) with interval whiskers")
    b.add_argument("--no-cache", action="store_true", help="bypass the request cache")
    b.add_argument("--no-progress", action="store_true", help="no progress bars")
    return top


def _data_args(p: argparse.ArgumentParser, *, required: bool) -> None:
    p.add_argument("--data", type=Path, required=required, help="questions (.jsonl or .csv)")
    p.add_argument("--pool", type=Path, help="solved items for few-shot exemplars")
    _common(p)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--shots", type=int, default=3, help="exemplars per few-shot prompt (3)")
    p.add_argument("--selector", choices=("knn", "random"), default="knn", help="(knn)")
    p.add_argument(
        "--format", default="paper2", help="question layout: paper1, paper2 or mmlu (paper2)"
    )
    p.add_argument("--instruction", help="the base instruction (default: the paper's); '' for none")
    p.add_argument(
        "--style",
        choices=("letter", "value"),
        default="letter",
        help="answers as letters, the paper's (letter), or as option text (value: the "
        "miniature's reader)",
    )
    p.add_argument("--device", default="cpu", help="device of the KNN embedder (cpu)")


def run(args: argparse.Namespace) -> int:
    return {
        "list": _list,
        "render": _render,
        "make-data": _make_data,
        "train-reader": _train_reader,
        "bench": _bench,
    }[args.pr_command](args)


def _list(args: argparse.Namespace) -> int:
    from paperlab.papers.prompt_report.taxonomy import load_taxonomy

    tax = load_taxonomy()
    groups = list(tax.groups)
    if args.group:
        if args.group not in tax.groups:
            raise UserError(f"--group: unknown {args.group!r}; choose from {', '.join(groups)}")
        groups = [args.group]
    if args.json:
        out: dict[str, Any] = {
            g: [t.__dict__ for t in tax.techniques if t.group == g] for g in groups
        }
        if args.vocabulary:
            out["vocabulary"] = [t.__dict__ for t in tax.vocabulary]
        print(json.dumps(out, indent=1))
        return 0
    for g in groups:
        members = tax.in_group(g)
        print(f"{tax.groups[g]} ({len(members)})")
        for t in members:
            indent = "    " if t.parent else "  "
            print(f"{indent}{t.name}: {t.definition} [{t.source}]")
    if not args.group:
        print(f"{len(tax.techniques)} techniques in {len(tax.groups)} groups")
    if args.vocabulary:
        print(f"\nVocabulary ({len(tax.vocabulary)} terms)")
        for t in tax.vocabulary:
            print(f"  {t.name}: {t.definition}")
    return 0


def _items(path: Path, what: str) -> list:
    from paperlab.papers.prompt_report.case_study import load_items

    report = load_items(path)
    for line in report.skipped[:5]:
        print(f"paperlab: {path}: skipped {line}", file=sys.stderr)
    if report.skipped:
        print(f"paperlab: {path}: {report.summary()}", file=sys.stderr)
    if not report.items:
        raise UserError(f"{what} {path}: no usable items")
    return report.items


def _technique(args: argparse.Namespace, name: str, pool: list | None):
    from paperlab.papers.prompt_report import prompts as P
    from paperlab.papers.prompt_report.case_study import make_technique

    if args.format not in P.FORMATS:
        raise UserError(f"--format: unknown {args.format!r}; choose from {', '.join(P.FORMATS)}")
    if args.shots < 1:
        raise UserError(f"--shots must be >= 1, got {args.shots}")
    selector = None
    if pool is not None and name.startswith("few-shot"):
        from paperlab.papers.prompt_report.selection import KNNSelector, RandomSelector

        try:
            if args.selector == "knn":
                from paperlab.papers.prompt_report.selection import minilm_embedder

                selector = KNNSelector(pool, args.shots, embed=minilm_embedder(args.device))
            else:
                selector = RandomSelector(pool, args.shots, seed=getattr(args, "seed", 0))
        except ValueError as e:
            raise UserError(f"--pool: {e}") from None
    instruction = P.BASE_INSTRUCTION if args.instruction is None else args.instruction
    kw = dict(instruction=instruction, fmt=args.format, style=args.style)
    if hasattr(args, "samples"):
        if args.samples < 1 or args.temperature <= 0:
            raise UserError("--samples must be >= 1 and --temperature > 0")
        kw.update(samples=args.samples, temperature=args.temperature)
    return make_technique(name, selector, **kw)


def _render(args: argparse.Namespace) -> int:
    from paperlab.core.mc import MCItem

    if args.data is not None:
        items = _items(args.data, "--data")
        if not 0 <= args.index < len(items):
            raise UserError(f"--index: {args.index} outside 0..{len(items) - 1}")
        item = items[args.index]
    else:
        item = MCItem("What is 7 * 8?", ("54", "56", "58", "63"), 1, subject="arithmetic")
    pool = _items(args.pool, "--pool") if args.pool else None
    technique = _technique(args, args.technique, pool)
    base = technique
    while not hasattr(base, "render") and hasattr(base, "base"):
        base = base.base  # ensembles: the prompt each sample sends
    render = getattr(base, "render", None)
    if render is None:
        raise UserError(f"{args.technique!r} has no single first prompt to render")
    for m in render(item):
        print(f"--- {m['role']} ---\n{m['content']}")
    return 0


def _make_data(args: argparse.Namespace) -> int:
    from paperlab.core.mc import write_mc_jsonl
    from paperlab.papers.prompt_report import miniature as M

    if args.n < 1 or args.facts < 1:
        raise UserError("--n and --facts must be >= 1")
    facts = M.make_facts(args.facts, args.seed)
    write_mc_jsonl(M.make_items(facts, args.n, args.seed + 1), args.out)
    print(f"{args.n} questions -> {args.out}", file=sys.stderr)
    if args.pool_out:
        write_mc_jsonl(M.make_items(facts, args.n, args.seed + 2, prefix="pool"), args.pool_out)
        print(f"{args.n} pool items -> {args.pool_out}", file=sys.stderr)
    return 0


def _train_reader(args: argparse.Namespace) -> int:
    import shutil
    import tempfile

    from paperlab.papers.prompt_report import miniature as M
    from paperlab.papers.prompt_report.claims import PAPER

    cfg = PAPER.make_config(args.scale)
    if args.out.exists():
        raise UserError(f"--out: {args.out} exists; choose a new directory")
    tmp = Path(tempfile.mkdtemp(prefix=".reader-", dir=args.out.parent or "."))
    try:
        (model_dir,) = M.train_reader(cfg, args.seed, tmp, progress=True, device=args.device)
        model_dir.rename(args.out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"reader -> {args.out} (serve it with: paperlab serve {args.out})", file=sys.stderr)
    return 0


def _bench(args: argparse.Namespace) -> int:
    from paperlab.core.llm.cache import RequestCache
    from paperlab.core.llm.client import LLMClient
    from paperlab.core.llm.config import load_config
    from paperlab.papers.prompt_report import case_study as CS
    from paperlab.papers.prompt_report.techniques import Endpoint

    names = args.techniques.split(",") if args.techniques else list(CS.CASE_STUDY)
    for name in names:
        if name not in CS.TECHNIQUES:
            raise UserError(f"unknown technique {name!r}; choose from {', '.join(CS.TECHNIQUES)}")
    if args.concurrency < 1 or args.max_tokens < 1:
        raise UserError("--concurrency and --max-tokens must be >= 1")
    if args.limit is not None and args.limit < 1:
        raise UserError(f"--limit must be >= 1, got {args.limit}")
    items = _items(args.data, "data")[: args.limit]
    pool = _items(args.pool, "--pool") if args.pool else None
    if pool is None and any(n.startswith("few-shot") for n in names):
        raise UserError("few-shot techniques need --pool FILE (solved items for exemplars)")
    techniques = {n: _technique(args, n, pool) for n in names}
    config = load_config(args.config)
    config.get(args.model)  # an unknown model: one line before any work
    client = LLMClient(config, cache=None if args.no_cache else RequestCache())
    ep = Endpoint(client, args.model, max_tokens=args.max_tokens, seed=args.seed)
    results = client.run(
        CS.run_case_study(
            ep, items, techniques, concurrency=args.concurrency, progress=not args.no_progress
        )
    )
    table = CS.results_table(results)
    print(table)
    if args.out:
        from paperlab.claims import write_text_atomic

        write_text_atomic(args.out, table + "\n")
    if args.records:
        CS.write_records(results, items, args.records)
    if args.plot:
        from paperlab.papers.prompt_report.plots import save_case_study_plot

        save_case_study_plot(results, str(args.plot))
    print(client.usage.table(), file=sys.stderr)
    return 0
