"""The trainings behind the claims: the base prior once, then one job per seed (a clip, its
LoRA prior, stage 1 and the four stage-2 arms, the edits), kept in the run's cache and on disk.

Per seed ``s``: the clip is drawn with seed ``s`` (its camera path and wobble) and every
random choice of the fits uses ``s``. The arms share stage 1 (the frozen homography) and differ
in one thing each:

- ``homography``: stage 2 without the residual field (homography-only deformation);
- ``hybrid``: homography + residual, no prior;
- ``narcan``: hybrid + the diffusion prior on the scaled official schedule;
- ``every_step``: hybrid + the prior refreshed at every step (the paper's slow baseline).

``narcan`` and ``every_step`` run one after the other, in an order that alternates with the seed
(interleaved), each timed (wall and CPU seconds). Seeds run in parallel worker processes.
"""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from paperlab.claims import RunContext
from paperlab.core.artifacts import ModuleCodec
from paperlab.core.checkpoint import save_safetensors_atomic
from paperlab.core.device import torch_threads
from paperlab.core.parallel import run_jobs
from paperlab.papers.narcan.fit import (
    PriorSchedule,
    PriorTarget,
    fit_fields,
    fit_homography,
    stage_two_model,
)
from paperlab.papers.narcan.metrics import (
    canonical_psnr,
    frame_psnr,
    interpolation_error,
    psnr,
    warping_error,
)
from paperlab.papers.narcan.prior import (
    DiffusionPrior,
    PriorConfig,
    build_prior_unet,
    corrupt,
    lora_finetune,
    pretrain_prior,
)
from paperlab.papers.narcan.video import make_clip

ARMS: tuple[str, ...] = ("homography", "hybrid", "narcan", "every_step")


def prior_config(cfg: Any) -> PriorConfig:
    return PriorConfig(
        patch=cfg.prior_patch,
        widths=tuple(cfg.prior_widths),
        pretrain_steps=cfg.prior_steps,
        pretrain_patches=cfg.prior_patches,
        batch_size=cfg.prior_batch_size,
        lr=cfg.prior_lr,
        lora_rank=cfg.lora_rank,
        lora_alpha=cfg.lora_alpha,
        lora_steps=cfg.lora_steps,
        lora_lr=cfg.lora_lr,
        sdedit_steps=cfg.sdedit_steps,
    )


def base_prior(ctx: RunContext) -> nn.Module:
    """The pre-trained prior (other photos than the clip's), once per run / from the disk cache."""
    pcfg = prior_config(ctx.config)

    def build() -> tuple[nn.Module, dict]:
        with torch_threads(1) if ctx.device == "cpu" else contextlib.nullcontext():
            return pretrain_prior(
                pcfg,
                exclude=ctx.config.picture,
                seed=ctx.seed,
                device=ctx.device,
                progress=ctx.progress,
            )

    model, _ = ctx.shared(
        "narcan-prior",
        build,
        spec={"prior": asdict(pcfg), "picture": ctx.config.picture},
        codec=ModuleCodec(build=lambda: build_prior_unet(pcfg), kind="narcan-prior"),
    )
    return model


@dataclass
class SeedResult:
    """One seed's figures and the pictures the plots show (tensors in [-1, 1])."""

    figures: dict[str, float]
    images: dict[str, Tensor]


def _fit_arm(
    arm: str, stage1: Any, clip: Any, prior: DiffusionPrior, cfg: dict, seed: int, device: str
):
    sizes = dict(
        hidden=cfg["hidden"],
        layers=cfg["layers"],
        residual_hidden=cfg["residual_hidden"],
        residual_layers=cfg["residual_layers"],
    )
    model = stage_two_model(stage1, residual=arm != "homography", seed=seed, **sizes)
    target = None
    if arm in ("narcan", "every_step"):
        schedule = PriorSchedule.scaled(cfg["steps"], every_step=arm == "every_step")
        target = PriorTarget(prior.refine, schedule, seed=seed)
    wall, cpu = time.perf_counter(), time.process_time()
    fit_fields(
        model, clip.frames, steps=cfg["steps"], lr=cfg["lr"], prior=target, seed=seed, device=device
    )
    figures = {"wall_seconds": time.perf_counter() - wall, "cpu_seconds": time.process_time() - cpu}
    if target is not None:
        figures |= {"prior_calls": float(target.calls), "prior_seconds": target.seconds}
    model = model.cpu()
    figures |= {"recon_psnr": frame_psnr(model.render_frames(), clip.frames)}
    figures |= canonical_psnr(model, clip)
    return model, figures


