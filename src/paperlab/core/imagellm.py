"""A tiny image-LLM in the LLaVA shape: ViT image encoder -> projector -> visual tokens
prefixed to a Llama decoder over bytes.

LLaVA (Liu et al. 2023, "Visual Instruction Tuning", arXiv 2304.08485, Sec. 4.1) feeds the
patch features Z_v = g(X_v) of a vision encoder through a projection W into the word embedding
space, H_v = W Z_v, and prepends these visual tokens to the instruction; LLaVA-1.5 (Liu et al.
2023, "Improved Baselines with Visual Instruction Tuning", arXiv 2310.03744, Sec. 3.2) replaces
the linear W by a two-layer MLP with a GELU (``mm_projector_type="mlp2x_gelu"``). The model is
trained to predict the answer only (the instruction and image positions carry no loss, Eq. 3).

    cfg = ImageLLMConfig(image_size=16, patch_size=4)
    model = ImageLLM(cfg)
    vis = model.project(model.encode_images(images))         # (B, N, dim) visual tokens
    loss = model.loss(vis, ["what shape?"] * B, answers)      # answer-only cross-entropy
    history = train_image_llm(model, examples, steps=300, batch_size=16, lr=3e-3, seed=0)
    model.generate(images, ["what shape?"] * B)               # -> list[str]
    model.save_pretrained("ckpt/"); ImageLLM.from_pretrained("ckpt/")

Text is bytes (UTF-8) plus three special tokens: a row reads
``[visual tokens] BOS prompt SEP answer EOS``. ``loss`` and ``generate`` take visual tokens of
any count N <= ``max_visual_tokens``, so a video model (PLLaVA) can pass pooled frame tokens.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from paperlab.core.kv_cache import KVCache
from paperlab.core.llama import Llama, LlamaConfig
from paperlab.core.train import History, TrainConfig, eval_mode, row_batches, train
from paperlab.core.vit import ViT

BOS, SEP, EOS = 256, 257, 258  # start of text, end of prompt ("ASSISTANT:"), end of answer
VOCAB_SIZE = 259
IGNORE = -100  # cross-entropy's ignore_index: positions without a loss
CHECKPOINT_KIND = "ImageLLM"


@dataclass
class ImageLLMConfig:
    image_size: int = 16
    patch_size: int = 4
    channels: int = 3
    vit_dim: int = 64
    vit_depth: int = 2
    vit_heads: int = 4
    dim: int = 64  # the decoder's width (d_lm): visual tokens live in this space
    n_layers: int = 2
    n_heads: int = 4
    max_text_len: int = 96  # bytes of prompt + answer + the 3 special tokens
    max_visual_tokens: int | None = None  # None -> the ViT's patch count (one image)
    dropout: float = 0.0
    # > 0: a convolutional stem of that width before the patch embedding (ViT's "hybrid"
    # input, Dosovitskiy et al. 2020 Sec. 3.1); 0: the plain ViT on pixels (LLaVA's CLIP ViT)
    stem_channels: int = 0

    def __post_init__(self) -> None:
        for name in ("image_size", "patch_size", "channels", "vit_dim", "vit_depth", "dim"):
            if getattr(self, name) < 1:
                raise ValueError(f"ImageLLMConfig: {name} must be >= 1, got {getattr(self, name)}")
        for name in ("vit_heads", "n_heads", "n_layers"):
            if getattr(self, name) < 1:
                raise ValueError(f"ImageLLMConfig: {name} must be >= 1, got {getattr(self, name)}")
        if self.image_size % self.patch_size:
            raise ValueError(
                f"ImageLLMConfig: patch_size={self.patch_size} must divide "
                f"image_size={self.image_size}"
            )
        if self.vit_dim % self.vit_heads:
            raise ValueError(
                f"ImageLLMConfig: vit_dim={self.vit_dim} is not divisible by "
                f"vit_heads={self.vit_heads}"
            )
        if self.dim % self.n_heads or (self.dim // self.n_heads) % 2:
            raise ValueError(
                f"ImageLLMConfig: dim={self.dim} must split into n_heads={self.n_heads} heads "
                "of even size (rotary embeddings)"
            )
        if self.max_text_len < 4:
            raise ValueError(f"ImageLLMConfig: max_text_len must be >= 4, got {self.max_text_len}")
        if self.max_visual_tokens is None:
            self.max_visual_tokens = self.num_patches
        if self.max_visual_tokens < 1:
            raise ValueError(
                f"ImageLLMConfig: max_visual_tokens must be >= 1, got {self.max_visual_tokens}"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"ImageLLMConfig: dropout must be in [0, 1), got {self.dropout}")
        if self.stem_channels < 0:
            raise ValueError(
                f"ImageLLMConfig: stem_channels must be >= 0, got {self.stem_channels}"
            )

    @property
    def num_patches(self) -> int:
        return (self.image_size // self.patch_size) ** 2

    @property
    def grid_size(self) -> int:
        return self.image_size // self.patch_size


def encode_text(text: str) -> list[int]:
    """UTF-8 bytes of ``text`` as token ids."""
    return list(text.encode("utf-8"))


def decode_text(ids: Sequence[int]) -> str:
    """Token ids back to text; special tokens and everything after EOS are dropped."""
    out = bytearray()
    for t in ids:
        if t == EOS:
            break
        if 0 <= t < 256:
            out.append(t)
    return out.decode("utf-8", errors="replace")


class Projector(nn.Module):
    """LLaVA-1.5's ``mlp2x_gelu``: Linear(d_vit, d_lm) -> GELU -> Linear(d_lm, d_lm)."""

    def __init__(self, in_dim: int, out_dim: int):
        super().__init__()
        self.linear_1 = nn.Linear(in_dim, out_dim)
        self.act = nn.GELU()
        self.linear_2 = nn.Linear(out_dim, out_dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.linear_2(self.act(self.linear_1(x)))


class ConvStem(nn.Module):
    """Two 3x3 convolutions with GELUs at full resolution: (B, C, H, W) -> (B, width, H, W).
    The hybrid ViT's idea (a CNN's feature map is patchified instead of pixels, ViT Sec. 3.1)
    at the smallest size: local, translation-equivariant features, so a patch holding a small
    object anywhere in it still yields a token that names its colour and shape."""

    def __init__(self, in_channels: int, width: int):
        super().__init__()
        self.conv_1 = nn.Conv2d(in_channels, width, 3, padding=1)
        self.act = nn.GELU()
        self.conv_2 = nn.Conv2d(width, width, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.conv_2(self.act(self.conv_1(x))))


class ImageLLM(nn.Module):
    """ViT (patch tokens) -> :class:`Projector` -> visual tokens -> :class:`Llama` (bytes)."""

    def __init__(self, config: ImageLLMConfig):
        super().__init__()
        self.config = config
        # DEVIATION: LLaVA uses a frozen pre-trained CLIP ViT-L/14 and its penultimate layer's
        # patch features; here a small ViT (mean pool, so no class token) is trained from
        # scratch with the rest and its last layer (after the final norm) is read.
        stem = config.stem_channels
        self.stem = ConvStem(config.channels, stem) if stem else None
        self.vision = ViT(
            image_size=config.image_size,
            patch_size=config.patch_size,
            in_channels=stem or config.channels,
            num_classes=1,
            dim=config.vit_dim,
            depth=config.vit_depth,
            n_heads=config.vit_heads,
            pool="mean",
            dropout=config.dropout,
        )
        self.vision.head = nn.Identity()  # patch features only, no classifier
        self.projector = Projector(config.vit_dim, config.dim)
        self.llm = Llama(
            LlamaConfig(
                vocab_size=VOCAB_SIZE,
                dim=config.dim,
                n_layers=config.n_layers,
                n_heads=config.n_heads,
                multiple_of=16,
                max_seq_len=config.max_visual_tokens + config.max_text_len,
                dropout=config.dropout,
            )
        )

    @property
    def device(self) -> torch.device:
        return self.llm.embed_tokens.weight.device

    # -- vision ------------------------------------------------------------------------------

    def encode_images(self, images: Tensor) -> Tensor:
        """(B, C, H, W) in [0, 1] -> (B, N, vit_dim) patch features."""
        c = self.config
        expected = (c.channels, c.image_size, c.image_size)
        if (
            not isinstance(images, Tensor)
            or images.ndim != 4
            or tuple(images.shape[1:]) != expected
        ):
            got = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
            raise ValueError(f"images must be (B, {', '.join(map(str, expected))}), got {got}")
        if images.shape[0] == 0:
            raise ValueError("images: the batch is empty")
        x = images.to(self.device, torch.float32)
        return self.vision.tokens(x if self.stem is None else self.stem(x))

    def project(self, feats: Tensor) -> Tensor:
        """(B, N, vit_dim) -> (B, N, dim) visual tokens in the word-embedding space."""
        if feats.ndim != 3 or feats.shape[-1] != self.config.vit_dim:
            raise ValueError(
                f"feats must be (B, N, {self.config.vit_dim}), got {tuple(feats.shape)}"
            )
        return self.projector(feats)

    def visual_tokens(self, images: Tensor) -> Tensor:
        """``project(encode_images(images))``."""
        return self.project(self.encode_images(images))

    # -- text --------------------------------------------------------------------------------

    def _check_text(self, visual_tokens: Tensor, prompts: Sequence[str], name: str, other=None):
        c = self.config
        if visual_tokens.ndim != 3 or visual_tokens.shape[-1] != c.dim:
            raise ValueError(
                f"visual_tokens must be (B, N, {c.dim}), got {tuple(visual_tokens.shape)}"
            )
        if visual_tokens.shape[1] > c.max_visual_tokens:
            raise ValueError(
                f"visual_tokens: {visual_tokens.shape[1]} tokens exceed max_visual_tokens="
                f"{c.max_visual_tokens}"
            )
        if isinstance(prompts, str) or not isinstance(prompts, Sequence) or len(prompts) == 0:
            raise ValueError("prompts must be a non-empty list of strings")
        if not all(isinstance(p, str) for p in prompts):
            raise ValueError("prompts must be a list of strings")
        if len(prompts) != visual_tokens.shape[0]:
            raise ValueError(
                f"prompts: {len(prompts)} prompts for {visual_tokens.shape[0]} visual inputs"
            )
        if other is not None:
            if isinstance(other, str) or len(other) != len(prompts):
                raise ValueError(f"{name} must be a list of {len(prompts)} strings (one a prompt)")
            if not all(isinstance(a, str) for a in other):
                raise ValueError(f"{name} must be a list of strings")

    def _rows(self, prompts: Sequence[str], answers: Sequence[str] | None) -> list[list[int]]:
        rows = []
        for k, p in enumerate(prompts):
            ids = [BOS, *encode_text(p), SEP]
            if answers is not None:
                ids += [*encode_text(answers[k]), EOS]
            if len(ids) > self.config.max_text_len:
                raise ValueError(
                    f"prompts/answers: row {k} has {len(ids)} text tokens, more than "
                    f"max_text_len={self.config.max_text_len}"
                )
            rows.append(ids)
        return rows

    def loss(self, visual_tokens: Tensor, prompts: Sequence[str], answers: Sequence[str]) -> Tensor:
        """Mean cross-entropy over the answer bytes and EOS only (LLaVA Eq. 3): the visual
        tokens, BOS, the prompt and SEP are context without a loss. Rows are right-padded;
        under the causal mask padding never reaches a real position."""
        self._check_text(visual_tokens, prompts, "answers", answers)
        B, N, _ = visual_tokens.shape
        rows = self._rows(prompts, answers)
        T = max(len(r) for r in rows)
        ids = torch.full((B, T), EOS, dtype=torch.long)
        targets = torch.full((B, N + T), IGNORE, dtype=torch.long)
        for k, r in enumerate(rows):
            ids[k, : len(r)] = torch.tensor(r)
            start = r.index(SEP) + 1  # the first answer byte sits at text index `start`
            # position i predicts token i + 1: answer tokens at text index j come from N + j - 1
            targets[k, N + start - 1 : N + len(r) - 1] = torch.tensor(r[start:])
        device = visual_tokens.device
        ids, targets = ids.to(device), targets.to(device)
        h = torch.cat([visual_tokens, self.llm.embed(ids)], dim=1)  # (B, N + T, dim)
        logits = self.llm.head(self.llm.run_layers(h))
        return F.cross_entropy(
            logits[:, :-1].flatten(0, 1), targets[:, :-1].flatten(), ignore_index=IGNORE
        )

    def image_loss(self, images: Tensor, prompts: Sequence[str], answers: Sequence[str]) -> Tensor:
        """``loss(visual_tokens(images), prompts, answers)``."""
        return self.loss(self.visual_tokens(images), prompts, answers)

    @torch.no_grad()
    def generate(
        self,
        images_or_visual_tokens: Tensor,
        prompts: Sequence[str],
        *,
        max_new_tokens: int = 64,
        temperature: float = 0.0,
        seed: int = 0,
    ) -> list[str]:
        """Answers to ``prompts``, one per image (B, C, H, W) or visual-token row (B, N, dim).
        Greedy at temperature 0, else sampled with a generator seeded by ``seed``."""
        if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int):
            raise ValueError(f"max_new_tokens must be an integer, got {max_new_tokens!r}")
        if max_new_tokens < 0:
            raise ValueError(f"max_new_tokens must be >= 0, got {max_new_tokens}")
        if temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {temperature}")
        x = images_or_visual_tokens
        if not isinstance(x, Tensor) or x.ndim not in (3, 4):
            raise ValueError(
                "images_or_visual_tokens must be images (B, C, H, W) or visual tokens (B, N, dim)"
            )
        with eval_mode(self):
            vis = self.visual_tokens(x) if x.ndim == 4 else x.to(self.device, torch.float32)
            self._check_text(vis, prompts, "prompts")
            rows = self._rows(prompts, None)
            # the decoder's positions end at max_visual_tokens + max_text_len: stop there
            room = self.llm.config.max_seq_len - vis.shape[1] - max(map(len, rows))
            max_new_tokens = min(max_new_tokens, room)
            return self._decode(vis, rows, max_new_tokens, temperature, seed)

    def _decode(self, vis: Tensor, rows, max_new_tokens: int, temperature: float, seed: int):
        """Left-padded prefill of [visual, BOS prompt SEP], then one token at a time on a KV
        cache (as ``core.generate``); padding is masked and positions count real tokens."""
        B, N, D = vis.shape
        T = N + max(len(r) for r in rows)
        device = vis.device
        h = torch.zeros(B, T, D, device=device)
        mask = torch.zeros(B, T + max(max_new_tokens, 0), dtype=torch.bool, device=device)
        for k, r in enumerate(rows):
            off = T - N - len(r)
            h[k, off : off + N] = vis[k]
            h[k, off + N :] = self.llm.embed(torch.tensor(r, device=device))
            mask[k, off:] = True
        out: list[list[int]] = [[] for _ in range(B)]
        if max_new_tokens <= 0:
            return ["" for _ in range(B)]
        gen = torch.Generator(device=device).manual_seed(seed)
        padded = not bool(mask[:, :T].all())
        cache = KVCache.for_model(self.llm, batch_size=B, max_len=T + max_new_tokens)
        logits = self.llm.head(
            self.llm.run_layers(h, cache=cache, attention_mask=mask[:, :T] if padded else None)
        )[:, -1]
        next_pos = mask[:, :T].long().sum(-1, keepdim=True)
        finished = torch.zeros(B, dtype=torch.bool, device=device)
        for step in range(max_new_tokens):
            if temperature == 0:
                token = logits.argmax(-1)
            else:
                probs = torch.softmax(logits.float() / temperature, dim=-1)
                token = torch.multinomial(probs, 1, generator=gen).squeeze(-1)
            for k in range(B):
                if not finished[k]:
                    out[k].append(int(token[k]))
            finished |= token == EOS
            if bool(finished.all()) or step == max_new_tokens - 1:
                break
            step_mask = mask[:, : T + step + 1] if padded else None
            pos = next_pos + step if padded else None
            h = self.llm.embed(token[:, None])
            logits = self.llm.head(
                self.llm.run_layers(h, cache=cache, position_ids=pos, attention_mask=step_mask)
            )[:, -1]
        return [decode_text(ids) for ids in out]

    # -- checkpoints -------------------------------------------------------------------------

    def save_pretrained(self, path: str | os.PathLike) -> Path:
        """Write ``path`` (a ``.safetensors`` file, or a folder -> ``model.safetensors``)
        atomically, the config in its metadata; return the file."""
        from paperlab.core.checkpoint import checkpoint_file, save_model

        file = checkpoint_file(path, "model.safetensors")
        return save_model(file, self, kind=CHECKPOINT_KIND, config=asdict(self.config))

    @classmethod
    def from_pretrained(
        cls, path: str | os.PathLike, *, device: torch.device | str = "cpu"
    ) -> ImageLLM:
        """A model written by :meth:`save_pretrained` (kind- and shape-checked), in eval mode."""
        from paperlab.core.checkpoint import checkpoint_file, load_model

        file = checkpoint_file(path, "model.safetensors")
        if not file.is_file():
            raise FileNotFoundError(f"no ImageLLM checkpoint at {file}")
        model, _ = load_model(
            file, lambda c: cls(ImageLLMConfig(**c)), kind=CHECKPOINT_KIND, map_location=device
        )
        return model.eval()


