"""A tiny CLIP: a ViT image tower and a byte-level text transformer trained contrastively.

CLIP (Radford et al. 2021, "Learning Transferable Visual Models From Natural Language
Supervision", arXiv 2103.00020): an image encoder and a text encoder map a batch of N
(image, text) pairs to L2-normalised embeddings; the N x N cosine similarities, times a
learnable temperature ``logit_scale = exp(t)`` (t initialised to log(1/0.07), the scale clipped
at 100), are the logits of two cross-entropies, image -> text and text -> image, against the
diagonal (Fig. 3's pseudo-code; open_clip's ``ClipLoss``). The text encoder is OpenAI CLIP's:
[SOT] text [EOT] in a fixed context, token + learned position embeddings, a causal
transformer, a final LayerNorm, and the state at the [EOT] token, linearly projected (Sec. 2.4).
Tokens here are bytes (a DEVIATION from CLIP's 49k BPE), so the context counts bytes.

    cfg = CLIPConfig(image_size=32, patch_size=8, context_length=128)
    model = CLIP(cfg)
    history = train_clip(model, images, captions, steps=300, batch_size=64, lr=1e-3)
    img, txt = model.encode_image(images), model.encode_text(captions)   # unit vectors
    recall = retrieval_recall(img, txt, ks=(1, 5))       # {"i2t_r1": ..., "t2i_r1": ...}
    pred = zero_shot_classify(model, images, ["red circle", "blue square"])

A caption longer than the context is truncated (open_clip's ``truncate=True``: the first
``context_length - 1`` tokens and [EOT] in the last slot): whatever it says after the cut never
reaches the model (see ``tests/core/test_clip.py``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from paperlab.core.checkpoint import checkpoint_file, load_model, save_model
from paperlab.core.train import TrainConfig, eval_mode, train
from paperlab.core.vit import Transformer, ViT, init_weights

SOT = 256  # start of text (bytes are 0..255)
EOT = 257  # end of text: its final state is the text's feature (CLIP Sec. 2.4)
PAD = 0  # after [EOT]; never attended to by [EOT] under the causal mask
VOCAB_SIZE = 258
MAX_LOGIT_SCALE = 100.0  # CLIP Sec. 2.5: "clipped to prevent scaling the logits by more than 100"
KIND = "paperlab.CLIP"
WEIGHTS = "clip.safetensors"


@dataclass
class CLIPConfig:
    image_size: int = 32
    patch_size: int = 8
    in_channels: int = 3
    vision_dim: int = 64
    vision_depth: int = 2
    vision_heads: int = 4
    text_dim: int = 64
    text_depth: int = 2
    text_heads: int = 4
    context_length: int = 77  # tokens incl. [SOT] and [EOT] (CLIP: 77 BPE tokens)
    embed_dim: int = 64  # the joint embedding space
    causal: bool = True  # CLIP's text encoder uses masked (causal) self-attention
    init_logit_scale: float = math.log(1 / 0.07)

    def __post_init__(self) -> None:
        for name in ("vision_dim", "vision_depth", "vision_heads", "text_dim", "text_depth"):
            if getattr(self, name) < 1:
                raise ValueError(f"CLIPConfig.{name}={getattr(self, name)} must be >= 1")
        if self.text_heads < 1 or self.text_dim % self.text_heads:
            raise ValueError(
                f"CLIPConfig.text_dim={self.text_dim} must be divisible by "
                f"text_heads={self.text_heads}"
            )
        if self.context_length < 3:
            raise ValueError(f"CLIPConfig.context_length={self.context_length} must be >= 3")
        if self.embed_dim < 1:
            raise ValueError(f"CLIPConfig.embed_dim={self.embed_dim} must be >= 1")
        if self.patch_size < 1 or self.image_size % self.patch_size:
            raise ValueError(
                f"CLIPConfig.patch_size={self.patch_size} must divide image_size={self.image_size}"
            )


# ---------------------------------------------------------------------------------------------
# Tokens


def tokenize(texts: str | Sequence[str], context_length: int, *, truncate: bool = True) -> Tensor:
    """(B, context_length) int64: [SOT] utf-8 bytes [EOT], then PAD. A text that does not fit
    is cut to its first ``context_length - 2`` bytes and ends with [EOT] (open_clip's
    ``truncate=True``); with ``truncate=False`` it is an error naming the text."""
    if isinstance(texts, str):
        texts = [texts]
    if context_length < 3:
        raise ValueError(f"tokenize: context_length={context_length} must be >= 3")
    out = torch.full((len(texts), context_length), PAD, dtype=torch.long)
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"tokenize: texts[{i}] is a {type(text).__name__}, not a str")
        ids = [SOT, *text.encode("utf-8"), EOT]
        if len(ids) > context_length:
            if not truncate:
                raise ValueError(
                    f"tokenize: texts[{i}] has {len(ids)} tokens > context_length="
                    f"{context_length} ({text[:40]!r}...); raise the context or truncate=True"
                )
            ids = ids[: context_length - 1] + [EOT]
        out[i, : len(ids)] = torch.tensor(ids)
    return out


def token_count(text: str) -> int:
    """Tokens ``text`` needs in the context: its utf-8 bytes plus [SOT] and [EOT]."""
    return len(text.encode("utf-8")) + 2


# ---------------------------------------------------------------------------------------------
# The loss


def clip_loss(image_features: Tensor, text_features: Tensor, logit_scale: Tensor) -> Tensor:
    """Symmetric InfoNCE over a batch of N pairs (CLIP Fig. 3; open_clip ``ClipLoss``): the
    mean of cross-entropy(image -> text) and cross-entropy(text -> image) against the
    diagonal. ``*_features`` (N, D) are expected L2-normalised; ``logit_scale`` is exp(t)."""
    if image_features.shape != text_features.shape or image_features.ndim != 2:
        raise ValueError(
            f"clip_loss: features must both be (N, D), got {tuple(image_features.shape)} and "
            f"{tuple(text_features.shape)}"
        )
    logits_per_image = logit_scale * image_features @ text_features.T  # (N, N)
    labels = torch.arange(len(logits_per_image), device=image_features.device)
    return (
        F.cross_entropy(logits_per_image, labels) + F.cross_entropy(logits_per_image.T, labels)
    ) / 2


# ---------------------------------------------------------------------------------------------
# The model


class TextTransformer(nn.Module):
    """CLIP's text tower: token + learned position embeddings, a (causal) pre-norm transformer
    with a final LayerNorm, the [EOT] token's state (B, text_dim)."""

    def __init__(self, cfg: CLIPConfig):
        super().__init__()
        self.context_length = cfg.context_length
        self.causal = cfg.causal
        self.token_embedding = nn.Embedding(VOCAB_SIZE, cfg.text_dim)
        self.positional_embedding = nn.Parameter(torch.zeros(cfg.context_length, cfg.text_dim))
        self.transformer = Transformer(
            dim=cfg.text_dim, depth=cfg.text_depth, n_heads=cfg.text_heads
        )
        self.apply(init_weights)
        nn.init.normal_(self.token_embedding.weight, std=0.02)  # CLIP's initialize_parameters
        nn.init.normal_(self.positional_embedding, std=0.01)

    def forward(self, tokens: Tensor) -> Tensor:
        B, T = tokens.shape
        if T > self.context_length:
            raise ValueError(f"TextTransformer: {T} tokens > context_length {self.context_length}")
        x = self.token_embedding(tokens) + self.positional_embedding[:T]  # (B, T, C)
        if self.causal:
            mask = torch.ones(T, T, dtype=torch.bool, device=tokens.device).tril()
        else:  # bidirectional: attend to every non-PAD token (and always to oneself)
            keep = tokens != PAD
            mask = keep[:, None, None, :] | torch.eye(T, dtype=torch.bool, device=tokens.device)
        x = self.transformer(x, mask)  # final LayerNorm included (CLIP's ln_final)
        eot = (tokens == EOT).int().argmax(dim=1)  # first [EOT] (every row has one)
        return x[torch.arange(B, device=tokens.device), eot]


