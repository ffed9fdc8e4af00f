"""The graph of language models (the paper's graph section): worker nodes, directed edges, a
fallback node, declared in TOML, and dispatch through the LLM layer.

    [graph]
    fallback = "general"        # where a query goes when the router names no known node
    max_hops = 2                # worker calls per query (1: the routed worker only)

    [nodes.math]
    model = "math-worker"       # a model of the LLM layer ([models.math-worker], here or --config)
    token = 4                   # <nexa_4>; default: the official 17-domain table's index of
                                # its domain (math: 4), else 17, 18, ... in declaration order
    domain = "math"
    description = "arithmetic and algebra"
    examples = ["What is 2+2?"] # optional: example queries (the MiniLM router's centroids)

    [[edges]]                   # a worker may hand a query on to a neighbour
    from = "math"
    to = "physics"

The router (routers.py) reads the user's query and emits `<nexa_k>('reformulated query')`;
`GraphOfModels.ask` sends the reformulated query to node k's model. A worker whose reply is
itself a call of a neighbour's token hands the query on (one more hop, up to `max_hops`);
every hop is recorded (`GraphAnswer.hops`, and a JSONL line per hop with `HopLog`).
"""

from __future__ import annotations

import json
import os
import time
import tomllib
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from paperlab.core.errors import UserError
from paperlab.core.llm.client import LLMClient
from paperlab.papers.octopus_v4.tokens import MMLU_DOMAINS, functional_token, parse_call

NODE_KEYS = {"model", "token", "domain", "description", "examples"}
GRAPH_KEYS = {"fallback", "max_hops", "name"}


class GraphError(UserError):
    """A malformed graph file (one line, exit 2 at the CLI)."""


@dataclass(frozen=True)
class Node:
    name: str
    model: str  # the LLM config's name of the worker model
    token: int  # <nexa_{token}>
    domain: str = ""
    description: str = ""
    examples: tuple[str, ...] = ()


@dataclass(frozen=True)
class Graph:
    nodes: dict[str, Node]
    edges: frozenset[tuple[str, str]]
    fallback: str
    max_hops: int = 1
    name: str = "graph"
    sections: dict[str, Any] = field(default_factory=dict)  # the file's other tables

    def __post_init__(self) -> None:
        if not self.nodes:
            raise GraphError(f"{self.name}: no nodes; add a [nodes.NAME] table with a model")
        if self.fallback not in self.nodes:
            raise GraphError(
                f"{self.name}: fallback {self.fallback!r} is not a node "
                f"(nodes: {', '.join(self.nodes)})"
            )
        for a, b in sorted(self.edges):
            for end in (a, b):
                if end not in self.nodes:
                    raise GraphError(
                        f"{self.name}: edge {a} -> {b} is dangling: no node {end!r} "
                        f"(nodes: {', '.join(self.nodes)})"
                    )
        seen: dict[int, str] = {}
        for node in self.nodes.values():
            if node.token in seen:
                raise GraphError(
                    f"{self.name}: nodes {seen[node.token]!r} and {node.name!r} share the "
                    f"functional token {functional_token(node.token)}"
                )
            seen[node.token] = node.name
        if isinstance(self.max_hops, bool) or not isinstance(self.max_hops, int):
            raise GraphError(f"{self.name}: max_hops must be an integer >= 1")
        if self.max_hops < 1:
            raise GraphError(f"{self.name}: max_hops must be >= 1, got {self.max_hops}")

    def by_token(self, index: int | None) -> Node | None:
        return next((n for n in self.nodes.values() if n.token == index), None)

    def neighbours(self, name: str) -> list[str]:
        return sorted(b for a, b in self.edges if a == name)

    @property
    def n_functional(self) -> int:
        """How many functional tokens a router for this graph needs (max index + 1)."""
        return max(n.token for n in self.nodes.values()) + 1


