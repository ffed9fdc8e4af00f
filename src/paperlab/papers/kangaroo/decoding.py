"""Kangaroo decoding: self-speculation with double early exit (arXiv 2404.18911, Sec. 3).

One round, batch size 1, with `t` the last verified token (not yet run through any layer):

1. Draft (first early exit: the shallow sub-network). Run layers 0..l-1 on `t`, keep the
   exit-layer state, and let the adapter + LM head propose the next token; repeat on each
   proposal. The shallow layers write their KV cache as they go.
2. Stop drafting (second early exit, Sec. 3.2) once the draft's top-1 probability of the
   last proposal is below `eta`, or after `gamma` proposals. As in the official code, the
   proposal that fell below `eta` is still verified and its exit-layer state is computed, so
   that the deep layers can also produce the token after it.
3. Verify. Layers l..L-1 run once over the cached exit-layer states of [t, d_1..d_k] -- the
   first l layers are never recomputed -- and the LM head gives the target's distribution at
   every one of those positions. Greedy: accept the longest prefix of drafts equal to the
   target's argmax, then the target's own token (correction or bonus). Sampling: the standard
   speculative rule (Leviathan et al. 2023; Chen et al. 2023): accept d_i with probability
   min(1, p_i(d_i) / q_i(d_i)); on the first rejection sample from norm(max(p_i - q_i, 0)); if
   all are accepted sample a bonus token from p_{k+1}. Either way the output follows the
   target's own distribution (greedy: is its greedy output).
4. Truncate the target's cache (shallow and deep layers) and the adapter's cache back to the
   verified length. When every draft was accepted, the adapter has not yet seen the last
   draft's exit state (drafting stopped before running it); it is fed first in the next round.

The draft-length rule depends only on the draft's own distribution (the prefix), so sampling
stays lossless with early exit: at each position the output token is drawn either through the
accept/resample rule or directly from p, and both give p.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from paperlab.core.generate import logits_to_probs
from paperlab.core.kv_cache import KVCache
from paperlab.core.llama import Llama
from paperlab.core.train import eval_mode
from paperlab.papers.kangaroo.adapter import KangarooAdapter


@dataclass
class KangarooResult:
    tokens: list[int]  # the new tokens (ending with a stop token if one was produced)
    target_forwards: int  # passes of the deep layers (verification), the prefill included
    drafted: int  # draft tokens proposed and checked
    accepted: int  # of those, accepted
    draft_steps: int  # shallow-layer passes on single tokens while drafting
    accept_lengths: list[int] = field(default_factory=list)  # new tokens per verification

    @property
    def compression_rate(self) -> float:
        """New tokens per target (deep-layer) forward: 1.0 for plain decoding."""
        return len(self.tokens) / max(self.target_forwards, 1)

    @property
    def acceptance_rate(self) -> float:
        return self.accepted / max(self.drafted, 1)


class KangarooDecoder:
    """Lossless self-speculative decoding of `model` with a trained `adapter` (Sec. 3).

    `adapter=None` is the paper's ablation without the adapter: the exit-layer state goes
    straight to the target's final norm and LM head (Table 3, "w/o adapter").
    `eta`: drafting stops when the draft's top-1 probability is below it (0 = never early).
    `gamma`: at most this many drafts per round (the official code's "steps", 6 for Vicuna-7B).
    """

    def __init__(
        self,
        model: Llama,
        adapter: KangarooAdapter | None,
        *,
        exit_layer: int | None = None,
        eta: float = 0.6,
        gamma: int = 6,
    ):
        if adapter is not None:
            adapter.check_target(model)
            if exit_layer is not None and exit_layer != adapter.exit_layer:
                raise ValueError(
                    f"exit_layer={exit_layer} but the adapter was trained at {adapter.exit_layer}"
                )
            exit_layer = adapter.exit_layer
        if exit_layer is None:
            raise ValueError("KangarooDecoder: without an adapter, pass exit_layer")
        if not 1 <= exit_layer < model.config.n_layers:
            raise ValueError(f"exit_layer={exit_layer} must be in 1..{model.config.n_layers - 1}")
        if not 0.0 <= eta <= 1.0:
            raise ValueError(f"eta={eta} must be in [0, 1]")
        if gamma < 1:
            raise ValueError(f"gamma={gamma} must be >= 1")
        self.model, self.adapter = model, adapter
        self.exit_layer, self.eta, self.gamma = exit_layer, eta, gamma

    # -- the pieces --------------------------------------------------------------------------

    def _draft_logits(self, h_exit: torch.Tensor, acache: KVCache | None) -> torch.Tensor:
        """Draft logits at the last position of h_exit (1, T, dim) -> (V,)."""
        if self.adapter is None:
            return self.model.head(h_exit[:, -1:])[0, -1]
        return self.adapter(self.model, h_exit, acache)[0, -1]

    def _probs(self, logits: torch.Tensor, sampling: dict) -> torch.Tensor:
        if sampling["temperature"] == 0.0:
            return torch.softmax(logits.float(), dim=-1)
        return logits_to_probs(
            logits,
            temperature=sampling["temperature"],
            top_k=sampling["top_k"],
            top_p=sampling["top_p"],
        )

    def _pick(self, probs: torch.Tensor, sampling: dict) -> int:
        if sampling["temperature"] == 0.0:
            return int(probs.argmax())
        return int(torch.multinomial(probs, 1, generator=sampling["generator"]))

    def _verify(
        self, logits: torch.Tensor, drafts: list[int], qs: list[torch.Tensor], sampling: dict
    ) -> list[int]:
        """Target logits (k+1, V) at [t, d_1..d_k] -> the verified tokens (accepted + 1)."""
        if sampling["temperature"] == 0.0:
            pred = logits.argmax(-1).tolist()
            m = 0
            while m < len(drafts) and drafts[m] == pred[m]:
                m += 1
            return drafts[:m] + [pred[m]]
        gen = sampling["generator"]
        p = self._probs(logits, sampling)  # (k+1, V)
        out = []
        for i, d in enumerate(drafts):
            ratio = float(p[i, d]) / float(qs[i][d])  # q(d) > 0: d was sampled from q
            if float(torch.rand((), generator=gen)) < min(1.0, ratio):
                out.append(d)
                continue
            residual = (p[i] - qs[i]).clamp(min=0.0)
            total = float(residual.sum())
            # total == 0 only if p == q, where rejection has probability 0 (float dust aside)
            residual = residual / total if total > 0 else p[i]
            out.append(int(torch.multinomial(residual, 1, generator=gen)))
            return out
        out.append(int(torch.multinomial(p[len(drafts)], 1, generator=gen)))
        return out

    # -- decoding ----------------------------------------------------------------------------

    @torch.inference_mode()
    def generate(
        self,
        prompt: torch.Tensor | Sequence[int],
        *,
        max_new_tokens: int,
        temperature: float = 0.0,
        top_k: int | None = None,
        top_p: float | None = None,
        generator: torch.Generator | None = None,
        stop_tokens: Sequence[int] = (),
    ) -> KangarooResult:
        """Decode up to `max_new_tokens` after `prompt` (one sequence). temperature 0 = greedy
        (identical to the target's greedy decoding); > 0 samples from the target's distribution
        (warped by temperature / top_k / top_p, the same warp applied to the draft)."""
        model = self.model
        ids = torch.as_tensor(prompt, dtype=torch.long, device=model.embed_tokens.weight.device)
        ids = ids[None] if ids.dim() == 1 else ids
        if ids.dim() != 2 or ids.shape[0] != 1 or ids.shape[1] == 0:
            raise ValueError(
                f"expected one non-empty prompt (batch size 1), got {tuple(ids.shape)}"
            )
        if temperature < 0:
            raise ValueError(f"temperature={temperature} must be >= 0")
        total = ids.shape[1] + max_new_tokens + self.gamma + 1
        if ids.shape[1] + max_new_tokens > model.config.max_seq_len:
            raise ValueError(
                f"prompt ({ids.shape[1]}) + max_new_tokens ({max_new_tokens}) exceeds the "
                f"model's max_seq_len={model.config.max_seq_len}"
            )
        sampling = dict(temperature=temperature, top_k=top_k, top_p=top_p, generator=generator)
        result = KangarooResult(tokens=[], target_forwards=0, drafted=0, accepted=0, draft_steps=0)
        if max_new_tokens <= 0:
            return result
        with eval_mode(*[m for m in (model, self.adapter) if m is not None]):
            cache = model.new_cache(batch_size=1, max_len=total)
            acache = self.adapter.new_cache(total) if self.adapter is not None else None
            self._decode(ids, max_new_tokens, set(stop_tokens), cache, acache, sampling, result)
        return result

    def _decode(self, ids, max_new_tokens, stops, cache, acache, sampling, result) -> None:
        model, l = self.model, self.exit_layer
        # prefill: the whole model on the prompt, the adapter on its exit-layer states
        h_exit = model.run_layers(model.embed(ids), 0, l, cache=cache)
        logits = model.head(model.run_layers(h_exit, l, None, cache=cache)[:, -1:])[0, -1]
        out = [self._pick(self._probs(logits, sampling), sampling)]
        # exit-layer states the adapter has not read yet: consecutive positions from the end of
        # its cache (it reads them together with the next drafting step's state)
        unread = [h_exit] if acache is not None else []
        result.target_forwards = 1
        while len(out) < max_new_tokens and not stops.intersection(out):
            base = cache.seq_len(l)  # verified tokens before the last one, out[-1]
            gamma = min(self.gamma, max_new_tokens - len(out) - 1)  # never draft past the budget
            states, drafts, qs = [], [], []
            token, score = out[-1], 1.0
            for step in range(gamma + 1):  # (1) draft on the shallow layers
                x = torch.tensor([[token]], device=ids.device)
                h = model.run_layers(model.embed(x), 0, l, cache=cache)  # (1, 1, dim)
                states.append(h)
                result.draft_steps += 1
                if acache is not None:
                    unread.append(h)
                if step == gamma or (step > 0 and score < self.eta):  # (2) early exit
                    break
                feed = torch.cat(unread, dim=1) if len(unread) > 1 else h
                unread = []
                q = self._probs(self._draft_logits(feed, acache), sampling)
                token = self._pick(q, sampling)
                score = float(q.max())
                drafts.append(token)
                qs.append(q)
            # (3) verify: the deep layers over the exit-layer states of [t, d_1..d_k]
            h = model.run_layers(torch.cat(states, dim=1), l, None, cache=cache)
            verified = self._verify(model.head(h)[0], drafts, qs, sampling)
            m = len(verified) - 1  # accepted drafts
            result.target_forwards += 1
            result.drafted += len(drafts)
            result.accepted += m
            result.accept_lengths.append(len(verified))
            out += verified
            # (4) keep the caches for the verified positions only: ..., t, d_1..d_m
            cache.truncate(base + 1 + m)
            if acache is not None:
                acache.truncate(base + 1 + m)
                keep = base + 1 + m - acache.seq_len(0)
                unread = [torch.cat(unread, dim=1)[:, :keep]] if keep > 0 else []
        if stops:  # cut after the first stop token, where plain decoding would have stopped
            end = next((j + 1 for j, t in enumerate(out) if t in stops), len(out))
            out = out[:end]
        result.tokens = out[:max_new_tokens]
