"""Magpie's synthesis (Sec. 2.1): an instruction from the pre-query template alone, then the
response from the same aligned model through its normal chat path.

    client = LLMClient(load_config("paperlab.toml"))
    magpie = Magpie(client, "llama3-8b", family="llama3")
    record = client.run(magpie.conversation(0))   # {"instruction": ..., "response": ...}
    generate_jsonl(magpie, n=1000, out="data.jsonl", resume=True)

Step 1 is a *raw* completion (`/v1/completions`) of the family's pre-query template, sampled at
temperature 1.0 and top_p 1.0 (the official defaults); the official script stops at the first
newline (`--early_stopping`, on by default), here `newline_stop=True` (off: the instruction runs
to the family's end-of-turn token). Step 2 sends the instruction as a user message to
`/v1/chat/completions`, greedy by default (the official `gen_res.py` uses greedy decoding too).
With `turns > 1` the next user query is again a raw completion: the conversation so far in the
family's format followed by the template that opens a user turn (the official `gen_mt.py`).

A chat-only endpoint cannot do step 1 (the server applies its own template to messages) and is
refused with one line.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from paperlab.core.errors import UserError
from paperlab.core.llm.client import EndpointError, LLMClient
from paperlab.core.llm.results import JsonlResults, map_to_jsonl
from paperlab.papers.magpie.templates import ChatFamily, get_family


@dataclass(frozen=True)
class SynthesisConfig:
    """The sampling of the two steps (defaults: the official scripts')."""

    instruction_temperature: float = 1.0
    instruction_top_p: float = 1.0
    instruction_max_tokens: int = 512
    newline_stop: bool = True  # the official default: cut the instruction at its first newline
    response_temperature: float = 0.0  # greedy
    response_top_p: float = 1.0
    response_max_tokens: int = 4096
    turns: int = 1  # > 1: multi-turn (instruction_2, response_2, ...)
    seed: int | None = 0  # sample i is sent seed + i (None: the server's own randomness)

    def __post_init__(self) -> None:
        for name in ("instruction_temperature", "response_temperature"):
            if getattr(self, name) < 0:
                raise ValueError(f"SynthesisConfig.{name} must be >= 0")
        for name in ("instruction_top_p", "response_top_p"):
            if not 0 < getattr(self, name) <= 1:
                raise ValueError(f"SynthesisConfig.{name} must be in (0, 1]")
        for name in ("instruction_max_tokens", "response_max_tokens", "turns"):
            if getattr(self, name) < 1:
                raise ValueError(f"SynthesisConfig.{name} must be >= 1")


class Magpie:
    """Synthesises conversations from `model` (a name in the client's config) with the
    pre-query template of `family` (a name in `templates.FAMILIES`, or a `ChatFamily`)."""

    def __init__(
        self,
        client: LLMClient,
        model: str,
        *,
        family: str | ChatFamily,
        config: SynthesisConfig | None = None,
    ):
        self.client = client
        self.model = model
        self.family = family if isinstance(family, ChatFamily) else get_family(family)
        self.config = config or SynthesisConfig()
        spec = client.config.get(model)  # unknown model: ConfigError naming the config
        if "raw_completion" not in spec.capabilities:
            raise UserError(chat_only_message(model))

    async def _complete(self, prompt: str, index: int, turn: int) -> tuple[str, str | None]:
        c = self.config
        try:
            out = await self.client.complete(
                self.model,
                prompt,
                temperature=c.instruction_temperature,
                top_p=c.instruction_top_p,
                max_tokens=c.instruction_max_tokens,
                stop=self.family.instruction_stops(newline=c.newline_stop),
                seed=None if c.seed is None else c.seed + index,
                sample=index * 100 + turn,
            )
        except EndpointError as e:
            if "404" in str(e) or "not found" in str(e).lower():
                raise UserError(f"{chat_only_message(self.model)} ({e})") from None
            raise
        return out.text.strip(), out.finish_reason

    async def _respond(self, messages: list[dict[str, str]]) -> tuple[str, str | None]:
        c = self.config
        out = await self.client.chat(
            self.model,
            messages,
            temperature=c.response_temperature,
            top_p=c.response_top_p,
            max_tokens=c.response_max_tokens,
            seed=c.seed,
        )
        return out.text.strip(), out.finish_reason

    async def conversation(self, index: int) -> dict[str, Any]:
        """One synthesised conversation: the record Magpie's data sets carry (instruction,
        response, ShareGPT `conversations`, the generation configs), turn 2.. as
        `instruction_2`, `response_2`, ..."""
        c, fam = self.config, self.family
        turns: list[tuple[str, str]] = []
        record: dict[str, Any] = {}
        messages: list[dict[str, str]] = []
        for turn in range(c.turns):
            prompt = fam.pre_query_template if turn == 0 else fam.multi_turn_prompt(turns)
            instruction, finish = await self._complete(prompt, index, turn)
            response, response_finish = "", None
            if instruction:  # an empty instruction gets no response (and fails the filter)
                messages = [*messages, {"role": "user", "content": instruction}]
                response, response_finish = await self._respond(messages)
                messages.append({"role": "assistant", "content": response})
            suffix = "" if turn == 0 else f"_{turn + 1}"
            record[f"instruction{suffix}"] = instruction
            record[f"response{suffix}"] = response
            record[f"instruction_finish{suffix}"] = finish
            record[f"response_finish{suffix}"] = response_finish
            turns.append((instruction, response))
            if not instruction:
                break
        record["conversations"] = [
            {"from": speaker, "value": text}
            for q, r in turns
            for speaker, text in (("human", q), ("gpt", r))
            if text
        ]
        record["model"] = self.model
        record["family"] = fam.name
        record["pre_query_template"] = fam.pre_query_template
        record["gen_input_configs"] = {
            "temperature": c.instruction_temperature,
            "top_p": c.instruction_top_p,
            "newline_stop": c.newline_stop,
            "seed": None if c.seed is None else c.seed + index,
        }
        record["gen_response_configs"] = {
            "temperature": c.response_temperature,
            "top_p": c.response_top_p,
            "max_tokens": c.response_max_tokens,
        }
        record["created"] = int(time.time())
        return record


def chat_only_message(model: str) -> str:
    return (
        f"model {model!r} is chat-only: Magpie sends the bare pre-query template as a raw "
        "completion (/v1/completions), which a chat endpoint cannot take (it applies its own "
        "template); serve the model with vLLM, SGLang, llama.cpp or `paperlab serve` and add "
        '"raw_completion" to its capabilities in the config'
    )


def generate_jsonl(
    magpie: Magpie,
    *,
    n: int,
    out: str | Path,
    resume: bool = False,
    concurrency: int = 8,
    progress: bool = True,
) -> tuple[int, list[tuple[Any, str]]]:
    """Synthesise conversations 0..n-1 into the JSONL `out`, one line per finished
    conversation (ids = conversation_id); `resume` skips the ids already written. Returns
    (number written now, [(id, error)])."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise UserError(f"n must be an integer >= 1, got {n!r}")
    items = [{"conversation_id": i} for i in range(n)]

    async def one(item: Mapping[str, Any]) -> dict[str, Any]:
        return await magpie.conversation(item["conversation_id"])

    with JsonlResults(out, resume=resume, id_key="conversation_id") as results:
        return magpie.client.run(
            map_to_jsonl(
                items,
                one,
                results,
                concurrency=concurrency,
                progress=progress,
                desc="magpie",
            )
        )


def synthesize(
    magpie: Magpie, n: int, *, concurrency: int = 8, progress: bool = False
) -> list[dict[str, Any]]:
    """Conversations 0..n-1 in memory (ids = conversation_id), in order."""
    from tqdm import tqdm

    bar = tqdm(total=n, desc="magpie", disable=not progress, leave=False)

    async def run() -> list[dict[str, Any]]:
        gate = asyncio.Semaphore(concurrency)

        async def one(i: int) -> dict[str, Any]:
            async with gate:
                record = await magpie.conversation(i)
                bar.update(1)
                return {"conversation_id": i, **record}

        return await asyncio.gather(*(one(i) for i in range(n)))

    try:
        return magpie.client.run(run())
    finally:
        bar.close()
