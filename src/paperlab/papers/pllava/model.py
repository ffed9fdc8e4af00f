"""PLLaVA: an image-LLM extended to video by pooling its visual tokens (Sec. 3).

As in the official ``PllavaMultiModalProjector``: every frame goes through the (frozen) image
encoder and the projector (linear-GELU-linear) on its own, the tokens are rearranged to
``(video, C, T, h, w)``, ``nn.AdaptiveAvgPool3d(pooling_shape)`` pools them (paper: 16 frames
of 24x24 -> 16x12x12, no temporal pooling) and the result is flattened frame-major,
``(video, T'*h'*w', C)``, in front of the prompt. A single image is repeated ``num_frames``
times first (the official ``media_type == "image"`` path). The language model gets LoRA
through ``peft`` on ``q_proj``/``v_proj`` (paper: r 128, alpha 32; the LLM and the vision
tower frozen, the projector trained); the official evaluation rebuilds the adapter with a
smaller ``lora_alpha`` (4) to mix the image model back in: :meth:`PLLaVA.set_lora_alpha`.

    video = PLLaVA(image_llm, num_frames=8, pooling_shape=(8, 2, 2), lora_r=8, lora_alpha=2)
    feats = video.frame_features(clips)              # (B, T, N, d_vit), frozen encoder
    loss = video.loss(feats, prompts, answers)       # answer-only CE through the pooled tokens
    video.set_lora_alpha(0.25)                       # evaluation-time alpha
    video.generate(feats, ["which way does the shape move?"] * B)
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from paperlab.core.imagellm import ImageLLM, ImageLLMConfig

LORA_TARGETS = ("q_proj", "v_proj")
CHECKPOINT_KIND = "PLLaVA"


def _check_pooling(pooling_shape: Sequence[int] | None, num_frames: int, grid: int):
    if pooling_shape is None:
        return None
    shape = tuple(int(s) for s in pooling_shape)
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"pooling_shape must be 3 positive ints (T, h, w), got {pooling_shape}")
    if shape[0] > num_frames or shape[1] > grid or shape[2] > grid:
        raise ValueError(
            f"pooling_shape={shape} must not exceed (num_frames, h, w) = "
            f"({num_frames}, {grid}, {grid})"
        )
    return shape


class PLLaVA(nn.Module):
    """An :class:`ImageLLM` whose visual tokens come from ``num_frames`` frames, pooled."""

    def __init__(
        self,
        base: ImageLLM,
        *,
        num_frames: int = 8,
        pooling_shape: Sequence[int] | None = (8, 2, 2),
        lora_r: int = 8,
        lora_alpha: float = 2.0,
        lora_dropout: float = 0.05,
    ):
        super().__init__()
        from peft import LoraConfig, inject_adapter_in_model

        grid = base.config.grid_size
        if num_frames < 1:
            raise ValueError(f"num_frames must be >= 1, got {num_frames}")
        if lora_r < 1 or lora_alpha <= 0 or not 0 <= lora_dropout < 1:
            raise ValueError(
                f"lora_r >= 1, lora_alpha > 0 and lora_dropout in [0, 1) please, got "
                f"{lora_r}, {lora_alpha}, {lora_dropout}"
            )
        self.num_frames = num_frames
        self.pooling_shape = _check_pooling(pooling_shape, num_frames, grid)
        # pooling_shape None: the n-frame baseline (Sec. 3), every frame's tokens concatenated
        self.pooling = nn.AdaptiveAvgPool3d(self.pooling_shape) if self.pooling_shape else None
        need = self.num_visual_tokens_for(num_frames, grid)
        if need > base.config.max_visual_tokens:
            raise ValueError(
                f"{need} visual tokens per video exceed the image-LLM's max_visual_tokens="
                f"{base.config.max_visual_tokens}"
            )
        self.lora_r, self.lora_dropout = lora_r, lora_dropout
        self.base = base
        # frozen: the vision tower and the LLM (freeze_vision_tower, freeze_lm); trained: the
        # projector (freeze_projector=False) and the LoRA adapters
        for p in base.parameters():
            p.requires_grad_(False)
        for p in base.projector.parameters():
            p.requires_grad_(True)
        lora = LoraConfig(
            r=lora_r,
            lora_alpha=lora_alpha,
            lora_dropout=lora_dropout,
            target_modules=list(LORA_TARGETS),
            bias="none",
        )
        inject_adapter_in_model(lora, base.llm)
        self.lora_alpha = float(lora_alpha)

    def num_visual_tokens_for(self, num_frames: int, grid: int) -> int:
        if self.pooling_shape is None:
            return num_frames * grid * grid
        t, h, w = self.pooling_shape
        return t * h * w

    @property
    def num_visual_tokens(self) -> int:
        return self.num_visual_tokens_for(self.num_frames, self.base.config.grid_size)

    def lora_layers(self) -> list[nn.Module]:
        from peft.tuners.lora import LoraLayer

        return [m for m in self.base.llm.modules() if isinstance(m, LoraLayer)]

    def set_lora_alpha(self, alpha: float) -> None:
        """The adapter's scale becomes ``alpha / r`` (the official evaluation builds its
        ``LoraConfig`` with ``lora_alpha=4`` on weights trained with 32)."""
        if not alpha > 0:
            raise ValueError(f"alpha must be > 0, got {alpha}")
        for layer in self.lora_layers():
            layer.set_scale("default", alpha / layer.lora_alpha["default"])
        self.lora_alpha = float(alpha)

    # -- the visual path ---------------------------------------------------------------------

    @torch.no_grad()
    def frame_features(self, clips: Tensor) -> Tensor:
        """(B, T, C, H, W) frames, or (B, C, H, W) images repeated ``num_frames`` times ->
        (B, T, N, d_vit) from the frozen encoder (cacheable: nothing here is trained)."""
        if not isinstance(clips, Tensor) or clips.ndim not in (4, 5):
            raise ValueError("clips must be frames (B, T, C, H, W) or images (B, C, H, W)")
        if clips.ndim == 4:  # media_type == "image"
            clips = clips[:, None].expand(-1, self.num_frames, -1, -1, -1)
        B, T = clips.shape[:2]
        if T != self.num_frames:
            raise ValueError(f"clips: {T} frames per video, the model takes {self.num_frames}")
        feats = self.base.encode_images(clips.reshape(B * T, *clips.shape[2:]))
        return feats.reshape(B, T, *feats.shape[1:])

    def video_tokens(self, feats: Tensor) -> Tensor:
        """(B, T, N, d_vit) -> projector per frame -> (B, C, T, h, w) -> AdaptiveAvgPool3d ->
        (B, T'*h'*w', C), frame-major (the official projector's rearranges)."""
        if feats.ndim != 4 or feats.shape[1] != self.num_frames:
            raise ValueError(
                f"feats must be (B, {self.num_frames}, N, d_vit), got {tuple(feats.shape)}"
            )
        B, T, N, _ = feats.shape
        g = self.base.config.grid_size
        x = self.base.project(feats.reshape(B * T, N, -1))  # (B*T, N, C)
        if self.pooling is None:
            return x.reshape(B, T * N, -1)
        C = x.shape[-1]
        video = x.reshape(B, T, g, g, C).permute(0, 4, 1, 2, 3)  # (B, C, T, h, w)
        pooled = self.pooling(video)  # (B, C, T', h', w')
        return pooled.flatten(2).transpose(1, 2)  # (B, T'*h'*w', C)

    def loss(self, feats: Tensor, prompts: Sequence[str], answers: Sequence[str]) -> Tensor:
        return self.base.loss(self.video_tokens(feats), prompts, answers)

    @torch.no_grad()
    def generate(
        self,
        clips_or_feats: Tensor,
        prompts: Sequence[str],
        *,
        max_new_tokens: int = 48,
        temperature: float = 0.0,
        seed: int = 0,
    ) -> list[str]:
        """Answers for frames (B, T, C, H, W), images (B, C, H, W) or features (B, T, N, d)."""
        x = clips_or_feats
        if isinstance(x, Tensor) and x.ndim == 4 and x.shape[-1] == self.base.config.vit_dim:
            feats = x  # already frame features
        else:
            feats = self.frame_features(x)
        with torch.no_grad():
            was = self.training
            self.eval()
            try:
                vis = self.video_tokens(feats.to(self.base.device))
            finally:
                self.train(was)
        return self.base.generate(
            vis, prompts, max_new_tokens=max_new_tokens, temperature=temperature, seed=seed
        )

    # -- checkpoints -------------------------------------------------------------------------

    def settings(self) -> dict[str, Any]:
        return dict(
            image_llm=asdict(self.base.config),
            num_frames=self.num_frames,
            pooling_shape=list(self.pooling_shape) if self.pooling_shape else None,
            lora_r=self.lora_r,
            lora_alpha=self.lora_alpha,
            lora_dropout=self.lora_dropout,
        )

    @classmethod
    def from_settings(cls, settings: dict[str, Any]) -> PLLaVA:
        s = dict(settings)
        base = ImageLLM(ImageLLMConfig(**s.pop("image_llm")))
        return cls(base, **s)

    def save_pretrained(self, path: str | os.PathLike) -> Path:
        """The whole model (image-LLM + adapters) as one safetensors file, the settings in its
        metadata; ``path`` a ``.safetensors`` file or a folder."""
        from paperlab.core.checkpoint import checkpoint_file, save_model

        file = checkpoint_file(path, "model.safetensors")
        return save_model(file, self, kind=CHECKPOINT_KIND, config=self.settings())

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, *, device: str = "cpu") -> PLLaVA:
        from paperlab.core.checkpoint import checkpoint_file, load_model

        file = checkpoint_file(path, "model.safetensors")
        if not file.is_file():
            raise FileNotFoundError(f"no PLLaVA checkpoint at {file}")
        model, _ = load_model(file, cls.from_settings, kind=CHECKPOINT_KIND, map_location=device)
        return model.eval()