def run_seed(
    *, seed: int, cfg: dict, base_state: dict[str, Tensor], device: str = "cpu"
) -> SeedResult:
    """Everything one seed contributes to the claims (a picklable job for ``run_jobs``)."""
    clip = make_clip(
        num_frames=cfg["num_frames"],
        size=cfg["size"],
        picture_name=cfg["picture"],
        extent=cfg["extent"],
        seed=seed,
        bump=cfg["bump"],
    )
    pcfg = PriorConfig(**cfg["prior"])
    base = build_prior_unet(pcfg)
    base.load_state_dict(base_state)
    lora, _ = lora_finetune(pcfg, base, clip.frames, seed=seed, device=device)
    prior = DiffusionPrior(lora, steps=pcfg.sdedit_steps)
    m: dict[str, float] = {}
    images: dict[str, Tensor] = {"truth": clip.canonical}

    # powering: does the prior move a damaged canonical toward the truth?
    damaged = corrupt(clip.canonical, seed=seed, amount=cfg["power_amount"])
    m["power_before"] = psnr(damaged, clip.canonical)
    strengths = [s for _, _, s in PriorSchedule.scaled(cfg["steps"]).phases]
    after = [psnr(prior(damaged, s, seed), clip.canonical) for s in strengths]
    m["power_after"] = sum(after) / len(after)
    # and its ceiling: how close to the truth its refinement of the TRUE canonical stays (on
    # the seen pixels, like the fits' canonical PSNR); a target cannot pull a canonical that is
    # already closer than this toward the truth
    seen = clip.coverage()
    ceiling = [psnr(prior(clip.canonical, s, seed), clip.canonical, seen) for s in strengths]
    m["prior_ceiling"] = sum(ceiling) / len(ceiling)

    stage1, _ = fit_homography(
        clip.frames,
        steps=cfg["homography_steps"],
        lr=cfg["lr"],
        hidden=cfg["hidden"],
        layers=cfg["layers"],
        canonical_size=cfg["canonical_size"],
        seed=seed,
        device=device,
    )
    arms = ["homography", "hybrid"] + (
        ["narcan", "every_step"] if seed % 2 == 0 else ["every_step", "narcan"]
    )
    models = {}
    for arm in arms:
        models[arm], figures = _fit_arm(arm, stage1, clip, prior, cfg, seed, device)
        m |= {f"{arm}_{k}": v for k, v in figures.items()}
        images[f"canonical_{arm}"] = models[arm].render_canonical().detach()

    # editing: one diffusion edit of the canonical, propagated; vs the same edit per frame
    strength = cfg["edit_strength"]
    videos = {"input": clip.frames, "per_frame": prior.refine_batch(clip.frames, strength, seed)}
    for arm in ("narcan", "homography"):
        edited = prior(images[f"canonical_{arm}"], strength, seed)
        videos[arm] = models[arm].propagate(edited).clamp(-1, 1)
        images[f"edited_canonical_{arm}"] = edited
    for name, video in videos.items():
        m[f"warp_{name}"] = warping_error(video, clip) * 1000
        m[f"interp_{name}"] = interpolation_error(video, clip)
        images[f"video_{name}"] = video[:: max(1, len(video) // 6)][:6]
    return SeedResult(m, images)


class SeedResultCodec:
    """A :class:`SeedResult` on disk: figures as JSON, pictures as safetensors."""

    def save(self, obj: SeedResult, folder: Path) -> None:
        (folder / "figures.json").write_text(json.dumps(obj.figures))
        images = {k: v.detach().float().contiguous() for k, v in obj.images.items()}
        save_safetensors_atomic(images, folder / "images.safetensors", {"kind": "narcan-seed"})

    def load(self, folder: Path) -> SeedResult:
        from safetensors.torch import load_file

        figures = json.loads((folder / "figures.json").read_text())
        return SeedResult(figures, load_file(str(folder / "images.safetensors")))


def seeds(ctx: RunContext) -> list[int]:
    return [ctx.seed + k for k in range(ctx.config.seeds)]


def _job_config(cfg: Any) -> dict:
    fields = (
        "num_frames",
        "size",
        "picture",
        "extent",
        "bump",
        "homography_steps",
        "steps",
        "lr",
        "hidden",
        "layers",
        "residual_hidden",
        "residual_layers",
        "canonical_size",
        "edit_strength",
        "power_amount",
    )
    return {k: getattr(cfg, k) for k in fields} | {"prior": asdict(prior_config(cfg))}


class _NotCached(Exception):
    pass


def _cached(ctx: RunContext, seed: int, result: SeedResult | None = None) -> SeedResult | None:
    def build() -> SeedResult:
        if result is None:
            raise _NotCached
        return result

    spec = {"seed": seed, "config": _job_config(ctx.config)}
    try:
        return ctx.shared("narcan-seed", build, spec=spec, codec=SeedResultCodec())
    except _NotCached:
        return None


def seed_results(ctx: RunContext) -> dict[int, SeedResult]:
    """Every seed's :class:`SeedResult`: from this run, the disk cache, or new jobs."""
    done = {s: _cached(ctx, s) for s in seeds(ctx)}
    todo = [s for s, r in done.items() if r is None]
    if todo:
        state = {k: v.detach().cpu() for k, v in base_prior(ctx).state_dict().items()}
        cfg = _job_config(ctx.config)
        jobs = [
            (run_seed, dict(seed=s, cfg=cfg, base_state=state, device=ctx.device)) for s in todo
        ]
        results = run_jobs(
            jobs,
            workers=ctx.config.workers,
            threads=1,
            progress=ctx.progress,
            desc=f"narcan: {len(jobs)} seeds",
        )
        for s, r in zip(todo, results, strict=True):
            done[s] = _cached(ctx, s, r)
    return done
