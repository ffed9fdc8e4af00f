"""Prometheus 2's experiments in miniature: every evaluator (the shared base, the two experts,
the jointly trained model, the five merges) grades the same held-out absolute items and relative
pairs through `PrometheusJudge`, once per run (shared by the claims through the run's artifact
cache); then one function per claim (`run_<claim>(ctx) -> figures`).

The judge's requests go to `InProcessClient` (the models decoded in batches in this process;
the same outputs as `paperlab serve` for the same requests and seeds, tested) unless
`serve=True`, which grades over HTTP through `paperlab serve` and the real client as a user's
model would be (~10x the CPU: the server decodes one request at a time).
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from paperlab.claims import RunContext
from paperlab.core.llm.client import LLMClient
from paperlab.core.llm.local import serve_chat_models, trained_chat_zoo
from paperlab.core.llm.tiny import load_chat_model
from paperlab.core.stats import pearson
from paperlab.papers.prometheus2 import miniature
from paperlab.papers.prometheus2.inprocess import InProcessClient
from paperlab.papers.prometheus2.judge import PrometheusJudge, SamplingConfig

# the config fields the base depends on (with the seed): its cache key
BASE_FIELDS = (
    "dim",
    "n_layers",
    "n_heads",
    "max_seq_len",
    "base_steps",
    "base_lr",
    "base_warmup",
    "answer_weight",
    "compare_weight",
    "batch_size",
)
# ... the base after its format stage
FORMAT_FIELDS = (*BASE_FIELDS, "format_steps", "format_lr", "finetune_warmup")
# ... and the fine-tuned evaluators (the experts, the joint model, the merges)
MODEL_FIELDS = (*FORMAT_FIELDS, "expert_steps", "finetune_lr")


INPROCESS_BATCH = 64  # requests decoded together by the in-process client


def base_spec(cfg: Any) -> dict[str, Any]:
    return {name: getattr(cfg, name) for name in BASE_FIELDS}


def format_spec(cfg: Any) -> dict[str, Any]:
    return {name: getattr(cfg, name) for name in FORMAT_FIELDS}


def model_spec(cfg: Any) -> dict[str, Any]:
    return {name: getattr(cfg, name) for name in MODEL_FIELDS}


def shared_base(ctx: RunContext) -> Any:
    """The evaluators' base, pre-trained once per run and kept in the disk cache."""
    from paperlab.core.llm.evaluators import base_codec, pretrain_evaluator_base

    bcfg = ctx.config.base_config()
    base, _ = ctx.shared(
        "prometheus2-base",
        lambda: (
            pretrain_evaluator_base(bcfg, seed=ctx.seed, device=ctx.device, progress=ctx.progress),
            {},
        ),
        spec=base_spec(ctx.config),
        codec=base_codec(bcfg, kind="prometheus2-base"),
    )
    return base


def format_base(ctx: RunContext) -> Any:
    """The shared base after its format stage (`miniature.format_stage`; the base itself when
    `format_steps` is 0), kept in the disk cache: the experts and the joint model start here."""
    from paperlab.core.llm.evaluators import base_codec

    cfg = ctx.config
    if cfg.format_steps == 0:
        return shared_base(ctx)
    fbase, _ = ctx.shared(
        "prometheus2-format-base",
        lambda: (
            miniature.format_stage(
                shared_base(ctx), cfg, ctx.seed, device=ctx.device, progress=ctx.progress
            ),
            {},
        ),
        spec=format_spec(cfg),
        codec=base_codec(cfg.base_config(), kind="prometheus2-format-base"),
    )
    return fbase


def evaluate(ctx: RunContext) -> dict[str, dict[str, float]]:
    """Per evaluator: Pearson with the true scores, pairwise accuracy, parse failures and
    position consistency (shared by the claims)."""
    return ctx.shared("evaluation", lambda: evaluate_all(ctx))


def evaluate_all(ctx: RunContext) -> dict[str, dict[str, float]]:
    cfg, seed = ctx.config, ctx.seed
    dirs = trained_chat_zoo(
        ctx.cache,
        "prometheus2-evaluators",
        (model_spec(cfg), seed),
        lambda folder: miniature.train_evaluators(
            cfg, seed, folder, base=format_base(ctx), device=ctx.device, progress=ctx.progress
        ),
    )
    items = miniature.eval_items(cfg.eval_items, seed)
    pairs = miniature.eval_pairs(cfg.eval_pairs, seed)
    # the official sampling (temperature 1.0, top_p 0.9) unless the config says otherwise;
    # max_tokens fits the miniature's short feedback
    sampling = SamplingConfig(
        temperature=cfg.temperature,
        top_p=0.9,
        max_tokens=56,  # DEVIATION: official 1024; the longest reply is ~45 bytes
        repetition_penalty=1.0,  # paperlab serve ignores it: 1.0 is what the tiny models get
        parse_retries=cfg.parse_retries,
    )
    names = list(miniature.evaluator_names())

    def judge_for(client: LLMClient, name: str, concurrency: int) -> PrometheusJudge:
        return PrometheusJudge(
            client=client,
            model=name,
            sampling=sampling,
            seed=seed,
            absolute_template=miniature.ABSOLUTE_TEMPLATE,
            relative_template=miniature.RELATIVE_TEMPLATE,
            system_prompts=False,
            concurrency=concurrency,
        )

    if not cfg.serve:
        models = {
            name: load_chat_model(d, device=ctx.device)[0]
            for name, d in zip(names, dirs, strict=True)
        }
        # batches of INPROCESS_BATCH requests: the outputs do not depend on the batch (each
        # request is sampled with its own seed), only the CPU does
        client = InProcessClient(models, max_batch=INPROCESS_BATCH)
        return {
            name: grade_with(judge_for(client, name, INPROCESS_BATCH), items, pairs)
            for name in names
        }

    # over HTTP: grading is nearly all server CPU (one model forward per token, one thread a
    # server): `workers` servers, each grading its share of the evaluators, use every core. The
    # figures do not depend on it: every request carries its seed.
    servers = [serve_chat_models(ctx.cache, dirs) for _ in range(min(cfg.workers, len(dirs)))]

    def grade_share(k: int) -> dict[str, dict[str, float]]:
        client = LLMClient(servers[k].config(max_concurrency=cfg.concurrency))
        return {
            name: grade_with(judge_for(client, name, cfg.concurrency), items, pairs)
            for name in names[k :: len(servers)]
        }

    with ThreadPoolExecutor(len(servers)) as pool:
        shares = list(pool.map(grade_share, range(len(servers))))
    graded = {name: figures for share in shares for name, figures in share.items()}
    return {name: graded[name] for name in names}


