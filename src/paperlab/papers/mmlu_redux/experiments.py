"""The claims' runs (claims.py declares them).

- `run_rankings`: per subject, clean records corrupted at the subject's error rate (the paper's
  Virology rate for one subject, its overall MMLU estimate for the others, the paper's mix of
  types), answered by models of known skill, scored on the original labels vs the ok subset;
  Kendall tau and rank moves per subject, over several corruption seeds.
- `run_detection`: a test pool corrupted with the paper's mix (0.1 per error type); the tiny
  detector, served by `paperlab serve` and called through the LLM layer, under each detection
  program (with and without MiniLM retrieval), and the heuristic baseline; P/R/F1/F2.
"""

from __future__ import annotations

import random
from dataclasses import asdict
from typing import Any

import numpy as np

from paperlab.claims import RunContext
from paperlab.core.llm.client import LLMClient
from paperlab.core.llm.local import serve_chat_models, trained_chat_zoo
from paperlab.core.llm.tiny import TinyChatConfig, save_chat_model, train_chat_model
from paperlab.papers.mmlu_redux.corrupt import corrupt, corrupt_records
from paperlab.papers.mmlu_redux.detect import (
    detect_all,
    detection_metrics,
    flat_metrics,
    heuristic_detect,
)
from paperlab.papers.mmlu_redux.rescore import rescore, scores
from paperlab.papers.mmlu_redux.taxonomy import ERROR_TYPES, OK, PAPER_MIX
from paperlab.papers.mmlu_redux.world import (
    World,
    answerers,
    clean_record,
    clean_records,
    detector,
    detector_tasks,
    make_world,
    name_of,
)


def get_world(ctx: RunContext) -> World:
    cfg = ctx.config
    return ctx.shared("world", lambda: make_world(cfg.subjects, cfg.per_subject, seed=ctx.seed))


# ---------------------------------------------------------------------------------------------
# Re-scoring


def subject_rates(cfg: Any, subject: str) -> dict[str, float]:
    """The error-type rates of a subject: its total error rate, split evenly over the types."""
    total = cfg.high_error_rate if subject == cfg.subjects[0] else cfg.low_error_rate
    return {t: total / len(ERROR_TYPES) for t in ERROR_TYPES}


def run_rankings(ctx: RunContext) -> dict[str, float]:
    cfg, world = ctx.config, get_world(ctx)
    clean = clean_records(world, seed=ctx.seed)
    models = answerers(world, cfg.answerer_shares, seed=ctx.seed)
    clean_acc = [scores(clean, m.answer(clean))["original"] for m in models]
    high, lows = cfg.subjects[0], cfg.subjects[1:]
    taus: dict[str, list[float]] = {s: [] for s in cfg.subjects}
    moved: dict[str, list[float]] = {s: [] for s in cfg.subjects}
    rates: dict[str, list[float]] = {s: [] for s in cfg.subjects}
    tau_all = []
    for k in range(cfg.rescore_seeds):
        records = []
        for s in cfg.subjects:
            part = [r for r in clean if r.subject == s]
            part = corrupt_records(part, subject_rates(cfg, s), seed=ctx.seed * 1000 + k)
            answers = {m.name: m.answer(part) for m in models}
            out = rescore(part, answers)
            taus[s].append(out["kendall_tau"])
            moved[s].append(out["n_moved"])
            rates[s].append(out["error_rate"])
            records += part
        everything = rescore(records, {m.name: m.answer(records) for m in models})
        tau_all.append(everything["kendall_tau"])
    low_taus = [t for s in lows for t in taus[s]]
    m = {
        "tau_high": float(np.mean(taus[high])),
        "tau_high_min": float(np.min(taus[high])),
        "tau_high_max": float(np.max(taus[high])),
        "tau_low": float(np.mean(low_taus)),
        "tau_low_min": float(np.min(low_taus)),
        "tau_all": float(np.mean(tau_all)),
        "moved_high": float(np.mean(moved[high])),
        "moved_low": float(np.mean([v for s in lows for v in moved[s]])),
        "error_rate_high": float(np.mean(rates[high])),
        "error_rate_low": float(np.mean([v for s in lows for v in rates[s]])),
        "skill_spread": float(max(clean_acc) - min(clean_acc)),
        "models": float(len(models)),
        "seeds": float(cfg.rescore_seeds),
    }
    ctx.notes["high_subject"] = high
    from paperlab.papers.mmlu_redux.plots import plot_taus

    plot_taus(ctx, taus, high)
    return m


# ---------------------------------------------------------------------------------------------
# Detection


def detector_config(cfg: Any) -> TinyChatConfig:
    return TinyChatConfig(
        dim=cfg.dim,
        n_layers=cfg.n_layers,
        n_heads=cfg.n_heads,
        max_seq_len=cfg.max_seq_len,
        steps=cfg.detector_steps,
        batch_size=cfg.batch_size,
        lr=cfg.lr,
    )


