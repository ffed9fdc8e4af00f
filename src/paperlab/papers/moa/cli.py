"""`paperlab moa ask|batch`: Mixture-of-Agents over the models of an LLM config.

Models come from `--proposers/--aggregator` or from the config's `[moa]` table:

    [moa]
    proposers = ["qwen", "llama", "mixtral"]
    aggregator = "qwen"
    layers = 3
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

from paperlab.claims import UserError

EPILOG = """examples:
  paperlab moa ask "Why is the sky blue?" --config paperlab.toml
  paperlab moa ask "What is 12*34?" --proposers qwen,llama --aggregator qwen --layers 2
  paperlab moa ask "Name a prime > 100" --preset self --proposers qwen --samples 4
  paperlab moa batch prompts.jsonl --out answers.jsonl --resume
"""


def _model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, help="LLM config TOML (default ./paperlab.toml)")
    p.add_argument("--proposers", help="comma-separated model names (default: [moa] proposers)")
    p.add_argument("--aggregator", help="model name of the final aggregator ([moa] aggregator)")
    p.add_argument("--layers", type=int, help="layers including the aggregator's (3)")
    p.add_argument(
        "--preset",
        choices=("moa", "lite", "self"),
        default="moa",
        help="moa: the paper's layers; lite: 2 layers; self: samples of the first proposer",
    )
    p.add_argument("--samples", type=int, default=6, help="samples for --preset self (6)")
    p.add_argument("--temperature", type=float, default=0.7, help="sampling temperature (0.7)")
    p.add_argument("--max-tokens", type=int, default=512, help="max tokens per call (512)")
    p.add_argument("--seed", type=int, help="base seed sent to the endpoints")
    p.add_argument("--no-cache", action="store_true", help="bypass the request cache")


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "moa",
        help="Mixture-of-Agents: ask layered proposers and an aggregator",
        description="Mixture-of-Agents (arXiv 2406.04692) over OpenAI-compatible endpoints.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    moa_sub = p.add_subparsers(dest="moa_command", metavar="ask|batch", required=True)
    ask = moa_sub.add_parser(
        "ask",
        help="answer one question",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ask.add_argument("question")
    ask.add_argument("--show-references", action="store_true", help="print each layer's answers")
    _model_args(ask)
    batch = moa_sub.add_parser(
        "batch",
        help="answer every prompt of a JSONL file, appending results as they complete",
        description='Each input line: {"id": ..., "prompt": "..."} or {"messages": '
        "[...]}; ids default to line numbers. Results are appended to --out as they finish; "
        "--resume skips the ids already there.",
    )
    batch.add_argument("prompts", type=Path, metavar="PROMPTS.jsonl")
    batch.add_argument("--out", type=Path, required=True, help="results JSONL")
    batch.add_argument("--resume", action="store_true", help="continue an interrupted --out")
    batch.add_argument("--concurrency", type=int, default=4, help="queries in flight (4)")
    batch.add_argument("--no-progress", action="store_true")
    _model_args(batch)


def _build(args: argparse.Namespace):
    from paperlab.core.llm.cache import RequestCache
    from paperlab.core.llm.client import LLMClient
    from paperlab.core.llm.config import ConfigError, load_config
    from paperlab.papers.moa.moa import MixtureOfAgents, moa, self_moa

    config = load_config(args.config)
    section = config.section("moa")
    proposers = args.proposers.split(",") if args.proposers else section.get("proposers")
    aggregator = args.aggregator or section.get("aggregator")
    layers = args.layers if args.layers is not None else section.get("layers", 3)
    if proposers is not None and (
        not isinstance(proposers, list) or not all(isinstance(m, str) and m for m in proposers)
    ):
        raise ConfigError(
            f"[moa] proposers in {config.source} must be a list of model names, e.g. "
            f'proposers = ["qwen", "llama"]; got {proposers!r}'
        )
    if aggregator is not None and not isinstance(aggregator, str):
        raise ConfigError(f"[moa] aggregator in {config.source} must be a model name")
    if isinstance(layers, bool) or not isinstance(layers, int) or layers < 2:
        raise UserError(
            f"layers must be an integer >= 2, got {layers!r} (the proposer layers and the "
            "aggregator's)"
        )
    if not proposers:
        raise ConfigError(
            f"no proposers: pass --proposers a,b or add `proposers = [...]` under [moa] in "
            f"{config.source}"
        )
    kw = dict(temperature=args.temperature, max_tokens=args.max_tokens, seed=args.seed)
    try:
        if args.preset == "self":
            cfg = self_moa(proposers[0], samples=args.samples, aggregator=aggregator, **kw)
        else:
            if not aggregator:
                raise ConfigError(
                    f"no aggregator: pass --aggregator NAME or set `aggregator` under [moa] in "
                    f"{config.source}"
                )
            cfg = moa(proposers, aggregator, layers=2 if args.preset == "lite" else layers, **kw)
    except ValueError as e:
        raise UserError(str(e)) from None
    client = LLMClient(config, cache=None if args.no_cache else RequestCache())
    return client, MixtureOfAgents(client, cfg)


def _record(result) -> dict[str, Any]:
    return {
        "answer": result.answer,
        "references": [[c.text for c in layer] for layer in result.layers],
        "calls": result.calls,
        "wall_seconds": round(result.wall, 3),
        "parallel_efficiency": round(result.parallel_efficiency, 3),
        "cost": result.cost,
        "errors": result.errors,
    }


def run(args: argparse.Namespace) -> int:
    if args.moa_command == "batch" and args.concurrency < 1:
        raise UserError(f"--concurrency must be >= 1, got {args.concurrency}")
    client, mixture = _build(args)
    if args.moa_command == "ask":
        result = asyncio.run(mixture.ask(args.question))
        if args.show_references:
            for i, layer in enumerate(result.layers, 1):
                for j, c in enumerate(layer, 1):
                    print(f"[layer {i}, {c.model} #{j}] {c.text.strip()}", file=sys.stderr)
        print(result.answer)
        for e in result.errors:
            print(f"paperlab: warning: {e}", file=sys.stderr)
        print(
            f"{result.calls} calls, {result.wall:.2f}s, parallel efficiency "
            f"{result.parallel_efficiency:.2f}, cost ${result.cost:.4f}",
            file=sys.stderr,
        )
        return 0

    from paperlab.core.llm.results import JsonlResults, map_to_jsonl, read_jsonl

    items = read_jsonl(args.prompts)
    for item in items:
        if not isinstance(item.get("prompt"), str) and not isinstance(item.get("messages"), list):
            raise UserError(f'{args.prompts}: item {item["id"]!r} needs a "prompt" or "messages"')

    async def answer(item):
        result = await mixture.ask(item.get("prompt") or item["messages"])
        return {"prompt": item.get("prompt"), **_record(result)}

    with JsonlResults(args.out, resume=args.resume) as results:
        skipped = len(results.done)
        done, failed = asyncio.run(
            map_to_jsonl(
                items,
                answer,
                results,
                concurrency=args.concurrency,
                progress=not args.no_progress,
                desc="moa",
            )
        )
    print(
        f"{done} answered, {skipped} already in {args.out}, {len(failed)} failed", file=sys.stderr
    )
    print(client.usage.table(), file=sys.stderr)
    for item_id, err in failed[:3]:
        print(f"paperlab: item {item_id!r} failed: {err}", file=sys.stderr)
    if failed:
        print(
            f"paperlab: re-run with --resume to retry the {len(failed)} failed items",
            file=sys.stderr,
        )
        return 1
    return 0
