"""TransNAR's text side: a character tokenizer, a Llama decoder with interleaved Flamingo-style
gated cross-attention to the NAR's node embeddings, and a greedy decoder with a KV cache.

TransNAR Sec. 3, Fig. 3: text tokens are the queries, the NAR's node embeddings the keys and
values; each cross-attention block is gated by ``tanh(alpha)`` with ``alpha`` initialised to 0
(Alayrac et al. 2022), so at initialisation the model *is* the text-only transformer.

The baseline is this class with ``cross_attention=False``: the same embedding, self-attention
layers, head, tokenizer and positions, with no cross-attention blocks (so TransNAR has those
blocks' parameters on top, as in the paper, where they are added to the pre-trained LM).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from paperlab.core.kv_cache import KVCache
from paperlab.core.llama import MLP, Llama, LlamaConfig, RMSNorm

# ---------------------------------------------------------------------------------------------
# Tokenizer: one token per character of the CLRS-Text alphabet


PAD, BOS = 0, 1
ALPHABET = "\n ,-.:[]_0123456789Aabcdefghijklmnopqrstuvwxyz"
VOCAB_SIZE = 2 + len(ALPHABET)
_ID = {c: i + 2 for i, c in enumerate(ALPHABET)}


def encode(text: str) -> list[int]:
    try:
        return [_ID[c] for c in text]
    except KeyError as e:
        raise ValueError(f"character {e.args[0]!r} is not in the CLRS-Text alphabet") from None


def decode(ids: Sequence[int]) -> str:
    return "".join(ALPHABET[i - 2] for i in ids if i >= 2)


NEWLINE = _ID["\n"]


# ---------------------------------------------------------------------------------------------
# Gated cross-attention (Flamingo's GATED XATTN-DENSE)


class GatedCrossAttention(nn.Module):
    """``h += tanh(a_attn) * xattn(norm(h), nodes)``; ``h += tanh(a_ffn) * mlp(norm(h))``."""

    def __init__(self, config: LlamaConfig, node_dim: int):
        super().__init__()
        self.n_heads, self.head_dim = config.n_heads, config.head_dim
        self.norm = RMSNorm(config.dim, config.norm_eps)
        self.q_proj = nn.Linear(config.dim, config.dim, bias=False)
        self.k_proj = nn.Linear(node_dim, config.dim, bias=False)
        self.v_proj = nn.Linear(node_dim, config.dim, bias=False)
        self.o_proj = nn.Linear(config.dim, config.dim, bias=False)
        self.ffn_norm = RMSNorm(config.dim, config.norm_eps)
        self.mlp = MLP(config)
        self.attn_gate = nn.Parameter(torch.zeros(1))  # tanh(0) = 0: closed at init
        self.ffn_gate = nn.Parameter(torch.zeros(1))

    def forward(self, h: torch.Tensor, nodes: torch.Tensor, node_mask: torch.Tensor):
        """h (B, T, dim) tokens; nodes (B, N, node_dim); node_mask (B, N) bool."""
        B, T, _ = h.shape
        N = nodes.shape[1]
        q = self.q_proj(self.norm(h)).view(B, T, self.n_heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(nodes).view(B, N, self.n_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(nodes).view(B, N, self.n_heads, self.head_dim).transpose(1, 2)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=node_mask[:, None, None, :])
        h = h + torch.tanh(self.attn_gate) * self.o_proj(out.transpose(1, 2).reshape(B, T, -1))
        return h + torch.tanh(self.ffn_gate) * self.mlp(self.ffn_norm(h))


class TextDecoder(nn.Module):
    """A core Llama whose layers are followed by gated cross-attention to NAR node embeddings
    (every ``xattn_every``-th layer) when ``cross_attention``; the baseline has none."""

    def __init__(
        self,
        *,
        config: LlamaConfig,
        node_dim: int = 32,
        cross_attention: bool = True,
        xattn_every: int = 1,
    ):
        super().__init__()
        self.config, self.cross_attention = config, cross_attention
        # DEVIATION: a tiny Llama trained from scratch (the paper fine-tunes a pre-trained 70M
        # Chinchilla); its size and steps are set by the ~3 minute budget.
        self.llama = Llama(config)
        where = range(xattn_every - 1, config.n_layers, xattn_every) if cross_attention else []
        self.xattn = nn.ModuleDict({str(i): GatedCrossAttention(config, node_dim) for i in where})

    def forward(
        self,
        ids: torch.Tensor,
        *,
        nodes: torch.Tensor | None = None,
        node_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        cache: KVCache | None = None,
    ) -> torch.Tensor:
        """ids (B, T) -> logits (B, T, vocab). ``nodes`` are ignored by the baseline."""
        h = self.llama.embed(ids)
        for i in range(self.config.n_layers):
            h = self.llama.run_layers(
                h,
                i,
                i + 1,
                cache=cache,
                position_ids=position_ids,
                attention_mask=attention_mask,
            )
            if str(i) in self.xattn:
                if nodes is None or node_mask is None:
                    raise ValueError("TransNAR needs the NAR's node embeddings (nodes, node_mask)")
                h = self.xattn[str(i)](h, nodes, node_mask)
        return self.llama.head(h)

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())


# ---------------------------------------------------------------------------------------------
# Positions: randomized positional encodings (Ruoss et al. 2023), as TransNAR uses


def random_positions(
    batch: int, length: int, max_position: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """(B, T) sorted positions drawn without replacement from [0, max_position): the model
    sees only the order of its tokens, so longer test inputs use positions it trained on."""
    if length > max_position:
        raise ValueError(f"sequence of {length} tokens exceeds max_position={max_position}")
    keys = torch.rand(batch, max_position, generator=generator)
    return keys.argsort(dim=1)[:, :length].sort(dim=1).values


# ---------------------------------------------------------------------------------------------
# Greedy decoding with a KV cache; every step reads the same node embeddings


@torch.no_grad()
def greedy_decode(
    model: TextDecoder,
    prompts: Sequence[Sequence[int]],
    *,
    max_new_tokens: int,
    nodes: torch.Tensor | None = None,
    node_mask: torch.Tensor | None = None,
    randomized: bool = True,
    max_position: int = 1024,
    generator: torch.Generator | None = None,
) -> list[list[int]]:
    """New tokens after each prompt, up to and including the blank line that ends a CLRS-Text
    answer (two newlines) or ``max_new_tokens``. Prompts are left-padded and masked. Runs on
    the model's device (random positions are drawn on the CPU with ``generator``)."""
    model.eval()
    device = next(model.parameters()).device
    B, T = len(prompts), max(len(p) for p in prompts)
    total = T + max_new_tokens
    ids = torch.full((B, T), PAD, dtype=torch.long)
    mask = torch.zeros((B, total), dtype=torch.long)
    for b, p in enumerate(prompts):
        ids[b, T - len(p) :] = torch.as_tensor(list(p))
        mask[b, T - len(p) :] = 1
    lengths = torch.tensor([len(p) for p in prompts])
    positions = _decode_positions(lengths, T, max_new_tokens, randomized, max_position, generator)
    ids, mask, positions = ids.to(device), mask.to(device), positions.to(device)
    if nodes is not None:
        nodes = nodes.to(device)
    if node_mask is not None:
        node_mask = node_mask.to(device)
    cache = KVCache.for_model(model.llama, batch_size=B, max_len=total)
    kw = dict(nodes=nodes, node_mask=node_mask, cache=cache)
    logits = model(ids, position_ids=positions[:, :T], attention_mask=mask[:, :T], **kw)
    out = torch.zeros((B, 0), dtype=torch.long, device=device)
    done = torch.zeros(B, dtype=torch.bool, device=device)
    for step in range(max_new_tokens):
        nxt = logits[:, -1].argmax(-1).masked_fill(done, PAD)
        out = torch.cat([out, nxt[:, None]], dim=1)
        done |= (nxt == NEWLINE) & (out[:, -2] == NEWLINE) if step else torch.zeros_like(done)
        if bool(done.all()) or step + 1 == max_new_tokens:
            break
        at = T + step
        logits = model(
            nxt[:, None],
            position_ids=positions[:, at : at + 1],
            attention_mask=mask[:, : at + 1],
            **kw,
        )
    return [_until_blank_line(row) for row in out.tolist()]


def _decode_positions(lengths, T, max_new, randomized, max_position, generator):
    """(B, T + max_new): each row's real tokens get increasing (random or 0..) positions,
    left padding gets position 0."""
    B = len(lengths)
    pos = torch.zeros((B, T + max_new), dtype=torch.long)
    for b, n in enumerate(lengths.tolist()):
        size = n + max_new
        row = (
            random_positions(1, size, max_position, generator)[0]
            if randomized
            else torch.arange(size)
        )
        pos[b, T - n :] = row
    return pos


def _until_blank_line(row: list[int]) -> list[int]:
    for i in range(1, len(row)):
        if row[i] == NEWLINE and row[i - 1] == NEWLINE:
            return row[: i + 1]
    return [t for t in row if t != PAD]
