"""MoA wall time against an endpoint with a fixed latency: concurrent layers vs one-by-one calls.

6 proposers x 3 layers (13 calls per query) against `paperlab serve` with `--latency` seconds
added to every completion. Ours runs a layer's proposers concurrently, so a query should take
about layers x latency (parallel efficiency = sum of per-layer slowest calls / wall -> 1); the
official MoA script calls proposers one after another (the peer: `ask(concurrent=False)`, the
same data flow awaited call by call), so it takes about calls x latency.

    python benchmarks/moa_latency.py                  # 0.5 s latency, 5 queries
    python benchmarks/moa_latency.py --latency 1 --queries 10

Target: parallel efficiency >= 0.9. The models (random-init, their replies are noise) live in a
temp folder removed at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
from pathlib import Path

import torch

from paperlab.core.llama import Llama, LlamaConfig
from paperlab.core.llm.client import LLMClient
from paperlab.core.llm.local import LocalServer
from paperlab.core.llm.tiny import save_chat_model
from paperlab.papers.moa.moa import MixtureOfAgents, moa


def measure(args: argparse.Namespace, tmp: Path) -> tuple[list, list, list, int]:
    """(our walls, parallel efficiencies, one-by-one walls, calls per query) over the queries."""
    torch.manual_seed(0)
    dirs = []
    for i in range(args.proposers):
        cfg = LlamaConfig(
            vocab_size=259, dim=32, n_layers=1, n_heads=2, max_seq_len=512, multiple_of=32
        )
        save_chat_model(Llama(cfg), tmp / f"p{i}", f"p{i}")
        dirs.append(tmp / f"p{i}")
    with LocalServer(dirs, latency=args.latency) as server:
        client = LLMClient(server.config(max_concurrency=16))
        names = server.model_ids
        config = moa(names, names[0], layers=args.layers, max_tokens=args.max_tokens)
        mixture = MixtureOfAgents(client, config)

        async def run():
            ours, effs, peer = [], [], []
            for q in range(args.queries):
                question = f"What is {100 + q}+{200 + q}?"
                r = await mixture.ask(question)
                ours.append(r.wall)
                effs.append(r.parallel_efficiency)
                peer.append((await mixture.ask(question, concurrent=False)).wall)
            return ours, effs, peer

        ours, effs, peer = asyncio.run(run())
    return ours, effs, peer, config.n_calls


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--latency", type=float, default=0.5, help="seconds per completion (0.5)")
    ap.add_argument("--queries", type=int, default=5, help="queries per method (5)")
    ap.add_argument("--proposers", type=int, default=6)
    ap.add_argument("--layers", type=int, default=3, help="including the aggregator's (3)")
    ap.add_argument("--max-tokens", type=int, default=4)
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="paperlab-moa-bench-") as tmp:
        ours, effs, peer, n_calls = measure(args, Path(tmp))
    ideal = args.layers * args.latency
    med_ours, med_peer = statistics.median(ours), statistics.median(peer)
    print(
        f"MoA {args.proposers} proposers x {args.layers} layers = {n_calls} calls/query, "
        f"endpoint latency {args.latency:.2f} s, {args.queries} queries (medians)"
    )
    print(f"  ours (concurrent layers): {med_ours:6.2f} s/query  (ideal {ideal:.2f} s)")
    print(f"  peer (one call at a time): {med_peer:6.2f} s/query")
    print(f"  parallel efficiency: {statistics.median(effs):.3f}  (target >= 0.9)")
    print(f"  wall-time ratio peer/ours: {med_peer / med_ours:.2f}x")


if __name__ == "__main__":
    main()
