"""The world PoLL's claims query: tiny judges behind `paperlab serve`, or configured real models
(`paperlab reproduce poll --config FILE` with a `[poll]` table: `jury`, `big`).

The miniature's judges are trained once per config into a folder of the run's artifact cache
(`core.llm.local.trained_chat_zoo`; with the disk cache a second run does not retrain them) and
served by a child process that is stopped when the paper's run ends."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from paperlab.core.errors import SkipClaim
from paperlab.core.llm.client import LLMClient
from paperlab.core.llm.local import LocalServer, serve_chat_models, trained_chat_zoo

# the config fields the miniature's trained judges depend on (with the seed)
MODEL_FIELDS = (
    "family_dims",
    "family_layers",
    "family_shares",
    "big_dim",
    "big_layers",
    "big_share",
    "base_steps",
    "steps",
    "big_steps",
    "batch_size",
    "base_lr",
    "lr",
    "answer_weight",
)


@dataclass(kw_only=True)
class World:
    client: LLMClient
    jury: list[str]  # the panel's judges; each is also a "system" answering questions
    big: str
    questions: list  # the jury answers these: objects with .question, .answer and .read
    max_tokens: int  # of a judge's reply
    items: list = field(default_factory=list)  # other systems' answers to judge (GradedItem)
    answer_tokens: int = 8  # of a family's answer
    server: LocalServer | None = None
    params: dict[str, int] = field(default_factory=dict)


def model_spec(cfg: Any) -> dict[str, Any]:
    """The config fields the miniature's judges depend on: the cache key of their training."""
    return {name: getattr(cfg, name) for name in MODEL_FIELDS}


def get_world(ctx: Any) -> World:
    """The run's world (a `RunContext` `ctx`), built once and shared by the claims."""
    if ctx.llm_config:
        return ctx.shared("world", lambda: real_world(ctx.config, ctx.llm_config, ctx.seed))
    return ctx.shared("world", lambda: miniature_world(ctx), spec=model_spec(ctx.config))


def miniature_world(ctx: Any) -> World:
    """Three judge families and the large judge (miniature.py), trained or loaded from the
    disk cache, served over HTTP until the run's cache is released."""
    from paperlab.core.llm.tiny import load_chat_model
    from paperlab.papers.poll.miniature import evaluation_items, train_judges

    cfg, seed = ctx.config, ctx.seed
    dirs = trained_chat_zoo(
        ctx.cache,
        "poll-judges",
        (model_spec(cfg), seed),
        lambda folder: train_judges(cfg, seed, folder, progress=ctx.progress),
    )
    params = {d.name: load_chat_model(d)[0].num_params() for d in dirs}
    server = serve_chat_models(ctx.cache, dirs)
    # DEVIATION: no provider prices exist for models trained here; the table charges in
    # proportion to parameters, as hosted prices roughly do
    prices = {name: (n / 1e6, n / 1e6) for name, n in params.items()}
    names = server.model_ids
    items, questions = evaluation_items(cfg.n_items, cfg.n_questions, seed)
    return World(
        client=LLMClient(server.config(prices=prices, max_concurrency=64)),
        jury=names[:-1],
        big=names[-1],
        questions=questions,
        items=items,
        max_tokens=20,  # "65x 88= 00= False"
        server=server,
        params=params,
    )


def real_world(cfg: Any, llm_config: str, seed: int) -> World:
    """The `[poll]` table's jury and large judge on 3-digit multiplications."""
    from paperlab.core.data.arithmetic import sample_problems
    from paperlab.core.llm.config import load_config

    config = load_config(llm_config)
    section = config.section("poll")
    if len(section.get("jury", [])) < 2 or not section.get("big"):
        raise SkipClaim(f"{config.source} has no [poll] table with a jury (>= 2) and big")
    return World(
        client=LLMClient(config),
        jury=list(section["jury"]),
        big=section["big"],
        questions=sample_problems(cfg.n_questions, digits=cfg.real_digits, op="*", seed=seed),
        max_tokens=512,
        answer_tokens=512,
    )
