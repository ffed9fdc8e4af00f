"""The trainings behind the claims: the image-LLM on single images, then PLLaVA variants
(pooling shape, seed) tuned on clips, evaluated along the way.

The image encoder is frozen during video tuning (``freeze_vision_tower=True``), so the frame
features of every raw frame are computed once (:func:`raw_features`) and the official segment
sampling picks frames from them per step ("rand") or at evaluation ("middle").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from paperlab.core.imagellm import ImageLLM, ImageLLMConfig, train_image_llm
from paperlab.core.train import TrainConfig, eval_mode, row_batches, train
from paperlab.papers.pllava.data import (
    COLOURS,
    IMAGE_PROMPTS,
    QUADRANTS,
    SHAPES,
    VIDEO_PROMPTS,
    ClipSet,
    ImageSet,
    caption_score,
    image_examples,
    make_clips,
    make_images,
    sample_frame_indices,
)
from paperlab.papers.pllava.model import PLLaVA

IMAGE_FIELDS = (
    "vision_steps",
    "image_size",
    "patch_size",
    "vit_dim",
    "vit_depth",
    "vit_heads",
    "dim",
    "n_layers",
    "n_heads",
    "num_frames",
    "image_train",
    "image_steps",
    "image_lr",
    "batch_size",
)


def image_llm_config(cfg: Any) -> ImageLLMConfig:
    """The image-LLM's architecture; room for ``num_frames`` frames of tokens unpooled."""
    grid = cfg.image_size // cfg.patch_size
    return ImageLLMConfig(
        image_size=cfg.image_size,
        patch_size=cfg.patch_size,
        vit_dim=cfg.vit_dim,
        vit_depth=cfg.vit_depth,
        vit_heads=cfg.vit_heads,
        dim=cfg.dim,
        n_layers=cfg.n_layers,
        n_heads=cfg.n_heads,
        max_text_len=64,
        max_visual_tokens=cfg.num_frames * grid * grid,
    )


def image_spec(cfg: Any) -> dict[str, Any]:
    return {k: getattr(cfg, k) for k in IMAGE_FIELDS}


@torch.no_grad()
def image_accuracy(model: ImageLLM, images: ImageSet) -> dict[str, float]:
    """Exact-match accuracy per image question (caption included) on held-out images."""
    out = {}
    n = len(images.colour)
    for q, prompt in IMAGE_PROMPTS.items():
        got = model.generate(images.images, [prompt] * n, max_new_tokens=40)
        out[q] = float(np.mean([g == images.answer(k, q) for k, g in enumerate(got)]))
    return out


class _AttributeProbe(nn.Module):
    """The encoder with one linear head over its mean patch token: colour, shape, quadrant."""

    def __init__(self, model: ImageLLM):
        super().__init__()
        self.vision = model.vision
        self.head = nn.Linear(model.config.vit_dim, len(COLOURS) + len(SHAPES) + len(QUADRANTS))

    def forward(self, images: Tensor) -> Tensor:
        return self.head(self.vision.tokens(images).mean(1))


def _attribute_loss(probe: nn.Module, batch: tuple[Tensor, ...]) -> Tensor:
    images, colour, shape, where = batch
    out = probe(images)
    c, s = len(COLOURS), len(COLOURS) + len(SHAPES)
    return (
        F.cross_entropy(out[:, :c], colour)
        + F.cross_entropy(out[:, c:s], shape)
        + F.cross_entropy(out[:, s:], where)
    )


