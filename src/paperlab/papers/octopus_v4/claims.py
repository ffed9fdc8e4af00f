"""Octopus v4's claims in miniature (Chen, Li 2024, arXiv 2404.19296).

(1) routing:              a router fine-tuned to emit functional tokens picks the right worker
                          (the paper's methodology; no routing-accuracy table is given).
                          The MiniLM nearest-centroid and the prompted router are measured on
                          the same queries beside it.
(2) routed_vs_generalist: routing each query to a small domain worker (with the router's
                          reformulated query) beats one generalist model (MMLU 74.8 with
                          workers under 10B parameters; the repo's table: Llama3-8B-Instruct
                          68.4).
                          Our generalist has the workers' total parameter count and their total
                          training compute.
(3) routing_cost:         the routing decision is one generated token (a functional token), and
                          the router plus one small worker cost less compute per query than a
                          model of the workers' total size (abstract: "activating models
                          less than 10B parameters").

Powering: (2) is judged only when every worker beats the generalist on its own domain (the
head-room routing can keep) and the functional-token router routes above chance; else it is
inconclusive. The miniature (miniature.py): four synthetic domains with exact answers at their
official functional tokens, tiny workers and a generalist served by `paperlab serve` over HTTP,
the functional-token router in-process. The experiments are in experiments.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from paperlab.claims import (
    Claim,
    Criterion,
    PaperClaims,
    Verdict,
    all_of,
    at_least,
    at_most,
    custom,
)
from paperlab.core.stats import improves
from paperlab.papers.octopus_v4 import experiments


@dataclass
class OctopusClaimsConfig:
    n_facts: int = 24  # made-up facts per knowledge domain (chemistry, biology, history)
    p_raw: float = 0.5  # share of casual phrasings in the workers' and generalist's training
    dim: int = 64  # a worker's width (the generalist's is chosen to match their total size)
    n_layers: int = 2
    n_heads: int = 4
    batch_size: int = 32
    lr: float = 5e-3
    worker_steps: int = 400
    # the generalist's training: "flops" = the workers' total compute (the default), or
    # "examples" = the workers' total number of examples (~4x their compute)
    generalist_budget: str = "flops"
    router_dim: int = 64  # the functional-token router
    router_steps: int = 900
    prompted_router_steps: int = 500  # the prompted router's tiny chat model
    # DEVIATION: the miniature's prompted router is a tiny byte model fine-tuned on a short
    # system prompt (every byte is a token it must learn to read past); real endpoints get the
    # official ROUTER_SYSTEM_PROMPT and the list of the graph's functional tokens
    prompted_system_prompt: str = "Route:"
    n_test: int = 50  # held-out queries per domain
    centroid_examples: int = 32  # MiniLM: example queries per domain for its centroid
    workers: int = 2  # training threads
    concurrency: int = 16  # queries in flight during the evaluation

    def __post_init__(self) -> None:
        for name in ("n_facts", "dim", "n_layers", "n_heads", "batch_size", "worker_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"octopus_v4: {name} must be >= 1")
        for name in ("router_dim", "router_steps", "prompted_router_steps", "n_test"):
            if getattr(self, name) < 1:
                raise ValueError(f"octopus_v4: {name} must be >= 1")
        if min(self.centroid_examples, self.workers, self.concurrency) < 1:
            raise ValueError("octopus_v4: centroid_examples, workers, concurrency must be >= 1")
        if not 0.0 <= self.p_raw <= 1.0:
            raise ValueError(f"octopus_v4: p_raw={self.p_raw} must lie in [0, 1]")
        for name in ("dim", "router_dim"):
            if getattr(self, name) % (2 * self.n_heads):
                raise ValueError(f"octopus_v4: {name} must be a multiple of 2 * n_heads")
        if self.n_facts > 1000:
            raise ValueError("octopus_v4: n_facts must be <= 1000 (3-letter names)")
        if self.generalist_budget not in ("flops", "examples"):
            raise ValueError("octopus_v4: generalist_budget must be flops or examples")
        if self.lr <= 0:
            raise ValueError("octopus_v4: lr must be > 0")


PRESETS = {
    "tiny": dict(
        n_facts=6,
        dim=16,
        n_layers=1,
        n_heads=2,
        batch_size=8,
        worker_steps=6,
        router_dim=16,
        router_steps=6,
        prompted_router_steps=6,
        n_test=4,
        centroid_examples=4,
    ),
    "default": {},
    "full": dict(
        n_facts=100,
        dim=96,
        n_layers=3,
        worker_steps=1500,
        router_dim=96,
        router_steps=3000,
        prompted_router_steps=2000,
        n_test=200,
        centroid_examples=128,
    ),
}

# Criteria, fixed before the runs (not config fields: --set cannot move a goalpost)
MIN_ROUTING_ACC = 0.90  # the functional-token router's accuracy for (1) to hold
CHANCE_MARGIN = 0.05  # (1) fails at or below chance + this; (2) needs the router above it
MIN_WORKER_MARGIN = 0.0  # (2) powered: every worker beats the generalist on its own domain
MIN_FIRST_TOKEN_SHARE = 0.99  # (3) routes whose first generated token is the functional one
MAX_FLOPS_RATIO = 1.0  # (3) router + worker compute / generalist compute per query


def _judge_routing(m: Mapping[str, float]) -> tuple[Verdict, str]:
    acc, chance = m["functional_acc"], m["chance"]
    text = (
        f"functional-token router {acc:.1%} (rewrite exact {m['functional_rewrite_exact']:.1%}); "
        f"MiniLM {m['minilm_acc']:.1%}; prompted {m['prompted_acc']:.1%}; chance {chance:.0%}"
    )
    if acc >= MIN_ROUTING_ACC:
        return "holds", text
    if acc <= chance + CHANCE_MARGIN:
        return "fails", text + " -> at chance"
    return "inconclusive", text + f" -> above chance, below {MIN_ROUTING_ACC:.0%}"


def powered(criterion: Criterion) -> Criterion:
    """`criterion`, once every worker beats the generalist on its own domain and the router
    routes above chance; inconclusive (naming the shortfall) otherwise."""

    def judge(m: Mapping[str, float]) -> tuple[Verdict, str]:
        margin, acc, chance = m["min_worker_margin"], m["functional_acc"], m["chance"]
        if margin <= MIN_WORKER_MARGIN:
            return "inconclusive", (
                f"not powered: a worker does not beat the generalist on its own domain "
                f"(smallest margin {margin:+.3f})"
            )
        if acc <= chance + CHANCE_MARGIN:
            return "inconclusive", f"not powered: the router is at chance ({acc:.1%})"
        verdict, reason = criterion.judge(m)
        return verdict, f"{reason} (powered: worker margins >= {margin:+.3f}, router {acc:.1%})"

    return custom(
        f"{criterion.text}, once min_worker_margin > {MIN_WORKER_MARGIN:g} and "
        f"functional_acc > chance + {CHANCE_MARGIN:g} (else inconclusive)",
        judge,
    )


PAPER = PaperClaims(
    config=OctopusClaimsConfig,
    presets=PRESETS,
    claims=[
        Claim(
            id="routing",
            statement="A router fine-tuned to emit functional tokens sends each query to the "
            "right worker",
            paper_figure="Octopus v4 selects among 17 MMLU domain workers with one functional "
            "token <nexa_0>..<nexa_16> (no accuracy table in the paper)",
            criterion=custom(
                f"functional_acc >= {MIN_ROUTING_ACC:.0%} holds; <= chance + "
                f"{CHANCE_MARGIN:g} fails; else inconclusive",
                _judge_routing,
            ),
            run=experiments.run_routing,
            ours="functional {functional_acc:.1%} (rewrite {functional_rewrite_exact:.1%}), "
            "MiniLM {minilm_acc:.1%}, prompted {prompted_acc:.1%}",
        ),
        Claim(
            id="routed_vs_generalist",
            statement="Routing each query to a small domain worker beats one generalist",
            paper_figure="MMLU 74.8 with workers < 10B (the repo's table: 74.6, vs "
            "Llama3-8B-Instruct 68.4, GPT-3.5 70.0)",
            criterion=powered(improves("gain", "gain_ci_low", "routed - generalist")),
            run=experiments.run_routed_vs_generalist,
            ours="routed {routed_functional_acc:.1%} vs generalist {generalist_acc:.1%} "
            "(MiniLM {routed_minilm_acc:.1%}, prompted {routed_prompted_acc:.1%}, oracle "
            "{oracle_acc:.1%})",
        ),
        Claim(
            id="routing_cost",
            statement="The routing decision is one token, and router + one worker cost less "
            "per query than one model of the workers' total size",
            paper_figure="one functional token per call; models under 10B parameters active",
            criterion=all_of(
                at_least("functional_first_token_share", MIN_FIRST_TOKEN_SHARE),
                at_most("graph_vs_generalist_flops", MAX_FLOPS_RATIO),
            ),
            run=experiments.run_routing_cost,
            ours="decision {functional_decision_tokens:.2f} token (text call "
            "{prompted_decision_tokens:.1f}); router {router_flop_share:.0%} of the routed "
            "compute; graph/generalist FLOPs {graph_vs_generalist_flops:.2f}",
        ),
    ],
)
