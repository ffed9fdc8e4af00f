"""The miniature's world: four synthetic domains with exact answers, a tiny worker per domain, a
generalist of the workers' total size, and the routers' training data.

Each domain is one node of the official 17-domain table and keeps its functional token:

    chemistry <nexa_1>  made-up elements' symbols  What is the symbol of element kiv?
    biology   <nexa_2>  made-up species' classes   Which class does the species kiv belong to?
    math      <nexa_4>  1-digit addition           What is 3+5?
    history   <nexa_6>  made-up battles' centuries In which century was the battle of kiv?

(task, then the canonical question the router writes; the knowledge domains are memorised)

Users ask in casual phrasings (`RAW_TEMPLATES`: "tell me kiv's symbol in chemistry"); the router
writes the canonical question (the paper's "reformats the query in professional language",
its methodology). Workers and the generalist learn both phrasings, so every router can dispatch.
"""

from __future__ import annotations

import random
import string
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from paperlab.core.llm.tiny import ChatJob, TinyChatConfig, save_chat_model, train_chat_models
from paperlab.papers.octopus_v4.routers import (
    FunctionalTokenRouter,
    RouterTrainConfig,
    router_messages,
    train_functional_router,
)
from paperlab.papers.octopus_v4.tokens import MMLU_DOMAINS, format_call

DOMAIN_NAMES = ("chemistry", "biology", "math", "history")
INDEX = {d.domain: d.index for d in MMLU_DOMAINS}
GENERAL = "general"  # the fallback node (<nexa_16>), served by the generalist

CANONICAL = {
    "chemistry": "What is the symbol of element {x}?",
    "biology": "Which class does the species {x} belong to?",
    "math": "What is {a}+{b}?",
    "history": "In which century was the battle of {x}?",
}
RAW_TEMPLATES = {
    "chemistry": (
        "which symbol has the element {x}?",
        "element {x}: its chemical symbol?",
        "tell me {x}'s symbol in chemistry",
        "the chemical symbol for {x} is what",
        "chem question - symbol of {x}?",
    ),
    "biology": (
        "is the {x} a bird, a fish or what?",
        "which animal class is {x} in?",
        "tell me the class of the species {x}",
        "{x}: mammal, reptile, insect...?",
        "bio question - what's {x}'s class?",
    ),
    "math": (
        "add {a} and {b}",
        "what's {a} plus {b}?",
        "{a} plus {b} makes how much",
        "sum of {a} and {b} please",
        "hey, {a} + {b} = ?",
    ),
    "history": (
        "when was the battle of {x}? the century please",
        "the battle at {x} was fought in what century?",
        "century of the {x} battle?",
        "what's the century of the battle of {x}",
        "history: in which century did {x}'s battle happen",
    ),
}
SYMBOLS = "BCDFGHJKLM"  # 10 made-up element symbols: a guess is right 1 time in 10
CENTURIES = tuple(str(c) for c in range(11, 20))  # 9 centuries
CLASSES = ("bird", "fish", "insect", "mammal", "reptile")
ANSWERS = {"chemistry": SYMBOLS, "biology": CLASSES, "history": CENTURIES}
KNOWLEDGE = tuple(ANSWERS)  # the memorised domains


@dataclass(frozen=True)
class Query:
    """One user query of a domain, its canonical form and its exact answer."""

    domain: str
    raw: str
    canonical: str
    answer: str

    @property
    def index(self) -> int:
        return INDEX[self.domain]

    def correct(self, reply: str) -> bool:
        return reply.strip() == self.answer


@dataclass(frozen=True)
class World:
    """The memorised facts of the two knowledge domains (name -> answer)."""

    facts: dict[str, dict[str, str]]

    def sample(self, domain: str, rng: random.Random) -> Query:
        raw = rng.choice(RAW_TEMPLATES[domain])
        if domain == "math":
            a, b = rng.randint(0, 9), rng.randint(0, 9)
            kw, answer = {"a": a, "b": b}, str(a + b)
        else:
            x = rng.choice(sorted(self.facts[domain]))
            kw, answer = {"x": x}, self.facts[domain][x]
        return Query(domain, raw.format(**kw), CANONICAL[domain].format(**kw), answer)


def make_world(n_facts: int, *, seed: int) -> World:
    """`n_facts` made-up elements, species and battles each (distinct 3-letter names)."""
    rng = random.Random(seed)
    names: list[str] = []
    while len(names) < len(KNOWLEDGE) * n_facts:
        name = "".join(rng.choices(string.ascii_lowercase, k=3))
        if name not in names:
            names.append(name)
    return World(
        {
            d: {n: rng.choice(ANSWERS[d]) for n in names[k * n_facts : (k + 1) * n_facts]}
            for k, d in enumerate(KNOWLEDGE)
        }
    )


def held_out_queries(world: World, per_domain: int, *, seed: int) -> list[Query]:
    """`per_domain` held-out queries of every domain (their own seed), domain by domain."""
    rng = random.Random(10_000 + seed)
    return [world.sample(d, rng) for d in DOMAIN_NAMES for _ in range(per_domain)]


# ---------------------------------------------------------------------------------------------
# Training tasks


def answer_task(world: World, domains: Sequence[str], p_raw: float) -> Callable:
    """Chat examples for a worker (one domain) or the generalist (all): the question in a
    casual phrasing with probability `p_raw`, else canonical; the reply is the answer."""

    def example(rng: random.Random):
        q = world.sample(rng.choice(domains), rng)
        text = q.raw if rng.random() < p_raw else q.canonical
        return [{"role": "user", "content": text}], q.answer

    return example


