"""Prompting techniques as composable programs over the LLM layer (Sec. 2.2).

A technique answers one multiple-choice item through an `Endpoint` (a model of an
`LLMClient`); every call it makes is recorded (step, messages, reply, parsed answer), so a run
can be audited and replayed from the request cache.

    ep = Endpoint(client, "reader", max_tokens=64, seed=0)
    sc = SelfConsistency(ZeroShotCoT(), n=3, temperature=0.5)
    out = client.run(sc.run(ep, item))          # Outcome(answer=2, calls=[...3 calls...])

Single-call techniques (`ZeroShot`, `ZeroShotCoT`, `FewShot`, `FewShotCoT`) render their
prompt with `render(item)`; `Role` and `Emotion` modify the messages of any technique they
wrap; the ensembling and self-criticism techniques wrap a base technique and add calls.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from paperlab.core.mc import LETTERS, MCItem
from paperlab.papers.prompt_report import prompts as P

Messages = list[dict[str, str]]


@dataclass
class Call:
    """One request a technique made: which step, what it sent, what came back."""

    step: str
    messages: Messages
    reply: str
    temperature: float
    sample: int = 0
    parsed: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "messages": self.messages,
            "reply": self.reply,
            "temperature": self.temperature,
            "sample": self.sample,
            "parsed": self.parsed,
        }


@dataclass
class Outcome:
    """A technique's answer (0-3 or None) to one item, and every call it took."""

    technique: str
    answer: int | None
    calls: list[Call] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def letter(self) -> str | None:
        return None if self.answer is None else LETTERS[self.answer]


class Endpoint:
    """A model of an `LLMClient` with the defaults every call of a run shares. `transform`
    rewrites the messages of every call (how `Role` / `Emotion` compose with a technique).
    `seed`: the base seed sent with each request; sample i of a request gets seed + 1000 i."""

    def __init__(
        self,
        client: Any,
        model: str,
        *,
        max_tokens: int = 512,
        seed: int | None = None,
        transform: Callable[[Messages], Messages] | None = None,
    ):
        if max_tokens < 1:
            raise ValueError(f"max_tokens must be >= 1, got {max_tokens}")
        self.client, self.model, self.max_tokens, self.seed = client, model, max_tokens, seed
        self.transform = transform

    def with_transform(self, fn: Callable[[Messages], Messages]) -> Endpoint:
        inner = self.transform
        combined = fn if inner is None else (lambda m: fn(inner(m)))
        return Endpoint(
            self.client, self.model, max_tokens=self.max_tokens, seed=self.seed, transform=combined
        )

    async def ask(
        self, calls: list[Call], step: str, messages: Messages, *, temperature: float, sample: int
    ) -> str:
        msgs = self.transform(messages) if self.transform else messages
        seed = None if self.seed is None else self.seed + 1000 * sample
        out = await self.client.chat(
            self.model,
            msgs,
            temperature=temperature,
            max_tokens=self.max_tokens,
            seed=seed,
            sample=sample,
        )
        calls.append(Call(step, [dict(m) for m in msgs], out.text, temperature, sample))
        return out.text


class Technique(Protocol):
    name: str

    async def run(
        self, ep: Endpoint, item: MCItem, *, temperature: float = 0.0, sample: int = 0
    ) -> Outcome: ...


def _user(text: str) -> Messages:
    return [{"role": "user", "content": text}]


# ---------------------------------------------------------------------------------------------
# Single-call techniques


@dataclass(frozen=True)
class SingleCall:
    """One prompt, one reply, the answer extracted. Subclasses fix the prompt's parts."""

    instruction: str = P.BASE_INSTRUCTION
    fmt: str = "paper2"
    style: str = "letter"  # how answers are written and read: prompts.STYLES
    name: str = "single"

    def read(self, reply: str, item: MCItem) -> int | None:
        return P.read_answer(reply, item, self.style)

    def shots(self, item: MCItem) -> tuple[MCItem, ...]:
        return ()

    def inducer(self) -> str:
        return ""

    cot_shots = False

    def render(self, item: MCItem) -> Messages:
        """The exact messages sent for `item`."""
        text = P.user_prompt(
            item,
            instruction=self.instruction,
            fmt=self.fmt,
            shots=self.shots(item),
            cot_shots=self.cot_shots,
            inducer=self.inducer(),
            style=self.style,
        )
        return _user(text)

    async def run(
        self, ep: Endpoint, item: MCItem, *, temperature: float = 0.0, sample: int = 0
    ) -> Outcome:
        calls: list[Call] = []
        reply = await ep.ask(
            calls, "answer", self.render(item), temperature=temperature, sample=sample
        )
        calls[-1].parsed = self.read(reply, item)
        return Outcome(self.name, calls[-1].parsed, calls)


