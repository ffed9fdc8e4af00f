"""A class-conditional autoregressive generator over image tokens, for the throughput
comparison of claim 3 (TiTok Sec. 1 and 4.3: fewer tokens make any generator faster).

The core Llama (paperlab.core.llama) reads [class token ; t_0 .. t_{N-2}] and predicts
t_0 .. t_{N-1}; sampling is one token per step with a KV cache (LlamaGen-style), with optional
classifier-free guidance over a doubled batch (class / null class).

Token space: [0, V) image codes, V .. V+C-1 the classes, V+C the null class.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from paperlab.core.generate import sample_next
from paperlab.core.llama import Llama, LlamaConfig
from paperlab.core.train import eval_mode
from paperlab.papers.titok.saving import Pretrained, check_labels


class ARGenerator(Pretrained, nn.Module):
    """Class-conditional decoder-only transformer over ``seq_len`` image tokens."""

    kind = "titok-ar"

    def __init__(
        self,
        *,
        codebook_size: int,
        seq_len: int,
        num_classes: int,
        dim: int = 64,
        n_layers: int = 2,
        n_heads: int = 4,
    ):
        super().__init__()
        self.config = dict(
            codebook_size=codebook_size,
            seq_len=seq_len,
            num_classes=num_classes,
            dim=dim,
            n_layers=n_layers,
            n_heads=n_heads,
        )
        self.codebook_size, self.seq_len, self.num_classes = codebook_size, seq_len, num_classes
        self.null_class_id = codebook_size + num_classes
        config = LlamaConfig(
            vocab_size=codebook_size + num_classes + 1,
            dim=dim,
            n_layers=n_layers,
            n_heads=n_heads,
            ffn_hidden=4 * dim,
            max_seq_len=seq_len + 1,
        )
        self.llama = Llama(config)

    def condition(self, labels: Tensor, drop: Tensor | None = None) -> Tensor:
        check_labels(labels, self.num_classes)
        ids = labels + self.codebook_size
        return ids if drop is None else torch.where(drop, self.null_class_id, ids)

    def forward(self, tokens: Tensor, labels: Tensor, drop: Tensor | None = None) -> Tensor:
        """Teacher forcing: tokens (B, N), labels (B,) -> logits (B, N, codebook_size), where
        position i predicts tokens[:, i] from the class and tokens[:, :i]."""
        inputs = torch.cat([self.condition(labels, drop)[:, None], tokens[:, :-1]], dim=1)
        return self.llama(inputs)[..., : self.codebook_size]

    def loss(
        self,
        tokens: Tensor,
        labels: Tensor,
        *,
        class_dropout: float = 0.1,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Next-token cross-entropy with ``class_dropout`` of the labels set to the null class."""
        drop = (torch.rand(labels.shape[0], generator=generator) < class_dropout).to(labels.device)
        logits = self(tokens, labels, drop)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tokens.reshape(-1))

    def _step_logits(self, ids: Tensor, cache, scale: float | None, B: int) -> Tensor:
        """Logits (B, V) for the next token; ``ids`` are the new inputs (cached) or the whole
        prefix (no cache), for the doubled batch when guided."""
        if cache is not None:
            h = self.llama.run_layers(self.llama.embed(ids), cache=cache)
        else:
            h = self.llama.run_layers(self.llama.embed(ids))
        logits = self.llama.head(h[:, -1])[:, : self.codebook_size].float()
        if scale is None:
            return logits
        return logits[B:] + scale * (logits[:B] - logits[B:])  # uncond + s (cond - uncond)

    @torch.no_grad()
    def generate(
        self,
        labels: Tensor,
        *,
        temperature: float = 1.0,
        top_k: int | None = None,
        cfg_scale: float | None = None,
        use_cache: bool = True,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Sample token ids (B, seq_len), one token per forward; ``use_cache=False`` recomputes
        the whole prefix every step (the reference the cache must match)."""
        labels = labels.to(self.llama.embed_tokens.weight.device)  # on the model's device
        with eval_mode(self):
            B = labels.shape[0]
            cond = self.condition(labels)[:, None]
            if cfg_scale is not None:
                null = torch.full_like(cond, self.null_class_id)
                cond = torch.cat([cond, null])  # [conditional ; unconditional]
            rows = cond.shape[0]
            cache = self.llama.new_cache(rows, self.seq_len + 1) if use_cache else None
            out = torch.empty((B, self.seq_len), dtype=torch.long, device=labels.device)
            prefix, new = cond, cond
            for i in range(self.seq_len):
                logits = self._step_logits(new if use_cache else prefix, cache, cfg_scale, B)
                token = _sample(logits, temperature, top_k, generator)
                out[:, i] = token
                new = token[:, None].repeat(rows // B, 1)  # both halves continue with the sample
                if not use_cache:
                    prefix = torch.cat([prefix, new], dim=1)
        return out


def _sample(
    logits: Tensor, temperature: float, top_k: int | None, generator: torch.Generator | None
) -> Tensor:
    """``core.generate.sample_next``; with a generator on another device than the logits (a
    CPU generator, the seeded draws of the claims), the draw is made on the generator's
    device and the tokens are moved back."""
    if generator is None or generator.device == logits.device:
        return sample_next(logits, temperature=temperature, top_k=top_k, generator=generator)
    on_gen = logits.to(generator.device)
    token = sample_next(on_gen, temperature=temperature, top_k=top_k, generator=generator)
    return token.to(logits.device)