def parse_graph(data: Mapping[str, Any], source: str = "<dict>") -> Graph:
    """A graph from parsed TOML: [graph] (fallback, max_hops), [nodes.NAME], [[edges]]."""
    head = data.get("graph")
    if not isinstance(head, Mapping):
        raise GraphError(f"{source}: no [graph] table (it names the fallback node)")
    unknown = sorted(set(head) - GRAPH_KEYS)
    if unknown:
        raise GraphError(
            f"{source}: [graph]: unknown key {unknown[0]!r}; known: fallback, max_hops"
        )
    if "fallback" not in head:
        raise GraphError(f'{source}: [graph] has no fallback; add fallback = "NODE"')
    if not isinstance(head["fallback"], str):
        raise GraphError(f"{source}: [graph] fallback must be a node name")
    tables = data.get("nodes", {})
    if not isinstance(tables, Mapping) or not tables:
        raise GraphError(f"{source}: no nodes; add a [nodes.NAME] table with a model")
    nodes = {}
    table = {d.domain: d for d in MMLU_DOMAINS}
    extra = len(MMLU_DOMAINS)  # tokens of nodes outside the official table: 17, 18, ...
    for name, t in tables.items():
        where = f"{source}: nodes.{name}"
        if not isinstance(t, Mapping):
            raise GraphError(f"{where} must be a table")
        bad = sorted(set(t) - NODE_KEYS)
        if bad:
            raise GraphError(
                f"{where}: unknown key {bad[0]!r}; known: {', '.join(sorted(NODE_KEYS))}"
            )
        if not isinstance(t.get("model"), str) or not t["model"]:
            raise GraphError(f'{where}: needs model = "NAME" (a model of the LLM config)')
        domain = t.get("domain", name)
        official = table.get(domain) if isinstance(domain, str) else None
        if "token" in t:
            token = t["token"]
        elif official is not None:  # the official 17-domain table is the default
            token = official.index
        else:
            token, extra = extra, extra + 1
        if isinstance(token, bool) or not isinstance(token, int) or token < 0:
            raise GraphError(f"{where}: token must be an integer >= 0, got {token!r}")
        for key in ("domain", "description"):
            if not isinstance(t.get(key, ""), str):
                raise GraphError(f"{where}: {key} must be a string")
        examples = t.get("examples", [])
        if not isinstance(examples, list) or not all(isinstance(e, str) for e in examples):
            raise GraphError(f"{where}: examples must be a list of strings")
        nodes[name] = Node(
            name,
            t["model"],
            token,
            domain,
            t.get("description", official.description if official else ""),
            tuple(examples),
        )
    raw_edges = data.get("edges", [])
    if not isinstance(raw_edges, list):
        raise GraphError(f"{source}: edges must be an array of tables ([[edges]])")
    edges = set()
    for k, e in enumerate(raw_edges, 1):
        if not isinstance(e, Mapping) or set(e) != {"from", "to"}:
            raise GraphError(f"{source}: edge {k} must have exactly `from` and `to`")
        if not all(isinstance(e[x], str) for x in ("from", "to")):
            raise GraphError(f"{source}: edge {k}: from and to must be node names")
        edges.add((e["from"], e["to"]))
    sections = {k: v for k, v in data.items() if k not in ("graph", "nodes", "edges")}
    return Graph(
        nodes,
        frozenset(edges),
        head["fallback"],
        head.get("max_hops", 1),
        head.get("name", source),
        sections,
    )


