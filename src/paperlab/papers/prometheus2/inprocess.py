"""`InProcessClient`: an `LLMClient` whose requests run on tiny chat models in this process,
decoded in batches, for the miniature's grading.

`paperlab serve` decodes one request at a time: a tiny model's forward costs about the same
for one sequence as for sixty, so grading thousands of short outputs spends nearly all its CPU
on per-token Python and torch overhead (~2.6 ms a token, ~100 ms a 40-byte reply, measured).
This client keeps everything of `LLMClient` above the transport (request cache, seeds,
regeneration of unparseable outputs, usage accounting) and replaces the HTTP request with a
micro-batch: the requests pending in the event loop are decoded together, each row sampled
with its own seeded generator, so an output depends on its request only, never on which
requests shared its batch (up to float rounding of batched matrix products):

    client = InProcessClient({"grader": model})
    judge = PrometheusJudge(client=client, model="grader", ...)
    grades = client.run(judge.absolute_grade_batch(...))

The prompt is rendered by the chat template `paperlab serve` uses, and sampling is the same
rule (temperature, top_p nucleus); the real-server path stays what users and the tests use.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import torch

from paperlab.core.generate import left_pad, logits_to_probs
from paperlab.core.kv_cache import KVCache
from paperlab.core.llama import Llama
from paperlab.core.llm.chat import render_chat
from paperlab.core.llm.client import Completion, LLMClient
from paperlab.core.llm.config import LLMConfig, ModelSpec
from paperlab.core.llm.tiny import EOS, PAD, TOKENIZER

__all__ = ["InProcessClient", "decode_batch"]

INPROCESS_URL = "http://in-process.invalid/v1"  # never contacted: decoded here
QUIET_TICKS = 4


@torch.inference_mode()
def decode_batch(
    model: Llama,
    prompts: list[list[int]],
    *,
    max_tokens: list[int],
    temperature: float,
    top_p: float | None,
    seeds: list[int | None],
) -> list[tuple[list[int], str]]:
    """Decode every prompt (token ids) in one left-padded batch: row i samples with
    `torch.Generator().manual_seed(seeds[i])` (unseeded: the global generator), stops at EOS
    (not returned) or after `max_tokens[i]` tokens. Returns (tokens, finish_reason) per row."""
    if not prompts or len(seeds) != len(prompts) or len(max_tokens) != len(prompts):
        raise ValueError("decode_batch: prompts, max_tokens and seeds must have the same length")
    device = model.embed_tokens.weight.device
    ids, attention = left_pad(prompts, pad_token_id=PAD, device=device)
    B, T = ids.shape
    steps = max(max_tokens)
    if steps == 0:
        return [([], "length") for _ in prompts]
    gens = [None if s is None else torch.Generator().manual_seed(int(s)) for s in seeds]
    mask = torch.ones((B, T + steps), dtype=torch.bool, device=device)
    mask[:, :T] = attention.bool()
    next_pos = attention.long().sum(-1, keepdim=True)
    cache = KVCache.for_model(model, batch_size=B, max_len=T + steps)
    h = model.run_layers(model.embed(ids), cache=cache, attention_mask=mask[:, :T])
    logits = model.head(h[:, -1]).float()
    out: list[list[int]] = [[] for _ in prompts]
    finish: list[str | None] = [None] * B
    for step in range(steps):
        if temperature == 0:
            tokens = logits.argmax(-1).tolist()
        else:
            probs = logits_to_probs(logits, temperature=temperature, top_p=top_p).cpu()
            tokens = [
                int(torch.multinomial(probs[i], 1, generator=gens[i])) if finish[i] is None else PAD
                for i in range(B)
            ]
        for i, tok in enumerate(tokens):
            if finish[i] is not None:
                continue
            if tok == EOS:
                finish[i] = "stop"
            else:
                out[i].append(tok)
                if len(out[i]) >= max_tokens[i]:
                    finish[i] = "length"
        if all(f is not None for f in finish):
            break
        feed = torch.tensor([[t] for t in tokens], dtype=torch.long, device=device)
        h = model.run_layers(
            model.embed(feed),
            cache=cache,
            position_ids=next_pos + step,
            attention_mask=mask[:, : T + step + 1],
        )
        logits = model.head(h[:, -1]).float()
    return [(toks, f or "length") for toks, f in zip(out, finish, strict=True)]


class InProcessClient(LLMClient):
    """An `LLMClient` over tiny chat models held in this process (`models`: name -> `Llama`),
    chat completions only; requests pending together are decoded as one batch per model and
    sampling setting (`max_batch` rows at most)."""

    def __init__(self, models: Mapping[str, Llama], *, max_batch: int = 64, **client_kw: Any):
        if not models:
            raise ValueError("InProcessClient: models must name at least one model")
        if max_batch < 1:
            raise ValueError(f"InProcessClient: max_batch={max_batch} must be >= 1")
        specs = {
            name: ModelSpec(
                name=name,
                base_url=INPROCESS_URL,
                model=name,
                capabilities=("chat",),
                max_concurrency=max_batch,
            )
            for name in models
        }
        super().__init__(LLMConfig(specs, source="in-process tiny models"), **client_kw)
        self.models = dict(models)
        self.max_batch = max_batch
        self._pending: list[tuple[str, list[int], dict[str, Any], asyncio.Future]] = []
        self._flush_scheduled = False

    async def _request(self, spec: ModelSpec, kind, body, params) -> Completion:
        if kind != "chat":
            raise ValueError(f"InProcessClient: only chat requests ({kind!r} asked)")
        model = self.models[spec.model]
        prompt = TOKENIZER.encode(render_chat(body["messages"]), bos=True)
        room = model.config.max_seq_len - len(prompt)
        if room <= 0:
            raise ValueError(
                f"InProcessClient: prompt has {len(prompt)} tokens; model {spec.name!r} has "
                f"a context of {model.config.max_seq_len}"
            )
        params = {**params, "max_tokens": min(int(params.get("max_tokens", room)), room)}
        loop = asyncio.get_running_loop()
        future: asyncio.Future = loop.create_future()
        self._pending.append((spec.name, prompt, params, future))
        if not self._flush_scheduled:
            self._flush_scheduled = True
            loop.call_soon(self._tick, loop, len(self._pending), 0)
        return await future

    def _tick(self, loop: asyncio.AbstractEventLoop, seen: int, quiet: int) -> None:
        """Wait while requests keep arriving (the other tasks of a batch reach their request
        a few loop iterations later): decode everything pending after `QUIET_TICKS` loop
        iterations without a new request, or once a batch is full."""
        n = len(self._pending)
        quiet = quiet + 1 if n == seen else 0
        if quiet < QUIET_TICKS and n < self.max_batch:
            loop.call_soon(self._tick, loop, n, quiet)
            return
        self._flush()

    def _flush(self) -> None:
        """Decode everything pending: grouped by model and sampling, `max_batch` at a time."""
        self._flush_scheduled = False
        pending, self._pending = self._pending, []
        groups: dict[tuple, list] = {}
        for req in pending:
            name, _, params, _ = req
            key = (name, params.get("temperature", 1.0), params.get("top_p"))
            groups.setdefault(key, []).append(req)
        for (name, temperature, top_p), reqs in groups.items():
            for start in range(0, len(reqs), self.max_batch):
                chunk = reqs[start : start + self.max_batch]
                try:
                    outs = decode_batch(
                        self.models[name],
                        [r[1] for r in chunk],
                        max_tokens=[r[2]["max_tokens"] for r in chunk],
                        temperature=float(temperature),
                        top_p=top_p,
                        seeds=[r[2].get("seed") for r in chunk],
                    )
                except Exception as e:  # noqa: BLE001 - handed to every waiting request
                    for r in chunk:
                        if not r[3].done():
                            r[3].set_exception(e)
                    continue
                for (_, prompt, _, future), (toks, finish) in zip(chunk, outs, strict=True):
                    if not future.done():
                        future.set_result(
                            Completion(
                                text=TOKENIZER.decode(toks),
                                model=name,
                                prompt_tokens=len(prompt),
                                completion_tokens=len(toks),
                                finish_reason=finish,
                            )
                        )
