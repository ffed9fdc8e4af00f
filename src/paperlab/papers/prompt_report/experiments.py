"""The Prompt Report's experiments: the case study's six techniques over the same questions,
once per run (shared by the claims through the run's cache), then one function per claim.

The world is a tiny chat model behind `paperlab serve` (miniature.py), or a configured real
model (`paperlab reproduce prompt_report --config FILE` with `[prompt_report] model = "..."`).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any

from paperlab.claims import RunContext
from paperlab.core.errors import SkipClaim
from paperlab.core.llm.client import LLMClient
from paperlab.core.llm.local import LocalServer, serve_chat_models, trained_chat_zoo
from paperlab.core.mc import MCItem
from paperlab.core.stats import paired_bootstrap
from paperlab.papers.prompt_report import prompts as P
from paperlab.papers.prompt_report.case_study import (
    CASE_STUDY,
    TechniqueResult,
    case_study_techniques,
    run_case_study,
    run_technique,
)
from paperlab.papers.prompt_report.techniques import Endpoint, FewShot

# the config fields the reader's training depends on (with the seed)
MODEL_FIELDS = (
    "n_facts",
    "known_rate",
    "same_shot_rate",
    "shots",
    "dim",
    "n_layers",
    "steps",
    "batch_size",
    "lr",
)


@dataclass(kw_only=True)
class World:
    endpoint: Endpoint
    items: list[MCItem]
    pool: list[MCItem]
    instruction: str
    fmt: str
    style: str = "letter"
    server: LocalServer | None = None


def get_world(ctx: RunContext) -> World:
    if ctx.llm_config:
        return ctx.shared("world", lambda: real_world(ctx.config, ctx.llm_config, ctx.seed))
    spec = {name: getattr(ctx.config, name) for name in MODEL_FIELDS}
    return ctx.shared("world", lambda: miniature_world(ctx, spec), spec=(spec, ctx.config.n_items))


def miniature_world(ctx: RunContext, spec: dict) -> World:
    """The reader, trained (or loaded from the disk cache) and served until the run ends."""
    from paperlab.papers.prompt_report import miniature as M

    cfg, seed = ctx.config, ctx.seed
    dirs = trained_chat_zoo(
        ctx.cache,
        "prompt-report-reader",
        (spec, seed),
        lambda folder: M.train_reader(cfg, seed, folder, progress=ctx.progress, device=ctx.device),
    )
    server = serve_chat_models(ctx.cache, dirs)
    client = LLMClient(server.config(max_concurrency=cfg.concurrency))  # no cache: measured
    facts = M.make_facts(cfg.n_facts, seed)
    return World(
        endpoint=Endpoint(client, "reader", max_tokens=cfg.max_tokens, seed=seed),
        items=M.make_items(facts, cfg.n_items, seed + 1),
        pool=M.make_items(facts, cfg.pool_items, seed + 2, prefix="pool"),
        instruction=M.MINI_INSTRUCTION,
        fmt=M.MINI_FORMAT,
        style=M.MINI_STYLE,
        server=server,
    )


def real_world(cfg: Any, llm_config: str, seed: int) -> World:
    """The `[prompt_report]` table's model on core.mc's synthetic questions, the paper's
    instruction and question format."""
    from paperlab.core.llm.config import load_config
    from paperlab.core.mc import make_mc_items

    config = load_config(llm_config)
    model = config.section("prompt_report").get("model")
    if not isinstance(model, str) or not model:
        raise SkipClaim(f'{config.source} has no [prompt_report] table with model = "..."')
    client = LLMClient(config)
    return World(
        endpoint=Endpoint(client, model, max_tokens=cfg.real_max_tokens, seed=seed),
        items=make_mc_items(cfg.real_items, seed=10_000 + seed),
        pool=make_mc_items(max(cfg.pool_items, 60), seed=20_000 + seed, prefix="pool"),
        instruction=P.BASE_INSTRUCTION,
        fmt="paper2",
    )


def make_selector(name: str, pool: list[MCItem], k: int, seed: int, device: str = "cpu") -> Any:
    from paperlab.papers.prompt_report.selection import (
        KNNSelector,
        RandomSelector,
        minilm_embedder,
    )

    if name == "knn":
        return KNNSelector(pool, k, embed=minilm_embedder(device))
    return RandomSelector(pool, k, seed=seed)


def evaluate(ctx: RunContext) -> dict[str, Any]:
    """The six techniques, and few-shot with random exemplars, over the same questions."""

    def build() -> dict[str, Any]:
        cfg, world = ctx.config, get_world(ctx)
        selector = make_selector(cfg.selector, world.pool, cfg.shots, ctx.seed, ctx.device)
        six = case_study_techniques(
            selector,
            instruction=world.instruction,
            fmt=world.fmt,
            samples=cfg.samples,
            temperature=cfg.sc_temperature,
            style=world.style,
        )
        ep, kw = world.endpoint, dict(concurrency=cfg.concurrency, progress=ctx.progress)
        results = ep.client.run(run_case_study(ep, world.items, six, **kw))
        rand = FewShot(
            selector=make_selector("random", world.pool, cfg.shots, ctx.seed),
            instruction=world.instruction,
            fmt=world.fmt,
            style=world.style,
            name="few-shot-random",
        )
        results["few-shot-random"] = ep.client.run(run_technique(ep, world.items, rand, **kw))
        return {"results": results, "world": world}

    return ctx.shared("evaluation", build)


def _acc(r: TechniqueResult) -> float:
    return r.accuracy.value


def _key(name: str) -> str:
    return name.replace("-", "_").replace("+", "_") + "_acc"


def powering(results: dict[str, TechniqueResult]) -> dict[str, float]:
    return {"powering_acc": max(_acc(results["zero-shot"]), _acc(results["few-shot"]))}


def run_few_shot(ctx: RunContext) -> dict[str, float]:
    res = evaluate(ctx)["results"]
    fs, zs = res["few-shot"], res["zero-shot"]
    gain, low, high = paired_bootstrap(fs.correct, zs.correct, seed=ctx.seed)
    return {
        "zero_shot_acc": _acc(zs),
        "few_shot_acc": _acc(fs),
        "few_shot_random_acc": _acc(res["few-shot-random"]),
        "few_shot_cot_acc": _acc(res["few-shot-cot"]),
        "zero_shot_cot_acc": _acc(res["zero-shot-cot"]),
        "gain": gain,
        "gain_ci_low": low,
        "gain_ci_high": high,
        **powering(res),
    }


def run_self_consistency(ctx: RunContext) -> dict[str, float]:
    """SC vs a single sample of the same prompt at the same temperature: per item, the share
    of its samples that are right (the expected accuracy of one sample), pooled over the
    case study's two SC techniques."""
    ev = evaluate(ctx)
    res, world = ev["results"], ev["world"]
    scored = [x for x in world.items if x.answer is not None]
    sc, single, differ = [], [], []
    out: dict[str, float] = {}
    for name in ("zero-shot-cot+sc", "few-shot-cot+sc"):
        r = res[name]
        for item, o, ok in zip(scored, r.outcomes, r.correct, strict=True):
            samples = o.info["samples"]
            sc.append(float(ok))
            single.append(statistics.mean(s == item.answer for s in samples))
            differ.append(float(len(set(samples)) > 1))
        out[_key(name)] = _acc(r)
    gain, low, high = paired_bootstrap(sc, single, seed=ctx.seed)
    return {
        "sc_acc": statistics.mean(sc),
        "single_sample_acc": statistics.mean(single),
        "sample_disagreement": statistics.mean(differ),
        **out,
        "gain": gain,
        "gain_ci_low": low,
        "gain_ci_high": high,
        **powering(res),
    }