def grade_with(judge: PrometheusJudge, items: list, pairs: list) -> dict[str, float]:
    """One evaluator's figures on the held-out items and pairs."""
    client = judge.client
    grades = client.run(
        judge.absolute_grade_batch(
            instructions=[i.instruction for i in items],
            responses=[i.response for i in items],
            rubric=miniature.RUBRIC,
            reference_answers=[i.reference for i in items],
        )
    )
    verdicts = client.run(
        judge.relative_grade_batch(
            instructions=[p.a.instruction for p in pairs],
            responses_a=[p.a.response for p in pairs],
            responses_b=[p.b.response for p in pairs],
            rubric=miniature.RUBRIC,
            reference_answers=[p.a.reference for p in pairs],
        )
    )
    scored = [(g.score, i.score) for g, i in zip(grades, items, strict=True) if g.parsed]
    r = pearson(*zip(*scored, strict=True)) if len(scored) >= 3 else math.nan
    # undefined (fewer than 3 parsed scores, or constant ones) counts as no correlation: a
    # figure must be a number (results are stored and compared as JSON)
    # an unparsed verdict counts as wrong (it chose nothing)
    correct = [v.winner == p.label for v, p in zip(verdicts, pairs, strict=True)]
    both = [v.consistent for v in verdicts if v.consistent is not None]
    return {
        "pearson": r if math.isfinite(r) else 0.0,
        "accuracy": sum(correct) / len(correct),
        "abs_parse_failures": sum(not g.parsed for g in grades) / len(grades),
        "rel_parse_failures": sum(not v.parsed for v in verdicts) / len(verdicts),
        "consistency": sum(both) / len(both) if both else 0.0,  # of pairs parsed both ways
        "consistency_pairs": float(len(both)),
    }


def _flat(ev: dict[str, dict[str, float]], name: str, prefix: str) -> dict[str, float]:
    return {f"{prefix}_{k}": v for k, v in ev[name].items()}


def _powering(ev: dict[str, dict[str, float]]) -> dict[str, float]:
    """The powering figures every claim records: each expert on its own format, and the
    shared base's parse rate (the worse of its two formats)."""
    b = ev[miniature.BASE]
    return {
        "expert_pearson": ev["absolute"]["pearson"],
        "expert_accuracy": ev["relative"]["accuracy"],
        "base_parse": 1.0 - max(b["abs_parse_failures"], b["rel_parse_failures"]),
        "base_pearson": b["pearson"],
        "base_accuracy": b["accuracy"],
    }


# ---------------------------------------------------------------------------------------------
# Claims


def run_direct(ctx: RunContext) -> dict[str, float]:
    """The merged evaluator's Pearson with the true scores (Tables 2-3's direct assessment)."""
    from paperlab.papers.prometheus2.plots import plot_evaluators

    ev = evaluate(ctx)
    plot_evaluators(ctx, ev)
    return {**_flat(ev, "merge-linear", "merged"), **_powering(ev)}


def run_unified(ctx: RunContext) -> dict[str, float]:
    """The merged evaluator against each expert on the expert's own format, and each expert
    on the other format (Sec. 5: one model for both formats)."""
    ev = evaluate(ctx)
    m, a, r = ev["merge-linear"], ev["absolute"], ev["relative"]
    return {
        **_powering(ev),
        "merged_pearson": m["pearson"],
        "merged_accuracy": m["accuracy"],
        "absolute_expert_accuracy": a["accuracy"],
        "relative_expert_pearson": r["pearson"],
        # each expert on the other format: does it still write that format?
        "absolute_expert_rel_parse_failures": a["rel_parse_failures"],
        "relative_expert_abs_parse_failures": r["abs_parse_failures"],
        "pearson_gap": m["pearson"] - a["pearson"],
        "accuracy_gap": m["accuracy"] - r["accuracy"],
    }


def run_merge_vs_joint(ctx: RunContext) -> dict[str, float]:
    """Weight merging against joint training on both formats (Sec. 6), and the merge methods
    side by side (reported)."""
    ev = evaluate(ctx)
    out = _powering(ev)
    for name, figures in ev.items():
        if name.startswith("merge-") or name == miniature.JOINT:
            key = name.removeprefix("merge-")
            out[f"{key}_pearson"] = figures["pearson"]
            out[f"{key}_accuracy"] = figures["accuracy"]
            out[f"{key}_consistency"] = figures["consistency"]
            out[f"{key}_parse_failures"] = max(
                figures["abs_parse_failures"], figures["rel_parse_failures"]
            )
    merged = (ev["merge-linear"]["pearson"] + ev["merge-linear"]["accuracy"]) / 2
    joint = (ev[miniature.JOINT]["pearson"] + ev[miniature.JOINT]["accuracy"]) / 2
    out["merged_mean"] = merged
    out["joint_mean"] = joint
    out["merge_gain"] = merged - joint
    return out
