"""The claims' experiments: the world, the captioner, the recaptioned pool, five CLIPs.

Everything trained goes through ``ctx.shared`` with a codec, so a second ``paperlab reproduce
recap`` loads it from the disk cache: the captioner (an ``ImageLLM``), the pool's recaptions
(JSON, written by the real pipeline into a temp folder of PNGs) and one CLIP per mixing
ratio p (with its evaluation in the info dict). The CLIPs train in ``cfg.workers`` processes.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

import numpy as np
import torch

from paperlab.claims import RunContext
from paperlab.core.artifacts import JSONCodec, ModuleCodec
from paperlab.core.clip import (
    CLIP,
    CLIPConfig,
    encode_images,
    encode_texts,
    train_clip,
    zero_shot_classify,
)
from paperlab.core.device import torch_threads
from paperlab.core.imagellm import ImageLLM, ImageLLMConfig, train_image_llm
from paperlab.core.parallel import run_jobs
from paperlab.core.stats import paired_bootstrap
from paperlab.papers.recap import scenes as S
from paperlab.papers.recap.mix import PROMPT, ImageLLMCaptioner, mixed_captions
from paperlab.papers.recap.pipeline import caption_source, read_records
from paperlab.papers.recap.vision import cell_labels, pretrain_vision

# ---------------------------------------------------------------------------------------------
# The world: a web pool with noisy short captions, a small clean subset, a test set


def world(ctx: RunContext) -> dict[str, Any]:
    cfg = ctx.config
    spec = (cfg.pool, cfg.clean, cfg.test, cfg.mismatch)

    def build() -> dict[str, Any]:
        seed = ctx.seed
        pool = S.sample_scenes(cfg.pool, seed=seed)
        clean = S.sample_scenes(cfg.clean, seed=seed + 10_000)
        test = S.sample_scenes(cfg.test, seed=seed + 20_000)
        return {
            "pool": pool,
            "pool_images": S.render_scenes(pool, seed=seed),
            "web": S.web_captions(pool, mismatch=cfg.mismatch, seed=seed),
            "clean": clean,
            "clean_images": S.render_scenes(clean, seed=seed + 10_000),
            "test": test,
            "test_images": S.render_scenes(test, seed=seed + 20_000),
        }

    return ctx.shared("recap-world", build, spec=spec)


# ---------------------------------------------------------------------------------------------
# The captioner and the recaptioned pool


def captioner_config(cfg: Any) -> ImageLLMConfig:
    return ImageLLMConfig(
        image_size=S.IMAGE_SIZE,
        # DEVIATION: 16 px patches, one visual token per cell (LLaVA-1.5: 576 tokens of 14 px);
        # with 8 px patches the tiny captioner did not ground colours and shapes in budget
        patch_size=cfg.cap_patch,
        vit_dim=cfg.cap_dim,
        vit_depth=2,
        vit_heads=4,
        dim=cfg.cap_dim,
        n_layers=cfg.cap_layers,
        n_heads=4,
        max_text_len=len(PROMPT) + 3 + max(S.MAX_CAPTION_BYTES, cfg.max_new_tokens),
        stem_channels=cfg.cap_stem,
    )


def captioner(ctx: RunContext) -> tuple[ImageLLM, dict]:
    cfg = ctx.config
    spec = (cfg.clean, cfg.cap_dim, cfg.cap_layers, cfg.cap_steps, cfg.cap_lr, cfg.max_new_tokens)
    spec += (cfg.cap_patch, cfg.cap_batch, cfg.cap_stem, cfg.cap_renders, cfg.vision_steps)

    def build() -> tuple[ImageLLM, dict]:
        w = world(ctx)
        torch.manual_seed(ctx.seed)
        model = ImageLLM(captioner_config(cfg))
        # DEVIATION: the clean scenes are rendered cfg.cap_renders times with fresh placements
        # and colour jitter (augmentation; the captions stay the same 1000); one render each
        # let the encoder memorise them
        images = torch.cat(
            [w["clean_images"]]
            + [
                S.render_scenes(w["clean"], seed=ctx.seed + 10_000 + 7919 * r)
                for r in range(1, cfg.cap_renders)
            ]
        )
        scenes = list(w["clean"]) * cfg.cap_renders
        with torch_threads(1):  # a model this small is faster on one thread (per-op overhead)
            # DEVIATION: stage 0 (vision.py): the encoder is pre-trained on the clean captions'
            # per-cell objects (LLaVA's CLIP ViT-L/14 comes pre-trained on 400M pairs); then it
            # is frozen while the projector and decoder learn to caption, as in LLaVA-1.5
            vision = pretrain_vision(
                model,
                images,
                cell_labels(scenes),
                steps=cfg.vision_steps,
                batch_size=64,
                lr=cfg.cap_lr,
                seed=ctx.seed,
                device=ctx.device,
                progress=ctx.progress,
            )
            examples = [
                (image, PROMPT, S.long_caption(scene))
                for image, scene in zip(images, scenes, strict=True)
            ]
            history = train_image_llm(
                model,
                examples,
                steps=cfg.cap_steps,
                batch_size=cfg.cap_batch,
                lr=cfg.cap_lr,
                seed=ctx.seed,
                device=ctx.device,
                progress=ctx.progress,
                freeze_vision=True,  # LLaVA-1.5 keeps its vision encoder frozen
                desc="recap: captioner",
            )
        info = {"loss": history["loss"][-1], "seconds": history["seconds"][0]}
        info["vision_cell_acc"] = vision["cell_acc"][-1]
        return model.cpu().eval(), info

    return ctx.shared(
        "recap-captioner",
        build,
        spec=spec,
        codec=ModuleCodec(build=lambda: ImageLLM(captioner_config(cfg)), kind="recap-captioner"),
    )


def recaptions(ctx: RunContext) -> dict[str, Any]:
    """The pool recaptioned through the real pipeline (PNG folder -> caption_source), and the
    captioner's scores on the held-out test scenes against their truth."""
    cfg = ctx.config
    spec = (cfg.pool, cfg.clean, cfg.test, cfg.mismatch, cfg.cap_dim, cfg.cap_layers)
    spec += (cfg.cap_steps, cfg.cap_lr, cfg.max_new_tokens, cfg.caption_batch, cfg.cap_patch)
    spec += (cfg.cap_batch, cfg.cap_stem, cfg.cap_renders, cfg.vision_steps)

    def build() -> dict[str, Any]:
        from paperlab.core.data.image_io import save_png

        w = world(ctx)
        model, _ = captioner(ctx)
        cap = ImageLLMCaptioner(model.to(ctx.device), max_new_tokens=cfg.max_new_tokens)
        folder = ctx.cache.tempdir("recap-pool-")
        src = folder / "pool"
        src.mkdir()
        for i, (image, text) in enumerate(zip(w["pool_images"], w["web"], strict=True)):
            save_png(image, src / f"{i:06d}.png")
            (src / f"{i:06d}.txt").write_text(text)
        with torch_threads(1):
            summary = caption_source(
                src,
                folder / "recap",
                cap,
                image_size=S.IMAGE_SIZE,
                batch_size=cfg.caption_batch,
                shard_size=max(1, cfg.pool // 4),
                progress=ctx.progress,
            )
        by_key = {r["key"]: r["re_caption"] for r in read_records(folder / "recap")}
        pool_re = [by_key[f"{i:06d}"] for i in range(cfg.pool)]
        test_re = []
        for lo in range(0, cfg.test, cfg.caption_batch):
            test_re += cap(w["test_images"][lo : lo + cfg.caption_batch])
        model.cpu()
        return {
            "pool_recaptions": pool_re,
            "test_recaptions": test_re,
            "images_per_second": summary.images_per_second,
            "unreadable": len(summary.unreadable),
        }

    return ctx.shared("recap-recaptions", build, spec=spec, codec=JSONCodec())


# ---------------------------------------------------------------------------------------------
# CLIP at each mixing ratio


def clip_config(cfg: Any) -> CLIPConfig:
    return CLIPConfig(
        image_size=S.IMAGE_SIZE,
        patch_size=8,
        vision_dim=cfg.clip_dim,
        vision_depth=cfg.clip_depth,
        vision_heads=2,
        text_dim=cfg.clip_dim,
        text_depth=cfg.clip_depth,
        text_heads=2,
        context_length=cfg.context_length,
        embed_dim=cfg.clip_dim,
        # DEVIATION: a bidirectional text encoder (CLIP's is causal, Sec. 2.4, to keep the
        # option of a language-model objective, unused here); it learns long captions faster.
        causal=cfg.causal,
    )


def evaluate_clip(model: CLIP, w: dict[str, Any]) -> dict[str, Any]:
    """R@1 with short and long queries in both directions (identical captions count as one
    match), their per-query hits (for paired bootstraps) and zero-shot subject accuracy."""
    test = w["test"]
    img = encode_images(model, w["test_images"])
    out: dict[str, Any] = {}
    for name, captions in (
        ("short", [S.short_query(s) for s in test]),
        ("long", [S.long_caption(s) for s in test]),
    ):
        txt = encode_texts(model, captions)
        ids = {c: k for k, c in enumerate(dict.fromkeys(captions))}
        g = torch.tensor([ids[c] for c in captions])
        match = g[:, None] == g[None, :]
        sims = img @ txt.T
        i2t = match[torch.arange(len(g)), sims.argmax(dim=1)]
        t2i = match[sims.argmax(dim=0), torch.arange(len(g))]
        out[f"{name}_i2t_hits"] = i2t.int().tolist()
        out[f"{name}_t2i_hits"] = t2i.int().tolist()
        out[f"{name}_r1"] = float((i2t.float().mean() + t2i.float().mean()) / 2)
    pred = zero_shot_classify(model, w["test_images"], list(S.CLASS_NAMES))
    labels = torch.tensor([s.label for s in test])
    out["zero_shot_hits"] = (pred == labels).int().tolist()
    out["zero_shot"] = float((pred == labels).float().mean())
    out["avg_r1"] = (out["short_r1"] + out["long_r1"]) / 2
    return out


def fit_clip(
    *,
    cfg: dict,
    images: torch.Tensor,
    original: list[str],
    recaption: list[str],
    p: float,
    seed: int,
    device: str,
    w: dict[str, Any],
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """One CLIP at mixing ratio p (a worker job): its weights and its evaluation."""
    from types import SimpleNamespace

    c = SimpleNamespace(**cfg)
    torch.manual_seed(seed)
    model = CLIP(clip_config(c))
    history = train_clip(
        model,
        images,
        mixed_captions(original, recaption, p=p, seed=seed),
        steps=c.clip_steps,
        batch_size=c.clip_batch,
        lr=c.clip_lr,
        warmup_steps=min(20, c.clip_steps // 10),
        seed=seed,
        device=device,
        progress=False,
        desc=f"clip p={p}",
    )
    model = model.cpu().eval()
    info = evaluate_clip(model, w)
    info.update(loss=history["loss"][-1], seconds=history["seconds"][0], p=p)
    return model.state_dict(), info


def clip_runs(ctx: RunContext) -> dict[float, list[dict[str, Any]]]:
    """The evaluations of one CLIP per p in ``cfg.ps`` and per training seed (``cfg.seeds`` of
    them: ctx.seed, ctx.seed + 1, ...; the world and the captioner stay those of ctx.seed),
    each trained once and kept in the cache."""
    cfg = ctx.config
    spec = (cfg.pool, cfg.clean, cfg.test, cfg.mismatch, cfg.cap_dim, cfg.cap_layers)
    spec += (cfg.cap_steps, cfg.cap_lr, cfg.max_new_tokens, cfg.cap_patch, asdict(clip_config(cfg)))
    spec += (cfg.cap_batch, cfg.cap_stem, cfg.cap_renders, cfg.vision_steps)
    spec += (cfg.clip_steps, cfg.clip_batch, cfg.clip_lr)
    codec = ModuleCodec(build=lambda: CLIP(clip_config(cfg)), kind="recap-clip")

    class _Missing(Exception):
        pass

    def cached(key: tuple[float, int], made: Any = None) -> Any:
        def build() -> Any:
            if made is None:
                raise _Missing
            return made

        try:
            return ctx.shared("recap-clip", build, spec=(*spec, *key), codec=codec)
        except _Missing:
            return None

    keys = [(p, ctx.seed + k) for k in range(cfg.seeds) for p in cfg.ps]
    done = {key: cached(key) for key in keys}
    todo = [key for key, r in done.items() if r is None]
    if todo:
        w = world(ctx)
        re = recaptions(ctx)["pool_recaptions"]
        jobs = [
            (
                fit_clip,
                dict(
                    cfg=vars(cfg).copy(),
                    images=w["pool_images"],
                    original=w["web"],
                    recaption=re,
                    p=p,
                    seed=seed,
                    device=ctx.device,
                    w={k: w[k] for k in ("test", "test_images")},
                ),
            )
            for p, seed in todo
        ]
        results = run_jobs(
            jobs, workers=cfg.workers, threads=1, progress=ctx.progress, desc="recap: CLIPs"
        )
        for key, (state, info) in zip(todo, results, strict=True):
            model = CLIP(clip_config(cfg))
            model.load_state_dict(state)
            done[key] = cached(key, (model.eval(), json.loads(json.dumps(info))))
    return {p: [done[(p, ctx.seed + k)][1] for k in range(cfg.seeds)] for p in cfg.ps}


def _mean(runs: list[dict[str, Any]], key: str) -> float:
    """The mean of a figure over the training seeds."""
    return float(np.mean([r[key] for r in runs]))


def _seed_mean_hits(runs: list[dict[str, Any]], kind: str) -> list[float]:
    """Per-query R@1 hits of one query kind (both directions), averaged over the seeds."""
    return np.mean([_hits(r, kind) for r in runs], axis=0).tolist()


# ---------------------------------------------------------------------------------------------
# The claims


def captioner_scores(ctx: RunContext) -> dict[str, float]:
    """The captioner's recaptions of the held-out scenes scored against their truth."""
    return S.caption_scores(world(ctx)["test"], recaptions(ctx)["test_recaptions"])


def run_recaption(ctx: RunContext) -> dict[str, float]:
    """(1) Recaptions are longer and better aligned than the web captions; powering: the
    captioner's accuracy against the held-out scenes' truth."""
    w, r = world(ctx), recaptions(ctx)
    _, info = captioner(ctx)
    held_out = captioner_scores(ctx)
    pool = S.caption_scores(w["pool"], r["pool_recaptions"])
    org_len = float(np.mean([len(t.split()) for t in w["web"]]))
    re_len = float(np.mean([len(t.split()) for t in r["pool_recaptions"]]))
    m = {
        "org_words": org_len,
        "re_words": re_len,
        "length_ratio": re_len / org_len,
        "org_bytes": float(np.mean([len(t.encode()) for t in w["web"]])),
        "re_bytes": float(np.mean([len(t.encode()) for t in r["pool_recaptions"]])),
        "web_subject_acc": S.web_caption_accuracy(w["pool"], w["web"]),
        "re_subject_acc": pool["subject_acc"],
        "captioner_object_f1": held_out["object_f1"],
        "captioner_subject_acc": held_out["subject_acc"],
        "captioner_exact": held_out["exact"],
        "pool_object_f1": pool["object_f1"],
        "captioner_loss": info["loss"],
        "vision_cell_acc": info["vision_cell_acc"],
        "images_per_second": r["images_per_second"],
        "unreadable": float(r["unreadable"]),
    }
    from paperlab.papers.recap.plots import plot_examples

    plot_examples(ctx, w, r)
    return m


def _band(a: list[int], b: list[int], seed: int) -> tuple[float, float, float]:
    return paired_bootstrap(a, b, n=2000, level=0.9, seed=seed)


def _hits(run: dict[str, Any], kind: str) -> list[int]:
    """Per-query R@1 hits of one query kind (both directions)."""
    return run[f"{kind}_i2t_hits"] + run[f"{kind}_t2i_hits"]


def run_mixture(ctx: RunContext) -> dict[str, float]:
    """(2) A mix of original captions and recaptions beats both ends on average R@1 (judged
    over the training seeds: the seed-mean gain, its bootstrap over queries of the
    seed-averaged hits, and the gain of every seed)."""
    runs = clip_runs(ctx)
    ps = sorted(runs)
    ends, mixes = (ps[0], ps[-1]), ps[1:-1]
    m: dict[str, float] = {"seeds": float(ctx.config.seeds)}
    for p in ps:
        for key in ("short_r1", "long_r1", "avg_r1", "zero_shot"):
            values = [r[key] for r in runs[p]]
            tag = f"{key}_p{round(p * 100)}"  # p 0.5 -> "_p50"
            m[tag] = float(np.mean(values))
            m[tag + "_min"], m[tag + "_max"] = float(min(values)), float(max(values))
    best_mix = max(mixes, key=lambda p: _mean(runs[p], "avg_r1"))
    best_end = max(ends, key=lambda p: _mean(runs[p], "avg_r1"))
    per_seed = [
        a["avg_r1"] - b["avg_r1"] for a, b in zip(runs[best_mix], runs[best_end], strict=True)
    ]
    both = lambda p: _seed_mean_hits(runs[p], "short") + _seed_mean_hits(runs[p], "long")  # noqa: E731
    diff, low, high = _band(both(best_mix), both(best_end), ctx.seed)
    m.update(best_mix_p=best_mix, best_end_p=best_end, gain_over_ends=diff, gain_low=low)
    m.update(gain_high=high, gain_seed_min=min(per_seed), gain_seed_max=max(per_seed))
    m["powered_long_r1"] = max(_mean(runs[p], "long_r1") for p in ps)
    m["powered_short_r1"] = max(_mean(runs[p], "short_r1") for p in ps)
    m["captioner_object_f1"] = captioner_scores(ctx)["object_f1"]
    from paperlab.papers.recap.plots import plot_mixture

    plot_mixture(ctx, runs)
    return m


def run_long_gain(ctx: RunContext) -> dict[str, float]:
    """(3) Against CLIP on the original captions (p = 1), the best mix gains most with long
    queries (seed means; the bootstrap over queries of the seed-averaged hits)."""
    runs = clip_runs(ctx)
    ps = sorted(runs)
    mixes = ps[1:-1]
    best_mix = max(mixes, key=lambda p: _mean(runs[p], "avg_r1"))
    base = ps[-1]
    m: dict[str, float] = {"best_mix_p": best_mix, "seeds": float(ctx.config.seeds)}
    for kind in ("short", "long"):
        m[f"{kind}_r1_mix"] = _mean(runs[best_mix], f"{kind}_r1")
        m[f"{kind}_r1_original"] = _mean(runs[base], f"{kind}_r1")
        m[f"{kind}_gain"] = m[f"{kind}_r1_mix"] - m[f"{kind}_r1_original"]
    per_seed = [
        (a["long_r1"] - b["long_r1"]) - (a["short_r1"] - b["short_r1"])
        for a, b in zip(runs[best_mix], runs[base], strict=True)
    ]
    mix_hits = {kind: _seed_mean_hits(runs[best_mix], kind) for kind in ("short", "long")}
    base_hits = {kind: _seed_mean_hits(runs[base], kind) for kind in ("short", "long")}
    gains = {
        kind: [a - b for a, b in zip(mix_hits[kind], base_hits[kind], strict=True)]
        for kind in ("short", "long")
    }
    diff, low, high = _band(gains["long"], gains["short"], ctx.seed)
    m.update(long_minus_short_gain=diff, diff_low=low, diff_high=high)
    m.update(diff_seed_min=min(per_seed), diff_seed_max=max(per_seed))
    m["powered_long_r1"] = max(_mean(runs[p], "long_r1") for p in ps)
    m["captioner_object_f1"] = captioner_scores(ctx)["object_f1"]
    return m
