"""The world MoA's claims query: tiny chat models behind `paperlab serve`, or configured real
models (`paperlab reproduce moa --config FILE` with a `[moa]` table).

The miniature's models are trained once per run into a folder of the run's artifact cache
(`core.llm.local.trained_chat_zoo`; with the disk cache a second run does not retrain them) and
served by a child process that is stopped when the paper's run ends."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from paperlab.core.errors import SkipClaim
from paperlab.core.llm.client import LLMClient
from paperlab.core.llm.local import LocalServer, serve_chat_models, trained_chat_zoo
from paperlab.papers.moa.prompts import AGGREGATE_INSTRUCTION

# the config fields the miniature's trained models depend on (with the seed)
MODEL_FIELDS = (
    "n_facts",
    "proposer_rates",
    "aggregator_rate",
    "proposer_synth",
    "aggregator_synth",
    "aggregator_agree",
    "aggregator_skew",
    "dim",
    "n_layers",
    "base_easy_steps",
    "base_steps",
    "proposer_steps",
    "aggregator_steps",
    "batch_size",
    "lr",
    "aggregator_lr",
)


@dataclass(kw_only=True)
class World:
    client: LLMClient
    proposers: list[str]
    aggregator: str
    questions: list  # objects with .question, .answer and .read (facts, arithmetic problems)
    max_tokens: int
    instruction: str = AGGREGATE_INSTRUCTION
    server: LocalServer | None = None

    def calls_made(self) -> int:
        """Completion requests so far: counted by our server, else by the client."""
        if self.server is not None:
            return self.server.stats().get("completion_requests", 0)
        u = self.client.usage.total
        return u.calls + u.cached


def model_spec(cfg: Any) -> dict[str, Any]:
    """The config fields the miniature's models depend on: the cache key of their training."""
    return {name: getattr(cfg, name) for name in MODEL_FIELDS}


def get_world(ctx: Any) -> World:
    """The run's world (a `RunContext` `ctx`), built once and shared by the claims."""
    if ctx.llm_config:
        return ctx.shared("world", lambda: real_world(ctx.config, ctx.llm_config, ctx.seed))
    spec = model_spec(ctx.config)
    return ctx.shared("world", lambda: miniature_world(ctx), spec=spec)


def miniature_world(ctx: Any) -> World:
    """Tiny proposers and an aggregator (miniature.py), trained or loaded from the disk cache,
    served over HTTP until the run's cache is released."""
    from paperlab.core.data.facts import make_facts
    from paperlab.papers.moa.miniature import SHORT_INSTRUCTION, train_models

    cfg, seed = ctx.config, ctx.seed
    dirs = trained_chat_zoo(
        ctx.cache,
        "moa-models",
        (model_spec(cfg), seed),
        lambda folder: train_models(cfg, seed, folder, progress=ctx.progress),
    )
    server = serve_chat_models(ctx.cache, dirs)
    names = server.model_ids
    return World(
        client=LLMClient(server.config(max_concurrency=64)),  # no cache: every call is measured
        proposers=names[:-1],
        aggregator=names[-1],
        questions=make_facts(cfg.n_facts, seed=seed),
        max_tokens=5,
        instruction=SHORT_INSTRUCTION,
        server=server,
    )


def real_world(cfg: Any, llm_config: str, seed: int) -> World:
    """The `[moa]` table's proposers and aggregator on 3-digit multiplications."""
    from paperlab.core.data.arithmetic import sample_problems
    from paperlab.core.llm.config import load_config

    config = load_config(llm_config)
    section = config.section("moa")
    if not section.get("proposers") or not section.get("aggregator"):
        raise SkipClaim(f"{config.source} has no [moa] table with proposers and aggregator")
    problems = sample_problems(
        cfg.n_facts, digits=cfg.real_digits, op=cfg.real_op, seed=10_000 + seed
    )
    return World(
        client=LLMClient(config),
        proposers=list(section["proposers"]),
        aggregator=section["aggregator"],
        questions=problems,
        max_tokens=cfg.real_max_tokens,
    )
