"""MoA's experiments: every method over the same questions, once per run, then one function
per claim (`run_<claim>(ctx) -> figures`).

The world (tiny chat models behind `paperlab serve`, or configured real models) comes from
`world.py`; the evaluation is shared by the claims through the run's artifact cache.
"""

from __future__ import annotations

import math
import statistics
from typing import Any

from paperlab.claims import RunContext
from paperlab.core.llm.results import gather_bounded
from paperlab.core.stats import majority, paired_bootstrap
from paperlab.papers.moa.moa import MixtureOfAgents, MoAConfig, moa, moa_lite, self_moa
from paperlab.papers.moa.prompts import with_references
from paperlab.papers.moa.world import World, get_world


def run_method(world: World, questions: list, fn, concurrency: int) -> tuple[list, float]:
    """(outputs, calls per query) of an async `fn` over the questions."""
    before = world.calls_made()
    outs = world.client.run(gather_bounded(questions, fn, concurrency))
    return outs, (world.calls_made() - before) / len(questions)


def correct(questions: list, texts: list[str]) -> list[float]:
    """1.0 where a text reads as the question's answer, else 0.0."""
    return [float(q.read(t) == q.answer) for q, t in zip(questions, texts, strict=True)]


def single_scores(world: World, name: str, concurrency: int) -> list[float]:
    """One model's greedy answers, scored."""

    async def ask(q):
        messages = [{"role": "user", "content": q.question}]
        out = await world.client.chat(name, messages, temperature=0.0, max_tokens=world.max_tokens)
        return out.text

    texts, _ = run_method(world, world.questions, ask, concurrency)
    return correct(world.questions, texts)


def mixtures(cfg: Any, world: World, best_proposer: str, seed: int) -> dict[str, MoAConfig]:
    """MoA (cfg.layers), MoA-Lite and Self-MoA of the best proposer, sampled as in Sec. 3.1."""
    kw = dict(
        temperature=cfg.temperature,
        aggregator_temperature=cfg.aggregator_temperature,
        max_tokens=world.max_tokens,
        seed=seed,
        instruction=world.instruction,
    )
    n = len(world.proposers)
    return {
        "moa": moa(world.proposers, world.aggregator, layers=cfg.layers, **kw),
        "moa_lite": moa_lite(world.proposers, world.aggregator, **kw),
        "self_moa": self_moa(best_proposer, samples=n, aggregator=world.aggregator, **kw),
    }


def layer_accuracies(questions: list, results: list, layers: int) -> list[float]:
    """The mean accuracy of each proposer layer's responses (nan: every call failed)."""
    out = []
    for k in range(layers - 1):
        hits = [
            float(q.read(c.text) == q.answer)
            for q, r in zip(questions, results, strict=True)
            for c in r.layers[k]
        ]
        out.append(statistics.mean(hits) if hits else math.nan)
    return out


def majority_scores(questions: list, results: list) -> list[float]:
    """1.0 where a plain majority vote over a result's layer-1 answers is right, else 0.0."""
    return [
        float(majority([q.read(c.text) for c in r.layers[0]]) == q.answer)
        for q, r in zip(questions, results, strict=True)
    ]


def aggregator_reads(world: World, results: list, concurrency: int) -> list[float]:
    """1.0 where the aggregator, greedy, answers right given a result's layer-1 references
    (the very prompt MoA-Lite's aggregator got), else 0.0."""

    async def ask(pair):
        q, r = pair
        messages = with_references(
            [{"role": "user", "content": q.question}],
            [c.text for c in r.layers[0]],
            instruction=world.instruction,
        )
        out = await world.client.chat(
            world.aggregator, messages, temperature=0.0, max_tokens=world.max_tokens
        )
        return out.text

    texts, _ = run_method(world, list(zip(world.questions, results, strict=True)), ask, concurrency)
    return correct(world.questions, texts)


def powering(ev: dict) -> dict[str, float]:
    """The aggregator's accuracy given layer 1's references (greedy: can it read them?) and a
    majority vote's over the same references: the claims are judged only when the first
    reaches the second (claims.powered). MoA-Lite's own answer, sampled at the paper's
    temperature, is reported beside them."""
    agg = statistics.mean(ev["scores"]["aggregator_l1"])
    vote = statistics.mean(ev["scores"]["majority_lite"])
    return {
        "aggregator_l1_acc": agg,
        "majority_l1_acc": vote,
        "aggregator_vs_majority": agg - vote,
        "aggregator_l1_sampled_acc": statistics.mean(ev["scores"]["moa_lite"]),
    }


