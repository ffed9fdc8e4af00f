"""The claims' runs: the shared image-LLM, the video runs per (pooling, seed), the judges.

Everything trained goes through ``ctx.shared`` with a codec, so a second ``reproduce`` loads
the image-LLM and the video models from the disk cache (the video data and frame features are
rebuilt: procedural and a few seconds).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from paperlab.claims import RunContext, Verdict
from paperlab.core.artifacts import JSONCodec, ModuleCodec
from paperlab.core.device import torch_threads
from paperlab.core.imagellm import ImageLLM
from paperlab.papers.pllava import plots
from paperlab.papers.pllava.data import CHANCE
from paperlab.papers.pllava.model import PLLaVA
from paperlab.papers.pllava.runs import (
    evaluate_video,
    image_llm_config,
    image_spec,
    make_video_data,
    train_image_model,
    train_video,
)

VIDEO_FIELDS = (
    "raw_frames",
    "video_train",
    "video_test",
    "caption_frac",
    "lora_r",
    "lora_alpha",
    "video_steps",
    "video_lr",
    "evals",
)


# ---------------------------------------------------------------------------------------------
# Shared artifacts


def _threads(run: Callable[..., dict[str, float]]) -> Callable[..., dict[str, float]]:
    """Run a claim with ``cfg.threads`` torch threads."""

    @functools.wraps(run)
    def wrapped(ctx: RunContext, **kw: Any) -> dict[str, float]:
        with torch_threads(ctx.config.threads):
            return run(ctx, **kw)

    return wrapped


def image_model(ctx: RunContext) -> tuple[ImageLLM, dict[str, float]]:
    cfg = ctx.config
    return ctx.shared(
        "pllava-image-llm",
        lambda: train_image_model(cfg, ctx.seed, device=ctx.device, progress=ctx.progress),
        spec=image_spec(cfg),
        codec=ModuleCodec(build=lambda: ImageLLM(image_llm_config(cfg)), kind="pllava-image-llm"),
    )


def video_data(ctx: RunContext):
    cfg = ctx.config
    base, _ = image_model(ctx)
    spec = image_spec(cfg) | {
        k: getattr(cfg, k) for k in ("raw_frames", "video_train", "video_test")
    }
    return ctx.shared("pllava-video-data", lambda: make_video_data(cfg, base, ctx.seed), spec=spec)


def pooling_of(cfg: Any, variant: str) -> tuple[int, int, int] | None:
    return {"nopool": None, "pool": cfg.spatial_pool, "temporal": cfg.temporal_pool}[variant]


def video_run(ctx: RunContext, variant: str, k: int) -> tuple[PLLaVA, dict[str, Any]]:
    """The PLLaVA model of ``variant`` ("nopool", "pool", "temporal") for seed ``ctx.seed + k``,
    with its evaluation curve (before tuning, then every ``video_steps // evals`` steps)."""
    cfg = ctx.config
    pooling = pooling_of(cfg, variant)
    seed = ctx.seed + k

    def build() -> tuple[PLLaVA, dict[str, Any]]:
        base, _ = image_model(ctx)
        model, curve = train_video(
            base,
            video_data(ctx),
            cfg,
            pooling_shape=pooling,
            seed=seed,
            device=ctx.device,
            progress=ctx.progress,
        )
        return model.cpu(), curve

    settings = dict(
        image_llm=image_llm_config(cfg).__dict__,
        num_frames=cfg.num_frames,
        pooling_shape=pooling,
        lora_r=cfg.lora_r,
        lora_alpha=cfg.lora_alpha,
    )
    spec = image_spec(cfg) | {k_: getattr(cfg, k_) for k_ in VIDEO_FIELDS}
    spec |= {"pooling": pooling, "seed": seed}
    return ctx.shared(
        "pllava-video",
        build,
        spec=spec,
        codec=ModuleCodec(build=lambda: PLLaVA.from_settings(settings), kind="pllava-video"),
    )


def runs(ctx: RunContext, variant: str) -> list[dict[str, Any]]:
    return [video_run(ctx, variant, k)[1] for k in range(ctx.config.seeds)]


# ---------------------------------------------------------------------------------------------
# Helpers


def final(curves: list[dict[str, Any]], key: str) -> np.ndarray:
    return np.array([c[f"eval_{key}"][-1] for c in curves])


def late_gain(curve: dict[str, Any]) -> float:
    """Accuracy at the end minus at the evaluation nearest half the training."""
    seen = curve["samples_seen"]
    mid = min(range(len(seen)), key=lambda i: abs(seen[i] - seen[-1] / 2))
    return curve["eval_acc"][-1] - curve["eval_acc"][mid]


def band(a: np.ndarray, b: np.ndarray, n_test: int, min_gap: float) -> float:
    """max(min_gap, 2 s.e.) of mean(a - b): the larger of the seed spread and the binomial
    noise of two accuracies on ``n_test`` clips."""
    d = a - b
    se_seed = float(np.std(d, ddof=1) / math.sqrt(len(d))) if len(d) > 1 else 0.0
    var = np.mean(a * (1 - a) + b * (1 - b)) / n_test
    se_test = math.sqrt(var / len(d))
    return max(min_gap, 2 * max(se_seed, se_test))


def power(ctx: RunContext) -> dict[str, float]:
    _, info = image_model(ctx)
    chance = float(np.mean([CHANCE[q] for q in ("colour", "shape", "where")]))
    return {"image_acc": info["image_acc"], "image_chance": chance} | {
        k: v for k, v in info.items() if k.startswith("image_acc_")
    }


def _unpowered(m: Mapping[str, float], need: float) -> tuple[Verdict, str] | None:
    if m["image_acc"] < need:
        return "inconclusive", (
            f"not powered: the image-LLM answers {m['image_acc']:.2f} of single-image questions "
            f"(chance {m['image_chance']:.2f}, need {need})"
        )
    return None


# ---------------------------------------------------------------------------------------------
# (1) pooling vs the n-frame baseline as data grows


@_threads
def run_pooling_data(ctx: RunContext) -> dict[str, float]:
    cfg = ctx.config
    pool, nopool = runs(ctx, "pool"), runs(ctx, "nopool")
    a, b = final(pool, "acc"), final(nopool, "acc")
    out = power(ctx)
    out |= {"acc_pool": float(a.mean()), "acc_nopool": float(b.mean())}
    out["gap"] = float((a - b).mean())
    out["band"] = band(a, b, cfg.video_test, 0.0)
    out["late_gain_pool"] = float(np.mean([late_gain(c) for c in pool]))
    out["late_gain_nopool"] = float(np.mean([late_gain(c) for c in nopool]))
    out["acc_chance"] = float(np.mean([CHANCE[t] for t in ("motion", "order", "count")]))
    for t in ("motion", "order", "count"):
        out[f"acc_{t}_pool"] = float(final(pool, f"acc_{t}").mean())
        out[f"acc_{t}_nopool"] = float(final(nopool, f"acc_{t}").mean())
    plots.curves(ctx, {"pooled": pool, "unpooled": nopool})
    return out


def judge_pooling_data(m: Mapping[str, float], *, power: float, min_gap: float):
    if (bad := _unpowered(m, power)) is not None:
        return bad
    b = max(m["band"], min_gap)
    text = (
        f"pooled - unpooled final accuracy {m['gap']:+.3f} (band {b:.3f}); late gain pooled "
        f"{m['late_gain_pool']:+.3f}, unpooled {m['late_gain_nopool']:+.3f}"
    )
    if m["gap"] <= -b:
        return "fails", text + " -> the unpooled model ends ahead"
    if m["gap"] >= b and m["late_gain_nopool"] < m["late_gain_pool"]:
        return "holds", text
    return "inconclusive", text + " -> within noise, or the unpooled model still gains as much"


# ---------------------------------------------------------------------------------------------
# (2) dominant tokens


@_threads
def run_dominant_tokens(ctx: RunContext) -> dict[str, float]:
    out = power(ctx)
    for variant in ("pool", "nopool"):
        curves = runs(ctx, variant)
        ratio0 = np.array([c["eval_norm_max_over_median"][0] for c in curves])
        ratio = final(curves, "norm_max_over_median")
        out[f"ratio0_{variant}"] = float(ratio0.mean())
        out[f"ratio_{variant}"] = float(ratio.mean())
        out[f"growth_{variant}"] = float((ratio / ratio0).mean())
        out[f"norm_mean_{variant}"] = float(final(curves, "norm_mean").mean())
    plots.norms(ctx, {v: video_run(ctx, v, 0)[0] for v in ("nopool", "pool")}, video_data(ctx))
    return out


def judge_dominant(m: Mapping[str, float], *, power: float, growth: float):
    if (bad := _unpowered(m, power)) is not None:
        return bad
    g_np, g_p = m["growth_nopool"], m["growth_pool"]
    text = f"max/median norm ratio grows x{g_np:.2f} unpooled vs x{g_p:.2f} pooled"
    if g_np >= growth * g_p:
        return "holds", text
    if g_np <= g_p:
        return "fails", text + " -> no dominant tokens beyond the pooled model's"
    return "inconclusive", text + f" -> above the pooled growth, below x{growth} of it"


# ---------------------------------------------------------------------------------------------
# (3) answer length


@_threads
def run_answer_length(ctx: RunContext) -> dict[str, float]:
    out = power(ctx)
    pool, nopool = runs(ctx, "pool"), runs(ctx, "nopool")
    out["len_pool"] = float(final(pool, "caption_len").mean())
    out["len_nopool"] = float(final(nopool, "caption_len").mean())
    out["len_ref"] = float(final(pool, "caption_ref_len").mean())
    out["caption_score_pool"] = float(final(pool, "caption_score").mean())
    out["caption_score_nopool"] = float(final(nopool, "caption_score").mean())
    return out


def judge_length(m: Mapping[str, float], *, power: float, drop: float):
    if (bad := _unpowered(m, power)) is not None:
        return bad
    ratio = m["len_nopool"] / max(m["len_pool"], 1e-9)
    text = f"unpooled captions are {ratio:.2f}x the pooled length ({m['len_nopool']:.1f} bytes)"
    if ratio <= 1 - drop:
        return "holds", text
    if ratio >= 1:
        return "fails", text + " -> not shorter"
    return "inconclusive", text + f" -> shorter by less than {drop:.0%}"


# ---------------------------------------------------------------------------------------------
# (4) LoRA alpha at evaluation


def alpha_sweep(ctx: RunContext, k: int, alphas: tuple[float, ...]) -> dict[str, list[float]]:
    """Caption score and QA accuracy of the pooled model of seed ``k`` at each evaluation
    alpha (paper units: alpha * r / 128 is set on the adapters)."""
    cfg = ctx.config

    def build() -> dict[str, list[float]]:
        model, _ = video_run(ctx, "pool", k)
        data = video_data(ctx)
        out: dict[str, list[float]] = {"score": [], "acc": [], "len": []}
        try:
            for a in alphas:
                model.set_lora_alpha(a * cfg.lora_r / 128)
                m = evaluate_video(model.to(ctx.device), data, cfg)
                out["score"].append(m["caption_score"])
                out["acc"].append(m["acc"])
                out["len"].append(m["caption_len"])
        finally:
            model.set_lora_alpha(cfg.lora_alpha)
            model.cpu()
        return out

    spec = image_spec(cfg) | {k_: getattr(cfg, k_) for k_ in VIDEO_FIELDS}
    spec |= {"alphas": alphas, "seed": ctx.seed + k, "pool": cfg.spatial_pool}
    return ctx.shared("pllava-alpha-sweep", build, spec=spec, codec=JSONCodec())


@_threads
def run_lora_alpha(ctx: RunContext, *, train_alpha: float) -> dict[str, float]:
    cfg = ctx.config
    alphas = tuple(sorted(set(cfg.eval_alphas) | {train_alpha}))
    sweeps = [alpha_sweep(ctx, k, alphas) for k in range(cfg.seeds)]
    score = np.array([s["score"] for s in sweeps])  # (seeds, alphas)
    acc = np.array([s["acc"] for s in sweeps])
    out = power(ctx)
    for i, a in enumerate(alphas):
        out[f"score_alpha_{a:g}"] = float(score[:, i].mean())
        out[f"acc_alpha_{a:g}"] = float(acc[:, i].mean())
    t = alphas.index(train_alpha)
    lower = [i for i, a in enumerate(alphas) if a < train_alpha]
    best = max(lower, key=lambda i: score[:, i].mean()) if lower else t
    out["best_alpha"] = alphas[best]
    out["gain"] = float((score[:, best] - score[:, t]).mean())
    d = score[:, best] - score[:, t]
    n_caps = len(range(0, cfg.video_test, 3))  # the motion clips (tasks in turn) have captions
    se_seed = float(np.std(d, ddof=1) / math.sqrt(len(d))) if len(d) > 1 else 0.0
    se_test = math.sqrt(0.25 * 2 / max(n_caps, 1) / len(d))  # score in [0, 1]: var <= 1/4
    out["band"] = 2 * max(se_seed, se_test)
    ctx.notes["alpha_text"] = ", ".join(
        f"{a:g}: {score[:, i].mean():.3f}" for i, a in enumerate(alphas)
    )
    ctx.notes["acc_alpha_text"] = ", ".join(
        f"{a:g}: {acc[:, i].mean():.3f}" for i, a in enumerate(alphas)
    )
    plots.alpha(ctx, alphas, score.mean(0), acc.mean(0))
    return out


def judge_alpha(m: Mapping[str, float], *, power: float, min_gain: float, train_alpha: float):
    if (bad := _unpowered(m, power)) is not None:
        return bad
    b = max(m["band"], min_gain)
    text = (
        f"best lower alpha {m['best_alpha']:g}: caption score {m['gain']:+.3f} over alpha "
        f"{train_alpha:g} (band {b:.3f})"
    )
    if m["gain"] <= 0:
        return "fails", text + " -> the training alpha scores best"
    return ("holds", text) if m["gain"] >= b else ("inconclusive", text + " -> within noise")


# ---------------------------------------------------------------------------------------------
# (5) spatial vs temporal pooling


@_threads
def run_spatial_vs_temporal(ctx: RunContext) -> dict[str, float]:
    cfg = ctx.config
    spatial, temporal = runs(ctx, "pool"), runs(ctx, "temporal")
    a, b = final(spatial, "acc"), final(temporal, "acc")
    out = power(ctx)
    out |= {"acc_spatial": float(a.mean()), "acc_temporal": float(b.mean())}
    out["gap"] = float((a - b).mean())
    out["band"] = band(a, b, cfg.video_test, 0.0)
    for t in ("motion", "order", "count"):
        out[f"acc_{t}_spatial"] = float(final(spatial, f"acc_{t}").mean())
        out[f"acc_{t}_temporal"] = float(final(temporal, f"acc_{t}").mean())
    return out


def judge_spatial(m: Mapping[str, float], *, power: float, min_gap: float):
    if (bad := _unpowered(m, power)) is not None:
        return bad
    b = max(m["band"], min_gap)
    text = f"spatial - temporal accuracy {m['gap']:+.3f} (band {b:.3f})"
    if m["gap"] >= b:
        return "holds", text
    if m["gap"] <= -b:
        return "fails", text + " -> temporal pooling ahead"
    return "inconclusive", text + " -> within noise"