class CLIP(nn.Module):
    """Image tower (``core.vit.ViT``, class-token pooling), text tower, two bias-free
    projections into ``embed_dim`` and the learnable log temperature ``logit_scale``."""

    def __init__(self, cfg: CLIPConfig | None = None):
        super().__init__()
        self.config = cfg = cfg or CLIPConfig()
        self.visual = ViT(
            image_size=cfg.image_size,
            patch_size=cfg.patch_size,
            in_channels=cfg.in_channels,
            num_classes=1,
            dim=cfg.vision_dim,
            depth=cfg.vision_depth,
            n_heads=cfg.vision_heads,
        )
        self.visual.head = nn.Identity()  # CLIP projects the pooled state instead
        self.text = TextTransformer(cfg)
        self.image_projection = nn.Linear(cfg.vision_dim, cfg.embed_dim, bias=False)
        self.text_projection = nn.Linear(cfg.text_dim, cfg.embed_dim, bias=False)
        nn.init.normal_(self.image_projection.weight, std=cfg.vision_dim**-0.5)
        nn.init.normal_(self.text_projection.weight, std=cfg.text_dim**-0.5)
        self.logit_scale = nn.Parameter(torch.tensor(float(cfg.init_logit_scale)))

    @property
    def device(self) -> torch.device:
        return self.logit_scale.device

    def tokenize(self, texts: str | Sequence[str]) -> Tensor:
        """Tokens for this model's context (truncated, like open_clip's tokenizer)."""
        return tokenize(texts, self.config.context_length)

    def encode_image(self, images: Tensor, *, normalize: bool = True) -> Tensor:
        """(B, C, H, W) in [0, 1] -> (B, embed_dim), unit length unless ``normalize=False``."""
        z = self.image_projection(self.visual.features(images.to(self.device)))
        return F.normalize(z, dim=-1) if normalize else z

    def encode_text(self, texts: Tensor | Sequence[str], *, normalize: bool = True) -> Tensor:
        """Texts (strings, truncated to the context) or tokens (B, T) -> (B, embed_dim)."""
        tokens = texts if isinstance(texts, Tensor) else self.tokenize(texts)
        tokens = tokens[:, : _used_length(tokens)]  # drop all-PAD columns: same result, faster
        z = self.text_projection(self.text(tokens.to(self.device)))
        return F.normalize(z, dim=-1) if normalize else z

    def scale(self) -> Tensor:
        """exp(logit_scale), at most 100."""
        return self.logit_scale.exp().clamp(max=MAX_LOGIT_SCALE)

    def forward(self, images: Tensor, texts: Tensor | Sequence[str]) -> Tensor:
        """The contrastive loss of a batch of pairs."""
        return clip_loss(self.encode_image(images), self.encode_text(texts), self.scale())

    def save_pretrained(self, path: str | Path) -> Path:
        """Weights and config to ``path`` (a folder, or a ``.safetensors`` file)."""
        return save_model(
            checkpoint_file(path, WEIGHTS), self, kind=KIND, config=asdict(self.config)
        )

    @classmethod
    def from_pretrained(cls, path: str | Path, *, device: str = "cpu") -> CLIP:
        """A model saved by :meth:`save_pretrained` (kind- and shape-checked)."""
        model, _ = load_model(
            checkpoint_file(path, WEIGHTS),
            lambda c: cls(CLIPConfig(**c)),
            kind=KIND,
            map_location=device,
        )
        return model.eval()


