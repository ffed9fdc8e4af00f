"""Inference with a multi-token model (Gloeckle et al. 2024, arXiv 2404.19737, Sec. 2
"Inference" and Sec. 3.2).

- `greedy_generate`: head 1 alone is an ordinary next-token model (trunk + head 1 = a plain core
  `Llama`), decoded with the core KV-cached `generate`; heads 2..n are simply not run.
- `self_speculative_generate`: greedy self-speculative decoding, i.e. blockwise parallel
  decoding (Stern et al. 2018) with the model's own heads as the drafter. Each forward feeds the
  last verified token plus the k <= n - 1 tokens drafted by heads 2..k+1 at the previous step;
  head 1's argmax at every fed position verifies them; the longest matching prefix is accepted
  together with head 1's token after it (the correction, or a bonus token if all matched), and
  the caches are truncated back to the accepted length. The output is identical to
  `greedy_generate` (up to float ties between logits; tests check it exactly).
- Sampling (temperature > 0; our extension, the paper's self-speculation is greedy): the drafts
  are sampled from heads 2..k+1 (q_i, the same temperature / top-k / top-p warp as head 1's
  p_i) and verified by the standard speculative-sampling rule (Leviathan et al. 2023; Chen et
  al. 2023): accept d_i with probability min(1, p_i(d_i) / q_i(d_i)); at the first rejection
  sample from norm(max(p_i - q_i, 0)); if all stand, sample head 1's bonus token from p_{k+1}.
  Head i+1 drafts x_{t+1+i} from x_{1:t} alone (not from the tokens between), which the rule
  allows: each d_i is drawn from a q_i fixed before it, independently of the earlier tokens'
  draws, so every output token follows head 1's distribution given the tokens before it: the
  text is distributed as plain sampling from head 1 (a test checks the exact marginals).

Batch size 1, as in the paper's speed measurements.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from paperlab.core.generate import generate, logits_to_probs
from paperlab.core.kv_cache import KVCache
from paperlab.core.llama import FFN_ACTIVATIONS, apply_rotary, make_attention_mask
from paperlab.core.train import eval_mode
from paperlab.papers.mtp.model import MultiTokenLlama


@dataclass
class SpeculativeResult:
    tokens: list[int]  # the new tokens (ending with a stop token if one was produced)
    forwards: int  # model forwards, the prefill included
    drafted: int  # draft tokens proposed by heads 2..n and checked
    accepted: int  # of those, accepted
    per_forward: list[int] = field(default_factory=list)  # new tokens of each decoding forward

    @property
    def tokens_per_forward(self) -> float:
        return len(self.tokens) / max(self.forwards, 1)

    @property
    def acceptance_rate(self) -> float:
        return self.accepted / max(self.drafted, 1)


def _as_ids(prompt: torch.Tensor | Sequence[int], device: torch.device) -> torch.Tensor:
    ids = torch.as_tensor(prompt, dtype=torch.long, device=device)
    ids = ids[None] if ids.dim() == 1 else ids
    if ids.shape[0] != 1 or ids.shape[1] == 0:
        raise ValueError(f"expected one non-empty prompt (batch size 1), got shape {ids.shape}")
    return ids


def greedy_generate(
    model: MultiTokenLlama,
    prompt: torch.Tensor | Sequence[int],
    *,
    max_new_tokens: int,
    stop_tokens: Sequence[int] = (),
    temperature: float = 0.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
) -> list[int]:
    """Plain next-token decoding with head 1 only (Sec. 2, "Inference"): core `generate` on
    trunk + head 1, with a KV cache; greedy at temperature 0 (the default), else sampling."""
    ids = _as_ids(prompt, model.llama.embed_tokens.weight.device)
    return generate(
        model.llama,
        [ids[0].tolist()],
        max_new_tokens=max_new_tokens,
        stop_tokens=stop_tokens,
        temperature=temperature,
        top_k=top_k,
        top_p=top_p,
        generator=generator,
    )[0]


class DraftHeads:
    """Heads 2..k+1 run together for drafting: their weights stacked along a leading head axis,
    one batched matmul per projection (q/k/v fused, gate/up fused), their own KV cache with the
    heads as its batch axis. The same math as calling each head's `DecoderLayer` (a test checks
    it), with one layer's worth of per-op overhead instead of k; at batch size 1 on a CPU that
    overhead is most of a layer's cost. Only drafts come from here and head 1 verifies every
    one of them, so rounding differences cannot change the decoded output."""

    def __init__(self, model: MultiTokenLlama, *, n_draft: int, max_len: int):
        cfg = model.config
        layers = list(model.extra_heads)[:n_draft]
        attn = [layer.self_attn for layer in layers]
        mlp = [layer.mlp for layer in layers]

        def stack(weights):  # list of (out, in) Linear weights -> (k, in, out) for bmm
            return torch.stack([w.t() for w in weights])

        self.model, self.k, self.eps = model, len(layers), cfg.norm_eps
        self.act = FFN_ACTIVATIONS[cfg.hidden_act]  # the model's own FFN activation
        self.n_heads, self.n_kv, self.head_dim = cfg.n_heads, cfg.n_kv_heads, cfg.head_dim
        self.ln1 = torch.stack([layer.input_layernorm.weight for layer in layers])[:, None]
        self.ln2 = torch.stack([layer.post_attention_layernorm.weight for layer in layers])[:, None]
        self.w_qkv = torch.cat(
            [
                stack([a.q_proj.weight for a in attn]),
                stack([a.k_proj.weight for a in attn]),
                stack([a.v_proj.weight for a in attn]),
            ],
            dim=2,
        )
        self.w_o = stack([a.o_proj.weight for a in attn])  # (k, H*D, dim)
        self.w_gate_up = torch.cat(
            [stack([f.gate_proj.weight for f in mlp]), stack([f.up_proj.weight for f in mlp])],
            dim=2,
        )
        self.w_down = stack([f.down_proj.weight for f in mlp])  # (k, ffn, dim)
        weight = model.llama.embed_tokens.weight
        self.cache = KVCache(
            batch_size=self.k,
            n_kv_heads=self.n_kv,
            head_dim=self.head_dim,
            layers=1,
            max_len=max_len,
            device=weight.device,
            dtype=weight.dtype,
        )

    def _norm(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        h = x.float()  # as core RMSNorm: normalise in float32, cast back, then scale
        return weight * (h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.eps)).to(x.dtype)

    def __call__(self, z: torch.Tensor) -> torch.Tensor:
        """Trunk output z (1, T, dim) -> the k heads' residual streams (k, T, dim)."""
        k, T = self.k, z.shape[1]
        H, Hkv, D = self.n_heads, self.n_kv, self.head_dim
        past = self.cache.seq_len(0)
        x = z.expand(k, T, z.shape[2])
        qkv = torch.bmm(self._norm(x, self.ln1), self.w_qkv)  # (k, T, (H + 2 Hkv) D)
        q, key, value = qkv.split([H * D, Hkv * D, Hkv * D], dim=-1)
        q = q.view(k, T, H, D).transpose(1, 2)  # (k, H, T, D)
        key = key.view(k, T, Hkv, D).transpose(1, 2)
        value = value.view(k, T, Hkv, D).transpose(1, 2)
        cos, sin = self.model.llama.rotary_emb(past, T)
        q, key = apply_rotary(q, key, cos, sin)
        key, value = self.cache.update(0, key, value)  # (k, Hkv, past + T, D)
        if H != Hkv:
            key, value = key.repeat_interleave(H // Hkv, 1), value.repeat_interleave(H // Hkv, 1)
        mask = make_attention_mask(T, past, None, z.device)
        causal = mask is None and past == 0 and T > 1
        out = F.scaled_dot_product_attention(q, key, value, attn_mask=mask, is_causal=causal)
        x = x + torch.bmm(out.transpose(1, 2).reshape(k, T, H * D), self.w_o)
        gate, up = torch.bmm(self._norm(x, self.ln2), self.w_gate_up).chunk(2, dim=-1)
        return x + torch.bmm(self.act(gate) * up, self.w_down)  # (k, T, dim)


def _sample(probs: torch.Tensor, generator: torch.Generator | None) -> int:
    return int(torch.multinomial(probs, 1, generator=generator))


def verify_sampled(
    p: torch.Tensor,
    drafts: Sequence[int],
    qs: torch.Tensor | None,
    generator: torch.Generator | None = None,
) -> list[int]:
    """The speculative-sampling rule (Leviathan et al. 2023, Alg. 1; Chen et al. 2023): target
    probabilities p (k+1, V) at [t, d_1..d_k], drafts d_i drawn from qs[i] (k, V) -> the
    verified tokens: the accepted drafts, then a resampled token at the first rejection, or a
    bonus token from p[k] if all stand."""
    out = []
    for i, d in enumerate(drafts):
        q = qs[i]
        ratio = float(p[i, d]) / float(q[d])  # q(d) > 0: d was sampled from q
        if float(torch.rand((), generator=generator)) < min(1.0, ratio):
            out.append(d)
            continue
        residual = (p[i] - q).clamp(min=0.0)
        total = float(residual.sum())
        # total == 0 only if p == q, where rejection has probability 0 (float dust aside)
        out.append(_sample(residual / total if total > 0 else p[i], generator))
        return out
    out.append(_sample(p[len(drafts)], generator))
    return out


def _step(
    model: MultiTokenLlama,
    fed: torch.Tensor,
    drafts: list[int],
    cache: KVCache,
    draft_heads: DraftHeads | None,
    sampling: dict | None = None,
    qs: torch.Tensor | None = None,
) -> tuple[list[int], list[int], torch.Tensor | None]:
    """One forward over `fed` (1, T): the prompt at prefill, else [last verified token, *drafts].
    Returns (the newly verified tokens: accepted drafts + head 1's next token, the next drafts,
    their draft distributions when sampling). `sampling` None: greedy; else the warp and the
    generator, `qs` (k, V) the distributions `drafts` were sampled from."""
    start = cache.seq_len(0)
    base = fed.shape[1] - 1 - len(drafts)  # the fed position of the last verified token
    z = model.trunk(fed, cache=cache)  # (1, T, dim)
    h1 = model.head_hidden(0, z, cache=cache)[0, base:]  # (k+1, dim)
    logits = model.unembed(h1)  # row j: head 1 on the token after fed[base + j]
    if sampling is None:
        pred = logits.argmax(-1).tolist()
        # verify: draft j (proposed for the token after fed[base + j]) stands if head 1 agrees
        m = 0
        while m < len(drafts) and drafts[m] == pred[m]:
            m += 1
        verified = pred[: m + 1]
    else:
        # DEVIATION: sampled self-speculation (our extension; the paper's is greedy only)
        generator = sampling["generator"]
        p = logits_to_probs(logits, **_warp(sampling))
        verified = verify_sampled(p, drafts, qs, generator)
        m = len(verified) - 1
    cache.truncate(start + base + m + 1)  # forget the rejected drafts in trunk and head 1
    if draft_heads is None:
        return verified, [], None
    # heads 2..k+1 run on every fed position (their KV caches must cover them) but are
    # unembedded only at the last accepted one, where head i+1 predicts the token i+1 ahead
    h = draft_heads(z)  # (k, T, dim)
    draft_heads.cache.truncate(start + base + m + 1)
    draft_logits = model.unembed(h[:, base + m])  # (k, V)
    if sampling is None:
        return verified, draft_logits.argmax(-1).tolist(), None
    q = logits_to_probs(draft_logits, **_warp(sampling))
    return verified, torch.multinomial(q, 1, generator=sampling["generator"])[:, 0].tolist(), q


def _warp(sampling: dict) -> dict:
    return {k: sampling[k] for k in ("temperature", "top_k", "top_p")}


@torch.inference_mode()
def self_speculative_generate(
    model: MultiTokenLlama,
    prompt: torch.Tensor | Sequence[int],
    *,
    max_new_tokens: int,
    n_draft: int | None = None,
    stop_tokens: Sequence[int] = (),
    cache: KVCache | None = None,
    temperature: float = 0.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
) -> SpeculativeResult:
    """Self-speculative decoding (Sec. 3.2): heads 2..n_draft+1 draft, head 1 verifies in the
    next forward. `n_draft` defaults to n - 1 (all heads). Greedy (temperature 0, the paper's
    setting): output == `greedy_generate`. Temperature > 0: drafts are sampled and verified by
    the speculative-sampling rule, so the output is distributed as `greedy_generate(...,
    temperature=...)` (head 1's own sampling with the same temperature / top_k / top_p).

    `cache`: an empty `model.new_cache()` to decode into (to reuse it, or inspect it afterwards:
    it then holds the prompt and every new token but the last); by default a fresh one."""
    n_draft = model.n_future - 1 if n_draft is None else n_draft
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int):
        raise ValueError(f"max_new_tokens must be an integer, got {max_new_tokens!r}")
    if temperature < 0:
        raise ValueError(f"temperature={temperature} must be >= 0 (0 = greedy)")
    sampling = None
    if temperature > 0:
        logits_to_probs(torch.zeros(2), temperature=temperature, top_k=top_k, top_p=top_p)
        sampling = dict(temperature=temperature, top_k=top_k, top_p=top_p, generator=generator)
    if not 0 <= n_draft < model.n_future:
        raise ValueError(f"n_draft={n_draft}: the model has {model.n_future - 1} draft heads")
    ids = _as_ids(prompt, model.llama.embed_tokens.weight.device)
    total = ids.shape[1] + max_new_tokens + n_draft
    if total > model.config.max_seq_len:
        raise ValueError(f"prompt + max_new_tokens + n_draft = {total} exceeds max_seq_len")
    with eval_mode(model):
        if cache is None:  # trunk + head 1 only: heads 2..n keep their own (DraftHeads)
            cache = model.llama.new_cache(batch_size=1, max_len=total)
        elif cache.seq_len(0) != 0:
            raise ValueError("self_speculative_generate: the cache must be empty")
        return _decode(model, ids, max_new_tokens, n_draft, set(stop_tokens), cache, sampling)


