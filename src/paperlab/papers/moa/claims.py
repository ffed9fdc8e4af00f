"""Mixture-of-Agents' claims in miniature (card `moa` in PAPERS.md; Wang et al. 2024, 2406.04692).

(1) accuracy:  MoA (3 layers: 6 proposers, 6 proposers with references, an aggregator) beats
               the best single model it is made of (Sec. 3.2: AlpacaEval 2.0 LC 65.1% vs 57.5%
               for GPT-4o; every MoA beats its best member).
(2) diversity: different proposers beat several samples of one model (Sec. 3.3, Table 3:
               6 different proposers 61.3% vs one proposer sampled 6 times 56.7%); that
               baseline is "Self-MoA". Majority voting over the proposers is reported alongside.
(3) calls:     a query costs proposers x (layers - 1) + 1 calls, counted by the server.
(4) parallel:  proposers of a layer run concurrently: the wall time of a query is the sum of
               each layer's slowest call (parallel efficiency >= 0.9).

Miniature: the models are tiny chat models trained here on 3-digit addition (miniature.py),
served by `paperlab serve` in a child process and queried over HTTP with the real client, so
the whole pipeline runs as it would against vLLM or Ollama. With `--config FILE` naming real
models in a `[moa]` table, the same claims run on those models (3-digit multiplication).
"""

from __future__ import annotations

import asyncio
import math
import statistics
import tempfile
from dataclasses import dataclass
from pathlib import Path

from paperlab.claims import Claim, PaperClaims, RunContext, SkipClaim, at_least, at_most
from paperlab.core.llm.client import LLMClient
from paperlab.core.llm.local import LocalServer
from paperlab.core.llm.results import gather_bounded
from paperlab.core.llm.tiny import TinyChatConfig
from paperlab.core.stats import improves, majority, paired_bootstrap
from paperlab.papers.moa.moa import MixtureOfAgents, MoAConfig, moa, moa_lite, self_moa
from paperlab.papers.moa.prompts import AGGREGATE_INSTRUCTION


@dataclass
class MoAClaimsConfig:
    layers: int = 3  # including the aggregator's (the paper's default)
    n_facts: int = 150  # the questions (miniature.py): every fact is asked once
    # what share of the facts each proposer knows: their number is the number of proposers
    proposer_rates: tuple[float, ...] = (0.6, 0.55, 0.5, 0.45, 0.4, 0.35)
    aggregator_rate: float = 0.5
    proposer_synth: float = 0.2  # share of fine-tuning examples with references
    aggregator_synth: float = 0.5
    dim: int = 64
    n_layers: int = 2
    base_steps: int = 800  # the shared base: synthesising references (miniature.py)
    proposer_steps: int = 300  # each model's own facts
    batch_size: int = 32
    lr: float = 5e-3
    temperature: float = 0.7  # Sec. 3.1
    aggregator_temperature: float = 0.7
    concurrency: int = 16  # queries in flight during the accuracy evaluation
    timing_queries: int = 8  # the parallel claim: queries run one at a time
    # with --config (real models): 3-digit multiplication, n_facts questions
    real_op: str = "*"
    real_digits: int = 3
    real_max_tokens: int = 512

    def __post_init__(self) -> None:
        if self.layers < 2 or not self.proposer_rates:
            raise ValueError("moa: need layers >= 2 and at least one proposer rate")
        rates = [
            *self.proposer_rates,
            self.aggregator_rate,
            self.proposer_synth,
            self.aggregator_synth,
        ]
        if not all(0.0 <= r <= 1.0 for r in rates):
            raise ValueError("moa: knowledge rates and synth shares must lie in [0, 1]")
        if min(self.n_facts, self.timing_queries, self.concurrency) < 1:
            raise ValueError("moa: n_facts, timing_queries and concurrency must be >= 1")
        if self.real_op not in ("+", "*"):
            raise ValueError("moa: real_op must be + or *")
        self.proposer_model()  # validates sizes and schedule

    def proposer_model(self) -> TinyChatConfig:
        return self.base_model(steps=self.proposer_steps)

    def base_model(self, steps: int | None = None) -> TinyChatConfig:
        return TinyChatConfig(
            dim=self.dim,
            n_layers=self.n_layers,
            lr=self.lr,
            steps=self.base_steps if steps is None else steps,
            batch_size=self.batch_size,
            max_seq_len=256,
        )


