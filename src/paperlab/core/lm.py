"""The byte-level language-model recipe on the corpus, one copy for every paper that needs a
trained decoder (MTP, Kangaroo, PowerInfer-2, the decoding benchmarks).

    model = Llama(LlamaConfig(vocab_size=256, dim=128, n_layers=4, n_heads=4))
    recipe = ByteLM(steps=600, lr=3e-3, batch_size=16, seq_len=128)
    history = train_byte_lm(model, recipe, seed=0)       # history["loss"], history["seconds"]
    val = byte_lm_loss(model, seq_len=128, batch_size=16, batches=8)   # nats/byte, val files

Batches are random contiguous windows of the corpus split (:func:`corpus_batches`: the stdlib
``.py`` sources of this interpreter, split by file), ``y`` is ``x`` shifted by one, and the
loss is next-token cross-entropy (:func:`next_token_loss`) unless the paper brings its own
(multi-token prediction's per-head losses).

The decoding target. :class:`DecodeTarget` is the one byte-level decoder the decoding
speed-ups are measured on (Kangaroo's target, MTP's next-token baseline, `benchmarks/decode.py`):
its architecture and recipe in one frozen spec, :func:`train_decode_target` trains it, and
:func:`decode_prompts` are its held-out code prompts (cut at line starts of the validation
files, never trained on). Built through ``ctx.shared(DECODE_TARGET_NAME, ...,
spec=dataclasses.asdict(target))`` the trained weights are one disk-cache entry for every paper.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from paperlab.core.data.text import code_prompts, load_corpus, random_batches
from paperlab.core.llama import Llama, LlamaConfig
from paperlab.core.train import History, LossFn, TrainConfig, eval_mode, train

VAL_SEED = 1234  # the fixed validation windows every paper's val loss reads


def corpus_batches(
    split: str, batch_size: int, seq_len: int, seed: int, *, device: str = "cpu"
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Endless ``(x, y)`` windows of the corpus ``split`` ("train" or "val"), seeded."""
    return random_batches(load_corpus(split=split), batch_size, seq_len, seed, device=device)


