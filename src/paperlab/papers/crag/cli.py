"""`paperlab crag serve-api | make-world | run | score` (CRAG, Yang et al. 2024, arXiv
2406.04744).

    paperlab crag make-world --out world.jsonl.bz2 --kg-out kg.json
    paperlab crag serve-api --kg kg.json --port 8000
    paperlab crag run --system rag-kg --data world.jsonl.bz2 --model llama3 --api-url URL
    paperlab crag score --data world.jsonl.bz2 --predictions world.rag-kg.jsonl --judge gpt-4o

`run` appends one prediction per line as answers complete; `--resume` continues a stopped run
without repeating finished questions. An unreachable API or LLM stops the run with one line;
what was finished stays in the file.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from paperlab.core.errors import UserError

SYSTEMS = ("llm-only", "rag", "rag-kg")

EPILOG = """examples:
  paperlab crag make-world --out world.jsonl --kg-out kg.json --questions 200
  paperlab crag serve-api --kg kg.json --port 8000
  paperlab crag run --system rag --data crag_task_1_and_2_dev_v4.jsonl.bz2 --model llama3
  paperlab crag run --system rag-kg --data world.jsonl --model llama3 --api-url http://127.0.0.1:8000
  paperlab crag score --data world.jsonl --predictions world.rag-kg.jsonl --judge gpt-4o
