"""The claims' runs: the base text-to-video model and the prompt judge (trained once, kept in
the disk cache), then one batch of clones per guidance mode from the same noise, measured
against the references' exact trajectories and by the judge."""

from __future__ import annotations

import resource
import time
from typing import Any

import numpy as np
import torch

from paperlab.claims import RunContext
from paperlab.core.artifacts import ModuleCodec
from paperlab.core.device import torch_threads
from paperlab.core.diffusion import ddim_sample, make_scheduler, train_diffusion
from paperlab.core.stats import paired_bootstrap
from paperlab.papers.motionclone.data import COLOURS, SHAPES, centroids, make_clips
from paperlab.papers.motionclone.judge import FrameJudge, judge_clips, train_judge
from paperlab.papers.motionclone.model import ClipDenoiser, VideoModelConfig, empty_prompt
from paperlab.papers.motionclone.motionclone import CloneConfig, clone_motion
from paperlab.papers.motionclone.plots import plot_clones

MODES = ("none", "sparse", "dense")


def model_config(cfg: Any) -> VideoModelConfig:
    return VideoModelConfig(
        size=cfg.size,
        frames=cfg.frames,
        widths=cfg.widths,
        text_dim=cfg.text_dim,
        heads=cfg.heads,
        prediction=cfg.prediction,
    )


def clone_config(cfg: Any, mode: str) -> CloneConfig:
    return CloneConfig(
        steps=cfg.steps,
        guidance_steps=cfg.guidance_steps,
        warm_up_steps=cfg.warm_up_steps,
        cool_up_steps=cfg.cool_up_steps,
        weight=cfg.weight,
        blocks=cfg.blocks,
        cfg=cfg.cfg,
        mode=mode,
    )