def evaluate(ctx: RunContext) -> dict:
    """Every method over the same questions (shared: the claims use one evaluation)."""
    return ctx.shared("evaluation", lambda: evaluate_world(ctx.config, get_world(ctx), ctx.seed))


def evaluate_world(cfg: Any, world: World, seed: int) -> dict:
    questions = world.questions
    singles = {
        name: single_scores(world, name, cfg.concurrency)
        for name in [*world.proposers, world.aggregator]
    }
    # Self-MoA samples the best proposer: picked on these questions, as "best single" is
    best_proposer = max(world.proposers, key=lambda name: (statistics.mean(singles[name]), name))
    configs = mixtures(cfg, world, best_proposer, seed)
    runs = {}
    for name, config in configs.items():
        m = MixtureOfAgents(world.client, config)
        runs[name] = run_method(world, questions, lambda q, m=m: m.ask(q.question), cfg.concurrency)
    scores = {name: correct(questions, [r.answer for r in res]) for name, (res, _) in runs.items()}
    moa_results = runs["moa"][0]
    # a plain majority vote over layer 1's answers: is the information there?
    scores["majority"] = majority_scores(questions, moa_results)
    # the powering figure: MoA-Lite's aggregator reads layer 1's references; a majority vote
    # over the very same references is the bar it must reach
    scores["majority_lite"] = majority_scores(questions, runs["moa_lite"][0])
    # a vote is deterministic: the aggregator reads the same references greedily (sampled at
    # 0.7, a one-token answer loses ~6 points to sampling alone; that is MoA-Lite's figure)
    scores["aggregator_l1"] = aggregator_reads(world, runs["moa_lite"][0], cfg.concurrency)
    return dict(
        world=world,
        singles=singles,
        best_proposer=best_proposer,
        configs=configs,
        scores=scores,
        layer_acc=layer_accuracies(questions, moa_results, cfg.layers),
        calls={name: calls for name, (_, calls) in runs.items()},
    )


def plot_accuracy(ctx: RunContext, ev: dict) -> None:
    names = [*ev["singles"], "majority", "self_moa", "moa_lite", "moa"]  # moa_lite: agg | layer 1
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
    singles, world = ev["singles"], ev["world"]
    best = max(singles, key=lambda n: statistics.mean(singles[n]))
    diff, low, high = paired_bootstrap(ev["scores"]["moa"], singles[best], seed=ctx.seed)
    plot_accuracy(ctx, ev)
    ctx.notes["best_single"] = best
    return {
        "moa_acc": statistics.mean(ev["scores"]["moa"]),
        "moa_lite_acc": statistics.mean(ev["scores"]["moa_lite"]),
        "best_single_acc": statistics.mean(singles[best]),
        "aggregator_alone_acc": statistics.mean(singles[world.aggregator]),
        "mean_proposer_acc": statistics.mean(statistics.mean(singles[p]) for p in world.proposers),
        **{f"layer{k + 1}_acc": acc for k, acc in enumerate(ev["layer_acc"])},
        "gain": diff,
        "gain_ci_low": low,
        "gain_ci_high": high,
        **powering(ev),
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
        **powering(ev),
    }


def run_calls(ctx: RunContext) -> dict[str, float]:
    ev = evaluate(ctx)
    mismatches = 0
    out: dict[str, float] = {}
    for name, config in ev["configs"].items():
        out[f"{name}_calls"] = ev["calls"][name]
        out[f"{name}_expected"] = config.n_calls  # proposers x (layers - 1) + 1
        mismatches += ev["calls"][name] != config.n_calls
    out["mismatches"] = mismatches
    return out


def run_parallel(ctx: RunContext) -> dict[str, float]:
    """Queries one at a time: our concurrent layers vs the same calls awaited one by one."""
    ev = evaluate(ctx)
    world, config = ev["world"], ev["configs"]["moa"]
    mixture = MixtureOfAgents(world.client, config)
    questions = world.questions[: ctx.config.timing_queries]

    async def timed():
        effs, ours, peer = [], [], []
        for q in questions:
            r = await mixture.ask(q.question)
            effs.append(r.parallel_efficiency)
            ours.append(r.wall)
            peer.append((await mixture.ask(q.question, concurrent=False)).wall)
        return effs, ours, peer

    effs, ours, peer = world.client.run(timed())
    return {
        "parallel_efficiency": statistics.median(effs),
        "wall_s": statistics.median(ours),
        "sequential_wall_s": statistics.median(peer),
        "speedup_vs_sequential": statistics.median(peer) / statistics.median(ours),
        "calls_per_query": config.n_calls,
    }
