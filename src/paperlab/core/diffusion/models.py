"""Tiny diffusers UNets (image, conditional, AnimateDiff-style video), the schedulers, and one
call that predicts the noise for any of them (with classifier-free guidance)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from diffusers import (
    DDIMScheduler,
    DDPMScheduler,
    SchedulerMixin,
    UNet2DConditionModel,
    UNet2DModel,
    UNetMotionModel,
)
from torch import Tensor, nn

# ---------------------------------------------------------------------------------------------
# Models and schedulers


def _norm_groups(widths: Sequence[int]) -> int:
    for groups in (8, 4, 2, 1):
        if all(w % groups == 0 for w in widths):
            return groups
    return 1


def _check_widths(image_size: int, widths: Sequence[int], layers_per_block: int) -> None:
    if not widths or any(w < 1 for w in widths):
        raise ValueError(f"widths={widths!r}: need one or more positive channel counts")
    if image_size < 1 or image_size % 2 ** (len(widths) - 1):
        raise ValueError(f"image_size={image_size}: must be divisible by 2**(len(widths) - 1)")
    if layers_per_block < 1:
        raise ValueError(f"layers_per_block={layers_per_block}: must be >= 1")


def tiny_unet(
    *,
    image_size: int,
    channels: int = 3,
    widths: tuple[int, ...] = (32, 64),
    layers_per_block: int = 1,
    attention: bool = True,
    num_classes: int | None = None,
    cross_attention_dim: int | None = None,
) -> nn.Module:
    """A small diffusers UNet. Attention sits in the lowest-resolution block (and the middle).

    ``num_classes``: a ``UNet2DModel`` with ``num_class_embeds`` (cond = class ids; keep one id
    for the "null" class of classifier-free guidance). ``cross_attention_dim``: a
    ``UNet2DConditionModel`` (cond = ``encoder_hidden_states`` (B, L, cross_attention_dim)).
    """
    _check_widths(image_size, widths, layers_per_block)
    if num_classes is not None and cross_attention_dim is not None:
        raise ValueError("give num_classes or cross_attention_dim, not both")
    if num_classes is not None and num_classes < 1:
        raise ValueError(f"num_classes={num_classes}: must be >= 1")
    n = len(widths)
    groups = _norm_groups(widths)
    if cross_attention_dim is not None:
        if not attention:
            raise ValueError("cross_attention_dim needs attention=True (it conditions through it)")
        return UNet2DConditionModel(
            sample_size=image_size,
            in_channels=channels,
            out_channels=channels,
            down_block_types=("DownBlock2D",) * (n - 1) + ("CrossAttnDownBlock2D",),
            up_block_types=("CrossAttnUpBlock2D",) + ("UpBlock2D",) * (n - 1),
            block_out_channels=widths,
            layers_per_block=layers_per_block,
            norm_num_groups=groups,
            cross_attention_dim=cross_attention_dim,
            attention_head_dim=8,
        )
    attn_down = "AttnDownBlock2D" if attention else "DownBlock2D"
    attn_up = "AttnUpBlock2D" if attention else "UpBlock2D"
    return UNet2DModel(
        sample_size=image_size,
        in_channels=channels,
        out_channels=channels,
        down_block_types=("DownBlock2D",) * (n - 1) + (attn_down,),
        up_block_types=(attn_up,) + ("UpBlock2D",) * (n - 1),
        block_out_channels=widths,
        layers_per_block=layers_per_block,
        norm_num_groups=groups,
        attention_head_dim=8,
        add_attention=attention,
        num_class_embeds=num_classes,
    )


def tiny_motion_unet(
    *,
    image_size: int,
    num_frames: int,
    channels: int = 3,
    widths: tuple[int, ...] = (32, 64),
    layers_per_block: int = 1,
    cross_attention_dim: int = 32,
    heads: int = 4,
) -> UNetMotionModel:
    """A small AnimateDiff-style ``UNetMotionModel``: spatial ResNet/cross-attention blocks
    with a temporal transformer ("motion module", two temporal self-attentions) after each.
    Input (B, C, F, H, W); cond = ``encoder_hidden_states`` (B, L, cross_attention_dim)."""
    _check_widths(image_size, widths, layers_per_block)
    if num_frames < 2 or cross_attention_dim < 1 or heads < 1:
        raise ValueError("num_frames >= 2, cross_attention_dim >= 1 and heads >= 1 please")
    n = len(widths)
    return UNetMotionModel(
        sample_size=image_size,
        in_channels=channels,
        out_channels=channels,
        down_block_types=("DownBlockMotion",) * (n - 1) + ("CrossAttnDownBlockMotion",),
        up_block_types=("CrossAttnUpBlockMotion",) + ("UpBlockMotion",) * (n - 1),
        block_out_channels=widths,
        layers_per_block=layers_per_block,
        norm_num_groups=_norm_groups(widths),
        cross_attention_dim=cross_attention_dim,
        num_attention_heads=heads,
        motion_num_attention_heads=heads,
        motion_max_seq_length=max(32, num_frames),
        use_motion_mid_block=True,
    )


PREDICTION_TYPES = ("epsilon", "sample", "v_prediction")


def make_scheduler(
    kind: str = "ddpm",
    *,
    num_train_timesteps: int = 1000,
    beta_schedule: str = "squaredcos_cap_v2",
    clip_sample: bool = False,
    beta_start: float = 0.0001,
    beta_end: float = 0.02,
    prediction_type: str = "epsilon",
) -> SchedulerMixin:
    """A diffusers DDPM or DDIM scheduler, with alphabar_{-1} = 1 for the last DDIM step.
    ``prediction_type``: what the model predicts, diffusers' names: ``"epsilon"`` (the noise,
    the default), ``"sample"`` (x0) or ``"v_prediction"`` (v = sqrt(ab) eps - sqrt(1-ab) x0,
    Salimans & Ho 2022); :func:`~paperlab.core.diffusion.diffusion_loss` trains that target and
    the samplers convert the model's output with :func:`output_to_eps`. ``clip_sample``: the
    samplers clamp the predicted x0 to [-1, 1] (pixel-space DDPM's habit, Ho et al. 2020; off
    by default, as for latents, and never in inversion).
    ``beta_start`` / ``beta_end``: for the linear schedules (SD's ``scaled_linear`` uses
    0.00085 / 0.012)."""
    if num_train_timesteps < 2:
        raise ValueError(f"num_train_timesteps={num_train_timesteps}: must be >= 2")
    if prediction_type not in PREDICTION_TYPES:
        raise ValueError(f"prediction_type={prediction_type!r}: choose one of {PREDICTION_TYPES}")
    common = {
        "num_train_timesteps": num_train_timesteps,
        "beta_schedule": beta_schedule,
        "clip_sample": clip_sample,
        "beta_start": beta_start,
        "beta_end": beta_end,
        "prediction_type": prediction_type,
    }
    if kind == "ddpm":
        return DDPMScheduler(**common)
    if kind == "ddim":
        return DDIMScheduler(**common, set_alpha_to_one=True)
    raise ValueError(f"kind={kind!r}: choose 'ddpm' or 'ddim'")


def output_to_eps(scheduler: SchedulerMixin, out: Tensor, x_t: Tensor, t: int) -> Tensor:
    """The noise implied by a model output of the scheduler's ``prediction_type`` at timestep
    ``t`` (an int), as ``DDIMScheduler.step`` computes its ``pred_epsilon``: the output itself
    for ``epsilon``; (x_t - sqrt(ab) x0) / sqrt(1-ab) for ``sample``; sqrt(ab) v + sqrt(1-ab)
    x_t for ``v_prediction``."""
    kind = getattr(scheduler.config, "prediction_type", "epsilon")
    if kind == "epsilon":
        return out
    ab = float(scheduler.alphas_cumprod[t])
    if kind == "sample":
        return (x_t - ab**0.5 * out) / (1 - ab) ** 0.5
    if kind == "v_prediction":
        return ab**0.5 * out + (1 - ab) ** 0.5 * x_t
    raise ValueError(f"prediction_type={kind!r}: choose one of {PREDICTION_TYPES}")


# ---------------------------------------------------------------------------------------------
# One call for any of our denoisers


def predict_eps(model: nn.Module, x_t: Tensor, t: Tensor | int, cond: Any = None) -> Tensor:
    """The model's output at (x_t, t, cond) for any of our UNets (see module docstring): the
    predicted noise eps_theta for an ``epsilon`` model (the default; for the other prediction
    types convert it with :func:`output_to_eps`)."""
    t = torch.as_tensor(t, device=x_t.device)
    t = t.expand(x_t.shape[0]) if t.dim() == 0 else t
    if isinstance(model, UNet2DModel):
        return model(x_t, t, class_labels=cond).sample
    if isinstance(model, UNetMotionModel):
        if x_t.dim() != 5:
            raise ValueError(
                f"x_t: a UNetMotionModel takes (B, C, F, H, W), got {tuple(x_t.shape)}"
            )
        if cond is not None and cond.shape[0] == x_t.shape[0]:
            cond = cond.repeat_interleave(x_t.shape[2], dim=0)  # one text per frame, as AnimateDiff
        return model(x_t, t, encoder_hidden_states=cond).sample
    if isinstance(model, UNet2DConditionModel):
        return model(x_t, t, encoder_hidden_states=cond).sample
    out = model(x_t, t, cond)
    return out.sample if hasattr(out, "sample") else out


def _null_like(null_cond: Tensor, cond: Tensor) -> Tensor:
    """``null_cond`` as a batch like ``cond``: one row (cond's per-example shape) is repeated."""
    null_cond = null_cond.to(cond.device, cond.dtype)
    if null_cond.shape == cond.shape:
        return null_cond
    if null_cond.shape == cond.shape[1:]:
        return null_cond.unsqueeze(0).expand_as(cond).clone()
    raise ValueError(
        f"null_cond: shape {tuple(null_cond.shape)} fits neither cond {tuple(cond.shape)} "
        "nor one of its rows"
    )


def cfg_eps(model, x_t, t, cond, null_cond, guidance_scale: float) -> Tensor:
    """Classifier-free guidance (Ho & Salimans 2022): eps_u + s (eps_c - eps_u); s = 1 is eps_c."""
    if guidance_scale == 1.0 or null_cond is None:
        return predict_eps(model, x_t, t, cond)
    both = torch.cat([cond, _null_like(null_cond, cond)])
    eps_c, eps_u = predict_eps(model, torch.cat([x_t, x_t]), t, both).chunk(2)
    return eps_u + guidance_scale * (eps_c - eps_u)
