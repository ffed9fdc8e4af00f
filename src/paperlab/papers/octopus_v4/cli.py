"""`paperlab octopus ask|batch|demo`: route queries through a graph of models declared in TOML.

The graph file names its nodes' models; those models come from the same file's `[defaults]` /
`[models.NAME]` tables when it has them, else from `--config` (default ./paperlab.toml).
The router is chosen with `--router` or the file's `[router]` table:

    [router]
    family = "prompted"          # prompted | minilm | functional
    model = "qwen"               # prompted: a chat model of the LLM config
    path = "octo/router"         # functional: a directory written by FunctionalTokenRouter.save
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

from paperlab.core.errors import UserError

FAMILIES = ("prompted", "minilm", "functional")

EPILOG = """examples:
  paperlab octopus demo --out octo                  # train a miniature graph (~2-4 min)
  paperlab serve octo/models/* --port 8011 &
  paperlab octopus ask "what's 3 plus 5?" --graph octo/graph.toml
  paperlab octopus ask "tell me kiv's symbol" --graph octo/graph.toml --router minilm
  paperlab octopus batch queries.jsonl --graph octo/graph.toml --out answers.jsonl --resume
"""


def _graph_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--graph", type=Path, required=True, help="the graph TOML (nodes, edges)")
    p.add_argument(
        "--config",
        type=Path,
        help="LLM config TOML naming the nodes' models (default: the graph file's own "
        "[models] tables, else ./paperlab.toml)",
    )
    p.add_argument(
        "--router",
        choices=FAMILIES,
        help="router family: prompted (a chat model of the config), minilm (nearest centroid "
        "of the nodes' examples), functional (a trained functional-token router); default: "
        "the graph's [router] family, else prompted",
    )
    p.add_argument("--router-model", help="prompted: the router's model name ([router] model)")
    p.add_argument("--router-path", type=Path, help="functional: the router's directory")
    p.add_argument(
        "--no-node-list",
        action="store_true",
        help="prompted: send only the router prompt, not the list of functional tokens (for "
        "a model fine-tuned on the graph's tokens)",
    )
    p.add_argument("--router-prompt", help="prompted: replace the official router prompt")
    p.add_argument("--max-tokens", type=int, default=256, help="max tokens per worker call")
    p.add_argument("--temperature", type=float, default=0.0, help="workers' temperature (0)")
    p.add_argument("--log", type=Path, help="append every hop as a JSONL line to this file")
    p.add_argument("--device", default="cpu", help="device of in-process routers (cpu)")
    p.add_argument("--no-cache", action="store_true", help="bypass the LLM request cache")


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "octopus",
        help="Octopus v4: route a query through a graph of models with functional tokens",
        description="Octopus v4 (arXiv 2404.19296): a router picks a worker node with a "
        "functional token <nexa_k> and reformulates the query; the worker answers (and may hand "
        "the query on to a neighbour).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    osub = p.add_subparsers(dest="octopus_command", metavar="ask|batch|demo", required=True)
    ask = osub.add_parser("ask", help="route and answer one query", epilog=EPILOG)
    ask.add_argument("query")
    ask.add_argument("--show-hops", action="store_true", help="print every hop on stderr")
    _graph_args(ask)
    batch = osub.add_parser(
        "batch",
        help="route and answer every query of a JSONL file, appending results as they finish",
        description='Each input line: {"id": ..., "query": "..."} (or "prompt"); ids default '
        "to line numbers. Results are appended to --out as they finish; --resume skips the ids "
        "already there.",
    )
    batch.add_argument("queries", type=Path, metavar="QUERIES.jsonl")
    batch.add_argument("--out", type=Path, required=True, help="results JSONL")
    batch.add_argument("--resume", action="store_true", help="continue an interrupted --out")
    batch.add_argument("--concurrency", type=int, default=4, help="queries in flight (4)")
    batch.add_argument("--no-progress", action="store_true", help="no progress bar")
    _graph_args(batch)
    demo = osub.add_parser(
        "demo",
        help="train the miniature graph (workers, generalist, routers) and write graph.toml",
        description="Trains the paper's miniature (paperlab reproduce octopus_v4's models) into "
        "OUT/models and OUT/router and writes OUT/graph.toml pointing at `paperlab serve "
        "OUT/models/* --port PORT`.",
    )
    demo.add_argument("--out", type=Path, required=True, help="a new folder")
    demo.add_argument("--port", type=int, default=8011, help="the port of paperlab serve (8011)")
    demo.add_argument("--scale", choices=("tiny", "default"), default="default")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--no-progress", action="store_true", help="no progress bars")


# ---------------------------------------------------------------------------------------------


def _llm_config(args: argparse.Namespace, graph: Any):
    from paperlab.core.llm.config import load_config, parse_config

    if args.config is None and "models" in graph.sections:
        tables = {k: graph.sections[k] for k in ("defaults", "models") if k in graph.sections}
        return parse_config(tables, str(args.graph))
    return load_config(args.config)


def _router(args: argparse.Namespace, graph: Any, client: Any):
    from paperlab.papers.octopus_v4.routers import (
        CentroidRouter,
        FunctionalTokenRouter,
        MiniLM,
        PromptedRouter,
    )
    from paperlab.papers.octopus_v4.tokens import ROUTER_SYSTEM_PROMPT

    table = graph.sections.get("router", {})
    if not isinstance(table, dict):
        raise UserError(f"{args.graph}: [router] must be a table")
    family = args.router or table.get("family", "prompted")
    if family not in FAMILIES:
        raise UserError(f"{args.graph}: unknown router family {family!r}; choose {FAMILIES}")
    if family == "functional":
        path = args.router_path or table.get("path")
        if not path:
            raise UserError("the functional router needs --router-path DIR ([router] path)")
        path = Path(path)
        if not path.is_absolute() and args.router_path is None:
            path = args.graph.parent / path  # relative to the graph file
        try:
            router = FunctionalTokenRouter.load(path, device=args.device)
        except (FileNotFoundError, ValueError) as e:
            raise UserError(f"--router-path: {e}") from None
        if router.tokenizer.n_functional < graph.n_functional:
            raise UserError(
                f"{path}: the router knows {router.tokenizer.n_functional} functional tokens; "
                f"the graph uses up to <nexa_{graph.n_functional - 1}>"
            )
        return router
    if family == "minilm":
        examples = {
            n.token: list(n.examples) or [f"{n.domain}: {n.description}"]
            for n in graph.nodes.values()
        }
        return CentroidRouter.fit(MiniLM(device=args.device), examples)
    model = args.router_model or table.get("model")
    if not model:
        raise UserError("the prompted router needs --router-model NAME ([router] model)")
    nodes = [] if args.no_node_list or table.get("node_list") is False else graph.nodes.values()
    prompt = args.router_prompt or table.get("prompt") or ROUTER_SYSTEM_PROMPT
    return PromptedRouter(client, model, nodes=list(nodes), system_prompt=prompt)


def _system(args: argparse.Namespace):
    from paperlab.core.llm.cache import RequestCache
    from paperlab.core.llm.client import LLMClient
    from paperlab.papers.octopus_v4.graph import GraphOfModels, HopLog, load_graph

    if args.max_tokens < 1:
        raise UserError(f"--max-tokens must be >= 1, got {args.max_tokens}")
    graph = load_graph(args.graph)
    client = LLMClient(_llm_config(args, graph), cache=None if args.no_cache else RequestCache())
    router = _router(args, graph, client)
    log = HopLog(args.log) if args.log else None
    system = GraphOfModels(
        graph, client, router, max_tokens=args.max_tokens, temperature=args.temperature, log=log
    )
    return client, system, log


def run(args: argparse.Namespace) -> int:
    if args.octopus_command == "demo":
        return _demo(args)
    if args.octopus_command == "batch" and args.concurrency < 1:
        raise UserError(f"--concurrency must be >= 1, got {args.concurrency}")
    client, system, log = _system(args)
    try:
        if args.octopus_command == "ask":
            return _ask(args, client, system)
        return _batch(args, client, system)
    finally:
        if log is not None:
            log.close()


def _ask(args: argparse.Namespace, client: Any, system: Any) -> int:
    answer = client.run(system.ask(args.query))
    if args.show_hops:
        for h in answer.hops:
            note = f"  ({h.note})" if h.note else ""
            print(f"[hop {h.hop} {h.node}] {h.query!r} -> {h.output!r}{note}", file=sys.stderr)
    print(answer.answer)
    route = answer.route
    print(
        f"routed to {answer.routed_to} ({route.token or 'no functional token'})"
        + (" via the fallback" if answer.fell_back else "")
        + f"; {len(answer.hops) - 1} worker call(s)",
        file=sys.stderr,
    )
    return 0


def _batch(args: argparse.Namespace, client: Any, system: Any) -> int:
    from paperlab.core.llm.results import JsonlResults, map_to_jsonl, read_jsonl

    items = read_jsonl(args.queries)
    for item in items:
        text = item.get("query", item.get("prompt"))
        if not isinstance(text, str) or not text.strip():
            raise UserError(f'{args.queries}: item {item["id"]!r} needs a "query" string')

    async def answer(item):
        result = await system.ask(item.get("query", item.get("prompt")), query_id=item["id"])
        return result.record()

    with JsonlResults(args.out, resume=args.resume) as results:
        skipped = len(results.done)
        done, failed = asyncio.run(
            map_to_jsonl(
                items,
                answer,
                results,
                concurrency=args.concurrency,
                progress=not args.no_progress,
                desc="octopus",
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


def _demo(args: argparse.Namespace) -> int:
    from paperlab.papers.octopus_v4.demo import write_demo

    if args.out.exists():
        raise UserError(f"--out {args.out} exists; choose a new folder")
    if not 0 < args.port < 65536:
        raise UserError(f"--port must be in 1..65535, got {args.port}")
    graph = write_demo(
        args.out, port=args.port, scale=args.scale, seed=args.seed, progress=not args.no_progress
    )
    print(f"wrote {graph}; now run:", file=sys.stderr)
    print(f"  paperlab serve {args.out}/models/* --port {args.port} &", file=sys.stderr)
    print(f'  paperlab octopus ask "what\'s 3 plus 5?" --graph {graph}', file=sys.stderr)
    return 0
