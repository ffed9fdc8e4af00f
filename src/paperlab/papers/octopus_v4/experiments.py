"""Octopus v4's experiments: the miniature graph built once per run, every router through it on
the same held-out queries, then one function per claim (`run_<claim>(ctx) -> figures`).

The workers, the generalist and the prompted router's chat model are trained once per config
(`core.llm.local.trained_chat_zoo`, kept in the disk cache), served by `paperlab serve` in a
child process and called over HTTP with the official `openai` client (`core.llm.LLMClient`);
the functional-token router runs in-process (its vocabulary has the functional tokens).
"""

from __future__ import annotations

import random
import statistics
from pathlib import Path
from typing import Any

from paperlab.claims import RunContext
from paperlab.core.errors import SkipClaim
from paperlab.core.llama import Llama
from paperlab.core.llm.client import LLMClient
from paperlab.core.llm.local import serve_chat_models, trained_chat_zoo
from paperlab.core.llm.results import gather_bounded
from paperlab.core.stats import paired_bootstrap
from paperlab.papers.octopus_v4 import miniature as mini
from paperlab.papers.octopus_v4.graph import Graph, GraphOfModels, HopLog, Node
from paperlab.papers.octopus_v4.plots import plot_accuracy
from paperlab.papers.octopus_v4.routers import (
    CentroidRouter,
    FunctionalTokenRouter,
    MiniLM,
    PromptedRouter,
)
from paperlab.papers.octopus_v4.tokens import MMLU_DOMAINS

ZOO_FIELDS = (
    "n_facts",
    "p_raw",
    "dim",
    "n_layers",
    "n_heads",
    "batch_size",
    "lr",
    "worker_steps",
    "generalist_budget",
    "prompted_router_steps",
    "prompted_system_prompt",
)
ROUTER_FIELDS = ("n_facts", "router_dim", "n_layers", "n_heads", "batch_size", "lr", "router_steps")
ROUTERS = ("functional", "minilm", "prompted")


class RouterCodec:
    """A `FunctionalTokenRouter` on disk: its weights (safetensors) and functional tokens."""

    def save(self, obj: FunctionalTokenRouter, folder: Path) -> None:
        obj.save(folder)

    def load(self, folder: Path) -> FunctionalTokenRouter:
        return FunctionalTokenRouter.load(folder)


def miniature_graph() -> Graph:
    """The four domain workers, each at its official functional token, and the generalist as
    the fallback node `general` (<nexa_16>)."""
    table = {d.domain: d for d in MMLU_DOMAINS}
    nodes = {
        name: Node(name, model, table[name].index, name, table[name].description)
        for name, model in [
            *((d, f"{d}-worker") for d in mini.DOMAIN_NAMES),
            ("general", "generalist"),
        ]
    }
    return Graph(nodes, frozenset(), fallback="general", max_hops=1, name="octopus-miniature")


def functional_router(ctx: RunContext) -> FunctionalTokenRouter:
    cfg, seed = ctx.config, ctx.seed
    spec = {k: getattr(cfg, k) for k in ROUTER_FIELDS}
    return ctx.shared(
        "octopus-router",
        lambda: mini.train_router(cfg, seed, device=ctx.device, progress=ctx.progress),
        spec=spec,
        codec=RouterCodec(),
    )


def build_world(ctx: RunContext) -> dict[str, Any]:
    """The trained models, served; the routers; the graph; the held-out queries."""
    cfg, seed = ctx.config, ctx.seed
    zoo_spec = ({k: getattr(cfg, k) for k in ZOO_FIELDS}, seed)
    dirs = trained_chat_zoo(
        ctx.cache,
        "octopus-zoo",
        zoo_spec,
        lambda folder: mini.train_zoo(cfg, seed, folder, progress=ctx.progress),
    )
    router = functional_router(ctx)
    server = serve_chat_models(ctx.cache, dirs)
    client = LLMClient(server.config(max_concurrency=64))  # no cache: every call is measured
    world = mini.make_world(cfg.n_facts, seed=seed)
    rng_examples = random.Random(20_000 + seed)
    examples = {
        mini.INDEX[d]: [world.sample(d, rng_examples).raw for _ in range(cfg.centroid_examples)]
        for d in mini.DOMAIN_NAMES
    }
    centroid = CentroidRouter.fit(MiniLM(device=ctx.device), examples)
    prompted = PromptedRouter(
        client, "prompted-router", system_prompt=cfg.prompted_system_prompt, max_tokens=64
    )
    return dict(
        client=client,
        graph=miniature_graph(),
        routers={"functional": router, "minilm": centroid, "prompted": prompted},
        queries=mini.held_out_queries(world, cfg.n_test, seed=seed),
        params={
            "worker": _params(dirs[0]),
            "generalist": _params(dirs[len(mini.DOMAIN_NAMES)]),
            "router": router.model.num_params(),
        },
    )


