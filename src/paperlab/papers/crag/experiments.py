"""CRAG's experiments in miniature: once per run (shared by the claims through the run's
artifact cache) the world's questions are answered by the three systems and scored by the
auto-evaluator; then one function per claim picks its figures.

The pieces: the world and its questions (world.py), the reader and the judge (miniature.py,
trained once per config into the disk cache and served by `paperlab serve`), the mock KG API
(api.py, a uvicorn thread), MiniLM (rag.py). With `reproduce --config FILE` and a `[crag]` table
naming `reader` and `judge`, real models take the tiny ones' places with the official prompts.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from typing import Any

from paperlab.claims import RunContext
from paperlab.core.errors import SkipClaim
from paperlab.core.llm.client import LLMClient
from paperlab.papers.crag import labelled, miniature
from paperlab.papers.crag.prompts import answer_messages
from paperlab.papers.crag.rag import SYSTEMS, MiniLM, RagSystem
from paperlab.papers.crag.scoring import (
    LLMJudge,
    breakdown,
    official_script_label,
    score_answer,
    score_records,
    summary,
)
from paperlab.papers.crag.world import (
    ATTRIBUTES,
    DOMAINS,
    DYNAMISM,
    POPULARITY,
    QUERY_DAY,
    make_question,
    make_questions,
    make_world,
    sentence,
)

# the config fields the trained models depend on (with the seed): their cache key
MODEL_FIELDS = (
    "n_entities",
    "k",
    "kg_k",
    "reader_dim",
    "reader_layers",
    "reader_seq_len",
    "reader_steps",
    "reader_lr",
    "reading_weight",
    "judge_dim",
    "judge_layers",
    "judge_base_steps",
    "judge_steps",
    "batch_size",
)


@dataclass(kw_only=True)
class Setup:
    client: LLMClient
    reader: str
    judge: str
    style: str  # the prompts: "mini" for the tiny models, "official" for real ones
    answer_tokens: int
    judge_tokens: int


def model_spec(cfg: Any) -> dict[str, Any]:
    return {name: getattr(cfg, name) for name in MODEL_FIELDS}


def setup(ctx: RunContext) -> Setup:
    """The reader and the judge: trained here and served, or a config's real models."""
    if ctx.llm_config:
        return ctx.shared("setup", lambda: real_setup(ctx.llm_config))
    return ctx.shared("setup", lambda: miniature_setup(ctx), spec=model_spec(ctx.config))


def miniature_setup(ctx: RunContext) -> Setup:
    from paperlab.core.llm.local import serve_chat_models, trained_chat_zoo

    cfg, seed = ctx.config, ctx.seed
    world = make_world(cfg.n_entities, seed=seed)
    dirs = trained_chat_zoo(
        ctx.cache,
        "crag-models",
        (model_spec(cfg), seed),
        lambda folder: miniature.train_models(
            cfg, world, seed, folder, device=ctx.device, progress=ctx.progress
        ),
    )
    server = serve_chat_models(ctx.cache, dirs)
    client = LLMClient(server.config(max_concurrency=cfg.concurrency))
    # replies: "1987" / "i don't know"; the judge's '19 98= 77= 81x {"score": 0}'
    return Setup(
        client=client,
        reader=miniature.READER,
        judge=miniature.JUDGE,
        style="mini",
        answer_tokens=14,
        judge_tokens=32,
    )


def real_setup(llm_config: str) -> Setup:
    from paperlab.core.llm.config import load_config

    config = load_config(llm_config)
    section = config.section("crag")
    if not section.get("reader") or not section.get("judge"):
        raise SkipClaim(f"{config.source} has no [crag] table with reader and judge")
    return Setup(
        client=LLMClient(config),
        reader=section["reader"],
        judge=section["judge"],
        style="official",
        answer_tokens=50,
        judge_tokens=256,
    )


def evaluate(ctx: RunContext) -> dict[str, float]:
    """Every figure of the run (shared by the claims)."""
    return ctx.shared("evaluation", lambda: evaluate_all(ctx))


