"""Mixture-of-Agents (Wang et al. 2024, arXiv 2406.04692, Sec. 2).

Layer 1's proposers answer the user's conversation independently. Every later layer's
proposers answer the same conversation with all of the previous layer's answers injected as
numbered references into the system message (`prompts.with_references`), and a final
aggregator does the same once more. Proposers of one layer are called concurrently, so the wall
time is about (number of layers) x (slowest call in a layer); a layer may name the same model
several times (each call is its own sample).

    config = moa(["qwen", "llama", "mixtral"], aggregator="qwen", layers=3)
    result = asyncio.run(MixtureOfAgents(client, config).ask("What is 12*34?"))
    result.answer, result.calls, result.parallel_efficiency
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from paperlab.core.llm.client import Completion, EndpointError, LLMClient
from paperlab.papers.moa.prompts import AGGREGATE_INSTRUCTION, with_references


@dataclass(frozen=True)
class MoAConfig:
    """`layers`: the proposer layers (model names; the aggregator is the extra last layer).
    The paper's default is 3 layers in all: two layers of 6 proposers, then the aggregator."""

    layers: tuple[tuple[str, ...], ...]
    aggregator: str
    temperature: float = 0.7  # Sec. 3.1: every model samples at 0.7
    aggregator_temperature: float | None = None  # None -> temperature
    max_tokens: int = 512
    instruction: str = AGGREGATE_INSTRUCTION
    seed: int | None = None

    def __post_init__(self) -> None:
        if not self.layers or any(not layer for layer in self.layers):
            raise ValueError("MoAConfig: need at least one non-empty proposer layer")
        if self.temperature < 0 or self.max_tokens < 1:
            raise ValueError("MoAConfig: need temperature >= 0 and max_tokens >= 1")

    @property
    def n_layers(self) -> int:
        """Layers including the aggregator's (the paper's count)."""
        return len(self.layers) + 1

    @property
    def n_calls(self) -> int:
        return sum(len(layer) for layer in self.layers) + 1


def moa(proposers: Sequence[str], aggregator: str, *, layers: int = 3, **kw) -> MoAConfig:
    """The paper's MoA: the same proposers in each of `layers - 1` layers, then the aggregator."""
    if layers < 2:
        raise ValueError("MoA needs at least 2 layers (proposers, then the aggregator)")
    return MoAConfig(tuple(tuple(proposers) for _ in range(layers - 1)), aggregator, **kw)


def moa_lite(proposers: Sequence[str], aggregator: str, **kw) -> MoAConfig:
    """MoA-Lite (Sec. 3.1): 2 layers, one of proposers and the aggregator."""
    return moa(proposers, aggregator, layers=2, **kw)


def self_moa(model: str, *, samples: int = 6, aggregator: str | None = None, **kw) -> MoAConfig:
    """Self-MoA baseline: `samples` samples of one model, aggregated (by itself by default)."""
    return MoAConfig(((model,) * samples,), aggregator or model, **kw)


@dataclass
class MoAResult:
    answer: str
    layers: list[list[Completion]]  # proposer outputs per layer (failed calls left out)
    final: Completion
    wall: float  # seconds for the whole query
    layer_walls: list[float]  # seconds per layer, the aggregator's last
    errors: list[str] = field(default_factory=list)  # proposer calls that failed

    @property
    def calls(self) -> int:
        return sum(len(layer) for layer in self.layers) + len(self.errors) + 1

    @property
    def slowest(self) -> list[float]:
        """The slowest call's latency in each layer (the aggregator's last)."""
        per_layer = [max((c.latency for c in layer), default=0.0) for layer in self.layers]
        return per_layer + [self.final.latency]

    @property
    def parallel_efficiency(self) -> float:
        """Sum over layers of the slowest call / wall time: 1.0 when a layer takes no longer
        than its slowest call (perfect concurrency); about 1/width if calls ran one by one."""
        return sum(self.slowest) / self.wall if self.wall > 0 else float("nan")

    @property
    def cost(self) -> float:
        return sum(c.cost for layer in self.layers for c in layer) + self.final.cost


class MixtureOfAgents:
    def __init__(self, client: LLMClient, config: MoAConfig):
        for name in {m for layer in config.layers for m in layer} | {config.aggregator}:
            client.config.get(name)  # fail now, with the configured names, not mid-query
        self.client = client
        self.config = config

    async def _call(self, model: str, messages, index: int, temperature: float) -> Completion:
        cfg = self.config
        seed = None if cfg.seed is None else cfg.seed + index
        return await self.client.chat(
            model,
            messages,
            temperature=temperature,
            max_tokens=cfg.max_tokens,
            seed=seed,
            sample=index,
        )

    async def ask(
        self, query: str | Sequence[Mapping[str, str]], *, concurrent: bool = True
    ) -> MoAResult:
        """Run the mixture on a question (a string) or a conversation (messages).
        `concurrent=False` awaits the proposers one after another, as the official script
        does: the baseline of the parallel-efficiency claim and benchmark."""
        messages = [{"role": "user", "content": query}] if isinstance(query, str) else query
        cfg = self.config
        start = time.perf_counter()
        references: list[str] = []
        layers: list[list[Completion]] = []
        walls: list[float] = []
        errors: list[str] = []
        for depth, layer in enumerate(cfg.layers):
            t0 = time.perf_counter()
            prompt = with_references(messages, references, instruction=cfg.instruction)
            calls = [self._call(m, prompt, i, cfg.temperature) for i, m in enumerate(layer)]
            if concurrent:
                outs = await asyncio.gather(*calls, return_exceptions=True)
            else:
                outs = [await _settle(c) for c in calls]
            done = []
            for model, out in zip(layer, outs, strict=True):
                if isinstance(out, EndpointError):
                    errors.append(f"layer {depth + 1} {model}: {out}")
                elif isinstance(out, BaseException):
                    raise out
                else:
                    done.append(out)
            if not done:
                raise EndpointError(f"MoA layer {depth + 1}: every proposer failed: {errors[-1]}")
            layers.append(done)
            references = [c.text for c in done]
            walls.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        prompt = with_references(messages, references, instruction=cfg.instruction)
        temp = cfg.temperature if cfg.aggregator_temperature is None else cfg.aggregator_temperature
        final = await self._call(cfg.aggregator, prompt, 0, temp)
        walls.append(time.perf_counter() - t0)
        return MoAResult(final.text, layers, final, time.perf_counter() - start, walls, errors)


async def _settle(call) -> Completion | BaseException:
    try:
        return await call
    except Exception as e:  # noqa: BLE001 - sorted out by the caller, like gather's
        return e