def pretrain_vision(
    model: ImageLLM, images: ImageSet, *, steps: int, lr: float, seed: int, device: str = "cpu"
) -> float:
    """Pre-train the encoder on the images' attributes; the last loss.

    # DEVIATION: LLaVA's encoder is CLIP ViT-L/14, pre-trained contrastively on 400M image-text
    # pairs and frozen; here a small ViT is pre-trained by supervised attribute classification
    # on the procedural images (from scratch, the image-LLM learns colour but not shape or
    # position within the budget)."""
    labels = (
        torch.tensor([list(COLOURS).index(c) for c in images.colour]),
        torch.tensor([SHAPES.index(s) for s in images.shape]),
        torch.tensor([QUADRANTS.index(w) for w in images.where]),
    )
    probe = _AttributeProbe(model)
    cfg = TrainConfig(
        steps=steps, lr=lr, warmup_steps=max(1, steps // 10), seed=seed, progress=False
    )
    hist = train(
        probe,
        _attribute_loss,
        row_batches((images.images, *labels), 64, seed=seed),
        cfg,
        device=device,
    )
    return hist["loss"][-1]


def train_image_model(
    cfg: Any, seed: int, *, device: str = "cpu", progress: bool = False
) -> tuple[ImageLLM, dict[str, float]]:
    """The image-LLM (LLaVA's role): the encoder pre-trained (:func:`pretrain_vision`), then
    projector + decoder trained on single-image questions with the encoder frozen; with its
    held-out accuracy per question, the powering figure of every video claim."""
    torch.manual_seed(seed)
    model = ImageLLM(image_llm_config(cfg))
    images = make_images(cfg.image_train, size=cfg.image_size, seed=seed)
    vision_loss = pretrain_vision(
        model, images, steps=cfg.vision_steps, lr=cfg.image_lr, seed=seed, device=device
    )
    hist = train_image_llm(
        model,
        image_examples(images),
        steps=cfg.image_steps,
        batch_size=cfg.batch_size,
        lr=cfg.image_lr,
        seed=seed,
        device=device,
        progress=progress,
        freeze_vision=True,
        desc="pllava: image-LLM",
    )
    test = make_images(cfg.image_test, size=cfg.image_size, seed=seed + 10_007)
    acc = image_accuracy(model.to(device), test)
    info = {f"image_acc_{q}": a for q, a in acc.items()}
    info["image_acc"] = float(np.mean([acc[q] for q in ("colour", "shape", "where")]))
    info["image_loss"] = hist["loss"][-1]
    info["vision_loss"] = vision_loss
    info["image_seconds"] = sum(hist["seconds"])
    return model.cpu().eval(), info


@torch.no_grad()
def raw_features(model: ImageLLM, clips: ClipSet, *, batch: int = 256) -> Tensor:
    """(N, raw_frames, n_patches, vit_dim) frozen-encoder features of every raw frame."""
    frames = clips.frames.flatten(0, 1)
    with eval_mode(model):
        feats = torch.cat([model.encode_images(x).cpu() for x in frames.split(batch)])
    return feats.reshape(*clips.frames.shape[:2], *feats.shape[1:])


@dataclass
class VideoData:
    """Training and evaluation clips with their raw-frame features."""

    train: ClipSet
    train_feats: Tensor
    test: ClipSet
    test_feats: Tensor


def make_video_data(cfg: Any, base: ImageLLM, seed: int) -> VideoData:
    size, raw = cfg.image_size, cfg.raw_frames
    train_clips = make_clips(cfg.video_train, raw_frames=raw, size=size, seed=seed + 1)
    test_clips = make_clips(cfg.video_test, raw_frames=raw, size=size, seed=seed + 20_011)
    return VideoData(
        train_clips, raw_features(base, train_clips), test_clips, raw_features(base, test_clips)
    )


def video_batches(data: VideoData, cfg: Any, seed: int):
    """``step -> (feats (B, T, N, d), prompts, answers)``: random clips, "rand" frame sampling;
    a motion clip is asked for its caption with probability ``caption_frac``."""
    clips, feats = data.train, data.train_feats

    def batch(step: int):
        rng = np.random.default_rng([seed, step])
        rows = rng.integers(len(clips), size=cfg.batch_size)
        idx = [
            sample_frame_indices(cfg.raw_frames, cfg.num_frames, mode="rand", rng=rng) for _ in rows
        ]
        x = torch.stack([feats[r, i] for r, i in zip(rows, idx, strict=True)])
        prompts, answers = [], []
        for r in rows:
            if clips.caption[r] and rng.random() < cfg.caption_frac:
                prompts.append(VIDEO_PROMPTS["caption"])
                answers.append(clips.caption[r])
            else:
                prompts.append(VIDEO_PROMPTS[clips.task[r]])
                answers.append(clips.answer[r])
        return x, prompts, answers

    return batch


def test_features(data: VideoData, cfg: Any) -> Tensor:
    idx = sample_frame_indices(cfg.raw_frames, cfg.num_frames, mode="middle")
    return data.test_feats[:, idx]


@torch.no_grad()
def evaluate_video(model: PLLaVA, data: VideoData, cfg: Any) -> dict[str, float]:
    """QA accuracy per task and overall, caption fact score and length (motion clips), and
    the visual tokens' norm statistics (Sec. 3's dominant tokens)."""
    feats = test_features(data, cfg).to(model.base.device)
    clips = data.test
    out: dict[str, float] = {}
    with eval_mode(model):
        answers = model.generate(feats, [VIDEO_PROMPTS[t] for t in clips.task], max_new_tokens=12)
        correct = np.array([a == b for a, b in zip(answers, clips.answer, strict=True)])
        tasks = np.array(clips.task)
        for t in sorted(set(clips.task)):
            out[f"acc_{t}"] = float(correct[tasks == t].mean())
        out["acc"] = float(np.mean([out[f"acc_{t}"] for t in sorted(set(clips.task))]))
        motion = [k for k, c in enumerate(clips.caption) if c]
        caps = model.generate(feats[motion], [VIDEO_PROMPTS["caption"]] * len(motion))
        refs = [clips.caption[k] for k in motion]
        scores = [caption_score(c, r) for c, r in zip(caps, refs, strict=True)]
        out["caption_score"] = float(np.mean(scores))
        out["caption_len"] = float(np.mean([len(c) for c in caps]))
        out["caption_ref_len"] = float(np.mean([len(r) for r in refs]))
        norms = model.video_tokens(feats).norm(dim=-1)  # (B, n_tokens)
    out["norm_mean"] = float(norms.mean())
    out["norm_max_over_median"] = float((norms.max(1).values / norms.median(1).values).mean())
    return out


def train_video(
    base: ImageLLM,
    data: VideoData,
    cfg: Any,
    *,
    pooling_shape: tuple[int, int, int] | None,
    seed: int,
    device: str = "cpu",
    progress: bool = False,
) -> tuple[PLLaVA, dict[str, list[float]]]:
    """Tune a copy of ``base`` as PLLaVA (projector + LoRA on q/v) for ``video_steps`` steps;
    evaluate every ``video_steps // evals`` steps (the x-axis "training samples seen")."""
    import copy

    torch.manual_seed(seed)
    model = PLLaVA(
        copy.deepcopy(base),
        num_frames=cfg.num_frames,
        pooling_shape=pooling_shape,
        lora_r=cfg.lora_r,
        lora_alpha=cfg.lora_alpha,
        lora_dropout=0.05,
    )
    before = evaluate_video(model.to(device), data, cfg)  # the image model on 8 frames, zero-shot

    def evaluate(m: PLLaVA) -> dict[str, float]:
        return evaluate_video(m, data, cfg)

    every = max(1, cfg.video_steps // cfg.evals)
    tcfg = TrainConfig(
        steps=cfg.video_steps,
        lr=cfg.video_lr,
        weight_decay=0.02,  # the official optimizer: AdamW, wd 0.02, betas (0.9, 0.999)
        betas=(0.9, 0.999),
        warmup_steps=max(1, int(0.2 * cfg.video_steps)),  # warmup_ratio 0.2
        min_lr_ratio=0.25,  # min_lr_multi 0.25
        grad_clip=None,  # max_grad_norm -1
        eval_every=every,
        seed=seed,
        progress=progress,
        log_every=max(1, cfg.video_steps // 50),
        desc=f"pllava: pool {pooling_shape}",
    )
    hist = train(
        model,
        lambda m, b: m.loss(*b),
        video_batches(data, cfg, seed),
        tcfg,
        eval_fn=evaluate,
        device=device,
    )
    curve: dict[str, list[float]] = {"loss": list(hist["loss"]), "step": list(hist["step"])}
    for k, v in before.items():
        curve[f"eval_{k}"] = [v, *hist[f"eval_{k}"]]
    curve["samples_seen"] = [0, *((s + 1) * cfg.batch_size for s in hist["eval_step"])]
    return model.eval(), curve


def train_pllava(
    cfg: Any,
    *,
    seed: int = 0,
    pooling_shape: tuple[int, int, int] | None = (8, 2, 2),
    device: str = "cpu",
    progress: bool = True,
) -> tuple[PLLaVA, dict[str, float]]:
    """The whole recipe, for a servable model: image-LLM, then PLLaVA tuned on clips; returns
    the model and its final figures (image accuracy, video QA accuracy, caption score)."""
    base, info = train_image_model(cfg, seed, device=device, progress=progress)
    data = make_video_data(cfg, base, seed)
    model, curve = train_video(
        base, data, cfg, pooling_shape=pooling_shape, seed=seed, device=device, progress=progress
    )
    figures = dict(info)
    figures |= {k[len("eval_") :]: v[-1] for k, v in curve.items() if k.startswith("eval_")}
    return model.cpu().eval(), figures