def _used_length(tokens: Tensor) -> int:
    """The number of leading columns that hold a non-PAD token in some row."""
    used = (tokens != PAD).any(dim=0).nonzero()
    return int(used.max()) + 1 if len(used) else 1


# ---------------------------------------------------------------------------------------------
# Evaluation


@torch.no_grad()
def encode_images(model: CLIP, images: Tensor, *, batch_size: int = 256) -> Tensor:
    """Unit image embeddings (N, embed_dim) on the CPU, in eval mode, batched."""
    with eval_mode(model):
        return torch.cat([model.encode_image(x).cpu() for x in images.split(batch_size)])


@torch.no_grad()
def encode_texts(model: CLIP, texts: Sequence[str], *, batch_size: int = 256) -> Tensor:
    """Unit text embeddings (N, embed_dim) on the CPU, in eval mode, batched."""
    texts = list(texts)
    with eval_mode(model):
        chunks = [
            model.encode_text(texts[i : i + batch_size]).cpu()
            for i in range(0, len(texts), batch_size)
        ]
    return torch.cat(chunks)


@torch.no_grad()
def zero_shot_classify(
    model: CLIP, images: Tensor, class_prompts: Sequence[str] | Sequence[Sequence[str]]
) -> Tensor:
    """Predicted class per image (N,): the class whose prompt embedding is most similar (CLIP
    Sec. 3.1.2). A class given as several prompts uses their mean embedding, re-normalised
    (CLIP's prompt ensembling, Sec. 3.1.4)."""
    if len(class_prompts) < 2:
        raise ValueError(f"zero_shot_classify: need >= 2 classes, got {len(class_prompts)}")
    groups = [[p] if isinstance(p, str) else list(p) for p in class_prompts]
    if any(not g for g in groups):
        raise ValueError("zero_shot_classify: every class needs at least one prompt")
    flat = encode_texts(model, [p for g in groups for p in g])
    sizes = torch.tensor([len(g) for g in groups])
    owner = torch.repeat_interleave(torch.arange(len(groups)), sizes)
    classes = torch.zeros(len(groups), flat.shape[1]).index_add_(0, owner, flat)
    classes = F.normalize(classes, dim=-1)
    return (encode_images(model, images) @ classes.T).argmax(dim=1)