PRESETS = {
    "tiny": dict(
        n_facts=30,
        proposer_rates=(0.6, 0.5, 0.4),
        base_steps=40,
        proposer_steps=30,
        dim=32,
        batch_size=16,
        timing_queries=2,
    ),
    "default": {},
    "full": dict(n_facts=400, base_steps=2000, proposer_steps=1200, timing_queries=20),
}


# ---------------------------------------------------------------------------------------------
# The world the claims query: tiny models behind `paperlab serve`, or configured real models


@dataclass
class World:
    client: LLMClient
    proposers: list[str]
    aggregator: str
    questions: list  # objects with .question and .answer (facts, or arithmetic problems)
    max_tokens: int
    instruction: str = AGGREGATE_INSTRUCTION
    server: LocalServer | None = None

    def calls_made(self) -> int:
        """Completion requests so far: counted by our server, else by the client."""
        if self.server is not None:
            return self.server.stats().get("completion_requests", 0)
        u = self.client.usage.total
        return u.calls + u.cached


def get_world(ctx: RunContext) -> World:
    build = _real_world if ctx.llm_config else _miniature_world
    return ctx.shared("world", lambda: build(ctx))


def _miniature_world(ctx: RunContext) -> World:
    from paperlab.core.data.facts import make_facts
    from paperlab.papers.moa.miniature import SHORT_INSTRUCTION, train_models

    cfg: MoAClaimsConfig = ctx.config
    directory = Path(tempfile.mkdtemp(prefix="paperlab-moa-"))
    dirs = train_models(cfg, ctx.seed, directory, progress=ctx.progress)
    server = LocalServer(dirs).start()
    names = server.model_ids
    client = LLMClient(server.config(max_concurrency=64))  # no cache: every call is measured
    facts = make_facts(cfg.n_facts, seed=ctx.seed)
    return World(
        client,
        names[:-1],
        names[-1],
        facts,
        max_tokens=5,
        instruction=SHORT_INSTRUCTION,
        server=server,
    )


def _real_world(ctx: RunContext) -> World:
    from paperlab.core.data.arithmetic import sample_problems
    from paperlab.core.llm.config import load_config

    cfg: MoAClaimsConfig = ctx.config
    config = load_config(ctx.llm_config)
    section = config.section("moa")
    if not section.get("proposers") or not section.get("aggregator"):
        raise SkipClaim(f"{config.source} has no [moa] table with proposers and aggregator")
    problems = sample_problems(
        cfg.n_facts, digits=cfg.real_digits, op=cfg.real_op, seed=10_000 + ctx.seed
    )
    return World(
        LLMClient(config),
        list(section["proposers"]),
        section["aggregator"],
        problems,
        max_tokens=cfg.real_max_tokens,
    )


# ---------------------------------------------------------------------------------------------
# One evaluation of every method over the same problems, shared by the claims


def _run_method(world: World, problems, fn, concurrency) -> tuple[list, float]:
    """(outputs, calls per query) of an async fn over the problems."""
    before = world.calls_made()
    outs = asyncio.run(gather_bounded(problems, fn, concurrency))
    return outs, (world.calls_made() - before) / len(problems)


def evaluate(ctx: RunContext) -> dict:
    """Every method over the same questions (cached: the claims share one evaluation)."""
    return ctx.shared("evaluation", lambda: _evaluate(ctx))


