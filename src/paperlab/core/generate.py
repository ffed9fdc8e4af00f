"""Autoregressive decoding for `paperlab.core.llama.Llama` with a preallocated KV cache.

`generate` takes a (B, T) tensor (optionally with a left-padding `attention_mask`) or a list of
prompts of different lengths (left-padded here). Rows of a left-padded batch decode exactly as
each prompt would alone: padding keys are masked and positions count real tokens only.

`logits_to_probs` / `sample_next` are the temperature / top-k / top-p rules on their own, for
speculative decoders that need the warped distributions of both draft and target.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from paperlab.core.kv_cache import KVCache
from paperlab.core.train import eval_mode


def logits_to_probs(
    logits: torch.Tensor,
    *,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
) -> torch.Tensor:
    """Softmax of logits (..., V) / temperature, restricted to the top_k tokens and then to the
    smallest set of most likely tokens whose mass reaches top_p (nucleus)."""
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0 to form probabilities, got {temperature}")
    logits = logits.float() / temperature
    if top_k is not None:
        if top_k < 1:
            raise ValueError(f"top_k must be >= 1, got {top_k}")
        if top_k < logits.shape[-1]:
            kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]
            logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = torch.softmax(logits, dim=-1)
    if top_p is not None:
        if not 0.0 < top_p <= 1.0:
            raise ValueError(f"top_p must be in (0, 1], got {top_p}")
        if top_p < 1.0:
            sorted_probs, order = probs.sort(dim=-1, descending=True)
            mass_before = sorted_probs.cumsum(dim=-1) - sorted_probs
            sorted_probs = sorted_probs.masked_fill(mass_before >= top_p, 0.0)
            probs = torch.zeros_like(probs).scatter_(-1, order, sorted_probs)
            probs = probs / probs.sum(dim=-1, keepdim=True)
    return probs


def sample_next(
    logits: torch.Tensor,
    *,
    temperature: float = 0.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Next tokens (B,) from last-position logits (B, V); temperature 0 = greedy (argmax)."""
    if temperature == 0.0:
        return logits.argmax(dim=-1)
    probs = logits_to_probs(logits, temperature=temperature, top_k=top_k, top_p=top_p)
    if generator is not None and generator.device != probs.device:
        # a CPU generator with CUDA logits: draw where the generator lives (same stream on
        # every device), then move the tokens back
        draws = torch.multinomial(probs.to(generator.device), 1, generator=generator)
        return draws.squeeze(-1).to(probs.device)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