def retrieval_recall(
    image_embeddings: Tensor,
    text_embeddings: Tensor,
    ks: Sequence[int] = (1, 5),
    *,
    groups: Sequence[Any] | None = None,
) -> dict[str, float]:
    """Recall@k in both directions for N paired (image i, text i) embeddings: the share of
    images whose own text is among the k most similar texts (``i2t_r<k>``), and of texts whose
    own image is among the k most similar images (``t2i_r<k>``). With ``groups`` (one id per
    pair), any item of the same group counts as a match (e.g. identical captions)."""
    if image_embeddings.ndim != 2 or image_embeddings.shape != text_embeddings.shape:
        raise ValueError(
            f"retrieval_recall: need two (N, D) embeddings of one shape, got "
            f"{tuple(image_embeddings.shape)} and {tuple(text_embeddings.shape)}"
        )
    n = len(image_embeddings)
    if not ks or any(k < 1 for k in ks):
        raise ValueError(f"retrieval_recall: ks={tuple(ks)} must be positive integers")
    if groups is None:
        match = torch.eye(n, dtype=torch.bool)
    else:
        if len(groups) != n:
            raise ValueError(f"retrieval_recall: {len(groups)} groups for {n} pairs")
        ids = {g: i for i, g in enumerate(dict.fromkeys(groups))}
        g = torch.tensor([ids[x] for x in groups])
        match = g[:, None] == g[None, :]
    sims = image_embeddings.float().cpu() @ text_embeddings.float().cpu().T  # (N images, N texts)
    out: dict[str, float] = {}
    for direction, s, m in (("i2t", sims, match), ("t2i", sims.T, match.T)):
        order = s.argsort(dim=1, descending=True)  # ranked candidates per query
        hits = m.gather(1, order)  # (N, N): is the r-th candidate a match?
        for k in ks:
            out[f"{direction}_r{k}"] = float(hits[:, : min(k, n)].any(dim=1).float().mean())
    return out


# ---------------------------------------------------------------------------------------------
# Training

TextSource = Sequence[str] | Callable[[Tensor, int], Sequence[str]]


def clamp_logit_scale(model: CLIP) -> None:
    """open_clip's habit after every optimizer step: keep t in [0, log 100]."""
    with torch.no_grad():
        model.logit_scale.clamp_(0, math.log(MAX_LOGIT_SCALE))


def train_clip(
    model: CLIP,
    images: Tensor,
    texts: TextSource,
    *,
    steps: int,
    batch_size: int = 64,
    lr: float = 1e-3,
    weight_decay: float = 0.1,
    warmup_steps: int = 0,
    seed: int = 0,
    device: str = "cpu",
    progress: bool = True,
    desc: str = "clip",
) -> dict[str, list[float]]:
    """Train ``model`` contrastively on ``images`` (N, C, H, W) through ``core.train.train``.

    ``texts``: one caption per image, or a callable ``(indices, step) -> captions`` choosing
    each sample's caption at that step (e.g. a mix of original captions and recaptions). Each
    batch holds ``batch_size`` distinct images (drawn without replacement, fixed by seed and
    step), so no image is its own negative. Returns the training history.
    """
    n = len(images)
    if isinstance(texts, Sequence) and len(texts) != n:
        raise ValueError(f"train_clip: {len(texts)} texts for {n} images")
    if not 2 <= batch_size <= n:
        raise ValueError(f"train_clip: batch_size={batch_size} must be in 2..{n} (the images)")
    if steps < 1 or lr <= 0:
        raise ValueError(f"train_clip: steps={steps} must be >= 1 and lr={lr} > 0")

    def batch(step: int) -> tuple[Tensor, Tensor]:
        gen = torch.Generator().manual_seed(seed * 1_000_003 + step)
        index = torch.randperm(n, generator=gen)[:batch_size]
        chosen = texts(index, step) if callable(texts) else [texts[int(i)] for i in index]
        return images[index], model.tokenize(list(chosen))

    def loss_fn(m: nn.Module, b: tuple[Tensor, Tensor]) -> tuple[Tensor, dict[str, float]]:
        x, tokens = b
        loss = m(x, tokens)
        return loss, {"logit_scale": float(model.scale().detach())}

    cfg = TrainConfig(
        steps=steps,
        lr=lr,
        weight_decay=weight_decay,
        warmup_steps=warmup_steps,
        betas=(0.9, 0.98),  # CLIP Sec. 2.5 / open_clip defaults for ViTs
        seed=seed,
        progress=progress,
        desc=desc,
    )
    return train(
        model,
        loss_fn,
        batch,
        cfg,
        on_step=lambda step, m, history: clamp_logit_scale(m),
        device=device,
    )


def evaluate_retrieval(
    model: CLIP,
    images: Tensor,
    queries: Mapping[str, Sequence[str]],
    *,
    ks: Sequence[int] = (1, 5),
) -> dict[str, float]:
    """Retrieval recall of ``images`` against each named list of captions (one per image):
    ``{"<name>_i2t_r1": ..., "<name>_t2i_r1": ...}``; identical captions count as matches."""
    img = encode_images(model, images)
    out: dict[str, float] = {}
    for name, captions in queries.items():
        txt = encode_texts(model, captions)
        for key, value in retrieval_recall(img, txt, ks, groups=list(captions)).items():
            out[f"{name}_{key}"] = value
    return out
