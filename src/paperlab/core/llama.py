"""A Llama-style decoder-only transformer: RMSNorm, rotary embeddings, grouped-query attention,
SwiGLU MLP, a preallocated KV cache.

One copy for every paper that needs a decoder (MTP, Kangaroo, LlamaGen, ...). Names follow
Hugging Face `modeling_llama.py` (`q_proj`, `gate_proj`, `input_layernorm`, `embed_tokens`,
`norm`, `lm_head`) and rotary embeddings use its "rotate_half" layout, so `paperlab.core.hf`
converts weights to and from `LlamaForCausalLM` by renaming keys only.

The model is usable whole (`model(ids)`) or in pieces, for methods that run a subset of layers:

    h = model.embed(ids)                                   # (B, T, dim)
    h = model.run_layers(h, 0, 2, cache=cache)             # layers 0, 1 (e.g. a draft trunk)
    h = model.run_layers(h, 2, None, cache=cache)          # layers 2 .. n_layers-1
    logits = model.head(h)                                 # final norm + lm_head

`model(ids, return_hidden=True)` returns `(logits, h)` with `h` the residual stream after the
last layer (before the final norm), so `model.head(h) == logits`.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from paperlab.core.kv_cache import KVCache

_TORCH_HAS_GQA = tuple(int(x) for x in torch.__version__.split(".")[:2]) >= (2, 5)


FFN_ACTIVATIONS = {"silu": F.silu, "relu": F.relu}


@dataclass
class LlamaConfig:
    vocab_size: int = 256
    dim: int = 256
    n_layers: int = 6
    n_heads: int = 8
    n_kv_heads: int | None = None  # None -> n_heads (plain multi-head attention)
    ffn_hidden: int | None = None  # None -> Llama's rule: 2/3 * 4 * dim, rounded up to multiple_of
    multiple_of: int = 256
    max_seq_len: int = 1024
    rope_theta: float = 10000.0
    norm_eps: float = 1e-5
    tie_embeddings: bool = False
    dropout: float = 0.0
    hidden_act: str = "silu"  # FFN gate activation: "silu" (SwiGLU) or "relu" (ReGLU, sparse)

    def __post_init__(self):
        if self.hidden_act not in FFN_ACTIVATIONS:
            raise ValueError(
                f"LlamaConfig: hidden_act={self.hidden_act!r} is not one of "
                f"{sorted(FFN_ACTIVATIONS)}"
            )
        if self.n_kv_heads is None:
            self.n_kv_heads = self.n_heads
        if self.ffn_hidden is None:
            hidden = int(2 * 4 * self.dim / 3)
            self.ffn_hidden = self.multiple_of * math.ceil(hidden / self.multiple_of)
        if self.dim % self.n_heads:
            raise ValueError(
                f"LlamaConfig: dim={self.dim} is not divisible by n_heads={self.n_heads}"
            )
        if self.n_heads % self.n_kv_heads:
            raise ValueError(
                f"LlamaConfig: n_heads={self.n_heads} is not a multiple of "
                f"n_kv_heads={self.n_kv_heads}"
            )
        if (self.dim // self.n_heads) % 2:
            raise ValueError(
                f"LlamaConfig: head_dim={self.dim // self.n_heads} must be even (RoPE)"
            )

    @property
    def head_dim(self) -> int:
        return self.dim // self.n_heads

    @classmethod
    def from_dict(cls, d: dict) -> LlamaConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"LlamaConfig: unknown keys {unknown}; known: {sorted(known)}")
        return cls(**d)


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # normalise in float32 and cast back before the scale, exactly as HF does
        if x.dtype == torch.float32:  # decode fast path: the casts are no-ops, skip dispatching
            return self.weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps))
        h = x.float()
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * h.to(x.dtype)


class RotaryEmbedding(nn.Module):
    """cos/sin tables for positions 0..max_seq_len-1 in HF layout: the two halves of head_dim
    share frequencies (cat(freqs, freqs)), paired with `rotate_half`."""

    def __init__(self, head_dim: int, max_seq_len: int, theta: float = 10000.0):
        super().__init__()
        inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float) / head_dim))
        freqs = torch.arange(max_seq_len, dtype=torch.float)[:, None] * inv_freq  # (L, D/2)
        emb = torch.cat((freqs, freqs), dim=-1)  # (L, D)
        self.register_buffer("cos", emb.cos(), persistent=False)
        self.register_buffer("sin", emb.sin(), persistent=False)

    def forward(
        self, past_len: int, q_len: int, position_ids: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(T, D) for consecutive positions past_len.., or (B, 1, T, D) gathered at position_ids."""
        if position_ids is not None:
            position_ids = position_ids.view(-1, q_len)  # (T,) -> (1, T)
            return self.cos[position_ids][:, None], self.sin[position_ids][:, None]
        if past_len + q_len > self.cos.shape[0]:
            raise ValueError(
                f"position {past_len + q_len - 1} is beyond max_seq_len={self.cos.shape[0]}; "
                "raise LlamaConfig.max_seq_len"
            )
        return self.cos[past_len : past_len + q_len], self.sin[past_len : past_len + q_len]


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def apply_rotary(q, k, cos, sin):
    return q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin


