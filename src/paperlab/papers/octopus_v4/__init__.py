"""Octopus v4: Graph of Language Models (Wei Chen, Zhiyuan Li; Nexa AI; arXiv 2404.19296, 2024).

Idea: instead of one large model, a graph of small domain models (workers) behind a router.
The router is a model fine-tuned with *functional tokens*: special tokens `<nexa_0>` ...
`<nexa_N>` in its vocabulary, one per worker, so choosing a worker is a single generated
token. It answers a user's query with one call, `<nexa_k>('reformulated query')<nexa_end>`:
the worker to use and the query rewritten in that worker's professional language. Nodes are
joined by edges along which a worker may hand a query on. With workers under 10B parameters
the paper reports MMLU 74.8 (the repo's table: 74.6).

    from paperlab.papers.octopus_v4 import parse_call, format_call, load_graph, GraphOfModels

    parse_call("<nexa_4>('what's 3+5?')<nexa_end>")       # Call(index=4, query="what's 3+5?")
    graph = load_graph("graph.toml")                        # nodes, edges, fallback
    system = GraphOfModels(graph, LLMClient(config), PromptedRouter(client, "qwen", nodes=...))
    answer = asyncio.run(system.ask("Tell me the derivative of x^3 at 2"))  # .answer, .hops
"""

from paperlab.papers.octopus_v4.graph import (
    Graph,
    GraphAnswer,
    GraphError,
    GraphOfModels,
    Hop,
    HopLog,
    Node,
    load_graph,
    parse_graph,
)
from paperlab.papers.octopus_v4.routers import (
    CentroidRouter,
    FunctionalTokenRouter,
    MiniLM,
    PromptedRouter,
    Route,
    Router,
    RouterTrainConfig,
    node_list,
    train_functional_router,
)
from paperlab.papers.octopus_v4.tokens import (
    END_TOKEN,
    MMLU_DOMAINS,
    ROUTER_SYSTEM_PROMPT,
    Call,
    Domain,
    FunctionalTokenizer,
    add_functional_tokens,
    format_call,
    functional_token,
    parse_call,
)

__all__ = [
    "END_TOKEN",
    "MMLU_DOMAINS",
    "ROUTER_SYSTEM_PROMPT",
    "Call",
    "CentroidRouter",
    "Domain",
    "FunctionalTokenRouter",
    "FunctionalTokenizer",
    "Graph",
    "GraphAnswer",
    "GraphError",
    "GraphOfModels",
    "Hop",
    "HopLog",
    "MiniLM",
    "Node",
    "PromptedRouter",
    "Route",
    "Router",
    "RouterTrainConfig",
    "add_functional_tokens",
    "format_call",
    "functional_token",
    "load_graph",
    "node_list",
    "parse_call",
    "parse_graph",
    "train_functional_router",
]
