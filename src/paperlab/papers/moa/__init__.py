"""Mixture-of-Agents Enhances Large Language Model Capabilities (Wang, Wang, Athiwaratkun,
Zhang, Zou; Together AI; arXiv 2406.04692, 2024).

Idea: LLMs answer better when shown other models' answers. Layers of proposer models answer a
query; each later layer (and a final aggregator) answers again with the previous layer's
answers injected as numbered references under an aggregate-and-synthesise instruction.
Proposers of a layer run concurrently, so a query takes about (layers) x (slowest call).

    from paperlab.papers.moa import MixtureOfAgents, moa
    from paperlab.core.llm import LLMClient, load_config

    client = LLMClient(load_config("paperlab.toml"))
    result = asyncio.run(MixtureOfAgents(client, moa(["a", "b", "c"], "a")).ask("Why ...?"))
"""

from paperlab.papers.moa.moa import (
    MixtureOfAgents,
    MoAConfig,
    MoAResult,
    moa,
    moa_lite,
    self_moa,
)
from paperlab.papers.moa.prompts import AGGREGATE_INSTRUCTION, with_references

__all__ = [
    "AGGREGATE_INSTRUCTION",
    "MixtureOfAgents",
    "MoAConfig",
    "MoAResult",
    "moa",
    "moa_lite",
    "self_moa",
    "with_references",
]