def make_attention_mask(
    q_len: int, past_len: int, attention_mask: torch.Tensor | None, device: torch.device
) -> torch.Tensor | None:
    """Boolean mask (True = may attend) of shape (B or 1, 1, q_len, past_len + q_len), or None
    when SDPA needs no mask (no cache: `is_causal`; one query on a cache: it sees every key).

    `attention_mask` (B, past_len + q_len), 1 = real token and 0 = padding, HF convention.
    Query i sits at key index past_len + i. Each query also sees itself, so a padding query has
    one finite score instead of a NaN row that would leak into the next layer's keys/values."""
    if attention_mask is None and (past_len == 0 or q_len == 1):
        return None
    k_len = past_len + q_len
    q_idx = torch.arange(past_len, k_len, device=device)[:, None]  # (T, 1)
    k_idx = torch.arange(k_len, device=device)[None, :]  # (1, L)
    allowed = k_idx <= q_idx  # causal, offset by the cached length
    if attention_mask is None:
        return allowed[None, None]
    if attention_mask.shape[-1] != k_len:
        raise ValueError(
            f"attention_mask covers {attention_mask.shape[-1]} positions, expected "
            f"cached + new = {past_len} + {q_len} = {k_len}"
        )
    valid = attention_mask.bool()[:, None, None, :]  # (B, 1, 1, L)
    return allowed & (valid | (k_idx == q_idx))


def positions_from_mask(attention_mask: torch.Tensor, q_len: int) -> torch.Tensor:
    """Left padding: the first real token of each row is position 0 (as HF generate does)."""
    positions = attention_mask.long().cumsum(-1) - 1
    return positions.clamp(min=0)[:, -q_len:]