def _decode(model, ids, max_new_tokens, n_draft, stops, cache, sampling) -> SpeculativeResult:
    result = SpeculativeResult(tokens=[], forwards=0, drafted=0, accepted=0)
    if max_new_tokens <= 0:
        return result
    draft_heads = DraftHeads(model, n_draft=n_draft, max_len=cache.capacity) if n_draft else None
    # prefill: the prompt's last position gives head 1's first token and the first drafts
    out, drafts, qs = _step(model, ids, [], cache, draft_heads, sampling)
    result.forwards, stopped = 1, bool(stops.intersection(out))
    while len(out) < max_new_tokens and not stopped:
        drafts = drafts[: max_new_tokens - len(out) - 1]  # never draft past the budget
        fed = torch.tensor([[out[-1], *drafts]], device=ids.device)
        verified, next_drafts, qs = _step(model, fed, drafts, cache, draft_heads, sampling, qs)
        result.forwards += 1
        result.drafted += len(drafts)
        result.accepted += len(verified) - 1
        result.per_forward.append(len(verified))
        out += verified
        drafts, stopped = next_drafts, bool(stops.intersection(verified))
    if stops:  # cut after the first stop token, as plain greedy would have stopped there
        end = next((j + 1 for j, t in enumerate(out) if t in stops), len(out))
        out = out[:end]
    result.tokens = out[:max_new_tokens]
    return result