def _train_base(cfg: Any, seed: int, device: str, progress: bool) -> tuple[ClipDenoiser, dict]:
    data = make_clips(cfg.train_clips, frames=cfg.frames, size=cfg.size, seed=seed)
    torch.manual_seed(seed)
    model = ClipDenoiser(model_config(cfg))
    with torch_threads(cfg.threads):
        history = train_diffusion(
            model,
            data.clips,
            cond=data.prompts,
            steps=cfg.train_steps,
            batch_size=cfg.batch_size,
            lr=cfg.lr,
            seed=seed,
            device=device,
            cond_drop_prob=cfg.cond_drop,
            null_cond=empty_prompt(1)[0],
            progress=progress,
            warmup_steps=cfg.train_steps // 20,
            scheduler=make_scheduler("ddpm", prediction_type=cfg.prediction),
        )
    tail = history["loss"][-max(1, len(history["loss"]) // 10) :]
    return model.eval(), {"final_loss": float(np.mean(tail)), "seconds": history["seconds"][0]}


def base_model(ctx: RunContext) -> tuple[ClipDenoiser, dict]:
    """The tiny text-to-video model, trained once per (config fields, seed)."""
    cfg = ctx.config
    spec = {k: getattr(cfg, k) for k in BASE_FIELDS}
    return ctx.shared(
        "motionclone-base",
        lambda: _train_base(cfg, ctx.seed, ctx.device, ctx.progress),
        spec=spec,
        codec=ModuleCodec(build=lambda: ClipDenoiser(model_config(cfg)), kind="motionclone-base"),
    )


BASE_FIELDS = (
    "size",
    "frames",
    "widths",
    "text_dim",
    "heads",
    "prediction",
    "train_clips",
    "train_steps",
    "batch_size",
    "lr",
    "cond_drop",
    "threads",
)


def judge_model(ctx: RunContext) -> tuple[FrameJudge, dict]:
    """The colour/shape judge and its held-out clip accuracy (the powering figure)."""
    cfg = ctx.config

    def build() -> tuple[FrameJudge, dict]:
        data = make_clips(cfg.judge_clips, frames=cfg.frames, size=cfg.size, seed=ctx.seed + 1)
        test = make_clips(cfg.judge_test, frames=cfg.frames, size=cfg.size, seed=ctx.seed + 2)
        with torch_threads(cfg.threads):
            judge, info = train_judge(data, steps=cfg.judge_steps, seed=ctx.seed)
        pred = judge_clips(judge, test.clips)
        info["accuracy"] = float((pred == test.prompts).all(dim=1).float().mean())
        return judge, info

    spec = {
        k: getattr(cfg, k) for k in ("size", "frames", "judge_clips", "judge_test", "judge_steps")
    }
    return ctx.shared(
        "motionclone-judge",
        build,
        spec=spec,
        codec=ModuleCodec(build=FrameJudge, kind="motionclone-judge"),
    )


def other_prompts(prompts: torch.Tensor, seed: int) -> torch.Tensor:
    """For each reference a prompt of another colour AND another shape (the clone must not
    copy the reference's appearance)."""
    rng = np.random.default_rng(seed)
    out = []
    for c, s in prompts.tolist():
        c2 = int(rng.choice([i for i in range(len(COLOURS)) if i != c]))
        s2 = int(rng.choice([i for i in range(len(SHAPES)) if i != s]))
        out.append((c2, s2))
    return torch.tensor(out, dtype=torch.long)


def _clone_all(ctx: RunContext) -> dict[str, Any]:
    cfg = ctx.config
    model, base_info = base_model(ctx)
    judge, judge_info = judge_model(ctx)
    model = model.to(ctx.device).eval()
    refs = make_clips(cfg.eval_clips, frames=cfg.frames, size=cfg.size, seed=ctx.seed + 3)
    prompts = other_prompts(refs.prompts, ctx.seed + 4).to(ctx.device)
    reference = refs.clips.to(ctx.device)
    out: dict[str, Any] = {"base": base_info, "judge": judge_info, "paths": refs.paths}
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    out["true"] = refs.centres.tolist()
    clips = {}
    with torch_threads(cfg.threads):
        for mode in MODES:
            started, cpu0 = time.perf_counter(), time.process_time()
            x = clone_motion(model, reference, prompts, clone_config(cfg, mode), seed=ctx.seed)
            clips[mode] = x.cpu()
            out[f"{mode}_seconds_per_clip"] = (time.perf_counter() - started) / len(prompts)
            out[f"{mode}_cpu_per_clip"] = (time.process_time() - cpu0) / len(prompts)
            err = (centroids(x.cpu()) - refs.centres).norm(dim=-1).mean(dim=1)  # (N,) px
            out[f"{mode}_error"] = err.tolist()
            pred = judge_clips(judge, x.cpu())
            out[f"{mode}_adherent"] = (pred == prompts.cpu()).all(dim=1).float().tolist()
            out[f"{mode}_colour"] = (pred[:, 0] == prompts[:, 0].cpu()).float().tolist()
            c = centroids(x.cpu())
            out[f"{mode}_motion"] = float((c[:, 1:] - c[:, :-1]).norm(dim=-1).mean())
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out["peak_rss_growth_mb"] = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0) / 1024
    out["reference_error"] = (centroids(refs.clips) - refs.centres).norm(dim=-1).mean().item()
    plot_clones(ctx, refs.clips, clips, refs.centres, prompts.cpu())
    return out


def clones(ctx: RunContext) -> dict[str, Any]:
    """The clones of every mode, once per paper run (the claims share them)."""
    return ctx.shared("motionclone-clones", lambda: _clone_all(ctx))


def _power(m: dict[str, float], r: dict[str, Any]) -> None:
    m["judge_accuracy"] = r["judge"]["accuracy"]
    m["base_adherence"] = float(np.mean(r["none_adherent"]))
    m["base_motion_px"] = r["none_motion"]
    m["base_final_loss"] = r["base"]["final_loss"]


def _gap(m: dict[str, float], name: str, a: list[float], b: list[float], seed: int) -> None:
    diff, low, high = paired_bootstrap(b, a, seed=seed)  # b - a: positive = a better
    m[f"{name}_gain"], m[f"{name}_low"], m[f"{name}_high"] = diff, low, high


def run_motion_fidelity(ctx: RunContext) -> dict[str, float]:
    r = clones(ctx)
    m: dict[str, float] = {}
    _power(m, r)
    for mode in MODES:
        m[f"{mode}_error"] = float(np.mean(r[f"{mode}_error"]))
        m[f"{mode}_error_std"] = float(np.std(r[f"{mode}_error"], ddof=1))
    m["clips"] = float(len(r["none_error"]))
    m["error_ratio"] = m["sparse_error"] / max(m["none_error"], 1e-9)
    _gap(m, "sparse_vs_none", r["sparse_error"], r["none_error"], ctx.seed)
    m["reference_error"] = r["reference_error"]
    return m


def run_sparse_vs_dense(ctx: RunContext) -> dict[str, float]:
    r = clones(ctx)
    m: dict[str, float] = {}
    _power(m, r)
    for mode in ("sparse", "dense"):
        m[f"{mode}_error"] = float(np.mean(r[f"{mode}_error"]))
        m[f"{mode}_error_std"] = float(np.std(r[f"{mode}_error"], ddof=1))
    _gap(m, "sparse_vs_dense", r["sparse_error"], r["dense_error"], ctx.seed)
    return m


def run_prompt_adherence(ctx: RunContext) -> dict[str, float]:
    r = clones(ctx)
    m: dict[str, float] = {}
    _power(m, r)
    for mode in MODES:
        m[f"{mode}_adherence"] = float(np.mean(r[f"{mode}_adherent"]))
        m[f"{mode}_colour_accuracy"] = float(np.mean(r[f"{mode}_colour"]))
    m["adherence_drop"] = m["none_adherence"] - m["sparse_adherence"]
    return m


def run_cost(ctx: RunContext) -> dict[str, float]:
    r = clones(ctx)
    m: dict[str, float] = {}
    for mode in MODES:
        m[f"{mode}_seconds_per_clip"] = r[f"{mode}_seconds_per_clip"]
        m[f"{mode}_cpu_per_clip"] = r[f"{mode}_cpu_per_clip"]
    m["peak_rss_mb"] = r["peak_rss_mb"]
    m["params_m"] = sum(p.numel() for p in base_model(ctx)[0].parameters()) / 1e6
    m["overhead_ratio"] = r["sparse_cpu_per_clip"] / max(r["none_cpu_per_clip"], 1e-9)
    return m


def sample_base(
    model: ClipDenoiser, prompts: torch.Tensor, *, steps: int, cfg_scale: float, seed: int
) -> torch.Tensor:
    """Plain CFG samples of the base model (no motion guidance)."""
    shape = (prompts.shape[0], 3, model.cfg.frames, model.cfg.size, model.cfg.size)
    return ddim_sample(
        model,
        shape,
        steps=steps,
        seed=seed,
        cond=prompts,
        null_cond=empty_prompt(1)[0],
        guidance_scale=cfg_scale + 1,
    )