def evaluate_all(ctx: RunContext) -> dict[str, float]:
    from paperlab.papers.crag.api import CragApi, serve_api

    cfg, seed = ctx.config, ctx.seed
    s = setup(ctx)
    world = make_world(cfg.n_entities, seed=seed)
    records = make_questions(world, cfg.n_questions, seed=seed)
    api_server = serve_api(world.kg())
    ctx.cache.on_release(api_server.stop)

    embedder = MiniLM(device=ctx.device)
    judge = LLMJudge(s.client, s.judge, style=s.style, max_tokens=s.judge_tokens)
    out: dict[str, float] = {**powering(cfg, seed, s, world, judge)}
    covered = [r for r in records if r["paperlab"]["kg_covered"]]
    out["kg_covered_n"] = float(len(covered))
    per_system = {}
    for kind in SYSTEMS:
        system = RagSystem(
            kind=kind,
            client=s.client,
            model=s.reader,
            embedder=embedder,
            api=CragApi(api_server.url),
            k=cfg.k,
            kg_k=cfg.kg_k,
            style=s.style,
            max_tokens=s.answer_tokens,
            concurrency=cfg.concurrency,
        )
        replies = s.client.run(system.answer_all(records))
        predictions = {r["interaction_id"]: p for r, p in zip(records, replies, strict=True)}
        items = score_records(records, predictions, judge=judge, concurrency=cfg.concurrency)
        per_system[kind] = items
        out.update(figures(kind.replace("-", "_"), items, covered))
    out.update(judge_on_runs(records, per_system))
    ctx.notes["per_system"] = {
        k: {by: breakdown(v, by) for by in ("question_type", "domain")}
        for k, v in per_system.items()
    }
    from paperlab.papers.crag.plots import plot_systems

    plot_systems(ctx, out)
    return out


def figures(prefix: str, items: list, covered: list) -> dict[str, float]:
    """A system's summary, its accuracy by dynamism and popularity (all questions, and the
    simple ones), and its score on the KG-covered questions."""
    out = {f"{prefix}_{k}": v for k, v in summary(items).items() if k != "n"}
    for by, values in (("static_or_dynamic", DYNAMISM), ("popularity", POPULARITY)):
        groups = breakdown(items, by)
        for v in values:
            name = v.replace("-", "_")
            out[f"{prefix}_{name}_accuracy"] = groups.get(v, {"accuracy": 0.0})["accuracy"]
    # the same on the simple (one-fact) questions: the breakdowns without the type mix
    simple = [i for i in items if i.question_type == "simple"]
    for by, values in (("static_or_dynamic", DYNAMISM), ("popularity", POPULARITY)):
        groups = breakdown(simple, by)
        for v in values:
            name = v.replace("-", "_")
            out[f"{prefix}_simple_{name}_accuracy"] = groups.get(v, {"accuracy": 0.0})["accuracy"]
    ids = {r["interaction_id"] for r in covered}
    sub = summary([i for i in items if i.interaction_id in ids])
    out[f"kg_covered_{prefix}_score"] = sub["score"]
    out[f"kg_covered_{prefix}_accuracy"] = sub["accuracy"]
    return out


def _last_token(text: str) -> str:
    return (re.findall(r"[a-z0-9]+", text.lower()) or [""])[-1]


def judge_on_runs(records: list, per_system: dict) -> dict[str, float]:
    """The judge on the runs' own answers (reported, not a powering bar): over the answers it
    decided, the share where its verdict equals the rule "the answer's last word or number is
    the gold's (or an alternative's)", which fits the miniature's one-value answers."""
    by_id = {r["interaction_id"]: r for r in records}
    agree, n, positives = 0, 0, 0
    for items in per_system.values():
        for i in items:
            if i.how not in ("judge", "judge-unparsed"):
                continue
            r = by_id[i.interaction_id]
            golds = [r["answer"], *r.get("alt_ans", [])]
            rule = any(_last_token(i.prediction) == _last_token(g) for g in golds)
            said = i.label == "correct"
            agree += said == rule
            positives += said and not rule
            n += 1
    return {
        "judge_agreement_on_runs": agree / n if n else 0.0,
        "judge_false_positive_share_on_runs": positives / n if n else 0.0,
        "judged_answers_on_runs": float(n),
    }