def detector_dirs(ctx: RunContext) -> list:
    cfg, world = ctx.config, get_world(ctx)
    tcfg = detector_config(cfg)
    spec = {
        "model": asdict(tcfg),
        "world": [cfg.subjects, cfg.per_subject],
        "seed": ctx.seed,
        "recipe": ["compact layout, balanced passage mix", cfg.reading_weight],
    }

    def train(folder):
        model = train_chat_model(
            detector_tasks(world, cfg.reading_weight),
            tcfg,
            seed=ctx.seed,
            device=ctx.device,
            progress=ctx.progress,
            desc="mmlu-redux: detector",
        )
        return [save_chat_model(model.cpu(), folder / "detector", "detector")]

    return trained_chat_zoo(ctx.cache, "mmlu-redux-detector", spec, train)


def test_pool(cfg: Any, world: World, seed: int) -> list:
    """The detection test set: records of random facts with the paper's mix of errors."""
    rng = random.Random(seed + 77)
    facts = rng.sample(world.facts, min(cfg.n_test, len(world.facts)))
    subject_of = {f.name: s for s, fs in world.subjects.items() for f in fs}
    clean = [clean_record(f, subject_of[f.name], rng) for f in facts]
    return corrupt_records(clean, PAPER_MIX, seed=seed + 78)


def few_shot_example(world: World, seed: int, with_context: bool):
    """The one solved example of the few-shot programs: a wrong ground truth when retrieval
    can show it, else an ok record."""
    rng = random.Random(seed + 79)
    fact = rng.choice(world.facts)
    record = clean_record(fact, "", rng)
    return corrupt(record, "wrong_groundtruth", rng) if with_context else record


def run_detection(ctx: RunContext) -> dict[str, float]:
    from paperlab.core.embed import MiniLM, top_k

    cfg, world = ctx.config, get_world(ctx)
    test = test_pool(cfg, world, ctx.seed)
    truth = [r.error_type for r in test]
    m: dict[str, float] = {"n_test": float(len(test))}
    m.update(flat_metrics(detection_metrics(truth, [heuristic_detect(r) for r in test]), "heur"))

    passages = world.passages()
    if cfg.retrieval == "minilm":
        embedder = MiniLM(device=ctx.device)

        def retrieve(question: str) -> list[str]:  # MiniLM caches the embeddings
            return top_k(question, passages, embedder, k=1)

    else:  # the smoke scale: word overlap, no model to load

        def retrieve(question: str) -> list[str]:
            words = set(question.lower().replace("?", " ").split())
            return [max(passages, key=lambda p: len(words & set(p.lower().split())))]

    retrieved = {r.question: retrieve(r.question) for r in test}
    named = [r for r in test if name_of(r.question)]
    hits = [any(f" {name_of(r.question)} " in p for p in retrieved[r.question]) for r in named]
    m["retrieval_hit"] = sum(hits) / max(1, len(hits))

    server = serve_chat_models(ctx.cache, detector_dirs(ctx), threads=1)
    client = LLMClient(server.config())
    for method in cfg.methods:
        for with_context in (False, True):
            retriever = retrieve if with_context else None
            shots = [few_shot_example(world, ctx.seed, with_context)]
            d = detector(method, world, shots=shots, retriever=retriever)
            found = client.run(detect_all(client, "detector", d, test, concurrency=cfg.concurrency))
            metrics = detection_metrics(truth, [f.label for f in found])
            name = d.name.replace("+", "_")
            m[f"{name}_f2"] = metrics["overall"]["f2"]
            m[f"{name}_exact"] = metrics["overall"]["exact"]
            m[f"{name}_wrong_groundtruth_f2"] = metrics["wrong_groundtruth"]["f2"]
            # ok records the program leaves ok: a detector that flags every record with a
            # passage scores wrong-ground-truth F2 without comparing anything
            ok = [f.label == OK for f, t in zip(found, truth, strict=True) if t == OK]
            m[f"{name}_ok_kept"] = sum(ok) / max(1, len(ok))
            m[f"{name}_parsed"] = sum(f.label is not None for f in found) / len(found)
    plain = [k for k in m if k.endswith("_f2") and not k.startswith("heur") and "wrong" not in k]
    best = max(plain, key=lambda k: m[k])
    ctx.notes["best_detector"] = best.removesuffix("_f2")
    m["best_f2"] = m[best]
    m["best_exact"] = m[best.removesuffix("_f2") + "_exact"]
    without = [k for k in m if k.endswith("_wrong_groundtruth_f2") and "retrieval" not in k]
    with_r = [k for k in m if k.endswith("_wrong_groundtruth_f2") and "retrieval" in k]
    m["wrong_gt_f2_without_retrieval"] = max(m[k] for k in without)
    m["wrong_gt_f2_with_retrieval"] = max(m[k] for k in with_r)
    best_r = max(with_r, key=lambda k: m[k]).removesuffix("_wrong_groundtruth_f2")
    m["ok_kept_with_retrieval"] = m[f"{best_r}_ok_kept"]
    from paperlab.papers.mmlu_redux.plots import plot_detection

    plot_detection(ctx, m, list(cfg.methods))
    return m
