"""TransNAR's experiments: one run trains the NAR (phase 1) in this process, then TransNAR and
the baseline (phase 2) in two worker processes, and scores greedy decodes of held-out
instances at every eval size; the three claims share it.

Trained state goes through the run's cache (``ctx.shared``): the frozen NAR as a module
(:class:`~paperlab.core.artifacts.ModuleCodec`) keyed by the fields phase 1 reads, and the
phase-2 results (scores, histories, parameter counts) as JSON keyed by the fields both phases
read; a second ``paperlab reproduce transnar`` with the same config reads both from the disk
cache and trains nothing.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from paperlab.claims import RunContext
from paperlab.core.artifacts import JSONCodec, ModuleCodec
from paperlab.core.device import torch_threads
from paperlab.core.parallel import run_jobs
from paperlab.papers.transnar.clrs import sample_many
from paperlab.papers.transnar.nar import NAR
from paperlab.papers.transnar.plots import plot_loss, plot_nar, plot_scores
from paperlab.papers.transnar.training import (
    METRICS,
    fit_text_model,
    pretrain_nar,
    text_examples,
)

NAR_FIELDS = (
    "algorithms",
    "train_sizes",
    "eval_sizes",
    "nar_hidden",
    "triplet_dim",
    "nar_pool",
    "nar_steps",
    "nar_batch",
    "nar_lr",
    "threads",
)
TEXT_FIELDS = (
    "n_train",
    "n_eval",
    "dim",
    "n_layers",
    "n_heads",
    "ffn_hidden",
    "steps",
    "batch_size",
    "lr",
    "randomized_positions",
    "max_position",
)


def fields(cfg: Any, names: tuple[str, ...]) -> dict[str, Any]:
    return {k: getattr(cfg, k) for k in names}


def trained_nar(ctx: RunContext) -> tuple[NAR, dict[str, float]]:
    """Phase 1: the frozen NAR and its accuracy per algorithm and eval size (once per spec)."""
    cfg = ctx.config

    def build() -> tuple[NAR, dict[str, float]]:
        with torch_threads(cfg.threads):
            return pretrain_nar(cfg, ctx.seed, progress=ctx.progress, device=ctx.device)

    def fresh() -> NAR:
        return NAR(algorithms=cfg.algorithms, hidden=cfg.nar_hidden, triplet_dim=cfg.triplet_dim)

    codec = ModuleCodec(build=fresh, kind="transnar-nar")
    nar, acc = ctx.shared("transnar-nar", build, spec=fields(cfg, NAR_FIELDS), codec=codec)
    return nar.to(ctx.device).requires_grad_(False), acc  # the disk cache loads on the CPU


def train_text_models(ctx: RunContext) -> dict[str, Any]:
    """Phase 2 as two jobs: TransNAR and the baseline trained on the same texts and scored on
    the same held-out texts. JSON-able: the trained weights are not kept."""
    cfg, seed = ctx.config, ctx.seed
    # on an accelerator the two trainings run in this process, one after the other: forked
    # workers cannot reuse a CUDA context, and models this small do not share a GPU usefully
    workers = cfg.workers if ctx.device == "cpu" else 1
    nar, nar_acc = trained_nar(ctx)
    with torch_threads(cfg.threads):
        train_set = text_examples(
            sample_many(cfg.algorithms, cfg.train_sizes, cfg.n_train, seed + 1), nar
        )
        eval_set = []
        for i, n in enumerate(cfg.eval_sizes):
            count = cfg.n_eval * len(cfg.algorithms)
            eval_set += text_examples(sample_many(cfg.algorithms, (n,), count, seed + 2 + i), nar)
    jobs = [
        (
            fit_text_model,
            dict(
                cfg=cfg,
                cross_attention=xattn,
                train_set=train_set,
                eval_set=eval_set,
                seed=seed,
                progress=ctx.progress and workers <= 1,
                device=ctx.device,
            ),
        )
        for xattn in (True, False)
    ]
    results = run_jobs(
        jobs,
        workers=workers,
        threads=cfg.threads,
        progress=ctx.progress and workers > 1,
        desc="transnar: phase 2",
    )
    out: dict[str, Any] = {"nar_acc": nar_acc}
    for name, r in zip(("transnar", "baseline"), results, strict=True):
        out[name] = {k: v for k, v in r.items() if k != "state"}
    return out


def models(ctx: RunContext) -> dict[str, Any]:
    """The phase-1 accuracies and phase-2 results of this run (trained once per spec)."""
    spec = fields(ctx.config, NAR_FIELDS + TEXT_FIELDS)
    return ctx.shared("transnar-text", lambda: train_text_models(ctx), spec=spec, codec=JSONCodec())


def mean_over(scores: dict, metric: str, cfg: Any, sizes: tuple[int, ...]) -> float:
    return float(np.mean([scores[f"{metric}_{a}_n{n}"] for a in cfg.algorithms for n in sizes]))


def text_figures(ctx: RunContext, results: dict[str, Any]) -> dict[str, float]:
    """Each metric of both models in and out of distribution, and the CLRS-score gains."""
    cfg = ctx.config
    m: dict[str, float] = {}
    for name in ("transnar", "baseline"):
        scores = results[name]["scores"]["scores"]
        for metric in METRICS:
            for split, sizes in (("id", cfg.id_sizes), ("ood", cfg.ood_sizes)):
                m[f"{metric}_{name}_{split}"] = mean_over(scores, metric, cfg, sizes)
        m[f"params_{name}"] = results[name]["params"]
        m[f"train_seconds_{name}"] = results[name]["train_seconds"]
        m[f"final_loss_{name}"] = results[name]["history"]["loss"][-1]
    for split in ("id", "ood"):
        m[f"clrs_gain_{split}"] = m[f"clrs_transnar_{split}"] - m[f"clrs_baseline_{split}"]
    m["ood_minus_id_gain"] = m["clrs_gain_ood"] - m["clrs_gain_id"]
    ctx.notes["samples"] = {k: results[k]["scores"]["samples"] for k in ("transnar", "baseline")}
    ctx.notes["per_size"] = {k: results[k]["scores"]["scores"] for k in ("transnar", "baseline")}
    return m


def nar_figures(cfg: Any, acc: dict[str, float]) -> dict[str, float]:
    """The NAR's accuracy per algorithm and size, its means in and out of distribution, and
    their ratio."""
    m = dict(acc)
    for split, sizes in (("id", cfg.id_sizes), ("ood", cfg.ood_sizes)):
        values = [acc[f"nar_acc_{a}_n{n}"] for a in cfg.algorithms for n in sizes]
        m[f"nar_acc_{split}"] = float(np.mean(values))
    m["nar_ood_over_id"] = m["nar_acc_ood"] / max(m["nar_acc_id"], 1e-9)
    return m


# ---------------------------------------------------------------------------------------------


def run_nar_ood(ctx: RunContext) -> dict[str, float]:
    acc = models(ctx)["nar_acc"]
    plot_nar(ctx, ctx.config, acc)
    return nar_figures(ctx.config, acc)


def run_in_distribution(ctx: RunContext) -> dict[str, float]:
    results = models(ctx)
    plot_loss(ctx, results)
    return text_figures(ctx, results)


def run_out_of_distribution(ctx: RunContext) -> dict[str, float]:
    results = models(ctx)
    plot_scores(ctx, ctx.config, results)
    return text_figures(ctx, results)