def _params(directory: Path) -> int:
    return Llama.from_pretrained(directory).num_params()


async def _direct(client: LLMClient, model: str, texts: list[str], concurrency: int) -> list:
    async def one(text: str):
        return await client.chat(
            model, [{"role": "user", "content": text}], temperature=0.0, max_tokens=8
        )

    return await gather_bounded(texts, one, concurrency)


def evaluate(ctx: RunContext) -> dict[str, Any]:
    if ctx.llm_config:
        raise SkipClaim(
            "the claims run on the miniature's trained graph; route your own models with "
            "`paperlab octopus batch QUERIES.jsonl --graph GRAPH.toml`"
        )
    return ctx.shared("evaluation", lambda: _evaluate(ctx))


def _evaluate(ctx: RunContext) -> dict[str, Any]:
    cfg = ctx.config
    w = build_world(ctx)
    client, graph, queries = w["client"], w["graph"], w["queries"]
    raws = [q.raw for q in queries]
    routes = {
        "functional": w["routers"]["functional"].route_many(raws),
        "minilm": w["routers"]["minilm"].route_many(raws),
    }
    answers: dict[str, list] = {}
    for name in ROUTERS:
        system = GraphOfModels(graph, client, w["routers"][name], max_tokens=8)
        pre = routes.get(name)
        items = list(range(len(queries)))

        async def ask(i: int, system=system, pre=pre):
            return await system.ask(raws[i], query_id=i, route=None if pre is None else pre[i])

        answers[name] = client.run(gather_bounded(items, ask, cfg.concurrency))
        routes[name] = [a.route for a in answers[name]]

    async def direct_all():
        out = {"generalist": await _direct(client, "generalist", raws, cfg.concurrency)}
        for d in mini.DOMAIN_NAMES:  # every worker on its own domain's queries
            mine = [q for q in queries if q.domain == d]
            for form in ("raw", "canonical"):
                texts = [getattr(q, form) for q in mine]
                out[f"{d}:{form}"] = await _direct(client, f"{d}-worker", texts, cfg.concurrency)
        return out

    direct = client.run(direct_all())
    return dict(w, routes=routes, answers=answers, direct=direct)


def _mean(xs, empty: float = 0.0) -> float:
    """The mean; `empty` (not NaN: measured figures are JSON numbers) when there is nothing."""
    xs = list(xs)
    return statistics.mean(xs) if xs else empty


def routing_figures(ev: dict[str, Any]) -> dict[str, float]:
    """Routing accuracy of each router (the right functional token), how often its output
    parsed, and how often its reformulation is the canonical question exactly."""
    queries = ev["queries"]
    out: dict[str, float] = {"chance": 1 / len(mini.DOMAIN_NAMES), "n_queries": len(queries)}
    for name in ROUTERS:
        rs = ev["routes"][name]
        out[f"{name}_acc"] = _mean(r.index == q.index for r, q in zip(rs, queries, strict=True))
        out[f"{name}_parsed"] = _mean(r.index is not None for r in rs)
        if name != "minilm":  # MiniLM passes the query on unchanged
            out[f"{name}_rewrite_exact"] = _mean(
                r.query == q.canonical for r, q in zip(rs, queries, strict=True)
            )
    return out


def correct(queries: list, texts: list[str]) -> list[float]:
    return [float(q.correct(t)) for q, t in zip(queries, texts, strict=True)]