def left_pad(
    prompts: Sequence[Sequence[int]], *, pad_token_id: int = 0, device=None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Prompts of different lengths -> input_ids (B, T_max) padded on the left, attention_mask."""
    if not prompts or any(len(p) == 0 for p in prompts):
        raise ValueError("generate: every prompt needs at least one token")
    T = max(len(p) for p in prompts)
    input_ids = torch.full((len(prompts), T), pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros((len(prompts), T), dtype=torch.long)
    for row, p in enumerate(prompts):
        input_ids[row, T - len(p) :] = torch.as_tensor(list(p), dtype=torch.long)
        attention_mask[row, T - len(p) :] = 1
    return input_ids.to(device), attention_mask.to(device)


def _next_logits(model, ids, cache, position_ids, attention_mask) -> torch.Tensor:
    h = model.run_layers(
        model.embed(ids), cache=cache, position_ids=position_ids, attention_mask=attention_mask
    )
    return model.head(h[:, -1])  # (B, V): the lm_head runs on the last position only


def _check_prompts(prompts, vocab_size: int) -> None:
    """One ValueError naming what is wrong with `prompts` (shape, emptiness, token ids)."""
    if isinstance(prompts, torch.Tensor):
        if prompts.dim() != 2 or prompts.shape[0] == 0 or prompts.shape[1] == 0:
            raise ValueError(
                f"generate: prompts must be a (batch, length) tensor with both > 0, got shape "
                f"{tuple(prompts.shape)} (a single prompt: prompts[None])"
            )
        if prompts.dtype.is_floating_point:
            raise ValueError(f"generate: prompts must hold token ids, got dtype {prompts.dtype}")
        ids = prompts
    else:
        if len(prompts) == 0 or any(len(p) == 0 for p in prompts):
            raise ValueError("generate: prompts must be a non-empty list of non-empty token lists")
        if not all(isinstance(p, Sequence | torch.Tensor) for p in prompts):
            raise ValueError("generate: prompts must be a list of token lists (one per prompt)")
        ids = torch.tensor([t for p in prompts for t in p])
    low, high = int(ids.min()), int(ids.max())
    if low < 0 or high >= vocab_size:
        bad = low if low < 0 else high
        raise ValueError(f"generate: token id {bad} is outside the vocabulary [0, {vocab_size})")


@torch.inference_mode()
def generate(
    model,
    prompts: torch.Tensor | Sequence[Sequence[int]],
    *,
    max_new_tokens: int,
    temperature: float = 0.0,
    top_k: int | None = None,
    top_p: float | None = None,
    stop_tokens: Sequence[int] = (),
    generator: torch.Generator | None = None,
    attention_mask: torch.Tensor | None = None,
    pad_token_id: int = 0,
) -> torch.Tensor | list[list[int]]:
    """Decode up to `max_new_tokens` after each prompt.

    prompts: a (B, T) tensor -> returns (B, T + n) prompt + new tokens (n <= max_new_tokens;
    rows that hit a stop token early are filled with `pad_token_id` after it); or a list of token
    lists -> returns the new tokens of each, ending with the stop token if one was produced.
    `attention_mask` (B, T) marks left padding in a tensor batch (1 = real token)."""
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int):
        raise ValueError(f"generate: max_new_tokens must be an integer, got {max_new_tokens!r}")
    if max_new_tokens < 0:
        raise ValueError(f"generate: max_new_tokens must be >= 0, got {max_new_tokens}")
    as_lists = not isinstance(prompts, torch.Tensor)
    _check_prompts(prompts, model.config.vocab_size)
    device = model.embed_tokens.weight.device
    if as_lists:
        input_ids, attention_mask = left_pad(prompts, pad_token_id=pad_token_id, device=device)
    else:
        input_ids = prompts.to(device)
    B, T = input_ids.shape
    # the last new token is produced but never fed back: T + max_new_tokens - 1 positions
    if T + max_new_tokens - 1 > model.config.max_seq_len:
        raise ValueError(
            f"prompt ({T}) + max_new_tokens ({max_new_tokens}) exceeds "
            f"max_seq_len={model.config.max_seq_len} + 1 (the last token is never fed back)"
        )
    with eval_mode(model):
        tokens = _decode(
            model,
            input_ids,
            attention_mask,
            max_new_tokens,
            stop_tokens,
            pad_token_id,
            dict(temperature=temperature, top_k=top_k, top_p=top_p, generator=generator),
        )
    if not as_lists:
        return tokens
    stops = set(stop_tokens)
    out = []
    for row in tokens[:, T:].tolist():
        end = next((i + 1 for i, t in enumerate(row) if t in stops), len(row))
        out.append(row[:end])
    return out


def _decode(model, input_ids, attention_mask, max_new_tokens, stop_tokens, pad_token_id, sampling):
    B, T = input_ids.shape
    device = input_ids.device
    tokens = torch.full((B, T + max_new_tokens), pad_token_id, dtype=torch.long, device=device)
    tokens[:, :T] = input_ids
    if max_new_tokens <= 0:
        return tokens[:, :T]
    mask = position_ids = None
    if attention_mask is not None and not bool(attention_mask.all()):
        # the mask grows by one real token per step: preallocate it once, pass growing views
        mask = torch.ones((B, T + max_new_tokens), dtype=torch.bool, device=device)
        mask[:, :T] = attention_mask.bool()
        next_pos = attention_mask.long().sum(-1, keepdim=True)  # (B, 1) first new position
    cache = KVCache.for_model(model, batch_size=B, max_len=T + max_new_tokens - 1)
    stops = torch.as_tensor(list(stop_tokens), dtype=torch.long, device=device)
    finished = torch.zeros(B, dtype=torch.bool, device=device)

    logits = _next_logits(model, input_ids, cache, None, None if mask is None else mask[:, :T])
    n = 0
    for step in range(max_new_tokens):
        next_token = sample_next(logits, **sampling)  # (B,)
        if len(stops):
            next_token = next_token.masked_fill(finished, pad_token_id)
            finished |= torch.isin(next_token, stops)
        tokens[:, T + step] = next_token
        n = step + 1
        if n == max_new_tokens or (len(stops) and bool(finished.all())):
            break
        if mask is not None:
            position_ids, step_mask = next_pos + step, mask[:, : T + n]
        else:
            step_mask = None
        logits = _next_logits(model, next_token[:, None], cache, position_ids, step_mask)
    return tokens[:, : T + n]