def route_example(world: World) -> Callable[[random.Random], tuple[str, int, str]]:
    """(user query, functional index, reformulated query) for the functional-token router."""

    def example(rng: random.Random):
        q = world.sample(rng.choice(DOMAIN_NAMES), rng)
        return q.raw, q.index, q.canonical

    return example


def prompted_route_task(world: World, system_prompt: str) -> Callable:
    """Chat examples for the prompted router: the same calls, written out as text."""
    example = route_example(world)

    def chat_example(rng: random.Random):
        raw, index, canonical = example(rng)
        return router_messages(raw, system_prompt), format_call(index, canonical)

    return chat_example


def generalist_dim(cfg: Any) -> int:
    """The generalist's width: the multiple of 2 * n_heads whose parameter count is nearest to
    the workers' total (same depth)."""
    from paperlab.core.llama import Llama

    def params(dim: int) -> int:
        return Llama(_chat_cfg(cfg, dim, 1).llama_config()).num_params()

    target = len(DOMAIN_NAMES) * params(cfg.dim)
    step = 2 * cfg.n_heads
    best, dim = cfg.dim, cfg.dim
    while True:  # widths in increasing order: stop once past the target
        dim += step
        n = params(dim)
        if abs(n - target) < abs(params(best) - target):
            best = dim
        if n > target:
            return best


def _chat_cfg(cfg: Any, dim: int, steps: int, max_seq_len: int = 128) -> TinyChatConfig:
    return TinyChatConfig(
        dim=dim,
        n_layers=cfg.n_layers,
        n_heads=cfg.n_heads,
        max_seq_len=max_seq_len,
        steps=steps,
        batch_size=cfg.batch_size,
        lr=cfg.lr,
    )


def generalist_steps(cfg: Any, dim: int) -> int:
    """Steps that give the generalist the workers' total training compute (FLOPs ~ params x
    tokens, same batch size): sum of worker steps x worker params / generalist params; with
    `cfg.generalist_budget == "examples"`, the workers' total number of examples instead."""
    from paperlab.core.llama import Llama

    def params(d: int) -> int:
        return Llama(_chat_cfg(cfg, d, 1).llama_config()).num_params()

    if getattr(cfg, "generalist_budget", "flops") == "examples":  # as many examples as all
        return len(DOMAIN_NAMES) * cfg.worker_steps  # the workers: ~4x their compute
    total = len(DOMAIN_NAMES) * cfg.worker_steps * params(cfg.dim)
    return max(1, round(total / params(dim)))


def train_zoo(cfg: Any, seed: int, directory: Path, *, progress: bool = False) -> list[Path]:
    """The workers (one per domain), the generalist and the prompted router's chat model,
    saved as servable directories under `directory` (workers first, in DOMAIN_NAMES order)."""
    world = make_world(cfg.n_facts, seed=seed)
    g_dim = generalist_dim(cfg)
    jobs = [
        ChatJob(
            f"{d}-worker",
            [(answer_task(world, [d], cfg.p_raw), 1.0)],
            _chat_cfg(cfg, cfg.dim, cfg.worker_steps),
            seed=1000 * seed + i,
        )
        for i, d in enumerate(DOMAIN_NAMES)
    ]
    jobs.append(
        ChatJob(
            "generalist",
            [(answer_task(world, DOMAIN_NAMES, cfg.p_raw), 1.0)],
            _chat_cfg(cfg, g_dim, generalist_steps(cfg, g_dim)),
            seed=1000 * seed + 50,
        )
    )
    jobs.append(
        ChatJob(
            "prompted-router",
            [(prompted_route_task(world, cfg.prompted_system_prompt), 1.0)],
            _chat_cfg(cfg, cfg.dim, cfg.prompted_router_steps, max_seq_len=192),
            seed=1000 * seed + 60,
        )
    )
    # the longest jobs first: on 2 threads the others run beside them
    order = sorted(jobs, key=lambda j: -j.cfg.steps * j.cfg.dim**2)
    models = train_chat_models(order, workers=cfg.workers, progress=progress)
    return [save_chat_model(models[j.name], directory / j.name, j.name) for j in jobs]


def train_router(
    cfg: Any, seed: int, *, device: str = "cpu", progress: bool = False
) -> FunctionalTokenRouter:
    """The functional-token router over the official 17 tokens, trained on the four domains'
    casual queries -> `<nexa_k>('canonical question')<nexa_end>`."""
    rcfg = RouterTrainConfig(
        dim=cfg.router_dim,
        n_layers=cfg.n_layers,
        n_heads=cfg.n_heads,
        steps=cfg.router_steps,
        batch_size=cfg.batch_size,
        lr=cfg.lr,
    )
    world = make_world(cfg.n_facts, seed=seed)
    # DEVIATION (compute): no system prompt. Octopus v4 was fine-tuned under the official
    # ROUTER_SYSTEM_PROMPT; it is constant, so a router trained from scratch learns nothing
    # from it, and its ~130 bytes would triple every training example.
    return train_functional_router(
        route_example(world),
        len(MMLU_DOMAINS),
        rcfg,
        seed=1000 * seed + 70,
        device=device,
        progress=progress,
    )
