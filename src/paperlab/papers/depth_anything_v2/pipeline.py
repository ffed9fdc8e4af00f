"""The training pipeline the official repo never released (Sec. 3-4, Fig. 3):

1. **teacher**: the larger model trained on precise synthetic labels only;
2. **pseudo-label**: the teacher predicts disparity for unlabelled real images;
3. **student**: a smaller model trained on those pseudo-labels only, ignoring the 10% of
   pixels with the largest loss per image.

Each stage is a function here and a ``paperlab depth`` subcommand; each resumes where it was
killed (training from its last checkpoint, pseudo-labelling from its last finished chunk) and
writes safetensors:

    work/teacher.safetensors        work/pseudo_labels.safetensors      work/student.safetensors
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm import tqdm

from paperlab.core.checkpoint import load_model, save_model, save_safetensors_atomic
from paperlab.core.device import resolve_device
from paperlab.core.train import TrainConfig, train
from paperlab.papers.depth_anything_v2.data import make_real, make_synthetic
from paperlab.papers.depth_anything_v2.losses import depth_loss
from paperlab.papers.depth_anything_v2.model import DepthAnythingV2, DepthConfig, small_config
from paperlab.papers.depth_anything_v2.transform import normalize

KIND = "depth_anything_v2"
POSITIVE_MARGIN = 0.1  # the pre-ReLU map is pushed above this (see train_depth)


@dataclass
class PipelineConfig:
    """Sizes of the miniature pipeline (the CLI's defaults; the claims use their own config)."""

    size: int = 48  # training images are size x size
    patch_size: int = 8
    teacher_dim: int = 192
    teacher_depth: int = 6
    teacher_heads: int = 6
    teacher_features: int = 32
    student_dim: int = 96
    student_depth: int = 4
    student_heads: int = 3
    student_features: int = 16
    n_synthetic: int = 1000
    n_real: int = 1000
    teacher_steps: int = 1000
    student_steps: int = 600
    batch_size: int = 8
    lr: float = 1e-3
    top_ignore: float = 0.1  # on pseudo-labels (Sec. 4)
    gm_weight: float = 2.0  # L_ssi : L_gm = 1 : 2 (App. B)
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("size", "patch_size", "n_synthetic", "n_real", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be >= 1")
        if self.size % self.patch_size:
            raise ValueError(f"size={self.size} must be a multiple of patch_size={self.patch_size}")
        if self.teacher_steps < 0 or self.student_steps < 0:
            raise ValueError("teacher_steps and student_steps must be >= 0")
        if not 0.0 <= self.top_ignore < 1.0:
            raise ValueError(f"top_ignore={self.top_ignore} must be in [0, 1)")

    def model_config(self, role: str) -> DepthConfig:
        """The teacher's or the student's :class:`DepthConfig`."""
        if role not in ("teacher", "student"):
            raise ValueError(f"role={role!r}: choose teacher or student")
        return small_config(
            image_size=self.size,
            patch_size=self.patch_size,
            dim=getattr(self, f"{role}_dim"),
            depth=getattr(self, f"{role}_depth"),
            n_heads=getattr(self, f"{role}_heads"),
            features=getattr(self, f"{role}_features"),
        )


# ---------------------------------------------------------------------------------------------
# Training and prediction


def depth_batches(
    images: Tensor, targets: Tensor, batch_size: int, seed: int
) -> Callable[[int], tuple[Tensor, Tensor, Tensor]]:
    """``step -> (images, targets, step)``: a random batch, randomly flipped left-right (the
    same for a given seed and step, so a resumed run sees the batches it would have seen)."""

    def batch(step: int) -> tuple[Tensor, Tensor, Tensor]:
        g = torch.Generator().manual_seed(seed * 1_000_003 + step)
        idx = torch.randint(len(images), (batch_size,), generator=g)
        x, y = images[idx], targets[idx]
        flip = torch.rand(batch_size, generator=g) < 0.5
        x = torch.where(flip[:, None, None, None], x.flip(-1), x)
        y = torch.where(flip[:, None, None], y.flip(-1), y)
        return x, y, torch.tensor(step)

    return batch


def train_depth(
    model: DepthAnythingV2,
    images: Tensor,
    targets: Tensor,
    *,
    steps: int,
    batch_size: int,
    lr: float,
    seed: int,
    gm_weight: float = 2.0,
    top_ignore: float = 0.0,
    gm_warmup: float = 0.25,
    device: str = "cpu",
    progress: bool = False,
    checkpoint_path: str | Path | None = None,
    desc: str = "depth",
) -> dict[str, list[float]]:
    """Train ``model`` on (images in [0, 1], disparity targets) with L_ssi + gm_weight * L_gm
    (the weight ramped up over the first ``gm_warmup`` of the steps), ignoring the
    ``top_ignore`` largest-loss pixels per image. With ``checkpoint_path`` it
    checkpoints every 100 steps and resumes from there. Returns core.train's history."""
    if len(images) != len(targets) or images.shape[-2:] != targets.shape[-2:]:
        raise ValueError(
            f"targets: {tuple(targets.shape)} do not match images {tuple(images.shape)}"
        )

    ramp = max(1.0, gm_warmup * steps)

    def loss_fn(m: nn.Module, batch: tuple) -> tuple[Tensor, dict[str, float]]:
        x, y, step = batch
        # DEVIATION: the L_gm weight ramps linearly from 0 to gm_weight over the first
        # gm_warmup of the steps. From scratch, L_gm at full weight (its per-pixel gradients
        # outnumber L_ssi's ~16:1) first settles on smooth maps of either sign and stalls the
        # global layout for a few hundred steps - more than a miniature budget has.
        weight = gm_weight * min(1.0, float(step) / ramp)
        # DEVIATION: the losses see the map before the final ReLU, plus a small hinge keeping
        # it positive. L_ssi and L_gm ignore shifts, so from scratch (the paper starts from
        # DINOv2) the map drifts below 0, where the ReLU passes no gradient and training dies.
        pre = m(normalize(x), relu=False)
        loss, info = depth_loss(pre, y, gm_weight=weight, top_ignore=top_ignore)
        hinge = F.relu(POSITIVE_MARGIN - pre).mean()
        return loss + hinge, info | {"hinge": float(hinge.detach())}

    # DEVIATION: one learning rate for encoder and head, AdamW with warmup + cosine (the paper
    # fine-tunes a DINOv2 encoder at lr 5e-6 and the head at 10x; ours starts from scratch).
    cfg = TrainConfig(
        steps=steps,
        lr=lr,
        weight_decay=0.05,
        warmup_steps=max(1, steps // 20),
        betas=(0.9, 0.999),
        seed=seed,
        progress=progress,
        log_every=max(1, steps // 50),
        desc=desc,
        checkpoint_path=str(checkpoint_path) if checkpoint_path else None,
        checkpoint_every=100 if checkpoint_path else 0,
        resume=checkpoint_path is not None,
    )
    return train(
        model, loss_fn, depth_batches(images, targets, batch_size, seed), cfg, device=device
    )


@torch.no_grad()
def predict(
    model: DepthAnythingV2, images: Tensor, *, batch_size: int = 64, device: str = "cpu"
) -> Tensor:
    """(N, H, W) disparity for (N, 3, H, W) images in [0, 1] (sides a multiple of the patch)."""
    was = model.training
    model.eval()
    try:
        out = [model(normalize(x.to(device))).cpu() for x in images.split(batch_size)]
    finally:
        model.train(was)
    return torch.cat(out)


def fit_job(
    *,
    model_config: dict[str, Any],
    images: Tensor,
    targets: Tensor,
    steps: int,
    batch_size: int,
    lr: float,
    seed: int,
    gm_weight: float,
    top_ignore: float,
    device: str = "cpu",
) -> tuple[dict[str, Tensor], dict[str, float]]:
    """A picklable training job (for ``core.parallel.run_jobs``): (CPU state dict, info)."""
    torch.manual_seed(seed)
    model = DepthAnythingV2(DepthConfig(**model_config))
    hist = train_depth(
        model,
        images,
        targets,
        steps=steps,
        batch_size=batch_size,
        lr=lr,
        seed=seed,
        gm_weight=gm_weight,
        top_ignore=top_ignore,
        device=device,
    )
    info = {"seconds": float(sum(hist["seconds"])), "final_loss": float(hist["loss"][-1])}
    return {k: v.cpu() for k, v in model.state_dict().items()}, info


# ---------------------------------------------------------------------------------------------
# The three stages on disk (the CLI)


def save_depth_model(path: str | Path, model: DepthAnythingV2, **meta: Any) -> Path:
    return save_model(path, model, kind=KIND, config=model.config.to_dict(), **meta)


def load_depth_model(path: str | Path, *, device: str = "cpu") -> DepthAnythingV2:
    """A model saved by :func:`save_depth_model` or converted by ``official.convert_checkpoint``."""
    model, _ = load_model(
        path, lambda c: DepthAnythingV2(DepthConfig(**c)), kind=KIND, map_location=device
    )
    return model.eval()


def _write_config(work: Path, cfg: PipelineConfig) -> None:
    work.mkdir(parents=True, exist_ok=True)
    (work / "pipeline.json").write_text(json.dumps(asdict(cfg), indent=2))


def run_train_teacher(
    work: Path, cfg: PipelineConfig, *, device: str = "cpu", progress: bool = True
) -> Path:
    """Stage 1: the teacher on ``cfg.n_synthetic`` ray-cast scenes -> work/teacher.safetensors."""
    device = resolve_device(device)
    _write_config(work, cfg)
    images, disparity = make_synthetic(cfg.n_synthetic, size=cfg.size, seed=cfg.seed)
    torch.manual_seed(cfg.seed)
    model = DepthAnythingV2(cfg.model_config("teacher"))
    train_depth(
        model,
        images,
        disparity,
        steps=cfg.teacher_steps,
        batch_size=cfg.batch_size,
        lr=cfg.lr,
        seed=cfg.seed,
        gm_weight=cfg.gm_weight,
        device=device,
        progress=progress,
        checkpoint_path=work / "teacher.train.safetensors",
        desc="teacher",
    )
    return save_depth_model(work / "teacher.safetensors", model.cpu(), stage="teacher")


def run_pseudo_label(
    work: Path, cfg: PipelineConfig, *, device: str = "cpu", progress: bool = True, chunk: int = 256
) -> Path:
    """Stage 2: the teacher labels ``cfg.n_real`` real crops -> work/pseudo_labels.safetensors.
    Chunks are written as they finish (work/pseudo/), so a killed run continues."""
    device = resolve_device(device)
    teacher_file = work / "teacher.safetensors"
    if not teacher_file.is_file():
        raise FileNotFoundError(f"{teacher_file}: no teacher yet; run train-teacher first")
    teacher = load_depth_model(teacher_file, device=device)
    images = make_real(cfg.n_real, size=cfg.size, seed=cfg.seed + 1)
    parts = work / "pseudo"
    parts.mkdir(parents=True, exist_ok=True)
    from safetensors.torch import load_file

    labels = []
    starts = range(0, len(images), chunk)
    for start in tqdm(starts, desc="pseudo-label", disable=not progress, leave=False):
        part = parts / f"chunk_{start:07d}_{chunk}.safetensors"
        if not part.is_file():
            y = predict(teacher, images[start : start + chunk], device=device)
            save_safetensors_atomic({"disparity": y.contiguous()}, part, {"start": str(start)})
        labels.append(load_file(str(part))["disparity"])
    out = work / "pseudo_labels.safetensors"
    tensors = {"images": images, "disparity": torch.cat(labels).contiguous()}
    return save_safetensors_atomic(tensors, out, {"teacher": str(teacher_file), "kind": "pseudo"})


def run_train_student(
    work: Path, cfg: PipelineConfig, *, device: str = "cpu", progress: bool = True
) -> Path:
    """Stage 3: the student on the pseudo-labels only (top 10% ignored) -> student.safetensors."""
    from safetensors.torch import load_file

    device = resolve_device(device)
    labels_file = work / "pseudo_labels.safetensors"
    if not labels_file.is_file():
        raise FileNotFoundError(f"{labels_file}: no pseudo-labels yet; run pseudo-label first")
    data = load_file(str(labels_file))
    torch.manual_seed(cfg.seed + 2)
    model = DepthAnythingV2(cfg.model_config("student"))
    train_depth(
        model,
        data["images"],
        data["disparity"],
        steps=cfg.student_steps,
        batch_size=cfg.batch_size,
        lr=cfg.lr,
        seed=cfg.seed + 2,
        gm_weight=cfg.gm_weight,
        top_ignore=cfg.top_ignore,
        device=device,
        progress=progress,
        checkpoint_path=work / "student.train.safetensors",
        desc="student",
    )
    return save_depth_model(work / "student.safetensors", model.cpu(), stage="student")