def load_graph(path: str | os.PathLike) -> Graph:
    """Read a graph TOML file (it may also hold the LLM config's [defaults] and [models])."""
    file = Path(path)
    if not file.is_file():
        raise GraphError(f"graph {file}: no such file")
    try:
        data = tomllib.loads(file.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise GraphError(f"{file}: not valid TOML ({e})") from None
    return parse_graph(data, str(file))


# ---------------------------------------------------------------------------------------------
# Dispatch


@dataclass
class Hop:
    """One step of a query through the graph: the router's (node "router") or a worker's."""

    hop: int
    node: str
    model: str
    query: str  # what this step was sent
    output: str  # what it returned
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0
    note: str = ""  # why the query went where it did (fallback, hand-over, refused hand-over)


@dataclass
class GraphAnswer:
    query: str
    answer: str
    node: str  # the node whose reply is the answer
    routed_to: str  # the node the router chose (or the fallback)
    fell_back: bool
    hops: list[Hop]
    route: Any = None  # the router's Route (index, reformulated query, token counts)

    def record(self) -> dict[str, Any]:
        return {
            "query": self.query,
            "answer": self.answer,
            "node": self.node,
            "routed_to": self.routed_to,
            "fell_back": self.fell_back,
            "hops": [asdict(h) for h in self.hops],
        }


class HopLog:
    """Every hop as one JSONL line (written whole, flushed): `{"query_id", "hop", "node", ...}`."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if self.path.is_dir():
            raise UserError(f"{self.path} is a folder; the hop log is a JSONL file")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()

    def write(self, query_id: Any, answer: GraphAnswer) -> None:
        lines = "".join(
            json.dumps({"query_id": query_id, **asdict(h)}, ensure_ascii=False) + "\n"
            for h in answer.hops
        )
        self._fh.write(lines)
        self._fh.flush()

    def close(self) -> None:
        self._fh.close()

    def __enter__(self) -> HopLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class GraphOfModels:
    """A router and the graph's workers behind an `LLMClient`."""

    def __init__(
        self,
        graph: Graph,
        client: LLMClient,
        router: Any,
        *,
        max_tokens: int = 256,
        temperature: float = 0.0,
        log: HopLog | None = None,
    ):
        for node in graph.nodes.values():
            client.config.get(node.model)  # one ConfigError naming a missing model, up front
        self.graph, self.client, self.router = graph, client, router
        self.max_tokens, self.temperature, self.log = max_tokens, temperature, log

    async def ask(self, query: str, *, query_id: Any = None, route: Any = None) -> GraphAnswer:
        """Route `query` (or take `route`, already computed, e.g. by a batched `route_many`),
        send the reformulated query to the chosen node, follow hand-overs, log every hop."""
        if route is None:
            route = await self.router.route(query)
        node = self.graph.by_token(route.index)
        note = route.note
        if node is None:
            why = "no functional token" if route.index is None else f"unknown {route.token}"
            note = f"{why}: fallback {self.graph.fallback!r}"
        sent = route.query or query  # an empty reformulation: the user's own query
        fell_back = node is None
        hops = [
            Hop(
                0,
                "router",
                route.model,
                query,
                route.output,
                route.prompt_tokens,
                route.completion_tokens,
                route.seconds,
                note,
            )
        ]
        if node is None:
            node = self.graph.nodes[self.graph.fallback]
        routed_to = node.name
        while True:
            start = time.perf_counter()
            out = await self.client.chat(
                node.model,
                [{"role": "user", "content": sent}],
                temperature=self.temperature,
                max_tokens=self.max_tokens,
            )
            hop = Hop(
                len(hops),
                node.name,
                node.model,
                sent,
                out.text,
                out.prompt_tokens,
                out.completion_tokens,
                time.perf_counter() - start,
            )
            hops.append(hop)
            call = parse_call(out.text)
            if call is None:
                break
            nxt = self.graph.by_token(call.index)
            if nxt is None or nxt.name not in self.graph.neighbours(node.name):
                hop.note = f"{call.token} is not a neighbour of {node.name!r}: answer kept"
                break
            if len(hops) - 1 >= self.graph.max_hops:
                hop.note = f"hand-over to {nxt.name!r} refused: max_hops={self.graph.max_hops}"
                break
            hop.note = f"hands over to {nxt.name!r}"
            node, sent = nxt, call.query or sent
        answer = GraphAnswer(query, out.text, node.name, routed_to, fell_back, hops, route)
        if self.log is not None:
            self.log.write(query_id, answer)
        return answer