def powering(cfg: Any, seed: int, s: Setup, world: Any, judge: LLMJudge) -> dict[str, float]:
    """The reader's accuracy given the gold sentence (ranked first, then two other facts of the
    entity) and the judge's agreement with exact labels on held-out judged items."""
    rng = random.Random(f"gold|{seed}")
    prompts, golds = [], []
    for i in range(cfg.n_gold):
        domain = DOMAINS[i % len(DOMAINS)]
        q = make_question(world, "simple", domain, POPULARITY[i % 3], rng)
        e, a = q["paperlab"]["entities"][0], q["paperlab"]["attribute"]
        others = [x.name for x in ATTRIBUTES[domain] if x.name != a]
        # the gold sentence ranked first, as retrieval ranks it, then two other facts
        refs = [sentence(e, a, q["answer"])]
        refs += [sentence(e, o, world.value(e, o, QUERY_DAY)) for o in rng.sample(others, 2)]
        prompts.append(answer_messages(q["query"], "", refs, style=s.style))
        golds.append(q["answer"])

    async def read_all():
        import asyncio

        outs = await asyncio.gather(
            *(
                s.client.chat(s.reader, m, temperature=0.0, max_tokens=s.answer_tokens)
                for m in prompts
            )
        )
        return [o.text.strip().lower() for o in outs]

    replies = s.client.run(read_all())
    reader_acc = sum(r == g for r, g in zip(replies, golds, strict=True)) / len(golds)
    items = [
        miniature.judged_item(random.Random(f"judge-eval|{seed}|{i}"))
        for i in range(cfg.n_judge_items)
    ]

    async def judge_all():
        import asyncio

        return await asyncio.gather(*(judge(q, g, p) for q, g, p, _ in items))

    verdicts = s.client.run(judge_all())
    agree = sum(v == it[3] for v, it in zip(verdicts, items, strict=True)) / len(items)
    return {"reader_gold_accuracy": reader_acc, "judge_agreement": agree}


# ---------------------------------------------------------------------------------------------
# Claims

SYSTEM_KEYS = {
    "rag_vs_llm": ("rag_", "llm_only_"),
    "kg_gain": ("kg_covered_", "rag_kg_score", "rag_score"),
    "dynamism": ("rag_", "rag_kg_", "llm_only_"),
    "popularity": ("rag_", "rag_kg_", "llm_only_"),
}


def run_system_claim(ctx: RunContext, *, claim: str) -> dict[str, float]:
    """The figures of one of the system claims (with the powering figures)."""
    ev = evaluate(ctx)
    keep = SYSTEM_KEYS[claim]
    picked = {k: v for k, v in ev.items() if k.startswith(keep) or k == "kg_covered_n"}
    for key in ("reader_gold_accuracy", "judge_agreement", "judge_agreement_on_runs"):
        picked[key] = ev[key]
    return picked


def run_scorer(ctx: RunContext) -> dict[str, float]:
    """Our scorer and the official script's logic on the hand-labelled set, per kind."""
    s = setup(ctx)
    judge = LLMJudge(s.client, s.judge, style=s.style, max_tokens=s.judge_tokens)

    async def label_all():
        import asyncio

        ours = await asyncio.gather(
            *(
                score_answer(c.query, c.answer, c.alt_ans, c.prediction, judge=judge)
                for c in labelled.CASES
            )
        )
        official = await asyncio.gather(
            *(
                official_script_label(c.query, c.answer, c.alt_ans, c.prediction, judge=judge)
                for c in labelled.CASES
            )
        )
        return [label for label, _ in ours], official

    ours, official = s.client.run(label_all())
    out: dict[str, float] = {}
    for kind in labelled.KINDS:
        idx = [i for i, c in enumerate(labelled.CASES) if c.kind == kind]
        out[f"{kind}_agreement"] = sum(ours[i] == labelled.CASES[i].label for i in idx) / len(idx)
    n = len(labelled.CASES)
    out["official_agreement"] = (
        sum(o == c.label for o, c in zip(official, labelled.CASES, strict=True)) / n
    )
    out["judge_agreement"] = evaluate(ctx)["judge_agreement"]
    return out
