"""LlamaGen's class-conditional generator (Sec. 2.2): the core Llama decoder (RMSNorm, SwiGLU)
over image tokens in raster order, a class token as the prefix, 2D RoPE over the token grid,
a zero-initialised output layer and class dropout for classifier-free guidance.

Vocabulary (one embedding table): ids 0..K-1 are the K codebook entries, K + c is class c, and
K + num_classes is the null class (the "unconditional" prefix of CFG). DEVIATION: the official
code keeps a separate label-embedding table and a K-way output layer; this is the same model
with the two tables stacked. The output layer covers the whole vocabulary
but only the K image-code logits are ever used (loss and sampling), so class ids can never be
predicted.

    model = LlamaGen(config=LlamaGenConfig(codebook_size=512, num_classes=12, grid_size=8))
    loss = model.loss(indices, labels)                    # indices (B, h, w), labels (B,)
    logits = model(indices, labels)                       # (B, h*w, K): teacher forcing
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from paperlab.core.checkpoint import checkpoint_file, load_model, save_model
from paperlab.core.llama import Llama, LlamaConfig

KIND = "LlamaGen"  # the checkpoint kind save_pretrained writes and from_pretrained checks


@dataclass
class LlamaGenConfig:
    codebook_size: int = 512  # K image codes (paper: 16384)
    num_classes: int = 12  # paper: 1000 (ImageNet)
    grid_size: int = 8  # tokens per side (paper: 16 at 256 px, 24 at 384 px)
    dim: int = 128  # paper: 768 (B) .. 3200 (3B)
    n_layers: int = 4  # paper: 12 (B) .. 24 (3B)
    n_heads: int = 4
    n_kv_heads: int | None = None
    multiple_of: int = 64  # SwiGLU hidden = 8/3 dim rounded up to this (paper: 256)
    rope_theta: float = 10000.0
    class_dropout: float = 0.1  # Sec. 2.2 / 3: labels -> null class with prob. 0.1
    dropout: float = 0.0  # DEVIATION: the official code uses 0.1 residual/FFN/token dropout
    prefix_rotation: Literal["identity", "zero"] = "identity"  # see RotaryEmbedding2D

    def __post_init__(self) -> None:
        if self.dim % self.n_heads or (self.dim // self.n_heads) % 4:
            raise ValueError(
                f"LlamaGenConfig: head_dim = dim/n_heads = {self.dim}/{self.n_heads} must be a "
                "multiple of 4 (2D RoPE splits the rotary pairs between rows and columns)"
            )
        if min(self.codebook_size, self.num_classes, self.grid_size) < 1:
            raise ValueError("LlamaGenConfig: codebook_size, num_classes, grid_size must be >= 1")
        if not 0.0 <= self.class_dropout < 1.0:
            raise ValueError(f"LlamaGenConfig.class_dropout={self.class_dropout}: not in [0, 1)")
        if self.prefix_rotation not in ("identity", "zero"):
            raise ValueError(
                f"LlamaGenConfig.prefix_rotation={self.prefix_rotation!r}: identity or zero"
            )

    @property
    def vocab_size(self) -> int:
        return self.codebook_size + self.num_classes + 1

    @property
    def null_class(self) -> int:
        return self.num_classes

    @property
    def num_image_tokens(self) -> int:
        return self.grid_size**2

    @property
    def seq_len(self) -> int:
        return 1 + self.num_image_tokens  # class prefix + image tokens

    def llama_config(self) -> LlamaConfig:
        return LlamaConfig(
            vocab_size=self.vocab_size,
            dim=self.dim,
            n_layers=self.n_layers,
            n_heads=self.n_heads,
            n_kv_heads=self.n_kv_heads,
            multiple_of=self.multiple_of,
            max_seq_len=self.seq_len,
            rope_theta=self.rope_theta,
            dropout=self.dropout,
        )

    @classmethod
    def from_dict(cls, d: dict) -> LlamaGenConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"LlamaGenConfig: unknown keys {unknown}; known: {sorted(known)}")
        return cls(**d)


class RotaryEmbedding2D(nn.Module):
    """2D RoPE over a (grid_size x grid_size) token grid after `prefix_len` prefix tokens, with
    the call signature and HF rotate_half layout of `paperlab.core.llama.RotaryEmbedding`.

    As LlamaGen's `precompute_freqs_cis_2d`: the head_dim/2 rotary pairs are split in two; the
    first head_dim/4 pairs rotate by the token's row, the last head_dim/4 by its column, with
    frequencies theta^(-2j / (head_dim/2)), j < head_dim/4. Sequence index prefix_len + r*g + c
    holds grid cell (r, c) (raster order). The prefix (class) token gets the identity rotation
    (cos 1, sin 0). DEVIATION: the official table has cos = sin = 0 for the prefix,
    which zeroes the class token's query and key; `prefix="zero"` reproduces that.
    """

    def __init__(
        self,
        *,
        head_dim: int,
        grid_size: int,
        theta: float = 10000.0,
        prefix_len: int = 1,
        prefix: Literal["identity", "zero"] = "identity",
    ):
        super().__init__()
        if head_dim % 4:
            raise ValueError(f"RotaryEmbedding2D: head_dim={head_dim} must be a multiple of 4")
        half = head_dim // 2  # rotary pairs
        inv_freq = 1.0 / (theta ** (torch.arange(0, half, 2, dtype=torch.float) / half))
        coords = torch.arange(grid_size, dtype=torch.float)
        rows = coords.repeat_interleave(grid_size)  # (g*g,) row of each raster position
        cols = coords.repeat(grid_size)  # (g*g,) column
        angles = torch.cat(
            [rows[:, None] * inv_freq, cols[:, None] * inv_freq], dim=-1
        )  # (N, half)
        emb = torch.cat((angles, angles), dim=-1)  # (N, head_dim): HF layout, pair i = (i, i+half)
        fill = 1.0 if prefix == "identity" else 0.0
        cos = torch.cat([torch.full((prefix_len, head_dim), fill), emb.cos()])
        sin = torch.cat([torch.zeros(prefix_len, head_dim), emb.sin()])
        self.register_buffer("cos", cos, persistent=False)  # (prefix_len + g*g, head_dim)
        self.register_buffer("sin", sin, persistent=False)

    def forward(
        self, past_len: int, q_len: int, position_ids: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """(T, D) for sequence indices past_len .. past_len + q_len - 1; (B, 1, T, D) if ids."""
        if position_ids is not None:
            position_ids = position_ids.view(-1, q_len)
            return self.cos[position_ids][:, None], self.sin[position_ids][:, None]
        if past_len + q_len > self.cos.shape[0]:
            raise ValueError(
                f"RotaryEmbedding2D: sequence index {past_len + q_len - 1} is beyond the "
                f"prefix + grid length {self.cos.shape[0]}"
            )
        return self.cos[past_len : past_len + q_len], self.sin[past_len : past_len + q_len]


class LlamaGen(nn.Module):
    """Class-conditional AR image-token model: [class] x_0 .. x_{N-2} -> x_0 .. x_{N-1}."""

    def __init__(self, *, config: LlamaGenConfig | None = None, **overrides):
        super().__init__()
        if config is None:
            config = LlamaGenConfig(**overrides)
        elif overrides:
            raise ValueError("LlamaGen: pass either config= or keyword overrides, not both")
        self.config = config
        self.model = Llama(config.llama_config())
        self.model.rotary_emb = RotaryEmbedding2D(
            head_dim=config.dim // config.n_heads,
            grid_size=config.grid_size,
            theta=config.rope_theta,
            prefix=config.prefix_rotation,
        )
        nn.init.zeros_(self.model.lm_head.weight)  # Sec. 2.2: zero-initialised output layer

    # -- tokens ---------------------------------------------------------------------------------

    def class_tokens(self, labels: Tensor) -> Tensor:
        """Class c (or the null class num_classes) -> vocabulary id K + c."""
        if labels.numel() and (labels.min() < 0 or labels.max() > self.config.num_classes):
            raise ValueError(
                f"LlamaGen: labels must be in [0, {self.config.num_classes}] "
                f"({self.config.num_classes} = null class)"
            )
        return labels.long() + self.config.codebook_size

    def drop_labels(self, labels: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Class dropout for CFG (Sec. 2.2): each label -> null class with prob. class_dropout."""
        drop = torch.rand(labels.shape, generator=generator, device=labels.device)
        return torch.where(drop < self.config.class_dropout, self.config.null_class, labels)

    def _flat(self, indices: Tensor) -> Tensor:
        flat = indices.reshape(indices.shape[0], -1)
        if flat.shape[1] != self.config.num_image_tokens:
            raise ValueError(
                f"LlamaGen: expected {self.config.num_image_tokens} image tokens "
                f"({self.config.grid_size}x{self.config.grid_size}), got {tuple(indices.shape)}"
            )
        return flat

    # -- teacher-forced forward and loss ---------------------------------------------------------

    def forward(self, indices: Tensor, labels: Tensor) -> Tensor:
        """indices (B, h, w) or (B, N), labels (B,) -> image-code logits (B, N, K)."""
        flat = self._flat(indices)
        prefix = self.class_tokens(labels)[:, None]
        input_ids = torch.cat([prefix, flat[:, :-1]], dim=1)  # (B, N): cls, x_0 .. x_{N-2}
        return self.model(input_ids)[..., : self.config.codebook_size]

    def loss(self, indices: Tensor, labels: Tensor, *, drop_labels: bool = True) -> Tensor:
        """Next-token cross-entropy on the image tokens only; class dropout when training."""
        if drop_labels and self.training and self.config.class_dropout > 0:
            labels = self.drop_labels(labels)
        logits = self(indices, labels)
        return F.cross_entropy(logits.flatten(0, 1), self._flat(indices).flatten())

    def num_params(self) -> int:
        return self.model.num_params()

    # -- sampling (see sample.py) ---------------------------------------------------------------

    def sample(self, labels: Tensor, **kwargs) -> Tensor:
        """Shortcut for `paperlab.papers.llamagen.sample.sample(self, labels, **kwargs)`."""
        from paperlab.papers.llamagen.sample import sample

        return sample(self, labels, **kwargs)

    # -- checkpoints -----------------------------------------------------------------------------

    def save_pretrained(self, path: str | os.PathLike) -> Path:
        """Write `path` (a `.safetensors` file, or a directory -> `generator.safetensors`)."""
        file = checkpoint_file(path, "generator.safetensors")
        return save_model(file, self, kind=KIND, config=asdict(self.config))

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, *, device: str = "cpu") -> LlamaGen:
        file = checkpoint_file(path, "generator.safetensors")
        build = lambda config: cls(config=LlamaGenConfig.from_dict(config))  # noqa: E731
        model, _ = load_model(file, build, kind=KIND, map_location=device)
        return model


def generator_loss(model: LlamaGen, batch: tuple[Tensor, Tensor]) -> Tensor:
    """`loss_fn` for paperlab.core.train.train: batch = (indices, labels)."""
    indices, labels = batch
    return model.loss(indices, labels)
