"""`paperlab magpie families | generate | filter` (Magpie, Xu et al. 2024, arXiv 2406.08464).

    paperlab magpie generate --model llama3 --family llama3 -n 1000 --out data.jsonl --resume
    paperlab magpie filter data.jsonl --tagger llama3 --out filtered.jsonl

`generate` appends one conversation per line as they complete; `--resume` continues a stopped
run without repeating finished ids. `filter` tags (an evaluator model, or tags already in the
file), deduplicates (MiniLM), applies the official filter and writes ShareGPT-style or plain
JSONL with every tag kept. Both print the data's statistics.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from paperlab.core.errors import UserError

EPILOG = """examples:
  paperlab magpie families
  paperlab magpie generate --model llama3 --family llama3 -n 1000 --out data.jsonl --resume
  paperlab magpie generate --model qwen --family qwen2.5 -n 200 --out mt.jsonl --turns 2
  paperlab magpie filter data.jsonl --tagger llama3 --out filtered.jsonl --keep 300
  paperlab magpie filter tagged.jsonl --out filtered.jsonl --format plain
"""


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    top = subparsers.add_parser(
        "magpie",
        help="Magpie: synthesise alignment data from the pre-query template; tag and filter it",
        description="Magpie (arXiv 2406.08464): alignment data from an aligned model prompted "
        "with nothing but its pre-query template, over OpenAI-compatible endpoints.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = top.add_subparsers(dest="magpie_command", metavar="SUBCOMMAND", required=True)
    sub.add_parser("families", help="list the chat families and their pre-query templates")

    g = sub.add_parser(
        "generate",
        help="synthesise conversations (raw completion for the instruction, chat for the reply)",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    g.add_argument("--model", required=True, help="the aligned model: a name in the LLM config")
    g.add_argument("--family", required=True, help="its chat format (`paperlab magpie families`)")
    g.add_argument("-n", type=int, default=1000, help="conversations to synthesise (1000)")
    g.add_argument("--out", type=Path, required=True, help="output JSONL (one conversation a line)")
    g.add_argument("--resume", action="store_true", help="continue an existing --out")
    g.add_argument("--config", type=Path, help="LLM config TOML (default ./paperlab.toml)")
    g.add_argument("--temperature", type=float, default=1.0, help="instruction sampling (1.0)")
    g.add_argument("--top-p", type=float, default=1.0, help="instruction top_p (1.0)")
    g.add_argument(
        "--no-newline-stop",
        action="store_true",
        help="do not cut the instruction at its first newline (the official default cuts it)",
    )
    g.add_argument("--max-tokens", type=int, default=512, help="instruction max tokens (512)")
    g.add_argument(
        "--response-temperature", type=float, default=0.0, help="response sampling (0: greedy)"
    )
    g.add_argument("--response-max-tokens", type=int, default=4096, help="(4096)")
    g.add_argument("--turns", type=int, default=1, help="user turns per conversation (1)")
    g.add_argument("--seed", type=int, default=0, help="sample i is sent seed + i (0)")
    g.add_argument("--concurrency", type=int, default=8, help="conversations in flight (8)")
    g.add_argument("--no-cache", action="store_true", help="bypass the request cache")
    g.add_argument("--no-progress", action="store_true", help="no progress bar")

    f = sub.add_parser(
        "filter",
        help="tag, deduplicate (MiniLM) and filter a generated file; print its statistics",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    f.add_argument("data", type=Path, metavar="DATA.jsonl", help="records from `generate`")
    f.add_argument("--out", type=Path, required=True, help="the filtered JSONL")
    f.add_argument(
        "--tagger",
        help="evaluator model (a name in the LLM config) for difficulty, quality and category; "
        "`rule` for the exact tags of the miniature's task family; omit to keep the file's tags",
    )
    f.add_argument("--config", type=Path, help="LLM config TOML (default ./paperlab.toml)")
    f.add_argument("--threshold", type=float, default=0.05, help="dedup distance (0.05)")
    f.add_argument("--min-quality", default="average", help="lowest input quality kept (average)")
    f.add_argument("--keep", type=int, help="keep this many with the longest responses (all)")
    f.add_argument("--format", choices=("sharegpt", "plain"), default="sharegpt", help="(sharegpt)")
    f.add_argument("--tagged-out", type=Path, help="also write every record with its tags")
    f.add_argument("--device", default="cpu", help="device of the MiniLM embedder (cpu)")
    return top


def run(args: argparse.Namespace) -> int:
    if args.magpie_command == "families":
        from paperlab.papers.magpie.templates import FAMILIES

        for fam in FAMILIES.values():
            print(f"{fam.name:9s} {fam.pre_query_template!r}  ({fam.note})")
        return 0
    if args.magpie_command == "generate":
        return _generate(args)
    return _filter(args)


def _generate(args: argparse.Namespace) -> int:
    from paperlab.core.llm.cache import RequestCache
    from paperlab.core.llm.client import LLMClient
    from paperlab.core.llm.config import load_config
    from paperlab.core.llm.results import read_jsonl
    from paperlab.papers.magpie.curate import format_stats, stats
    from paperlab.papers.magpie.synthesis import Magpie, SynthesisConfig, generate_jsonl
    from paperlab.papers.magpie.templates import get_family

    family = get_family(args.family)  # before anything is written
    if args.n < 1:
        raise UserError(f"-n must be >= 1, got {args.n}")
    if args.concurrency < 1:
        raise UserError(f"--concurrency must be >= 1, got {args.concurrency}")
    try:
        config = SynthesisConfig(
            instruction_temperature=args.temperature,
            instruction_top_p=args.top_p,
            instruction_max_tokens=args.max_tokens,
            newline_stop=not args.no_newline_stop,
            response_temperature=args.response_temperature,
            response_max_tokens=args.response_max_tokens,
            turns=args.turns,
            seed=args.seed,
        )
    except ValueError as e:
        raise UserError(str(e).replace("SynthesisConfig.", "--")) from None
    client = LLMClient(load_config(args.config), cache=None if args.no_cache else RequestCache())
    magpie = Magpie(client, args.model, family=family, config=config)
    stop = "first newline" if config.newline_stop else "end of turn"
    print(
        f"magpie: {family.name} template {family.pre_query_template!r}, instruction stops at "
        f"the {stop}",
        file=sys.stderr,
    )
    done, failed = generate_jsonl(
        magpie,
        n=args.n,
        out=args.out,
        resume=args.resume,
        concurrency=args.concurrency,
        progress=not args.no_progress,
    )
    print(f"{done} generated now, {len(failed)} failed; {args.out}", file=sys.stderr)
    print(format_stats(stats(read_jsonl(args.out, id_key="conversation_id"))))
    for item_id, err in failed[:3]:
        print(f"paperlab: conversation {item_id!r} failed: {err}", file=sys.stderr)
    return 1 if failed else 0


def _filter(args: argparse.Namespace) -> int:
    from paperlab.core.llm.results import read_jsonl
    from paperlab.papers.magpie.curate import (
        QUALITY_LEVELS,
        MiniLM,
        RuleTagger,
        curate,
        format_stats,
        magpie_filter,
        stats,
        write_jsonl,
    )

    if args.min_quality not in QUALITY_LEVELS:
        raise UserError(f"--min-quality must be one of {', '.join(QUALITY_LEVELS)}")
    if args.threshold < 0:
        raise UserError(f"--threshold must be >= 0, got {args.threshold}")
    if args.keep is not None and args.keep < 1:
        raise UserError(f"--keep must be >= 1, got {args.keep}")
    if args.out.resolve() == args.data.resolve():
        raise UserError("--out must differ from the input file")
    records = read_jsonl(args.data, id_key="conversation_id")
    for r in records:
        if not isinstance(r.get("instruction"), str):
            raise UserError(f"{args.data}: record {r['conversation_id']!r} has no instruction")
    if args.tagger is None:
        if not all("input_quality" in r for r in records):
            raise UserError(
                f"{args.data} has untagged records: pass --tagger MODEL (an evaluator in the "
                "LLM config) or --tagger rule (the miniature's task family)"
            )
        tagger = _KeepTags()
    elif args.tagger == "rule":
        tagger = RuleTagger()
    else:
        from paperlab.core.llm.cache import RequestCache
        from paperlab.core.llm.client import LLMClient
        from paperlab.core.llm.config import load_config
        from paperlab.papers.magpie.curate import LLMTagger

        tagger = LLMTagger(LLMClient(load_config(args.config), cache=RequestCache()), args.tagger)
    tagged = curate(
        records, tagger=tagger, embedder=MiniLM(device=args.device), threshold=args.threshold
    )
    kept = magpie_filter(tagged, min_quality=args.min_quality, keep=args.keep)
    if args.tagged_out:
        write_jsonl(tagged, args.tagged_out, fmt=args.format)
    write_jsonl(kept, args.out, fmt=args.format)
    print(format_stats(stats(tagged, kept)))
    print(f"kept {len(kept)} of {len(tagged)} -> {args.out}", file=sys.stderr)
    return 0


class _KeepTags:
    """The file's own tags (from an earlier run or another tool)."""

    def tag(self, instructions: Any) -> list[dict[str, Any]]:
        return [{} for _ in instructions]
