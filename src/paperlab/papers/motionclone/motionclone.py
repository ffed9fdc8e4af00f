"""MotionClone (Ling et al. 2024, arXiv 2406.05338), as the official code runs it.

1. Motion representation (Sec. 3.2, ``obtain_motion_representation``): the reference clip is
   noised once to t = ``add_noise_step`` (400 of 1000, i.e. ~0.4 T) and passed ONCE through the
   UNet with the empty prompt; from the temporal self-attention maps A (per query frame, a
   softmax over key frames) of the chosen blocks keep the top-1 value per query and its index:
   the "primary temporal-attention" representation (sparse: the rest of the map is dropped).
2. Guidance (Eq. 4-5, ``compute_temp_loss``, ``single_step_video``): at the early, noisy
   denoising steps the conditional branch runs with gradients, its temporal attention is read
   at the reference's indices and compared with the reference's values,
   loss = sum over layers of MSE(gather(A_gen, idx), A_ref top-1) x ``motion_guidance_weight``,
   ramped up over ``warm_up_steps`` and down over ``cool_up_steps``; then
   eps_hat = eps_cfg - sqrt(1 - ab_t) grad_{x_t} loss enters the DDIM step's direction term
   (``schedule_customized_step``); the later steps are plain CFG sampling.
3. Timesteps (``schedule_set_timesteps``, "uneven"): ``guidance_steps`` of the
   ``inference_steps`` fall in [(1 - guidance_scale) T, T) and the rest below, so the motion is
   steered where it forms. CFG as the code writes it: eps_c + cfg (eps_c - eps_u).
The dense ablation (Sec. 4.3, "w/o sparse") matches the whole temporal attention map instead.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from paperlab.core.diffusion import (
    AttentionRecorder,
    gradient_guidance,
    make_scheduler,
    predict_eps,
)
from paperlab.core.diffusion import ddim_sample as _ddim_sample
from paperlab.papers.motionclone.model import empty_prompt, temporal_attention_names
from paperlab.papers.motionclone.semantic import (
    appearance_masks,
    cross_attention_names,
    recorded_keys,
    reference_masks,
    semantic_loss,
    subject_map,
)

Representation = dict[str, tuple[Tensor, Tensor]]  # layer -> (top-1 values, their indices)


@dataclass(frozen=True)
class CloneConfig:
    """The official config (configs/t2v_object.yaml) scaled to a tiny model: 300 -> ``steps``
    inference steps with the same 60% of them guided, warm-up/cool-down in proportion."""

    steps: int = 30  # inference_steps (official 300)
    guidance_steps: int = 18  # official 180: steps with motion guidance
    guidance_scale: float = 0.4  # guided timesteps lie in [(1 - 0.4) T, T)
    warm_up_steps: int = 2  # official 10 (of 180)
    cool_up_steps: int = 2  # official 10
    weight: float = 2000.0  # motion_guidance_weight
    blocks: tuple[str, ...] = ("up_blocks.1",)  # motion_guidance_blocks
    add_noise_step: int = 400  # the reference's noise level for its one pass
    cfg: float = 7.5  # eps_c + cfg (eps_c - eps_u)
    mode: str = "sparse"  # "sparse" (top-1, MotionClone), "dense" (whole map), "none"
    # DEVIATION: x0 clamped to [-1, 1] in the DDIM steps (pixel-space DDPM's habit; SD's
    # latents are not clipped). Our undertrained tiny pixel model needs it at high noise.
    clip_sample: bool = True
    # Location-aware semantic guidance (the first version's option, semantic.py): 0 = off, as
    # in the current official code; official app_guidance weight_each [500, 0] with the motion's
    # [20000, 10000]. Keys of the temporal layers in ``semantic_blocks``; masks from the subject
    # token's cross-attention there, thresholded at ``mask_threshold`` (official 0.3); the
    # reference's foreground Gaussian has ``mask_sigma`` pixels (official 5 at 16 x 16; our
    # first cross-attention up block is 8 x 8, so 2.5).
    semantic_weight: float = 0.0
    semantic_blocks: tuple[str, ...] = ("up_blocks.0",)
    subject_token: int = 1  # the prompt's noun: "{colour} {shape}" -> the shape token
    mask_threshold: float = 0.3
    mask_sigma: float = 2.5

    def __post_init__(self) -> None:
        if self.steps < 2 or not 0 <= self.guidance_steps < self.steps:
            raise ValueError(
                f"steps={self.steps}, guidance_steps={self.guidance_steps}: "
                "need 0 <= guidance_steps < steps"
            )
        if not 0 < self.guidance_scale < 1:
            raise ValueError(f"guidance_scale={self.guidance_scale}: must be in (0, 1)")
        if self.warm_up_steps < 0 or self.cool_up_steps < 0:
            raise ValueError("warm_up_steps and cool_up_steps must be >= 0")
        if not 0 <= self.add_noise_step < 1000:
            raise ValueError(f"add_noise_step={self.add_noise_step}: must be in [0, 1000)")
        if self.mode not in ("sparse", "dense", "none"):
            raise ValueError(f"mode={self.mode!r}: choose sparse, dense or none")
        if self.semantic_weight < 0:
            raise ValueError(f"semantic_weight={self.semantic_weight}: must be >= 0")
        if not 0 <= self.mask_threshold < 1 or self.mask_sigma <= 0:
            raise ValueError(
                f"mask_threshold={self.mask_threshold}, mask_sigma={self.mask_sigma}: "
                "need 0 <= threshold < 1 and sigma > 0"
            )


def uneven_timesteps(
    steps: int, guidance_steps: int, guidance_scale: float, T: int = 1000
) -> list[int]:
    """The official "uneven" spacing: ``guidance_steps`` timesteps evenly in
    [(1 - guidance_scale) T, T - 1], the other ``steps - guidance_steps`` in [0, that - 1]."""
    edge = int((1 - guidance_scale) * T)
    guided = np.linspace(edge, T - 1, guidance_steps).round()[::-1]
    vanilla = np.linspace(0, edge - 1, steps - guidance_steps).round()[::-1]
    out = [int(t) for t in np.concatenate([guided, vanilla])]
    if any(a <= b for a, b in zip(out, out[1:], strict=False)):
        raise ValueError(f"steps={steps}: too many for the timestep range; lower it")
    return out


@torch.no_grad()
def motion_representation(
    model: nn.Module, reference: Tensor, cfg: CloneConfig, *, seed: int = 0, dense: bool = False
) -> Representation:
    """One pass of the noised reference (B, 3, F, H, W) with the empty prompt; per guided layer
    the top-1 attention value per query and its index (``dense``: the whole map, index None)."""
    scheduler = make_scheduler("ddim")
    gen = torch.Generator().manual_seed(seed)
    noise = torch.randn(reference.shape, generator=gen).to(reference.device)
    t = torch.tensor([cfg.add_noise_step], device=reference.device)
    noisy = scheduler.add_noise(reference, noise, t)
    names = temporal_attention_names(model, cfg.blocks)
    with AttentionRecorder(model, select=lambda n: n in names) as rec:
        predict_eps(model, noisy, t, empty_prompt(reference.shape[0], reference.device))
    if dense:
        return {n: (rec.maps[n], None) for n in names}
    out = {}
    for n in names:
        values, index = torch.topk(rec.maps[n], k=1, dim=-1)  # (B*H*W, heads, F, 1)
        out[n] = (values, index)
    return out


def temporal_loss(maps: dict[str, Tensor], rep: Representation) -> Tensor:
    """Sum over layers of MSE(A_gen at the reference's top-1 indices, the reference's values)
    (``compute_temp_loss``); with a dense representation, MSE of the whole maps."""
    losses = []
    for name, (values, index) in rep.items():
        current = maps[name]
        picked = current if index is None else torch.gather(current, -1, index)
        losses.append(F.mse_loss(picked, values.detach()))
    return torch.stack(losses).sum()


def ramp(timesteps: list[int], cfg: CloneConfig) -> Callable[[int], float]:
    """The weight at timestep t: ``cfg.weight`` times the official warm-up (i+1)/W and
    cool-down (G-i)/C factors of its step index i among the G guided steps."""
    index = {t: i for i, t in enumerate(timesteps)}
    g = cfg.guidance_steps

    def weight(t: int) -> float:
        i = index[t]
        if i >= g:
            return 0.0
        w = cfg.weight
        if i < cfg.warm_up_steps:
            w *= (i + 1) / cfg.warm_up_steps
        if i > g - cfg.cool_up_steps:
            w *= (g - i) / cfg.cool_up_steps
        return w

    return weight


def clone_motion(
    model: nn.Module,
    reference: Tensor,
    prompt: Tensor,
    cfg: CloneConfig = CloneConfig(),  # noqa: B008 - frozen
    *,
    seed: int = 0,
    x_T: Tensor | None = None,
    reference_prompt: Tensor | None = None,
) -> Tensor:
    """A clip of ``prompt`` ((B, 2) token ids) moving as ``reference`` ((B, 3, F, H, W) in
    [-1, 1], one reference per prompt) does; ``cfg.mode == "none"`` is plain CFG sampling from
    the same noise. With ``cfg.semantic_weight > 0`` the first version's semantic guidance is
    added: location-aware when ``reference_prompt`` ((B, 2), the reference's own prompt, whose
    subject token locates it) is given, global otherwise. Returns (B, 3, F, H, W) in [-1, 1]."""
    if reference.dim() != 5 or reference.shape[0] != prompt.shape[0]:
        raise ValueError(
            f"reference: need (B, 3, F, H, W) with B = len(prompt), got {tuple(reference.shape)}"
        )
    if reference_prompt is not None and reference_prompt.shape != prompt.shape:
        raise ValueError(
            f"reference_prompt: need the shape of prompt {tuple(prompt.shape)}, "
            f"got {tuple(reference_prompt.shape)}"
        )
    device = reference.device
    prediction = getattr(getattr(model, "cfg", None), "prediction", "epsilon")
    scheduler = make_scheduler("ddim", clip_sample=cfg.clip_sample, prediction_type=prediction)
    timesteps = uneven_timesteps(cfg.steps, cfg.guidance_steps, cfg.guidance_scale)
    sample = partial(
        _ddim_sample,
        model,
        tuple(reference.shape),
        seed=seed + 1,
        cond=prompt,
        null_cond=empty_prompt(1, device)[0],
        guidance_scale=cfg.cfg + 1.0,  # eps_c + s (eps_c - eps_u) = eps_u + (s + 1)(eps_c - eps_u)
        x_T=x_T,
        scheduler=scheduler,
        timesteps=timesteps,
        device=str(device),
    )
    if cfg.guidance_steps == 0 or (cfg.mode == "none" and cfg.semantic_weight == 0):
        return sample()
    steps_range = (timesteps[cfg.guidance_steps - 1], timesteps[0])
    rep: Representation = {}
    if cfg.mode != "none":
        rep = motion_representation(model, reference, cfg, seed=seed, dense=cfg.mode == "dense")
    names = list(rep)
    if cfg.semantic_weight == 0:

        def loss_fn(x_t: Tensor, t: int) -> Tensor:
            with AttentionRecorder(model, select=lambda n: n in names) as rec:
                predict_eps(model, x_t, t, prompt)  # the conditional branch, with gradients
            return temporal_loss(rec.maps, rep)

        guidance = gradient_guidance(
            loss_fn, weight=ramp(timesteps, cfg), steps_range=steps_range, scheduler=scheduler
        )
        return sample(guidance=guidance)

    # The first version's appearance branch: the prompt sampled plainly from the same noise. It
    # is never guided, so its x_t at each step can be taken from a plain run beforehand.
    appearance = appearance_path(sample, timesteps[: cfg.guidance_steps])
    loss_fn = semantic_guidance_loss(
        model, reference, prompt, reference_prompt, rep, appearance, timesteps, cfg, seed=seed
    )
    guidance = gradient_guidance(loss_fn, weight=1.0, steps_range=steps_range, scheduler=scheduler)
    return sample(guidance=guidance)


def appearance_path(sample: Callable[..., Tensor], keep: list[int]) -> dict[int, Tensor]:
    """x_t of a plain sampling run (``sample``: the sampler, all but the guidance bound) at the
    timesteps ``keep``."""
    path: dict[int, Tensor] = {}

    def record(x_t: Tensor, t: int, eps: Tensor) -> Tensor:
        if t in keep:
            path[t] = x_t.detach().clone()
        return eps

    sample(guidance=record)
    return path


def semantic_guidance_loss(
    model: nn.Module,
    reference: Tensor,
    prompt: Tensor,
    reference_prompt: Tensor | None,
    rep: Representation,
    appearance: dict[int, Tensor],
    timesteps: list[int],
    cfg: CloneConfig,
    *,
    seed: int = 0,
) -> Callable[[Tensor, int], Tensor]:
    """loss(x_t, t) = motion weight(t) * temporal loss + semantic weight(t) * semantic loss, the
    two guidances of ``single_step_video`` at commit 013e1ad: the warm-up scales both, the
    cool-down silences the motion term only."""
    batch = prompt.shape[0]
    key_names = temporal_attention_names(model, cfg.semantic_blocks)
    cross_names = cross_attention_names(model, cfg.semantic_blocks)
    motion_weight = ramp(timesteps, cfg)
    index = {t: i for i, t in enumerate(timesteps)}
    ref_masks = None
    if reference_prompt is not None:
        # DEVIATION: the reference's mask comes from its one noised pass at add_noise_step (the
        # current code's motion pass, here with the reference's own prompt), not from its DDIM
        # inversion at every step as in the first version; the reference clip does not change.
        scheduler = make_scheduler("ddim")
        gen = torch.Generator().manual_seed(seed)
        noise = torch.randn(reference.shape, generator=gen).to(reference.device)
        t_ref = torch.tensor([cfg.add_noise_step], device=reference.device)
        noisy = scheduler.add_noise(reference, noise, t_ref)
        with torch.no_grad(), AttentionRecorder(model, select=lambda n: n in cross_names) as rec:
            predict_eps(model, noisy, t_ref, reference_prompt)
        subject = subject_map(rec.maps, cfg.subject_token, batch)
        ref_masks = reference_masks(subject, cfg.mask_threshold, cfg.mask_sigma)

    def loss_fn(x_t: Tensor, t: int) -> Tensor:
        with (
            torch.no_grad(),
            AttentionRecorder(model, select=lambda n: n in cross_names) as rec_app,
            recorded_keys(model, key_names) as keys_app,
        ):
            predict_eps(model, appearance[t], t, prompt)
        app_masks = None
        if ref_masks is not None:
            subject = subject_map(rec_app.maps, cfg.subject_token, batch)
            app_masks = appearance_masks(subject, cfg.mask_threshold)
        with recorded_keys(model, key_names) as keys_gen:
            if names := list(rep):
                with AttentionRecorder(model, select=lambda n: n in names) as rec:
                    predict_eps(model, x_t, t, prompt)
                loss = motion_weight(t) * temporal_loss(rec.maps, rep)
            else:
                predict_eps(model, x_t, t, prompt)
                loss = x_t.new_zeros(())
        i = index[t]
        warm = (i + 1) / cfg.warm_up_steps if i < cfg.warm_up_steps else 1.0
        sem = semantic_loss(keys_app, keys_gen, batch, reference=ref_masks, appearance=app_masks)
        return loss + cfg.semantic_weight * warm * sem

    return loss_fn