def next_token_loss(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """Mean next-token cross-entropy of ``model(x)`` (B, T, V) against ``y`` (B, T)."""
    x, y = batch
    return F.cross_entropy(model(x).flatten(0, 1), y.flatten())


@dataclass(frozen=True)
class ByteLM:
    """How a byte LM is trained here: AdamW, linear warmup (10% of the steps unless given)
    then cosine decay, clipping at 1 (see :class:`paperlab.core.train.TrainConfig`)."""

    steps: int
    lr: float
    batch_size: int = 16
    seq_len: int = 128
    warmup_steps: int | None = None  # None: max(1, steps // 10)
    weight_decay: float = 0.1

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "seq_len"):
            if getattr(self, name) < 1:
                raise ValueError(f"ByteLM: {name} must be >= 1, got {getattr(self, name)}")
        if self.lr <= 0:
            raise ValueError(f"ByteLM: lr must be > 0, got {self.lr}")

    def train_config(self, *, seed: int, progress: bool, desc: str, **extra) -> TrainConfig:
        warmup = max(1, self.steps // 10) if self.warmup_steps is None else self.warmup_steps
        return TrainConfig(
            steps=self.steps,
            lr=self.lr,
            weight_decay=self.weight_decay,
            warmup_steps=min(warmup, self.steps),
            progress=progress,
            seed=seed,
            desc=desc,
            **extra,
        )


def train_byte_lm(
    model: nn.Module,
    recipe: ByteLM,
    *,
    seed: int,
    loss_fn: LossFn = next_token_loss,
    manual_backward: bool = False,
    split: str = "train",
    device: str = "cpu",
    progress: bool = False,
    desc: str = "byte LM",
) -> History:
    """Train ``model`` in place on corpus windows; return the history (``seconds`` included).
    The model is left in eval mode. ``seed`` fixes the batches and the training RNG."""
    if not isinstance(recipe, ByteLM):
        raise TypeError(f"train_byte_lm: recipe must be a ByteLM, got {type(recipe).__name__}")
    batches = corpus_batches(split, recipe.batch_size, recipe.seq_len, seed)
    tcfg = recipe.train_config(
        seed=seed, progress=progress, desc=desc, manual_backward=manual_backward
    )
    history = train(model, loss_fn, batches, tcfg, device=device)
    model.eval()
    return history


@torch.no_grad()
def byte_lm_loss(
    model: nn.Module,
    *,
    seq_len: int,
    batch_size: int = 16,
    batches: int = 8,
    split: str = "val",
    seed: int = VAL_SEED,
    loss_fn: LossFn = next_token_loss,
) -> float:
    """Mean of ``loss_fn`` over ``batches`` fixed windows of ``split`` (nats/byte for the
    default loss), in eval mode, on the model's device."""
    if batches < 1:
        raise ValueError(f"byte_lm_loss: batches must be >= 1, got {batches}")
    device = next(model.parameters()).device
    stream = corpus_batches(split, batch_size, seq_len, seed, device=str(device))
    with eval_mode(model):
        return sum(float(loss_fn(model, next(stream))) for _ in range(batches)) / batches


def recipe_fields(cfg: object, *names: str) -> ByteLM:
    """A :class:`ByteLM` from the same-named fields of a paper's config (``steps``, ``lr``, ...),
    so a claims config keeps its flat ``--set`` keys."""
    values = {n: getattr(cfg, n) for n in names}
    return dataclasses.replace(ByteLM(steps=1, lr=1.0), **values)


# ---------------------------------------------------------------------------------------------
# The decoding target shared by the decoding papers and benchmarks/decode.py

DECODE_TARGET_NAME = "byte-decode-target"  # its artifact name (one disk-cache entry)


@dataclass(frozen=True)
class DecodeTarget:
    """The byte-level decoder the decoding speed-ups are measured on: a core `Llama` over
    bytes (vocabulary 256) trained with :func:`next_token_loss` by the :class:`ByteLM` recipe.
    A paper whose method changes the architecture (MTP's extra heads, trained with the trunk)
    builds its own model from the same fields, so that corpus, recipe and size match."""

    dim: int = 64
    n_layers: int = 8
    n_heads: int = 2
    seq_len: int = 128
    batch_size: int = 16
    steps: int = 600
    lr: float = 5e-3

    def __post_init__(self) -> None:
        for name in ("dim", "n_layers", "n_heads", "seq_len", "batch_size", "steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"DecodeTarget: {name} must be >= 1, got {getattr(self, name)}")
        if self.dim % self.n_heads or (self.dim // self.n_heads) % 2:
            raise ValueError(
                f"DecodeTarget: dim={self.dim} must split into n_heads={self.n_heads} heads "
                "of even size"
            )
        if self.lr <= 0:
            raise ValueError(f"DecodeTarget: lr must be > 0, got {self.lr}")

    def llama_config(self, n_layers: int | None = None) -> LlamaConfig:
        """The architecture (`n_layers` deep instead when given: e.g. a separately trained
        draft of the same width)."""
        layers = self.n_layers if n_layers is None else n_layers
        return LlamaConfig(
            vocab_size=256, dim=self.dim, n_layers=layers, n_heads=self.n_heads, max_seq_len=1024
        )

    def recipe(self) -> ByteLM:
        return ByteLM(
            steps=self.steps, lr=self.lr, batch_size=self.batch_size, seq_len=self.seq_len
        )


def train_decode_target(
    target: DecodeTarget,
    *,
    seed: int,
    n_layers: int | None = None,
    device: str = "cpu",
    progress: bool = False,
) -> tuple[Llama, History]:
    """(model in eval mode, history): the target trained on the corpus by its recipe
    (`n_layers` deep instead when given). The seed fixes the initial weights and the batches."""
    if not isinstance(target, DecodeTarget):
        raise TypeError(f"train_decode_target: target must be a DecodeTarget, got {target!r}")
    torch.manual_seed(seed)
    model = Llama(target.llama_config(n_layers))
    desc = f"byte LM L={model.config.n_layers}"
    history = train_byte_lm(
        model, target.recipe(), seed=seed, device=device, progress=progress, desc=desc
    )
    return model, history


def decode_prompts(n: int, length: int) -> list[list[int]]:
    """`n` held-out code prompts of `length` bytes: line starts of the validation files (no
    training window reads them), the same on every machine with the same Python version."""
    return code_prompts(n, length, split="val")