"""


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add `crag` (serve-api, make-world, run, score) to the top-level subparsers."""
    top = subparsers.add_parser(
        "crag",
        help="CRAG: data, mock KG API, RAG baselines, scoring (arXiv 2406.04744)",
        description="CRAG: Comprehensive RAG Benchmark (Yang et al. 2024).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = top.add_subparsers(dest="crag_command", metavar="SUBCOMMAND", required=True)

    s = sub.add_parser("serve-api", help="serve the mock KG API over HTTP (until Ctrl-C)")
    s.add_argument("--kg", type=Path, metavar="FILE.json", help="a KG file (default: a world's)")
    s.add_argument("--entities", type=int, default=24, help="world: entities per domain (24)")
    s.add_argument("--seed", type=int, default=0, help="world: seed (0)")
    s.add_argument("--host", default="127.0.0.1", help="(127.0.0.1)")
    s.add_argument("--port", type=int, default=8000, help="(8000, the official default)")

    w = sub.add_parser("make-world", help="write a synthetic world's questions (official format)")
    w.add_argument("--out", type=Path, required=True, help="FILE.jsonl or FILE.jsonl.bz2")
    w.add_argument("--kg-out", type=Path, help="also write its KG (for serve-api --kg)")
    w.add_argument("--questions", type=int, default=200, help="number of questions (200)")
    w.add_argument("--entities", type=int, default=24, help="entities per domain (24)")
    w.add_argument("--seed", type=int, default=0, help="(0)")
    w.add_argument(
        "--official",
        action="store_true",
        help="write the alternatives as the released files do (alternative_answers, a string)",
    )
    w.add_argument("--force", action="store_true", help="replace existing files")

    r = sub.add_parser(
        "run",
        help="answer every question of a file with a system; write predictions JSONL",
        description="Answer every question of FILE with llm-only, rag or rag-kg; one JSON line "
        '{"interaction_id", "prediction"} per answer, appended as answers complete.',
    )
    r.add_argument("--system", choices=SYSTEMS, required=True, help="the baseline")
    r.add_argument("--data", type=Path, required=True, help="official-format .jsonl[.bz2]")
    r.add_argument("--model", required=True, help="the answering model, a name in the config")
    r.add_argument("--config", type=Path, help="LLM config TOML (./paperlab.toml)")
    r.add_argument("--out", type=Path, help="predictions JSONL (DATA.SYSTEM.jsonl)")
    r.add_argument("--resume", action="store_true", help="continue an existing output")
    r.add_argument("--api-url", help="the mock API (rag-kg; $CRAG_SERVER or :8000)")
    r.add_argument("--k", type=int, default=20, help="page sentences per prompt (20)")
    r.add_argument("--kg-k", type=int, default=2, help="KG sentences per prompt (2)")
    r.add_argument(
        "--style", choices=("official", "mini"), default="official", help="prompts (official)"
    )
    r.add_argument("--max-tokens", type=int, default=50, help="answer length (50, official)")
    r.add_argument("--device", default="cpu", help="MiniLM's device (cpu)")
    r.add_argument("--batch", type=int, default=32, help="questions retrieved at once (32)")
    r.add_argument("--concurrency", type=int, default=8, help="requests at once (8)")
    r.add_argument("--no-cache", action="store_true", help="no request cache")
    r.add_argument("--no-progress", action="store_true", help="no progress bar")

    c = sub.add_parser("score", help="score a predictions file (official rules, bugs fixed)")
    c.add_argument("--data", type=Path, required=True, help="official-format .jsonl[.bz2]")
    c.add_argument("--predictions", type=Path, required=True, help="predictions JSONL")
    c.add_argument("--judge", help="the judge model in the config (none: the exact rules only)")
    c.add_argument("--config", type=Path, help="LLM config TOML (./paperlab.toml)")
    c.add_argument("--style", choices=("official", "mini"), default="official")
    c.add_argument("--budget", type=int, default=75, help="token budget per answer (75)")
    c.add_argument("--out", type=Path, help="also write one scored line per question")
    c.add_argument("--json", action="store_true", help="print the summary as JSON")
    return top


def run(args: argparse.Namespace) -> int:
    try:
        return COMMANDS[args.crag_command](args)
    except ValueError as e:  # a library function's bad input: one line
        raise UserError(str(e).splitlines()[0]) from None


# -- serve-api, make-world ----------------------------------------------------------------------


def _kg(args: argparse.Namespace) -> dict[str, Any]:
    from paperlab.papers.crag.api import load_kg
    from paperlab.papers.crag.world import make_world

    if args.kg is not None:
        return load_kg(args.kg)
    return make_world(args.entities, seed=args.seed).kg()


def serve(args: argparse.Namespace) -> int:
    import uvicorn

    from paperlab.papers.crag.api import create_app

    app = create_app(_kg(args))
    print(f"crag: the mock API on http://{args.host}:{args.port} (Ctrl-C stops)", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0


def make_world_cmd(args: argparse.Namespace) -> int:
    from paperlab.papers.crag.data import write_crag
    from paperlab.papers.crag.world import make_questions, make_world

    for path in (args.out, args.kg_out):
        if path is not None and path.exists() and not args.force:
            raise UserError(f"{path} exists; pass --force to replace it")
    world = make_world(args.entities, seed=args.seed)
    records = make_questions(world, args.questions, seed=args.seed)
    write_crag(records, args.out, official=args.official)
    if args.kg_out is not None:
        tmp = args.kg_out.with_name(args.kg_out.name + ".tmp")
        tmp.write_text(json.dumps(world.kg()))
        tmp.replace(args.kg_out)
    print(
        f"crag: {len(records)} questions in {args.out}"
        + (f", KG in {args.kg_out}" if args.kg_out else "")
    )
    return 0


# -- run ----------------------------------------------------------------------------------------


def default_output(data: Path, system: str) -> Path:
    name = data.name.removesuffix(".bz2").removesuffix(".jsonl")
    return data.with_name(f"{name}.{system}.jsonl")


def run_cmd(args: argparse.Namespace) -> int:
    from paperlab.core.llm.cache import RequestCache, default_cache_path
    from paperlab.core.llm.client import LLMClient
    from paperlab.core.llm.config import load_config
    from paperlab.core.llm.results import JsonlResults, map_to_jsonl
    from paperlab.papers.crag.api import CragApi
    from paperlab.papers.crag.data import load_crag
    from paperlab.papers.crag.rag import MiniLM, RagSystem

    for name in ("batch", "concurrency", "max_tokens", "k"):
        if getattr(args, name) < 1:
            raise UserError(f"--{name.replace('_', '-')} must be >= 1")
    records = load_crag(args.data, need_answer=False)
    out = args.out or default_output(args.data, args.system)
    if out.resolve() == args.data.resolve():
        raise UserError(f"--out {out} is the input file")
    config = load_config(args.config)
    config.get(args.model)  # an unknown model fails before any output
    cache = None if args.no_cache else RequestCache(default_cache_path())
    client = LLMClient(config, cache=cache)
    system = RagSystem(
        kind=args.system,
        client=client,
        model=args.model,
        embedder=None if args.system == "llm-only" else MiniLM(device=args.device),
        api=CragApi(args.api_url) if args.system == "rag-kg" else None,
        k=args.k,
        kg_k=args.kg_k,
        style=args.style,
        max_tokens=args.max_tokens,
        concurrency=args.concurrency,
    )
    results = JsonlResults(out, resume=args.resume, id_key="interaction_id")
    try:
        todo = [r for r in records if r["interaction_id"] not in results.done]
        for start in range(0, len(todo), args.batch):
            batch = todo[start : start + args.batch]
            items = [
                {"interaction_id": r["interaction_id"], "messages": m}
                for r, m in zip(batch, system.prompts(batch), strict=True)
            ]

            async def answer(item: dict[str, Any]) -> dict[str, str]:
                return {"prediction": await system.reply(item["messages"])}

            _, failures = client.run(
                map_to_jsonl(
                    items,
                    answer,
                    results,
                    concurrency=args.concurrency,
                    progress=not args.no_progress,
                    desc=f"crag {args.system}",
                )
            )
            if failures:
                first_id, error = failures[0]
                print(
                    f"crag: {len(failures)} questions failed, {len(results.done)} answered in "
                    f"{out} (rerun with --resume); first: {first_id!r}: {error}",
                    file=sys.stderr,
                )
                return 1
        n = len(results.done)
    finally:
        results.close()
        if cache is not None:
            cache.close()
    print(f"crag: {n} of {len(records)} questions answered in {out}")
    return 0


# -- score --------------------------------------------------------------------------------------


def read_predictions(path: Path) -> dict[str, str]:
    from paperlab.core.llm.results import read_jsonl

    preds = {}
    lines = [n for n, t in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if t.strip()]
    for item, n in zip(read_jsonl(path, id_key="interaction_id"), lines, strict=True):
        if not isinstance(item.get("prediction"), str):
            raise UserError(f"{path}:{n}: field 'prediction' missing or not a string")
        preds[str(item["interaction_id"])] = item["prediction"]
    return preds


def score_cmd(args: argparse.Namespace) -> int:
    from paperlab.papers.crag.data import load_crag
    from paperlab.papers.crag.scoring import BREAKDOWNS, LLMJudge, breakdown, score_records, summary

    records = load_crag(args.data)
    if not args.predictions.is_file():
        raise UserError(f"--predictions {args.predictions}: no such file")
    predictions = read_predictions(args.predictions)
    judge = None
    if args.judge:
        from paperlab.core.llm.client import LLMClient
        from paperlab.core.llm.config import load_config

        judge = LLMJudge(LLMClient(load_config(args.config)), args.judge, style=args.style)
    items = score_records(records, predictions, judge=judge, budget=args.budget)
    if args.out is not None:
        from paperlab.claims import write_text_atomic

        write_text_atomic(args.out, "".join(json.dumps(i.record()) + "\n" for i in items))
    report = {"all": summary(items), **{by: breakdown(items, by) for by in BREAKDOWNS}}
    if args.json:
        print(json.dumps(report, indent=1))
        return 0
    print(_table("all", {"all": report["all"]}))
    for by in BREAKDOWNS:
        print(_table(by, report[by]))
    if judge is None:
        print("(no --judge: answers that are not exact are counted incorrect)")
    return 0


def _table(title: str, rows: dict[str, dict[str, float]]) -> str:
    head = f"{title:<20} {'n':>5} {'accuracy':>9} {'halluc.':>8} {'missing':>8} {'score':>7}"
    lines = [head]
    for name, s in rows.items():
        lines.append(
            f"{name:<20} {int(s['n']):>5} {s['accuracy']:>9.3f} {s['hallucination']:>8.3f} "
            f"{s['missing']:>8.3f} {s['score']:>+7.3f}"
        )
    return "\n".join(lines) + "\n"


COMMANDS = {"serve-api": serve, "make-world": make_world_cmd, "run": run_cmd, "score": score_cmd}