def _evaluate(ctx: RunContext) -> dict:
    cfg: MoAClaimsConfig = ctx.config
    world = get_world(ctx)
    client, questions = world.client, world.questions

    def correct(texts):
        return [float(q.read(t) == q.answer) for q, t in zip(questions, texts, strict=True)]

    def single(name):
        async def ask(q):
            messages = [{"role": "user", "content": q.question}]
            out = await client.chat(name, messages, temperature=0.0, max_tokens=world.max_tokens)
            return out.text

        texts, _ = _run_method(world, questions, ask, cfg.concurrency)
        return correct(texts)

    def mixture(config: MoAConfig):
        m = MixtureOfAgents(client, config)
        return _run_method(world, questions, lambda q: m.ask(q.question), cfg.concurrency)

    singles = {name: single(name) for name in [*world.proposers, world.aggregator]}
    # Self-MoA samples the best proposer: picked on these questions, as "best single" is
    best_proposer = max(world.proposers, key=lambda name: (statistics.mean(singles[name]), name))
    kw = dict(
        temperature=cfg.temperature,
        aggregator_temperature=cfg.aggregator_temperature,
        max_tokens=world.max_tokens,
        seed=ctx.seed,
        instruction=world.instruction,
    )
    configs = {
        "moa": moa(world.proposers, world.aggregator, layers=cfg.layers, **kw),
        "moa_lite": moa_lite(world.proposers, world.aggregator, **kw),
        "self_moa": self_moa(
            best_proposer, samples=len(world.proposers), aggregator=world.aggregator, **kw
        ),
    }
    runs = {name: mixture(c) for name, c in configs.items()}
    scores = {name: correct([r.answer for r in res]) for name, (res, _) in runs.items()}
    layer1 = [
        [q.read(c.text) for c in r.layers[0]]
        for q, r in zip(questions, runs["moa"][0], strict=True)
    ]
    # where MoA gains or loses: the mean accuracy of each proposer layer's responses
    layer_acc = []
    for k in range(cfg.layers - 1):
        hits = [
            float(q.read(c.text) == q.answer)
            for q, r in zip(questions, runs["moa"][0], strict=True)
            for c in r.layers[k]
        ]
        layer_acc.append(statistics.mean(hits) if hits else math.nan)  # nan: every call failed
    scores["majority"] = [
        float(majority(v) == q.answer) for v, q in zip(layer1, questions, strict=True)
    ]
    return dict(
        world=world,
        singles=singles,
        best_proposer=best_proposer,
        configs=configs,
        scores=scores,
        layer_acc=layer_acc,
        calls={name: calls for name, (_, calls) in runs.items()},
    )


def _plot_accuracy(ctx: RunContext, ev: dict) -> None:
    names = [*ev["singles"], "majority", "self_moa", "moa_lite", "moa"]
    accs = [statistics.mean(ev["singles"].get(n) or ev["scores"][n]) for n in names]
    fig, ax = ctx.figure(figsize=(7, 3.2))
    colors = ["#999"] * len(ev["singles"]) + ["#6a9", "#c96", "#69c", "#36c"]
    ax.bar(range(len(names)), accs, color=colors)
    ax.set_xticks(range(len(names)), names, rotation=30, ha="right")
    ax.set_ylabel("accuracy")
    ax.set_title("single models (greedy) vs majority vote vs Self-MoA vs MoA")
    ctx.save_figure(fig, "accuracy.png")


# ---------------------------------------------------------------------------------------------
# Claims


def run_accuracy(ctx: RunContext) -> dict[str, float]:
    ev = evaluate(ctx)
    singles = ev["singles"]
    best = max(singles, key=lambda n: statistics.mean(singles[n]))
    diff, low, high = paired_bootstrap(ev["scores"]["moa"], singles[best], seed=ctx.seed)
    _plot_accuracy(ctx, ev)
    ctx.notes["best_single"] = best
    return {
        "moa_acc": statistics.mean(ev["scores"]["moa"]),
        "moa_lite_acc": statistics.mean(ev["scores"]["moa_lite"]),
        "best_single_acc": statistics.mean(singles[best]),
        "aggregator_alone_acc": statistics.mean(singles[ev["world"].aggregator]),
        "mean_proposer_acc": statistics.mean(
            statistics.mean(singles[p]) for p in ev["world"].proposers
        ),
        **{f"layer{k + 1}_acc": acc for k, acc in enumerate(ev["layer_acc"])},
        "gain": diff,
        "gain_ci_low": low,
        "gain_ci_high": high,
    }