def run_case_study_claim(ctx: RunContext) -> dict[str, float]:
    from paperlab.papers.prompt_report.plots import plot_case_study

    ev = evaluate(ctx)
    res = {name: ev["results"][name] for name in CASE_STUDY}
    others = [n for n in CASE_STUDY if n != "few-shot-cot"]
    best = max(others, key=lambda n: (_acc(res[n]), n))
    gain, low, high = paired_bootstrap(
        res["few-shot-cot"].correct, res[best].correct, seed=ctx.seed
    )
    plot_case_study(ctx, res)
    ctx.notes["best_other"] = best
    ctx.notes["table"] = {
        n: [r.accuracy.value, r.accuracy.low, r.accuracy.high, r.unparsed] for n, r in res.items()
    }
    out = {_key(n): _acc(r) for n, r in res.items()}
    out.update({_key(n).replace("_acc", "_low"): r.accuracy.low for n, r in res.items()})
    out.update({_key(n).replace("_acc", "_high"): r.accuracy.high for n, r in res.items()})
    out.update({_key(n).replace("_acc", "_unparsed"): float(r.unparsed) for n, r in res.items()})
    return {
        **out,
        "zero_shot_cot_minus_zero_shot": _acc(res["zero-shot-cot"]) - _acc(res["zero-shot"]),
        "gain": gain,
        "gain_ci_low": low,
        "gain_ci_high": high,
        **powering(ev["results"]),
    }
