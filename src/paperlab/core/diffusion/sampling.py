"""DDPM training, DDIM sampling and inversion, SDEdit, and guidance by gradient."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from diffusers import SchedulerMixin
from torch import Tensor, nn

from paperlab.core.diffusion.models import (
    _null_like,
    cfg_eps,
    make_scheduler,
    output_to_eps,
    predict_eps,
)
from paperlab.core.train import TrainConfig, row_batches, train

Guidance = Callable[[Tensor, int, Tensor], Tensor]  # (x_t, t, eps) -> eps

# ---------------------------------------------------------------------------------------------
# Training


def diffusion_loss(
    model: nn.Module,
    x0: Tensor,
    scheduler: SchedulerMixin,
    *,
    cond: Any = None,
    generator: torch.Generator | None = None,
    weight: Tensor | None = None,
) -> Tensor:
    """DDPM's simple loss (Ho et al. 2020, Eq. 14): MSE(eps, eps_theta(x_t, t)) at a uniform t,
    x_t = sqrt(ab_t) x0 + sqrt(1 - ab_t) eps; the target is x0 or v = sqrt(ab) eps -
    sqrt(1 - ab) x0 instead for a scheduler whose ``prediction_type`` is ``sample`` or
    ``v_prediction`` (unweighted MSE, as diffusers' training examples). ``weight``: optional
    non-negative per-element weights broadcastable to ``x0`` (e.g. (B, 1, H, W) per pixel); the
    squared errors are weighted and divided by the mean weight, so constant weights give the
    plain MSE."""
    if weight is not None and (weight.dim() != x0.dim() or bool((weight < 0).any())):
        raise ValueError(f"weight: need {x0.dim()} dims broadcastable to x0 and no negatives")
    n_t = scheduler.config.num_train_timesteps
    t = torch.randint(n_t, (x0.shape[0],), generator=generator).to(x0.device)
    noise = torch.randn(x0.shape, generator=generator).to(x0.device)
    x_t = scheduler.add_noise(x0, noise, t)
    kind = getattr(scheduler.config, "prediction_type", "epsilon")
    if kind == "epsilon":
        target = noise
    elif kind == "sample":
        target = x0
    elif kind == "v_prediction":
        target = scheduler.get_velocity(x0, noise, t)
    else:
        raise ValueError(f"scheduler: prediction_type={kind!r} is not supported")
    if weight is None:
        return F.mse_loss(predict_eps(model, x_t, t, cond), target)
    err = (predict_eps(model, x_t, t, cond) - target) ** 2
    return (err * weight).mean() / weight.mean()  # broadcasting repeats rows evenly


def train_diffusion(
    model: nn.Module,
    data: Tensor | Callable[[int], Any],
    *,
    steps: int,
    batch_size: int,
    lr: float,
    seed: int,
    device: str = "cpu",
    cond: Tensor | None = None,
    cond_drop_prob: float = 0.0,
    null_cond: Tensor | None = None,
    scheduler: SchedulerMixin | None = None,
    progress: bool = True,
    warmup_steps: int = 0,
) -> dict:
    """Train ``model`` as a DDPM noise predictor through :func:`paperlab.core.train.train`.

    ``data``: a tensor of images/clips (rows drawn at random, seeded; ``cond`` indexed with
    them) or a callable ``step -> x0`` or ``-> (x0, cond)``. ``cond_drop_prob``: each row's
    cond is replaced by ``null_cond`` with that probability (classifier-free guidance training).
    Returns the history (``loss``, ``seconds``, ...).
    """
    if steps < 1 or batch_size < 1 or lr <= 0:
        raise ValueError(f"steps={steps}, batch_size={batch_size}, lr={lr}: all must be > 0")
    if not 0.0 <= cond_drop_prob <= 1.0:
        raise ValueError(f"cond_drop_prob={cond_drop_prob}: must be in [0, 1]")
    if cond_drop_prob > 0 and null_cond is None:
        raise ValueError("cond_drop_prob > 0 needs null_cond (the unconditional input)")
    scheduler = scheduler or make_scheduler("ddpm")
    if isinstance(data, Tensor):
        if cond is not None and cond.shape[0] != data.shape[0]:
            raise ValueError(f"cond: {cond.shape[0]} rows for {data.shape[0]} data rows")
        batches = row_batches(data if cond is None else (data, cond), batch_size, seed=seed)
    elif callable(data):
        batches = data
    else:
        raise ValueError(f"data: a Tensor or a callable step -> batch, got {type(data).__name__}")
    gen = torch.Generator().manual_seed(seed + 12_345)

    def loss_fn(model: nn.Module, batch: Any) -> Tensor:
        x0, c = batch if isinstance(batch, tuple | list) else (batch, None)
        if c is not None and cond_drop_prob > 0:
            drop = torch.rand(x0.shape[0], generator=gen).to(x0.device) < cond_drop_prob
            null = _null_like(null_cond, c)
            c = torch.where(drop.view(-1, *[1] * (c.dim() - 1)), null, c)
        return diffusion_loss(model, x0, scheduler, cond=c, generator=gen)

    cfg = TrainConfig(
        steps=steps,
        lr=lr,
        warmup_steps=warmup_steps,
        weight_decay=0.0,
        betas=(0.9, 0.999),
        seed=seed,
        progress=progress,
        desc="diffusion",
        grad_clip=1.0,
    )
    return train(model, loss_fn, batches, cfg, device=device)


# ---------------------------------------------------------------------------------------------
# Sampling, inversion, SDEdit


def _alphabar(scheduler: SchedulerMixin, t: int) -> float:
    if t < 0:  # the step after the last: alphabar = 1 (DDIM's set_alpha_to_one)
        return float(getattr(scheduler, "final_alpha_cumprod", torch.tensor(1.0)))
    return float(scheduler.alphas_cumprod[t])


def ddim_step(
    scheduler,
    eps: Tensor,
    t: int,
    t_prev: int,
    x_t: Tensor,
    *,
    eta: float = 0.0,
    generator: torch.Generator | None = None,
    eps_direction: Tensor | None = None,
    clip: bool = True,
) -> Tensor:
    """x_{t_prev} from x_t and eps: DDIM Eq. 12, sigma = eta sqrt((1-ab')/(1-ab) (1-ab/ab')).

    ``eps_direction``: another eps for the "direction pointing to x_t" term only (x0 is still
    predicted from ``eps``): how guided noise enters (MotionClone's ``customized_step``)."""
    ab, ab_prev = _alphabar(scheduler, t), _alphabar(scheduler, t_prev)
    x0 = (x_t - math.sqrt(1 - ab) * eps) / math.sqrt(ab)
    if clip and getattr(scheduler.config, "clip_sample", False):
        x0 = x0.clamp(-1, 1)  # as DDIMScheduler.step (eps itself is kept, as there)
    sigma = eta * math.sqrt((1 - ab_prev) / (1 - ab) * (1 - ab / ab_prev)) if eta > 0 else 0.0
    direction = eps if eps_direction is None else eps_direction
    x_prev = math.sqrt(ab_prev) * x0 + math.sqrt(max(1 - ab_prev - sigma**2, 0.0)) * direction
    if sigma > 0:
        x_prev = x_prev + sigma * torch.randn(x_t.shape, generator=generator).to(x_t.device)
    return x_prev


def ddim_timesteps(scheduler: SchedulerMixin, steps: int) -> list[int]:
    """The scheduler's own decreasing timesteps for ``steps`` DDIM steps."""
    if steps < 1 or steps > scheduler.config.num_train_timesteps:
        raise ValueError(f"steps={steps}: must be in [1, {scheduler.config.num_train_timesteps}]")
    scheduler.set_timesteps(steps)
    return [int(t) for t in scheduler.timesteps]


def _device_of(model: nn.Module, device: str | None) -> str:
    if device is not None:
        return device
    p = next(model.parameters(), None)
    return str(p.device) if p is not None else "cpu"


def _prepare(model, shape_or_x, steps, scheduler, timesteps, device):
    scheduler = scheduler or make_scheduler("ddim")
    if timesteps is None:
        timesteps = ddim_timesteps(scheduler, steps)
    else:
        timesteps = [int(t) for t in timesteps]
        n_t = scheduler.config.num_train_timesteps
        if not timesteps or any(a <= b for a, b in zip(timesteps, timesteps[1:], strict=False)):
            raise ValueError("timesteps: need a non-empty, strictly decreasing list")
        if timesteps[0] >= n_t or timesteps[-1] < 0:
            raise ValueError(f"timesteps: must lie in [0, {n_t})")
    return scheduler, timesteps, _device_of(model, device)


def ddim_sample(
    model: nn.Module,
    shape: Sequence[int],
    *,
    steps: int = 50,
    seed: int = 0,
    cond: Any = None,
    null_cond: Any = None,
    guidance_scale: float = 1.0,
    eta: float = 0.0,
    guidance: Guidance | None = None,
    x_T: Tensor | None = None,
    scheduler: SchedulerMixin | None = None,
    device: str | None = None,
    timesteps: Sequence[int] | None = None,
    progress: bool = False,
) -> Tensor:
    """DDIM sampling (eta 0: deterministic) from x_T ~ N(0, I) (seeded) or the given ``x_T``.

    CFG when ``guidance_scale != 1`` (needs ``null_cond``: one row or a batch like ``cond``).
    ``guidance(x_t, t, eps) -> eps_hat`` rewrites the (CFG) noise at every step, e.g.
    :func:`gradient_guidance`; eps_hat enters the direction term of the DDIM step while x0 is
    predicted from eps, as MotionClone's official sampler does (with eps_hat in both, the
    x0 term's 1/sqrt(ab) would reverse the effect: subtracting a loss gradient from eps would
    move x_t up that loss). ``timesteps``: any decreasing list instead of the scheduler's
    ``steps`` ones. Returns x_0 clamped to [-1, 1].
    """
    if len(shape) < 4:
        raise ValueError(f"shape={tuple(shape)}: need (B, C, H, W) or (B, C, F, H, W)")
    if guidance_scale != 1.0 and null_cond is None:
        raise ValueError(f"guidance_scale={guidance_scale} needs null_cond")
    if eta < 0:
        raise ValueError(f"eta={eta}: must be >= 0")
    scheduler, timesteps, device = _prepare(model, shape, steps, scheduler, timesteps, device)
    gen = torch.Generator().manual_seed(seed)
    if x_T is None:
        x = torch.randn(tuple(shape), generator=gen).to(device)
    elif tuple(x_T.shape) != tuple(shape):
        raise ValueError(f"x_T: shape {tuple(x_T.shape)} != shape {tuple(shape)}")
    else:
        x = x_T.to(device)
    cond = cond.to(device) if isinstance(cond, Tensor) else cond
    bar = _tqdm(timesteps, progress, "ddim")
    for i, t in enumerate(bar):
        t_prev = timesteps[i + 1] if i + 1 < len(timesteps) else -1
        with torch.no_grad():
            eps = cfg_eps(model, x, t, cond, null_cond, guidance_scale)  # CFG is linear
            eps = output_to_eps(scheduler, eps, x, t)  # for a v- or x0-predicting model
        guided = guidance(x, t, eps) if guidance is not None else None
        with torch.no_grad():
            x = ddim_step(
                scheduler, eps, t, t_prev, x, eta=eta, generator=gen, eps_direction=guided
            )
    return x.clamp(-1, 1)


def _tqdm(items, progress: bool, desc: str):
    if not progress:
        return items
    from tqdm import tqdm

    return tqdm(items, desc=desc, leave=False)


@torch.no_grad()
def ddim_invert(
    model: nn.Module,
    x0: Tensor,
    *,
    steps: int = 50,
    cond: Any = None,
    scheduler: SchedulerMixin | None = None,
    timesteps: Sequence[int] | None = None,
) -> Tensor:
    """DDIM inversion: run Eq. 12 (eta 0) backwards, x_0 -> x_T, with eps taken at the next,
    noisier timestep from the current latent (the usual approximation eps(x_t) ~ eps(x_{t-1})).
    Sampling from the result with the same timesteps and cond gives back ~x0."""
    if x0.dim() < 4:
        raise ValueError(f"x0: need (B, C, H, W) or (B, C, F, H, W), got {tuple(x0.shape)}")
    scheduler, timesteps, device = _prepare(model, x0.shape, steps, scheduler, timesteps, None)
    x = x0.to(device)
    cond = cond.to(device) if isinstance(cond, Tensor) else cond
    ascending = timesteps[::-1]
    for i, t in enumerate(ascending):
        t_from = ascending[i - 1] if i > 0 else -1
        eps = output_to_eps(scheduler, predict_eps(model, x, t, cond), x, t)
        x = ddim_step(scheduler, eps, t_from, t, x, clip=False)  # the update, roles swapped
    return x


@torch.no_grad()
def sdedit(
    model: nn.Module,
    x0: Tensor,
    *,
    strength: float,
    steps: int = 50,
    seed: int = 0,
    cond: Any = None,
    null_cond: Any = None,
    guidance_scale: float = 1.0,
    scheduler: SchedulerMixin | None = None,
) -> Tensor:
    """SDEdit (Meng et al. 2022): noise ``x0`` to t ~ strength * T, then denoise with DDIM over
    the last ``round(strength * steps)`` of the ``steps`` timesteps (diffusers' img2img rule).
    Strength 0 returns ``x0``; strength 1 starts from pure noise (= :func:`ddim_sample`)."""
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"strength={strength}: must be in [0, 1]")
    if x0.dim() < 4:
        raise ValueError(f"x0: need (B, C, H, W) or (B, C, F, H, W), got {tuple(x0.shape)}")
    scheduler, timesteps, device = _prepare(model, x0.shape, steps, scheduler, None, None)
    n_run = min(round(strength * steps), steps)
    if n_run == 0:
        return x0.clone()
    run = timesteps[steps - n_run :]
    gen = torch.Generator().manual_seed(seed)
    noise = torch.randn(tuple(x0.shape), generator=gen).to(device)
    if n_run == steps:
        x_T = noise  # strength 1: the input is ignored
    else:
        x_T = scheduler.add_noise(x0.to(device), noise, torch.tensor([run[0]], device=device))
    return ddim_sample(
        model,
        x0.shape,
        cond=cond,
        null_cond=null_cond,
        guidance_scale=guidance_scale,
        x_T=x_T,
        scheduler=scheduler,
        timesteps=run,
        seed=seed + 1,
        device=device,
    )


# ---------------------------------------------------------------------------------------------
# Guidance by gradient


def gradient_guidance(
    loss_fn: Callable[[Tensor, int], Tensor],
    *,
    weight: float | Callable[[int], float],
    steps_range: tuple[int, int],
    scheduler: SchedulerMixin | None = None,
) -> Guidance:
    """A ``guidance(x_t, t, eps)`` hook: eps_hat = eps - sqrt(1 - ab_t) * w * grad_x_t loss
    (the classifier-guidance form of Dhariwal & Nichol 2021 Eq. 14 with a loss to lower, as
    MotionClone's code writes it; :func:`ddim_sample` puts eps_hat in the direction term, so
    x_{t-1} moves by -sqrt(1-ab_{t-1}) sqrt(1-ab_t) w grad), applied when lo <= t <= hi for
    ``steps_range = (lo, hi)`` timesteps and eps unchanged elsewhere. ``loss_fn(x_t, t)`` must
    be differentiable in x_t (it typically runs the model again). ``weight``: a number or a
    function of t (e.g. a warm-up / cool-down schedule). ``scheduler``: the sampler's (default
    :func:`make_scheduler` ``("ddim")``; only its ``alphas_cumprod`` is read).
    """
    lo, hi = steps_range
    if not 0 <= lo <= hi:
        raise ValueError(f"steps_range={steps_range}: need 0 <= lo <= hi")
    scheduler = scheduler or make_scheduler("ddim")
    weight_at = weight if callable(weight) else (lambda t: float(weight))

    def guidance(x_t: Tensor, t: int, eps: Tensor) -> Tensor:
        if not lo <= t <= hi:
            return eps
        w = weight_at(t)
        if w == 0:
            return eps
        x = x_t.detach().requires_grad_(True)
        with torch.enable_grad():
            (grad,) = torch.autograd.grad(loss_fn(x, t), x)
        return eps - math.sqrt(1 - _alphabar(scheduler, t)) * w * grad.detach()

    return guidance
