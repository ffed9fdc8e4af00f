"""Sampling image tokens from a LlamaGen generator, with classifier-free guidance.

CFG (Sec. 2.2 / 3, as the official `generate`): the batch is doubled into [cond; uncond] rows,
the uncond rows carrying the null class as prefix, and at every step

    logits = uncond + (cond - uncond) * cfg_scale

then temperature, top-k and top-p (nucleus) filtering and one multinomial draw per image.
Only the K image-code logits are kept, so class ids are never sampled.

`use_cache=True` runs the prefix once and then one token per step against a KV cache (the
serving path: KV cache + batched cond/uncond streams). `use_cache=False` is the
recompute baseline: a full causal forward over the whole prefix at every step. Both draw the
same random numbers in the same order (one `torch.multinomial` over (B, K) probabilities per
step), so for a fixed seed they produce the same tokens.
"""

from __future__ import annotations

import torch
from torch import Tensor

from paperlab.core.generate import logits_to_probs
from paperlab.core.train import eval_mode
from paperlab.papers.llamagen.generator import LlamaGen


def cfg_logits(cond: Tensor, uncond: Tensor, scale: float) -> Tensor:
    """Classifier-free guidance: uncond + (cond - uncond) * scale."""
    return uncond + (cond - uncond) * scale


class _Stream:
    """One decoding stream: a batch of prefixes, advanced by one token per step, either with a
    KV cache or by recomputing the whole prefix."""

    def __init__(self, model: LlamaGen, prefix: Tensor, *, use_cache: bool, copies: int = 1):
        self.llama = model.model
        self.copies = copies  # the prefix holds `copies` blocks of rows that share each token
        self.K = model.config.codebook_size
        self.use_cache = use_cache
        self.seq = prefix[:, None]  # (rows, t): tokens so far (recompute path)
        self.cache = (
            self.llama.new_cache(batch_size=prefix.shape[0], max_len=model.config.seq_len)
            if use_cache
            else None
        )
        self.pending = self.seq  # tokens not yet fed to the model

    def next_logits(self) -> Tensor:
        """(rows, K) logits for the next image token."""
        if self.use_cache:
            h = self.llama.run_layers(self.llama.embed(self.pending), cache=self.cache)
        else:  # recompute: a full causal forward over everything so far
            h = self.llama.run_layers(self.llama.embed(self.seq))
        return self.llama.head(h[:, -1])[:, : self.K].float()

    def push(self, tokens: Tensor) -> None:
        """Append the sampled tokens (B,) to every block of rows."""
        self.pending = tokens.repeat(self.copies)[:, None]
        if not self.use_cache:
            self.seq = torch.cat([self.seq, self.pending], dim=1)


def _draw(logits: Tensor, temperature: float, top_k: int, top_p: float, generator) -> Tensor:
    if temperature == 0.0:
        return logits.argmax(dim=-1)
    probs = logits_to_probs(
        logits, temperature=temperature, top_k=top_k if top_k > 0 else None, top_p=top_p
    )
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


def _check_args(model: LlamaGen, labels: Tensor, temperature: float, top_k: int, top_p: float):
    if labels.dim() != 1 or labels.numel() == 0:
        raise ValueError(
            f"sample: labels must be a non-empty 1-D tensor, got {tuple(labels.shape)}"
        )
    if labels.min() < 0 or labels.max() >= model.config.num_classes:
        raise ValueError(f"sample: labels must be class ids in [0, {model.config.num_classes})")
    if temperature < 0 or top_k < 0 or not 0.0 < top_p <= 1.0:
        raise ValueError("sample: need temperature >= 0, top_k >= 0 (0 = off), 0 < top_p <= 1")


@torch.inference_mode()
def sample(
    model: LlamaGen,
    labels: Tensor,
    *,
    cfg_scale: float = 1.0,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    seed: int = 0,
    generator: torch.Generator | None = None,
    use_cache: bool = True,
    batch_cfg: bool = True,
    double_batch: bool | None = None,
    return_logits: bool = False,
) -> Tensor | tuple[Tensor, Tensor]:
    """Sample image tokens (B, h, w) for class `labels` (B,).

    cfg_scale: guidance scale (1 = conditional only). double_batch: run the null-class stream
    (None = only when cfg_scale != 1). batch_cfg: cond and uncond rows in one batch (True, the
    serving trick) or as two separate forwards. temperature 0 = greedy; top_k 0 and top_p 1 =
    no filtering (the official defaults). return_logits: also return the guided logits
    (B, h*w, K) the tokens were drawn from. Randomness: `generator` if given, else a new
    generator on the model's device seeded with `seed`."""
    _check_args(model, labels, temperature, top_k, top_p)
    device = model.model.embed_tokens.weight.device
    if generator is None and temperature > 0:
        generator = torch.Generator(device=device).manual_seed(seed)
    labels = labels.to(device)
    B, cfg = labels.shape[0], model.config
    guided = (cfg_scale != 1.0) if double_batch is None else double_batch
    cond = model.class_tokens(labels)
    uncond = model.class_tokens(torch.full_like(labels, cfg.null_class))
    if not guided:
        streams = [_Stream(model, cond, use_cache=use_cache)]
    elif batch_cfg:
        streams = [_Stream(model, torch.cat([cond, uncond]), use_cache=use_cache, copies=2)]
    else:
        streams = [_Stream(model, p, use_cache=use_cache) for p in (cond, uncond)]
    with eval_mode(model):
        tokens = torch.empty(B, cfg.num_image_tokens, dtype=torch.long, device=device)
        all_logits = []
        for t in range(cfg.num_image_tokens):
            logits = torch.cat([s.next_logits() for s in streams])  # (B or 2B, K)
            if guided:
                logits = cfg_logits(logits[:B], logits[B:], cfg_scale)
            if return_logits:
                all_logits.append(logits)
            nxt = _draw(logits, temperature, top_k, top_p, generator)  # (B,)
            tokens[:, t] = nxt
            if t + 1 < cfg.num_image_tokens:
                for s in streams:
                    s.push(nxt)
    tokens = tokens.view(B, cfg.grid_size, cfg.grid_size)
    return (tokens, torch.stack(all_logits, dim=1)) if return_logits else tokens


@torch.inference_mode()
def generate_images(model: LlamaGen, tokenizer, labels: Tensor, **sample_kwargs) -> Tensor:
    """`sample(...)` then the tokenizer's decoder: images (B, C, H, W) in [0, 1]."""
    indices = sample(model, labels, **sample_kwargs)
    with eval_mode(tokenizer):
        return tokenizer.decode_indices(indices)