@dataclass(frozen=True)
class ZeroShot(SingleCall):
    """The instruction and the question, nothing else (the case study's baseline)."""

    name: str = "zero-shot"


@dataclass(frozen=True)
class ZeroShotCoT(SingleCall):
    """Zero-Shot CoT (Kojima et al. 2022): a thought inducer after the open answer slot.
    Thread-of-Thought and Plan-and-Solve are the same program with their own inducer."""

    thought: str = P.ZERO_SHOT_COT
    name: str = "zero-shot-cot"

    def inducer(self) -> str:
        return self.thought


def thread_of_thought(**kw: Any) -> ZeroShotCoT:
    """Thread-of-Thought (Zhou et al. 2023): Zero-Shot CoT with ThoT's inducer."""
    return ZeroShotCoT(thought=P.THREAD_OF_THOUGHT, name="thread-of-thought", **kw)


def plan_and_solve(**kw: Any) -> ZeroShotCoT:
    """Plan-and-Solve (Wang et al. 2023): Zero-Shot CoT with the plan-then-solve inducer."""
    return ZeroShotCoT(thought=P.PLAN_AND_SOLVE, name="plan-and-solve", **kw)


@dataclass(frozen=True)
class FewShot(SingleCall):
    """Few-shot prompting: solved exemplars chosen for the item by `selector` (an
    `ExemplarSelector`: random or KNN, selection.py) before the question."""

    selector: Any = None
    name: str = "few-shot"

    def shots(self, item: MCItem) -> tuple[MCItem, ...]:
        if self.selector is None:
            raise ValueError(f"{self.name}: needs a selector (selection.py)")
        return tuple(self.selector.select(item))


@dataclass(frozen=True)
class FewShotCoT(FewShot):
    """Few-Shot CoT (Wei et al. 2022): the exemplars carry their reasoning."""

    name: str = "few-shot-cot"
    cot_shots = True


# ---------------------------------------------------------------------------------------------
# Modifiers: Role and Emotion prompting (Sec. 2.2.1.3) wrap any technique


@dataclass(frozen=True)
class Role:
    """Role prompting: a system message naming the persona, before every call of `base`."""

    base: Any
    role: str = P.ROLE

    @property
    def name(self) -> str:
        return f"role+{self.base.name}"

    def render(self, item: MCItem) -> Messages:
        return self._apply(self.base.render(item))

    def _apply(self, messages: Messages) -> Messages:
        return [{"role": "system", "content": self.role}, *messages]

    async def run(self, ep: Endpoint, item: MCItem, **kw: Any) -> Outcome:
        out = await self.base.run(ep.with_transform(self._apply), item, **kw)
        out.technique = self.name
        return out


@dataclass(frozen=True)
class Emotion:
    """Emotion prompting: a sentence of stakes appended to the last user message."""

    base: Any
    phrase: str = P.EMOTION

    @property
    def name(self) -> str:
        return f"emotion+{self.base.name}"

    def render(self, item: MCItem) -> Messages:
        return self._apply(self.base.render(item))

    def _apply(self, messages: Messages) -> Messages:
        out = [dict(m) for m in messages]
        last = max(i for i, m in enumerate(out) if m["role"] == "user")
        out[last]["content"] = f"{out[last]['content']}\n{self.phrase}"
        return out

    async def run(self, ep: Endpoint, item: MCItem, **kw: Any) -> Outcome:
        out = await self.base.run(ep.with_transform(self._apply), item, **kw)
        out.technique = self.name
        return out