Example = tuple[Tensor, str, str]  # (image (C, H, W), prompt, answer)


def example_batches(
    examples: Sequence[Example], batch_size: int, *, seed: int = 0
) -> Callable[[int], tuple[Tensor, list[str], list[str]]]:
    """``step -> (images (B, C, H, W), prompts, answers)``, rows drawn with replacement; they
    depend only on (seed, step)."""
    if len(examples) == 0:
        raise ValueError("examples must hold at least one (image, prompt, answer)")
    images = torch.stack([e[0] for e in examples])
    index = torch.arange(len(examples))
    draw = row_batches(index, batch_size, seed=seed)

    def batch(step: int) -> tuple[Tensor, list[str], list[str]]:
        rows = draw(step).tolist()
        return images[rows], [examples[i][1] for i in rows], [examples[i][2] for i in rows]

    return batch


def _image_loss(model: ImageLLM, batch: tuple[Tensor, list[str], list[str]]) -> Tensor:
    images, prompts, answers = batch
    return model.image_loss(images, list(prompts), list(answers))


def train_image_llm(
    model: ImageLLM,
    examples: Sequence[Example] | Callable[[int], Any],
    *,
    steps: int,
    batch_size: int,
    lr: float,
    seed: int,
    device: str = "cpu",
    progress: bool = True,
    weight_decay: float = 0.05,
    freeze_vision: bool = False,
    desc: str = "image-LLM",
) -> History:
    """Train every part (ViT, projector, decoder) on answer-only cross-entropy through
    :func:`paperlab.core.train.train` (AdamW, 10% warmup, cosine); the model ends in eval mode.

    ``examples``: a list of ``(image, prompt, answer)`` (batches drawn with replacement), or a
    callable ``step -> (images, prompts, answers)``. ``freeze_vision``: train the projector and
    the decoder only, on a pre-trained encoder (LLaVA keeps its CLIP encoder frozen)."""
    if not isinstance(model, ImageLLM):
        raise TypeError(f"model must be an ImageLLM, got {type(model).__name__}")
    if steps < 1 or batch_size < 1:
        raise ValueError(f"steps and batch_size must be >= 1, got {steps}, {batch_size}")
    if lr <= 0:
        raise ValueError(f"lr must be > 0, got {lr}")
    if callable(examples):
        batches = examples
    else:
        batches = example_batches(examples, batch_size, seed=seed)
    cfg = TrainConfig(
        steps=steps,
        lr=lr,
        weight_decay=weight_decay,
        warmup_steps=max(1, steps // 10),
        betas=(0.9, 0.98),
        seed=seed,
        progress=progress,
        log_every=max(1, steps // 50),
        desc=desc,
    )
    # DEVIATION: one stage; LLaVA pre-trains the projector alone on captions (stage 1), then
    # tunes projector + LLM on instructions (stage 2), its encoder frozen throughout.
    frozen = [p for p in model.vision.parameters() if p.requires_grad] if freeze_vision else []
    for p in frozen:
        p.requires_grad_(False)
    try:
        history = train(model, _image_loss, batches, cfg, device=device)
    finally:
        for p in frozen:
            p.requires_grad_(True)
    model.eval()
    return history