def run_diversity(ctx: RunContext) -> dict[str, float]:
    ev = evaluate(ctx)
    diff, low, high = paired_bootstrap(ev["scores"]["moa"], ev["scores"]["self_moa"], seed=ctx.seed)
    ctx.notes["self_moa_model"] = ev["best_proposer"]
    return {
        "moa_acc": statistics.mean(ev["scores"]["moa"]),
        "self_moa_acc": statistics.mean(ev["scores"]["self_moa"]),
        "majority_acc": statistics.mean(ev["scores"]["majority"]),
        "gain": diff,
        "gain_ci_low": low,
        "gain_ci_high": high,
    }


def run_calls(ctx: RunContext) -> dict[str, float]:
    ev = evaluate(ctx)
    mismatches = 0
    out: dict[str, float] = {}
    for name, config in ev["configs"].items():
        expected = sum(len(layer) for layer in config.layers) + 1
        out[f"{name}_calls"] = ev["calls"][name]
        out[f"{name}_expected"] = expected
        mismatches += ev["calls"][name] != expected
    out["mismatches"] = mismatches
    return out


def run_parallel(ctx: RunContext) -> dict[str, float]:
    """Queries one at a time: our concurrent layers vs the same calls awaited one by one."""
    ev = evaluate(ctx)
    world, config = ev["world"], ev["configs"]["moa"]
    mixture = MixtureOfAgents(world.client, config)
    problems = world.questions[: ctx.config.timing_queries]

    async def timed():
        effs, ours, peer = [], [], []
        for p in problems:
            r = await mixture.ask(p.question)
            effs.append(r.parallel_efficiency)
            ours.append(r.wall)
            peer.append((await mixture.ask(p.question, concurrent=False)).wall)
        return effs, ours, peer

    effs, ours, peer = asyncio.run(timed())
    return {
        "parallel_efficiency": statistics.median(effs),
        "wall_s": statistics.median(ours),
        "sequential_wall_s": statistics.median(peer),
        "speedup_vs_sequential": statistics.median(peer) / statistics.median(ours),
        "calls_per_query": config.n_calls,
    }


PAPER = PaperClaims(
    config=MoAClaimsConfig,
    presets=PRESETS,
    claims=[
        Claim(
            id="accuracy",
            statement="MoA beats the best single model it is built from",
            paper_figure="AlpacaEval 2.0 LC win 65.1% (MoA) vs 57.5% (GPT-4o); every MoA beats "
            "its best member",
            criterion=improves("gain", "gain_ci_low", "MoA - best single"),
            run=run_accuracy,
            ours="MoA {moa_acc:.1%} vs best single {best_single_acc:.1%} ({best_single}); "
            "lite {moa_lite_acc:.1%}",
        ),
        Claim(
            id="diversity",
            statement="different proposers beat samples of one model (Self-MoA)",
            paper_figure="6 different proposers 61.3% vs 1 proposer x 6 samples 56.7% (Table 3)",
            criterion=improves("gain", "gain_ci_low", "MoA - Self-MoA"),
            run=run_diversity,
            ours="MoA {moa_acc:.1%} vs Self-MoA {self_moa_acc:.1%} vs majority {majority_acc:.1%}",
        ),
        Claim(
            id="calls",
            statement="a query costs proposers x (layers - 1) + 1 calls",
            paper_figure="6 x 2 + 1 = 13 calls for 3 layers of 6",
            criterion=at_most("mismatches", 0),
            run=run_calls,
            ours="{moa_calls:.0f} (MoA), {moa_lite_calls:.0f} (lite), {self_moa_calls:.0f} "
            "(Self-MoA) calls per query, as expected",
        ),
        Claim(
            id="parallel",
            statement="a layer's proposers run concurrently: wall = sum of slowest calls",
            paper_figure="wall time ~ layers x slowest call",
            criterion=at_least("parallel_efficiency", 0.9, margin=0.05),
            run=run_parallel,
            ours="efficiency {parallel_efficiency:.2f}; {speedup_vs_sequential:.1f}x faster "
            "than one call at a time",
        ),
    ],
)
