"""The decode fast path in core.llama / core.kv_cache (no-op casts and eval-mode dropout skipped,
one-op cache writes, no GQA branch for plain multi-head attention) computes bit for bit what the
previous code computed: a reference copy of the old computation is run on the same weights."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from paperlab.core.generate import generate
from paperlab.core.llama import Llama, LlamaConfig, apply_rotary


def old_norm(norm, x):
    h = x.float()
    h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + norm.eps)
    return norm.weight * h.to(x.dtype)


def old_attention(attn, x, cos, sin, cache_kv, past):
    B, T, _ = x.shape
    q = attn.q_proj(x).view(B, T, attn.n_heads, attn.head_dim).transpose(1, 2)
    k = attn.k_proj(x).view(B, T, attn.n_kv_heads, attn.head_dim).transpose(1, 2)
    v = attn.v_proj(x).view(B, T, attn.n_kv_heads, attn.head_dim).transpose(1, 2)
    q, k = apply_rotary(q, k, cos, sin)
    ck, cv = cache_kv
    ck[:, :, past : past + T] = k  # the old indexed write
    cv[:, :, past : past + T] = v
    k, v = ck[:, :, : past + T], cv[:, :, : past + T]
    n_rep = attn.n_heads // attn.n_kv_heads
    gqa = {"enable_gqa": True} if n_rep > 1 else {}
    out = F.scaled_dot_product_attention(
        q, k, v, attn_mask=None, dropout_p=0.0, is_causal=past == 0 and T > 1, **gqa
    )
    return attn.o_proj(out.transpose(1, 2).reshape(B, T, -1))


@torch.no_grad()
def old_logits(model: Llama, ids: torch.Tensor, chunks: list[int]) -> torch.Tensor:
    """The pre-fast-path computation, fed in `chunks` (prefill, then decode steps) through
    its own cache; returns the logits of every position."""
    cfg = model.config
    shape = (ids.shape[0], cfg.n_kv_heads, ids.shape[1], cfg.head_dim)
    caches = [
        (
            torch.zeros(shape, dtype=model.embed_tokens.weight.dtype),
            torch.zeros(shape, dtype=model.embed_tokens.weight.dtype),
        )
        for _ in range(cfg.n_layers)
    ]
    out, past = [], 0
    for n in chunks:
        x = model.embed_tokens(ids[:, past : past + n])
        cos, sin = model.rotary_emb(past, n)
        for layer, kv in zip(model.layers, caches, strict=True):
            h = old_attention(
                layer.self_attn, old_norm(layer.input_layernorm, x), cos, sin, kv, past
            )
            x = x + layer.resid_dropout(h)
            x = x + layer.resid_dropout(layer.mlp(old_norm(layer.post_attention_layernorm, x)))
        out.append(model.lm_head(old_norm(model.norm, x)))
        past += n
    return torch.cat(out, dim=1)


@pytest.mark.parametrize(
    "n_kv_heads, dtype", [(4, torch.float32), (2, torch.float32), (4, torch.bfloat16)]
)
def test_fast_path_is_bit_identical_to_the_old_computation(n_kv_heads, dtype):
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=64, dim=32, n_layers=3, n_heads=4, n_kv_heads=n_kv_heads)
    model = Llama(cfg).to(dtype).eval()
    ids = torch.randint(0, 64, (2, 12))
    with torch.no_grad():
        assert torch.equal(model(ids), old_logits(model, ids, [12]))
        cache = model.new_cache(batch_size=2, max_len=12)
        steps = [model(ids[:, :7], cache=cache)]
        steps += [model(ids[:, t : t + 1], cache=cache) for t in range(7, 12)]
    assert torch.equal(torch.cat(steps, dim=1), old_logits(model, ids, [7, 1, 1, 1, 1, 1]))


def test_generate_tokens_equal_old_greedy_loop():
    torch.manual_seed(1)
    model = Llama(LlamaConfig(vocab_size=64, dim=32, n_layers=2, n_heads=2)).eval()
    prompt = torch.randint(0, 64, (1, 9))
    new = generate(model, prompt, max_new_tokens=20)
    seq = prompt
    for _ in range(20):  # no cache, old computation, argmax
        logits = old_logits(model, seq, [seq.shape[1]])
        seq = torch.cat([seq, logits[:, -1].argmax(-1, keepdim=True)], dim=1)
    assert torch.equal(new, seq)


def test_training_mode_still_applies_dropout():
    torch.manual_seed(2)
    model = Llama(LlamaConfig(vocab_size=32, dim=16, n_layers=1, n_heads=2, dropout=0.5))
    ids = torch.randint(0, 32, (1, 8))
    model.train()
    torch.manual_seed(3)
    a = model(ids)
    torch.manual_seed(4)
    b = model(ids)
    assert not torch.equal(a, b)
    model.eval()
    assert torch.equal(model(ids), model(ids))
