"""Fitting NaRCan to a clip, in the official code's two stages (``models/homography.py``, then
``train.py``), through ``core.train``:

1. :func:`fit_homography`: the homography MLP and a SIREN canonical, jointly, by MSE on the
   pixels; then the homography is frozen and the canonical region is measured.
2. :func:`fit_fields`: a fresh canonical SIREN f and residual SIREN g under the frozen
   homography: ``L1(f(H_t(x) + g(x, t)), frame) + 0.03 * mean|dg/d(x, y, t)|`` and, from the
   prior's start step on, ``L1(canonical, target)`` where the target is the canonical refined
   by the diffusion prior (SDEdit), refreshed on :class:`PriorSchedule` and held fixed between
   refreshes (Sec. 3.3, "noise and diffusion prior update scheduling").

Step numbers are the official ones scaled by ``steps / 12500`` (:meth:`PriorSchedule.scaled`).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from paperlab.core.device import torch_threads
from paperlab.core.train import TrainConfig, train
from paperlab.papers.narcan.fields import NaRCan, jacobian

OFFICIAL_STEPS = 12500  # train.py: train_residual_flow(..., 12500, lambda_flow=0.03)
OFFICIAL_SCHEDULE = ((3000, 10, 0.4), (5000, 100, 0.3), (None, 2000, 0.2))  # (until, every, s)
OFFICIAL_PRIOR_START = 1000
LAMBDA_FLOW = 0.03  # the weight of the residual field's Jacobian term (train.py)

Refiner = Callable[[Tensor, float, int], Tensor]  # (canonical (3, S, S), strength, seed) -> target


@dataclass(frozen=True)
class PriorSchedule:
    """When the diffusion prior refreshes its target and at what SDEdit strength: from
    ``start`` on, phase i (steps <= ``until``) refreshes every ``every`` steps at ``strength``."""

    start: int
    phases: tuple[tuple[int | None, int, float], ...]

    def __post_init__(self) -> None:
        if self.start < 0 or not self.phases or self.phases[-1][0] is not None:
            raise ValueError("PriorSchedule: start >= 0 and phases ending with until=None please")
        for until, every, strength in self.phases:
            if every < 1 or not 0.0 < strength <= 1.0:
                raise ValueError(f"PriorSchedule: phase {(until, every, strength)} is invalid")

    @classmethod
    def scaled(cls, steps: int, *, every_step: bool = False) -> PriorSchedule:
        """The official schedule (every 10 steps at strength 0.4 until 3k, every 100 at 0.3
        until 5k, then every 2000 at 0.2; the prior from step 1000) with its step numbers
        scaled by ``steps / 12500``. ``every_step``: the same strengths, refreshed at every step
        (the baseline the paper's 14x speed-up is measured against)."""
        # DEVIATION: every step number scaled by steps / 12500 (a miniature's run is shorter);
        # intervals below one step become every step
        k = steps / OFFICIAL_STEPS
        phases = tuple(
            (None if u is None else round(u * k), 1 if every_step else max(1, round(e * k)), s)
            for u, e, s in OFFICIAL_SCHEDULE
        )
        return cls(start=round(OFFICIAL_PRIOR_START * k), phases=phases)

    def phase(self, step: int) -> tuple[int, float]:
        """(every, strength) at ``step``."""
        for until, every, strength in self.phases:
            if until is None or step <= until:
                return every, strength
        raise AssertionError("unreachable: the last phase has until=None")

    def refreshes(self, step: int) -> bool:
        """Whether the target is refreshed at ``step`` (the first prior step always is)."""
        every, _ = self.phase(step)
        return step == self.start or (step > self.start and step % every == 0)

    def calls(self, steps: int) -> int:
        """How many refreshes (diffusion calls) a fit of ``steps`` steps makes."""
        return sum(self.refreshes(s) for s in range(self.start, steps))


@dataclass
class PriorTarget:
    """The held-fixed diffusion target and the bookkeeping of its refreshes."""

    refine: Refiner
    schedule: PriorSchedule
    seed: int = 0
    weight: float = 1.0
    target: Tensor | None = None
    calls: int = 0
    seconds: float = 0.0
    strengths: list[float] = field(default_factory=list)

    def loss(self, model: NaRCan, step: int) -> Tensor:
        canonical = model.render_canonical()  # (3, S, S), clipped as in get_canonical()
        if self.target is None or self.schedule.refreshes(step):
            _, strength = self.schedule.phase(step)
            started = time.perf_counter()
            with torch.no_grad():
                self.target = self.refine(canonical.detach(), strength, self.seed + self.calls)
            self.seconds += time.perf_counter() - started
            self.calls += 1
            self.strengths.append(strength)
        # the official loss compares images in [0, 1]: |(c + 1)/2 - (r + 1)/2| = |c - r| / 2
        return self.weight * 0.5 * (canonical - self.target).abs().mean()


def _pixels(frames: Tensor, model: NaRCan) -> tuple[Tensor, Tensor]:
    """(points (N, 3), colours (N, 3)) of every pixel of the clip, frame-major."""
    pts = model.frame_points(device="cpu")
    rgb = frames.permute(0, 2, 3, 1).reshape(-1, 3)
    return pts, rgb


def _chunks(n: int, batch: int, seed: int) -> Callable[[int], Tensor]:
    """The official data walk: one seeded shuffle, then consecutive chunks of ``batch``."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))

    def index(step: int) -> Tensor:
        start = (step * batch) % n
        return perm[start : min(start + batch, n)]

    return index


def _threads(device: str) -> contextlib.AbstractContextManager:
    """One thread on a CPU: the fields are tiny MLPs whose cost is per-op overhead (and two
    threads on a busy machine wait on each other far longer than they compute)."""
    return torch_threads(1) if device == "cpu" else contextlib.nullcontext()


def _config(
    steps: int, lr: float, seed: int, desc: str, progress: bool, min_lr: float
) -> TrainConfig:
    return TrainConfig(
        steps=steps,
        lr=lr,
        weight_decay=0.0,
        warmup_steps=0,
        min_lr_ratio=min_lr,
        grad_clip=None,
        betas=(0.9, 0.999),
        log_every=max(1, steps // 50),
        seed=seed,
        progress=progress,
        desc=desc,
    )


def fit_homography(
    frames: Tensor,
    *,
    steps: int,
    lr: float = 1e-3,
    batch_fraction: float = 1 / 16,  # DEVIATION: official 1/4 of the pixels per step
    hidden: int = 64,
    layers: int = 3,
    canonical_size: int = 48,
    seed: int = 0,
    device: str = "cpu",
    progress: bool = False,
) -> tuple[NaRCan, dict[str, Any]]:
    """Stage 1 (``models/homography.py``): the homography MLP and a SIREN canonical fitted
    jointly by MSE on batches of ``batch_fraction`` of the pixels; the homography is then frozen
    and the region set. Returns a homography-only :class:`NaRCan` and the history."""
    if frames.dim() != 4 or frames.shape[1] != 3 or frames.shape[0] < 2:
        raise ValueError(f"frames: want (F >= 2, 3, H, W) in [-1, 1], got {tuple(frames.shape)}")
    f, _, h, w = frames.shape
    torch.manual_seed(seed)
    model = NaRCan(
        frames=f,
        height=h,
        width=w,
        canonical_size=canonical_size,
        hidden=hidden,
        layers=layers,
        residual=False,
    )
    pts, rgb = _pixels(frames, model)
    index = _chunks(len(pts), max(1, int(len(pts) * batch_fraction)), seed)

    def loss_fn(m: NaRCan, batch: tuple[Tensor, Tensor]) -> Tensor:
        xyt, target = batch
        return ((m(xyt) - target) ** 2).mean()

    # DEVIATION: Adam at a constant 1e-3 for a few hundred steps (official: 1e-4 for 3000)
    optim = torch.optim.Adam(model.parameters(), lr=lr)
    with _threads(device):
        hist = train(
            model,
            loss_fn,
            lambda step: (pts[index(step)], rgb[index(step)]),
            _config(steps, lr, seed, "narcan: homography", progress, 1.0),
            optimizer=optim,
            device=device,
        )
    model.homography.requires_grad_(False)
    model.set_region()
    return model.eval(), hist


def stage_two_model(
    stage_one: NaRCan, *, residual: bool = True, seed: int = 0, **sizes: int
) -> NaRCan:
    """A fresh f (and g) under ``stage_one``'s frozen homography and region (train.py builds
    new SIRENs and loads only the homography)."""
    f, h, w = stage_one.shape
    torch.manual_seed(seed)
    model = NaRCan(
        frames=f,
        height=h,
        width=w,
        canonical_size=stage_one.canonical_size,
        residual=residual,
        **sizes,
    ).to(stage_one.region.device)
    model.homography.load_state_dict(stage_one.homography.state_dict())
    model.homography.requires_grad_(False)
    model.region.copy_(stage_one.region)
    return model


def fit_fields(
    model: NaRCan,
    frames: Tensor,
    *,
    steps: int,
    lr: float = 1e-3,
    batch_fraction: float = 1 / 32,
    lambda_flow: float = LAMBDA_FLOW,
    prior: PriorTarget | None = None,
    seed: int = 0,
    device: str = "cpu",
    progress: bool = False,
) -> dict[str, Any]:
    """Stage 2 (``train.py: train_residual_flow``) on ``model`` in place: L1 reconstruction on
    batches of ``batch_fraction`` of the pixels + ``lambda_flow`` * mean |Jacobian of g| (when
    the model has a residual) + the prior's L1 term (when ``prior`` is given, from its
    schedule's start). Returns the history, with the prior's calls and seconds."""
    if frames.shape[0] != model.shape[0] or tuple(frames.shape[2:]) != model.shape[1:]:
        raise ValueError(
            f"frames: shape {tuple(frames.shape)} does not match the model {model.shape}"
        )
    pts, rgb = _pixels(frames, model)
    index = _chunks(len(pts), max(1, int(len(pts) * batch_fraction)), seed)

    def loss_fn(m: NaRCan, batch: dict) -> tuple[Tensor, dict[str, float]]:
        xyt = batch["xyt"].requires_grad_(True)
        coords, g = m.deform(xyt)
        recon = (m.canonical(coords) - batch["rgb"]).abs().mean()
        loss, metrics = recon, {"recon": float(recon.detach())}
        if g is not None:
            flow = jacobian(g, xyt).abs().mean()
            loss = loss + lambda_flow * flow
            metrics["flow"] = float(flow.detach())
        step = int(batch["step"])
        if prior is not None and step >= prior.schedule.start:
            dm = prior.loss(m, step)
            loss = loss + dm
            metrics["dm"] = float(dm.detach())
        return loss, metrics

    def batches(step: int) -> dict:
        i = index(step)
        return {"xyt": pts[i], "rgb": rgb[i], "step": torch.tensor(step)}

    params = [p for p in model.parameters() if p.requires_grad]
    # DEVIATION: Adam with a cosine decay to 1% (core.train's schedule) in place of the
    # official MultiStepLR (x0.1 at 2k, 8k, 10k of 12.5k steps); peak lr 1e-3, not 1e-4, for
    # a run ~10x shorter
    optim = torch.optim.Adam(params, lr=lr)
    model.train()
    with _threads(device):
        hist = train(
            model,
            loss_fn,
            batches,
            _config(steps, lr, seed, "narcan: fields", progress, 0.01),
            optimizer=optim,
            device=device,
        )
    model.eval()
    if prior is not None:
        hist["prior_calls"] = [float(prior.calls)]
        hist["prior_seconds"] = [prior.seconds]
    return hist