def power_figures(ev: dict[str, Any]) -> dict[str, float]:
    """Each worker vs the generalist on its own domain's user queries (the specialists'
    head-room), and the workers given the canonical question (perfect routing and rewriting)."""
    queries, direct = ev["queries"], ev["direct"]
    general = correct(queries, [c.text for c in direct["generalist"]])
    out: dict[str, float] = {}
    margins, oracle = [], []
    for d in mini.DOMAIN_NAMES:
        mine = [i for i, q in enumerate(queries) if q.domain == d]
        qs = [queries[i] for i in mine]
        worker = _mean(correct(qs, [c.text for c in direct[f"{d}:raw"]]))
        canon = correct(qs, [c.text for c in direct[f"{d}:canonical"]])
        gen = _mean(general[i] for i in mine)
        out[f"worker_{d}"], out[f"generalist_{d}"] = worker, gen
        out[f"worker_canonical_{d}"] = _mean(canon)
        margins.append(worker - gen)
        oracle += canon
    out["min_worker_margin"] = min(margins)
    out["oracle_acc"] = _mean(oracle)
    return out


def run_routing(ctx: RunContext) -> dict[str, float]:
    return routing_figures(evaluate(ctx))


def run_routed_vs_generalist(ctx: RunContext) -> dict[str, float]:
    ev = evaluate(ctx)
    queries = ev["queries"]
    general = correct(queries, [c.text for c in ev["direct"]["generalist"]])
    out: dict[str, float] = {"generalist_acc": _mean(general)}
    scores = {}
    for name in ROUTERS:
        answers = ev["answers"][name]
        scores[name] = correct(queries, [a.answer for a in answers])
        out[f"routed_{name}_acc"] = _mean(scores[name])
        out[f"fallback_{name}"] = _mean(a.fell_back for a in answers)
        with HopLog(ctx.plot_path(f"hops_{name}.jsonl")) as log:  # every hop, as JSONL
            for i, a in enumerate(answers):
                log.write(i, a)
    diff, low, high = paired_bootstrap(scores["functional"], general, seed=ctx.seed)
    power = power_figures(ev)
    systems = {f"routed ({n})": scores[n] for n in ROUTERS} | {"generalist": general}
    per_domain = {
        name: {
            d: _mean(s for s, q in zip(sc, queries, strict=True) if q.domain == d)
            for d in mini.DOMAIN_NAMES
        }
        for name, sc in systems.items()
    }
    per_domain["workers, canonical query"] = {
        d: power[f"worker_canonical_{d}"] for d in mini.DOMAIN_NAMES
    }
    plot_accuracy(ctx, per_domain)
    routing = routing_figures(ev)
    p = ev["params"]
    return {
        **out,
        "gain": diff,
        "gain_ci_low": low,
        "gain_ci_high": high,
        "functional_acc": routing["functional_acc"],
        "chance": routing["chance"],
        **power,
        "generalist_vs_workers_params": p["generalist"] / (len(mini.DOMAIN_NAMES) * p["worker"]),
    }


def run_routing_cost(ctx: RunContext) -> dict[str, float]:
    """Tokens and compute per query: the router's vs the worker's, the routed graph's vs the
    generalist's (forward FLOPs ~ 2 x parameters x tokens processed)."""
    ev = evaluate(ctx)
    p, answers = ev["params"], ev["answers"]["functional"]
    fr = ev["routes"]["functional"]
    router_tokens = [r.prompt_tokens + r.completion_tokens for r in fr]
    worker_tokens = [h.prompt_tokens + h.completion_tokens for a in answers for h in a.hops[1:]]
    general = ev["direct"]["generalist"]
    general_tokens = [c.prompt_tokens + c.completion_tokens for c in general]
    router_flops = 2 * p["router"] * _mean(router_tokens)
    worker_flops = 2 * p["worker"] * _mean(worker_tokens)
    general_flops = 2 * p["generalist"] * _mean(general_tokens)
    prompted = ev["routes"]["prompted"]
    return {
        # over the routes that parsed (0 when none did)
        "functional_decision_tokens": _mean(r.decision_tokens for r in fr if r.index is not None),
        "functional_first_token_share": _mean(r.decision_tokens == 1 for r in fr),
        "prompted_decision_tokens": _mean(
            r.decision_tokens for r in prompted if r.index is not None
        ),
        "router_call_tokens": _mean(r.completion_tokens for r in fr),
        "router_tokens": _mean(router_tokens),
        "worker_tokens": _mean(worker_tokens),
        "generalist_tokens": _mean(general_tokens),
        "router_params": p["router"],
        "worker_params": p["worker"],
        "generalist_params": p["generalist"],
        "router_flop_share": router_flops / (router_flops + worker_flops),
        "graph_vs_generalist_flops": (router_flops + worker_flops) / general_flops,
    }
