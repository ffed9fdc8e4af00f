"""The claims' runs: two face-recognition encoders (the conditioning encoder and the judge),
three generators (masked global+local = InstantFamily, unmasked, masked global-only), each
trained once on 1-2-person canvases and kept in the disk cache, then scored by the judge on
new identities in fixed test batches (the same identities, boxes, colours and noise for every
generator, so the comparisons are paired box by box)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from paperlab.claims import RunContext
from paperlab.core.artifacts import JSONCodec, ModuleCodec
from paperlab.core.device import torch_threads
from paperlab.papers.instantfamily.data import (
    COLOURS,
    FACE_PX,
    grid_boxes,
    id_images,
    make_scene,
    random_boxes,
    random_identities,
)
from paperlab.papers.instantfamily.identity import (
    EncoderConfig,
    IdentityEncoder,
    identification_accuracy,
    train_encoder,
)
from paperlab.papers.instantfamily.metrics import adherence, per_box
from paperlab.papers.instantfamily.model import GeneratorConfig, InstantFamily
from paperlab.papers.instantfamily.pipeline import generate, make_pool, train_generator
from paperlab.papers.instantfamily.plots import plot_samples

ENCODER_FIELDS = ("encoder_width", "encoder_ids", "encoder_steps", "encoder_batch", "encoder_lr")
GENERATOR_FIELDS = (
    "size",
    "widths",
    "token_dim",
    "heads",
    "id_norm",
    "local_size",
    "mask",
    "prediction",
    "control",
    "pool",
    "train_people",
    "train_steps",
    "batch_size",
    "lr",
    "face_weight",
    "cond_drop",
)
EVAL_FIELDS = ("eval_canvases", "sample_steps", "guidance")


def _encoder_config(cfg: Any, judge: bool) -> EncoderConfig:
    return EncoderConfig(width=cfg.encoder_width, local_size=cfg.local_size, judge=judge)


def encoder(ctx: RunContext, *, judge: bool) -> tuple[IdentityEncoder, dict]:
    """The conditioning encoder (seed s) or the judge (seed s + 1, another architecture and
    another training identity set), with its identification accuracy on new identities."""
    cfg = ctx.config
    seed = ctx.seed + (1 if judge else 0)
    ecfg = _encoder_config(cfg, judge)

    def build() -> tuple[IdentityEncoder, dict]:
        with torch_threads(cfg.threads):
            enc, info = train_encoder(
                ecfg,
                num_ids=cfg.encoder_ids,
                steps=cfg.encoder_steps,
                batch_size=cfg.encoder_batch,
                lr=cfg.encoder_lr,
                seed=seed,
                device=ctx.device,
                progress=ctx.progress,
            )
            info["accuracy"] = identification_accuracy(
                enc, identities=cfg.judge_identities, seed=seed + 1000
            )
        return enc, info

    spec = {**{k: getattr(cfg, k) for k in ENCODER_FIELDS}, "judge": judge, "L": cfg.local_size}
    return ctx.shared(
        f"instantfamily-{'judge' if judge else 'encoder'}",
        build,
        spec=spec,
        codec=ModuleCodec(build=lambda: IdentityEncoder(ecfg), kind="instantfamily-encoder"),
    )


def generator_config(cfg: Any, *, features: str, mask: str) -> GeneratorConfig:
    return GeneratorConfig(
        size=cfg.size,
        widths=cfg.widths,
        token_dim=cfg.token_dim,
        heads=cfg.heads,
        id_norm=cfg.id_norm,
        id_global_dim=EncoderConfig().embed_dim,
        id_local_dim=2 * cfg.encoder_width,
        local_size=cfg.local_size,
        features=features,
        mask=mask,
        control=cfg.control,
        prediction=cfg.prediction,
    )


def generator(ctx: RunContext, *, features: str, masked: bool) -> tuple[InstantFamily, dict]:
    """A generator trained on canvases of 1..``train_people`` people; ``masked=False`` is the
    unmasked baseline (every pixel attends to every token), ``features="global"`` the
    global-only ablation."""
    cfg = ctx.config
    gcfg = generator_config(cfg, features=features, mask=cfg.mask if masked else "none")
    enc, _ = encoder(ctx, judge=False)

    def build() -> tuple[InstantFamily, dict]:
        with torch_threads(cfg.threads):
            pools = [
                make_pool(enc, cfg.pool, k, size=cfg.size, seed=ctx.seed + 10 + k)
                for k in range(1, cfg.train_people + 1)
            ]
            return train_generator(
                gcfg,
                pools,
                steps=cfg.train_steps,
                batch_size=cfg.batch_size,
                lr=cfg.lr,
                seed=ctx.seed,
                cond_drop=cfg.cond_drop,
                face_weight=cfg.face_weight,
                device=ctx.device,
                progress=ctx.progress,
            )

    spec = {
        **{k: getattr(cfg, k) for k in GENERATOR_FIELDS + ENCODER_FIELDS},
        "features": features,
        "masked": masked,
    }
    return ctx.shared(
        f"instantfamily-{features}-{'masked' if masked else 'unmasked'}",
        build,
        spec=spec,
        codec=ModuleCodec(build=lambda: InstantFamily(gcfg), kind="instantfamily-generator"),
    )


def test_batch(cfg: Any, k: int, seed: int) -> dict[str, torch.Tensor]:
    """The fixed test set for ``k`` people: new identities (never trained on), their identity
    images, boxes (random for k <= 2, the 2x2 grid for 3-4), colours, and real canvases."""
    n = cfg.eval_canvases
    gen = torch.Generator().manual_seed(seed + 500 + k)
    ids = random_identities(n * k, gen).view(n, k, -1)
    refs = id_images(ids.flatten(0, 1), gen).view(n, k, 3, FACE_PX, FACE_PX)
    side = round(cfg.size * 0.375)
    if k <= 2:
        boxes = random_boxes(n, k, cfg.size, gen, sides=(side, side + 2))
    else:
        boxes = grid_boxes(k, cfg.size).expand(n, k, 3).clone()
    colour = torch.randint(len(COLOURS), (n,), generator=gen)
    real = make_scene(n, k, gen, size=cfg.size, ids=ids, boxes=boxes, colour=colour).images
    return {"refs": refs, "boxes": boxes, "colour": colour, "real": real}


def scores(ctx: RunContext, *, features: str, masked: bool, k: int) -> dict[str, list]:
    """Per-box judge scores of one generator on the ``k``-people test batch (and, under
    ``real``, of the real canvases: the ceiling), kept in the disk cache as JSON."""
    cfg = ctx.config
    name = "real" if features == "real" else f"{features}-{'masked' if masked else 'unmasked'}"

    def build() -> dict[str, list]:
        batch = test_batch(cfg, k, ctx.seed)
        judge, _ = encoder(ctx, judge=True)
        if features == "real":
            images = batch["real"]
        else:
            model, _ = generator(ctx, features=features, masked=masked)
            enc, _ = encoder(ctx, judge=False)
            with torch_threads(cfg.threads):
                images = generate(
                    model,
                    enc,
                    batch["refs"],
                    batch["boxes"],
                    batch["colour"],
                    steps=cfg.sample_steps,
                    guidance=cfg.guidance,
                    seed=ctx.seed + k,
                )
        m = per_box(judge, images.cpu(), batch["boxes"], batch["refs"])
        out = {key: v.float().tolist() for key, v in m.items()}
        out["adherent"] = adherence(images.cpu(), batch["boxes"], batch["colour"]).float().tolist()
        out["images"] = images[:8].cpu().tolist()
        return out

    spec = {
        **{key: getattr(cfg, key) for key in GENERATOR_FIELDS + ENCODER_FIELDS + EVAL_FIELDS},
        "judge_identities": cfg.judge_identities,
        "k": k,
    }
    return ctx.shared(f"instantfamily-scores-{name}-{k}", build, spec=spec, codec=JSONCodec())


# ---------------------------------------------------------------------------------------------
# Figures of a score set


def _figures(s: dict[str, list], prefix: str, m: dict[str, float]) -> dict[str, np.ndarray]:
    """Means of one score set into ``m`` under ``prefix``; returns the per-box arrays."""
    single, random = np.array(s["single"]).ravel(), np.array(s["random"]).ravel()
    mixed = np.array(s["mixed"]).ravel()
    m[f"{prefix}_sim"] = float(single.mean())
    m[f"{prefix}_random"] = float(random.mean())
    m[f"{prefix}_mixing"] = float(mixed.mean())
    m[f"{prefix}_adherence"] = float(np.mean(s["adherent"]))
    between = np.array(s["between"], dtype=float)
    if not np.isnan(between).all():
        m[f"{prefix}_multisim"] = m[f"{prefix}_sim"] + 1 - float(np.nanmean(between))
    return {"single": single, "random": random, "mixed": mixed}


def _plot(ctx: RunContext, file: str, k: int, models: list[tuple[str, bool]]) -> None:
    rows = {"real": scores(ctx, features="real", masked=True, k=k)["images"]}
    for features, masked in models:
        label = f"{features.replace('_', '+')}{'' if masked else ' unmasked'}"
        rows[label] = scores(ctx, features=features, masked=masked, k=k)["images"]
    plot_samples(ctx, file, rows)


def paired_band(a: np.ndarray, b: np.ndarray, floor: float) -> float:
    """2 standard errors of mean(a - b) over paired boxes, at least ``floor``."""
    d = a - b
    return max(2 * float(d.std(ddof=1)) / math.sqrt(len(d)), floor)


def power(ctx: RunContext, m: dict[str, float]) -> dict[str, float]:
    """The powering figures every claim records: the judge's (and the encoder's) top-1
    identification accuracy on new identities, and whether the generator makes faces of the
    given person at all: its single-person similarity minus the random-identity baseline."""
    cfg = ctx.config
    _, jinfo = encoder(ctx, judge=True)
    _, einfo = encoder(ctx, judge=False)
    m["judge_accuracy"] = jinfo["accuracy"]
    m["encoder_accuracy"] = einfo["accuracy"]
    m["chance_accuracy"] = 1 / cfg.judge_identities
    one = _figures(scores(ctx, features="global_local", masked=True, k=1), "single", m)
    m["generation_gap"] = float((one["single"] - one["random"]).mean())
    real = _figures(scores(ctx, features="real", masked=True, k=1), "real", m)
    m["real_gap"] = float((real["single"] - real["random"]).mean())
    return m


# ---------------------------------------------------------------------------------------------
# (1) masked vs unmasked cross-attention


def run_masked_attention(ctx: RunContext, *, floor: float, mix_floor: float) -> dict[str, float]:
    m = power(ctx, {})
    masked = _figures(scores(ctx, features="global_local", masked=True, k=2), "masked", m)
    plain = _figures(scores(ctx, features="global_local", masked=False, k=2), "unmasked", m)
    m["sim_gain"] = m["masked_sim"] - m["unmasked_sim"]
    m["sim_band"] = paired_band(masked["single"], plain["single"], floor)
    m["mixing_drop"] = m["unmasked_mixing"] - m["masked_mixing"]
    m["mixing_band"] = paired_band(plain["mixed"], masked["mixed"], mix_floor)
    _plot(ctx, "masked_attention.png", 2, [("global_local", True), ("global_local", False)])
    return m


# ---------------------------------------------------------------------------------------------
# (2) global + local vs global-only identity features


def run_local_features(ctx: RunContext, *, floor: float) -> dict[str, float]:
    m = power(ctx, {})
    both, only = [], []
    for k in (1, 2):
        both.append(_figures(scores(ctx, features="global_local", masked=True, k=k), f"gl{k}", m))
        only.append(_figures(scores(ctx, features="global", masked=True, k=k), f"g{k}", m))
    a = np.concatenate([f["single"] for f in both])
    b = np.concatenate([f["single"] for f in only])
    m["global_local_sim"], m["global_sim"] = float(a.mean()), float(b.mean())
    m["sim_gain"] = float((a - b).mean())
    m["sim_band"] = paired_band(a, b, floor)
    _plot(ctx, "local_features.png", 2, [("global_local", True), ("global", True)])
    return m


# ---------------------------------------------------------------------------------------------
# (3) trained with <= 2 people, tested with 3 and 4


def run_more_people(ctx: RunContext, *, floor: float) -> dict[str, float]:
    m = power(ctx, {})
    for k in (2, 3, 4):
        f = _figures(scores(ctx, features="global_local", masked=True, k=k), f"k{k}", m)
        m[f"k{k}_gap"] = float((f["single"] - f["random"]).mean())
        m[f"k{k}_band"] = paired_band(f["single"], f["random"], floor)
        m[f"k{k}_chance_mixing"] = (k - 1) / k
    # the share of the 2-person gap kept with 3-4 people (0 when there is no 2-person gap)
    worst = min(m["k3_gap"], m["k4_gap"])
    m["retained"] = worst / m["k2_gap"] if m["k2_gap"] > 0 else 0.0
    _plot(ctx, "more_people.png", 4, [("global_local", True)])
    return m