class MLP(nn.Module):
    """Gated FFN: down(act(gate(x)) * up(x)); SwiGLU with act=silu, ReGLU with act=relu.

    With ReGLU a neuron whose gate pre-activation is <= 0 contributes exactly nothing, which is
    the activation sparsity PowerInfer-style engines exploit."""

    def __init__(self, config: LlamaConfig):
        super().__init__()
        self.act = FFN_ACTIVATIONS[config.hidden_act]
        self.gate_proj = nn.Linear(config.dim, config.ffn_hidden, bias=False)
        self.up_proj = nn.Linear(config.dim, config.ffn_hidden, bias=False)
        self.down_proj = nn.Linear(config.ffn_hidden, config.dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(self.act(self.gate_proj(x)) * self.up_proj(x))


class Attention(nn.Module):
    """Causal self-attention with grouped-query heads (n_kv_heads <= n_heads) and RoPE."""

    def __init__(self, config: LlamaConfig, layer_idx: int):
        super().__init__()
        self.layer_idx = layer_idx  # the slot this layer reads and writes in a KVCache
        self.n_heads, self.n_kv_heads = config.n_heads, config.n_kv_heads
        self.head_dim = config.head_dim
        self.dropout = config.dropout
        self.q_proj = nn.Linear(config.dim, self.n_heads * self.head_dim, bias=False)
        self.k_proj = nn.Linear(config.dim, self.n_kv_heads * self.head_dim, bias=False)
        self.v_proj = nn.Linear(config.dim, self.n_kv_heads * self.head_dim, bias=False)
        self.o_proj = nn.Linear(self.n_heads * self.head_dim, config.dim, bias=False)

    def forward(self, x, cos, sin, mask=None, is_causal=False, cache: KVCache | None = None):
        B, T, _ = x.shape
        query_states = self.q_proj(x).view(B, T, self.n_heads, self.head_dim).transpose(1, 2)
        key_states = self.k_proj(x).view(B, T, self.n_kv_heads, self.head_dim).transpose(1, 2)
        value_states = self.v_proj(x).view(B, T, self.n_kv_heads, self.head_dim).transpose(1, 2)
        query_states, key_states = apply_rotary(query_states, key_states, cos, sin)  # (B, H, T, D)
        if cache is not None:
            key_states, value_states = cache.update(self.layer_idx, key_states, value_states)
        n_rep = self.n_heads // self.n_kv_heads
        gqa = {}  # plain multi-head attention passes nothing extra
        if n_rep > 1 and _TORCH_HAS_GQA:
            gqa = {"enable_gqa": True}
        elif n_rep > 1:
            key_states = key_states.repeat_interleave(n_rep, dim=1)
            value_states = value_states.repeat_interleave(n_rep, dim=1)
        out = F.scaled_dot_product_attention(
            query_states,
            key_states,
            value_states,
            attn_mask=mask,
            dropout_p=self.dropout if self.training else 0.0,
            is_causal=is_causal,
            **gqa,
        )  # (B, H, T, D)
        return self.o_proj(out.transpose(1, 2).reshape(B, T, -1))


class DecoderLayer(nn.Module):
    def __init__(self, config: LlamaConfig, layer_idx: int):
        super().__init__()
        self.input_layernorm = RMSNorm(config.dim, config.norm_eps)
        self.self_attn = Attention(config, layer_idx)
        self.post_attention_layernorm = RMSNorm(config.dim, config.norm_eps)
        self.mlp = MLP(config)
        self.resid_dropout = nn.Dropout(config.dropout)

    def forward(self, x, cos, sin, mask=None, is_causal=False, cache=None):
        h = self.self_attn(self.input_layernorm(x), cos, sin, mask, is_causal, cache)
        if not self.training or self.resid_dropout.p == 0.0:  # fast path: dropout is identity
            x = x + h
            return x + self.mlp(self.post_attention_layernorm(x))
        x = x + self.resid_dropout(h)
        return x + self.resid_dropout(self.mlp(self.post_attention_layernorm(x)))


class Llama(nn.Module):
    def __init__(self, config: LlamaConfig):
        super().__init__()
        self.config = config
        self.embed_tokens = nn.Embedding(config.vocab_size, config.dim)
        self.layers = nn.ModuleList(DecoderLayer(config, i) for i in range(config.n_layers))
        self.norm = RMSNorm(config.dim, config.norm_eps)
        self.lm_head = nn.Linear(config.dim, config.vocab_size, bias=False)
        self.rotary_emb = RotaryEmbedding(config.head_dim, config.max_seq_len, config.rope_theta)
        self.apply(self._init_weights)
        for name, p in self.named_parameters():  # GPT-2: scale the residual branch outputs
            if name.endswith(("o_proj.weight", "down_proj.weight")):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layers))
        if config.tie_embeddings:
            self.lm_head.weight = self.embed_tokens.weight

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear | nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def num_params(self, *, exclude_embeddings: bool = False) -> int:
        n = sum(p.numel() for p in self.parameters())  # tied weights are counted once
        return n - self.embed_tokens.weight.numel() if exclude_embeddings else n

    # -- the pieces: embed -> run_layers (any subset) -> head ----------------------------------

    def embed(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.embed_tokens(input_ids)  # (B, T, dim)

    def run_layers(
        self,
        h: torch.Tensor,
        start: int = 0,
        end: int | None = None,
        *,
        cache: KVCache | None = None,
        position_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        layers: Sequence[nn.Module] | None = None,
    ) -> torch.Tensor:
        """Run layers start..end-1 on hidden states h (B, T, dim); return the residual stream.

        With a cache, the new tokens follow the tokens already cached for the first layer run
        (layers of one call must agree). Positions default to consecutive ones after the cache
        (or, given a left-padding `attention_mask`, count real tokens only).
        `attention_mask` (B, cached + T): 1 = real token, 0 = padding.
        `layers` swaps in other blocks sharing this model's rotary table, e.g. MTP's extra heads
        or a draft adapter: modules called as `block(h, cos, sin, mask, is_causal, cache)` with a
        `self_attn.layer_idx` (their slot in the cache)."""
        blocks = list(self.layers if layers is None else layers)[start:end]
        if not blocks:
            return h
        T = h.shape[1]
        past_len = cache.seq_len(blocks[0].self_attn.layer_idx) if cache is not None else 0
        if position_ids is None and attention_mask is not None:
            position_ids = positions_from_mask(attention_mask, T)
        cos, sin = self.rotary_emb(past_len, T, position_ids)
        mask = make_attention_mask(T, past_len, attention_mask, h.device)
        is_causal = mask is None and past_len == 0 and T > 1
        for block in blocks:
            h = block(h, cos, sin, mask, is_causal, cache)
        return h

    def head(self, h: torch.Tensor) -> torch.Tensor:
        return self.lm_head(self.norm(h))  # (B, T, vocab_size)

    def forward(
        self,
        input_ids: torch.Tensor,
        *,
        cache: KVCache | None = None,
        position_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        return_hidden: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """input_ids (B, T) -> logits (B, T, vocab_size), and the last residual stream (B, T, dim)
        if `return_hidden`."""
        h = self.embed(input_ids)
        h = self.run_layers(
            h, cache=cache, position_ids=position_ids, attention_mask=attention_mask
        )
        logits = self.head(h)
        return (logits, h) if return_hidden else logits

    def new_cache(self, batch_size: int = 1, max_len: int | None = None, layers=None) -> KVCache:
        """A preallocated cache for this model (all layers unless `layers` is given)."""
        return KVCache.for_model(self, batch_size=batch_size, max_len=max_len, layers=layers)

    def generate(self, prompts, **kwargs):
        """Shortcut for `paperlab.core.generate.generate(self, prompts, **kwargs)`."""
        from paperlab.core.generate import generate

        return generate(self, prompts, **kwargs)

    # -- checkpoints: one safetensors file, the config in its metadata -----------------------

    def save_pretrained(self, path: str | os.PathLike) -> Path:
        """Write `path` (a `.safetensors` file, or a directory -> `model.safetensors` in it)
        atomically; return the file written."""
        file = _checkpoint_file(Path(path), creating=True)
        state = {k: v.detach().contiguous() for k, v in self.state_dict().items()}
        if self.config.tie_embeddings:
            del state["lm_head.weight"]  # safetensors refuses shared storage; re-tied on load
        metadata = {"format": "pt", "paperlab_model": "Llama"}
        metadata["paperlab_config"] = json.dumps(asdict(self.config))
        from paperlab.core.checkpoint import save_safetensors_atomic

        return save_safetensors_atomic(state, file, metadata)

    @classmethod
    def from_pretrained(
        cls,
        path: str | os.PathLike,
        *,
        device: torch.device | str = "cpu",
        dtype: torch.dtype | None = None,
    ) -> Llama:
        """A model saved by `save_pretrained`, or a Hugging Face directory (`config.json` +
        single or sharded safetensors; Llama, and Mistral without a sliding window)."""
        from safetensors.torch import load_file

        from paperlab.core.checkpoint import read_safetensors_metadata

        if Path(path).is_dir() and (Path(path) / "config.json").is_file():
            from paperlab.core.hf import load_hf_directory

            return load_hf_directory(path, device=device, dtype=dtype)
        file = _checkpoint_file(Path(path), creating=False)
        metadata = read_safetensors_metadata(file)
        kind = metadata.get("paperlab_model", "Llama")
        if kind != "Llama":
            raise ValueError(f"{file}: expected a Llama checkpoint, found {kind}")
        if "paperlab_config" not in metadata:
            raise ValueError(
                f"{file}: no paperlab config in the safetensors metadata; for a Hugging Face "
                "checkpoint use paperlab.core.hf.from_hf_state_dict"
            )
        config = LlamaConfig.from_dict(json.loads(metadata["paperlab_config"]))
        state = load_file(str(file))
        if config.tie_embeddings:
            state["lm_head.weight"] = state["embed_tokens.weight"]
        model = cls(config)
        model.load_state_dict(state)
        return model.to(device=device, dtype=dtype)


def _checkpoint_file(path: Path, *, creating: bool) -> Path:
    if path.suffix == ".safetensors":
        file = path
    else:
        if creating:
            path.mkdir(parents=True, exist_ok=True)
        file = path / "model.safetensors"
    if creating:
        file.parent.mkdir(parents=True, exist_ok=True)
    elif not file.is_file():
        raise FileNotFoundError(f"no checkpoint at {file}; write one with model.save_pretrained")
    return file
