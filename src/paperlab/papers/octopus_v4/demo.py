"""`paperlab octopus demo`: the miniature graph on disk, for `paperlab serve` and the CLI.

    OUT/models/<name>/   servable chat models: four domain workers, the generalist (the
                         fallback node), the prompted router's tiny chat model
    OUT/router/          the functional-token router (FunctionalTokenRouter.save)
    OUT/graph.toml       nodes, edges, fallback, [router], and [models] at 127.0.0.1:PORT

Everything is written into a temporary sibling folder first and renamed at the end, so an
interrupted run leaves no half-written OUT.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path

from paperlab.papers.octopus_v4 import miniature as mini
from paperlab.papers.octopus_v4.tokens import MMLU_DOMAINS

EDGES = [("chemistry", "biology"), ("biology", "chemistry"), ("general", "math")]


def graph_toml(port: int, examples: dict[str, list[str]], prompted_prompt: str) -> str:
    """The demo graph's TOML text."""
    table = {d.domain: d for d in MMLU_DOMAINS}
    q = json.dumps  # TOML basic strings share JSON's escapes
    lines = [
        "# The miniature graph of `paperlab octopus demo`. Serve its models first:",
        f"#   paperlab serve models/* --port {port}",
        "[graph]",
        'name = "octopus-demo"',
        'fallback = "general"',
        "max_hops = 2",
        "",
        "[router]",
        'family = "functional"       # or prompted / minilm (--router)',
        'path = "router"             # the functional-token router, relative to this file',
        'model = "prompted-router"   # the prompted router (a tiny model fine-tuned on:)',
        f"prompt = {q(prompted_prompt)}",
        "node_list = false",
        "",
        "[defaults]",
        f'base_url = "http://127.0.0.1:{port}/v1"',
        "",
    ]
    names = [f"{d}-worker" for d in mini.DOMAIN_NAMES] + ["generalist", "prompted-router"]
    for name in names:
        lines += [f"[models.{name}]", f"model = {q(name)}", ""]
    nodes = [(d, f"{d}-worker") for d in mini.DOMAIN_NAMES] + [("general", "generalist")]
    for node, model in nodes:
        lines += [
            f"[nodes.{node}]",
            f"model = {q(model)}",
            f"token = {table[node].index}",
            f"domain = {q(node)}",
            f"description = {q(table[node].description)}",
            f"examples = [{', '.join(q(e) for e in examples.get(node, []))}]",
            "",
        ]
    for a, b in EDGES:
        lines += ["[[edges]]", f"from = {q(a)}", f"to = {q(b)}", ""]
    return "\n".join(lines)


def write_demo(
    out: str | os.PathLike, *, port: int, scale: str = "default", seed: int = 0, progress: bool
) -> Path:
    """Train the miniature's models at `scale` and write OUT (see the module docstring)."""
    from paperlab.papers.octopus_v4.claims import PRESETS, OctopusClaimsConfig

    out = Path(out)
    cfg = OctopusClaimsConfig(**PRESETS[scale])
    tmp = out.with_name(f".{out.name}.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        mini.train_zoo(cfg, seed, tmp / "models", progress=progress)
        world = mini.make_world(cfg.n_facts, seed=seed)
        router = mini.train_router(cfg, seed, progress=progress)
        router.save(tmp / "router")
        rng = random.Random(20_000 + seed)
        examples = {d: [world.sample(d, rng).raw for _ in range(8)] for d in mini.DOMAIN_NAMES}
        text = graph_toml(port, examples, cfg.prompted_system_prompt)
        (tmp / "graph.toml").write_text(text, encoding="utf-8")
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out / "graph.toml"
