"""The Prometheus 2 grading library over `paperlab.core.llm.LLMClient` (arXiv 2405.01535).

A Prometheus judge is an evaluator LM that writes feedback and then a result (Sec. 2):
absolute grading maps (instruction, response, rubric, reference?) to a score 1..5, relative
grading maps (instruction, response A, response B, rubric, reference?) to A or B. This module
mirrors the official `prometheus-eval` library's `PrometheusEval` (single and batch grading,
regenerating unparseable outputs, the official sampling defaults) over any OpenAI-compatible
endpoint: a real `prometheus-7b-v2.0` behind vLLM or Ollama, or `paperlab serve`.

    judge = PrometheusJudge(client=client, model="prometheus-7b-v2.0", seed=0)
    g = client.run(judge.absolute_grade("What is 2+2?", "5", rubric, reference_answer="4"))
    g.score, g.feedback
    p = client.run(judge.relative_grade("What is 2+2?", "4", "5", rubric))
    p.winner, p.consistent      # A/B, and whether the B/A ordering agreed

What it adds to the official library: position-swap consistency for pairs (each pair is
also graded with A and B exchanged; `consistent` says whether both orderings chose the same
response), unparseable outputs reported as None with their count (never a default), and the
reference answers of a batch actually used (the official batch methods replace them with
None).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from paperlab.core.llm.client import Completion, LLMClient
from paperlab.core.llm.results import gather_bounded
from paperlab.papers.prometheus2 import prompts
from paperlab.papers.prometheus2.parser import parse_absolute, parse_relative
from paperlab.papers.prometheus2.prompts import Rubric

_SWAP = {"A": "B", "B": "A"}


@dataclass(frozen=True, kw_only=True)
class SamplingConfig:
    """Sampling of the grader. The defaults are the official library's
    (`batch_completions_with_retries`): temperature 1.0, top_p 0.9, max_tokens 1024,
    repetition_penalty 1.03, and up to 10 regenerations of an unparseable output."""

    temperature: float = 1.0
    top_p: float = 0.9
    max_tokens: int = 1024
    repetition_penalty: float = 1.03
    parse_retries: int = 10

    def __post_init__(self) -> None:
        if self.temperature < 0:
            raise ValueError(f"SamplingConfig.temperature={self.temperature}: must be >= 0")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"SamplingConfig.top_p={self.top_p}: must be in (0, 1]")
        if self.max_tokens < 1:
            raise ValueError(f"SamplingConfig.max_tokens={self.max_tokens}: must be >= 1")
        if self.repetition_penalty <= 0:
            raise ValueError(
                f"SamplingConfig.repetition_penalty={self.repetition_penalty}: must be > 0"
            )
        if self.parse_retries < 0:
            raise ValueError(f"SamplingConfig.parse_retries={self.parse_retries}: must be >= 0")


@dataclass
class AbsoluteGrade:
    """One response graded 1..5: `score` is None when every attempt stayed unparseable."""

    feedback: str | None
    score: int | None
    completion: Completion

    @property
    def parsed(self) -> bool:
        return self.score is not None

    def record(self) -> dict[str, Any]:
        """The JSON-able fields of a results line."""
        return {"feedback": self.feedback, "score": self.score, **_accounting([self.completion])}


@dataclass
class RelativeGrade:
    """A pair graded A or B (`winner`, None if unparseable). With position swapping,
    `swapped_winner` is the verdict of the B/A ordering mapped back to the original labels,
    and `consistent` says whether the two orderings chose the same response (None when
    either stayed unparseable or no swap was run)."""

    feedback: str | None
    winner: str | None
    completion: Completion
    swapped_feedback: str | None = None
    swapped_winner: str | None = None
    swapped_completion: Completion | None = None

    @property
    def parsed(self) -> bool:
        return self.winner is not None

    @property
    def consistent(self) -> bool | None:
        if self.swapped_completion is None or self.winner is None or self.swapped_winner is None:
            return None
        return self.winner == self.swapped_winner

    def record(self) -> dict[str, Any]:
        completions = [self.completion]
        out: dict[str, Any] = {"feedback": self.feedback, "winner": self.winner}
        if self.swapped_completion is not None:
            completions.append(self.swapped_completion)
            out["swapped_feedback"] = self.swapped_feedback
            out["swapped_winner"] = self.swapped_winner
            out["consistent"] = self.consistent
        return {**out, **_accounting(completions)}


def _accounting(completions: Sequence[Completion]) -> dict[str, Any]:
    return {
        "attempts": [c.attempts for c in completions],
        "cost": sum(c.cost for c in completions),
        "prompt_tokens": sum(c.prompt_tokens for c in completions),
        "completion_tokens": sum(c.completion_tokens for c in completions),
    }


class PrometheusJudge:
    """A Prometheus grader: `model` names a chat model in `client.config`.

    `sampling`: the official defaults (`SamplingConfig`). An unparseable output is
    regenerated up to `sampling.parse_retries` more times; `seed` goes with every request,
    so the samples (and the regenerations, whose seed the client offsets per attempt) repeat
    from run to run on an endpoint that honours it. `position_swap`: relative grades also run
    the B/A ordering. `system_in_user`: put the system prompt at the head of the user message
    (what the official vLLM path does through the Mistral template, "[INST] system\\n\\nuser
    [/INST]"), for chat templates without a system role. `absolute_template` /
    `relative_template` replace the official templates for every item (the official
    `PrometheusEval(absolute_grade_template=...)`), `system_prompts=False` leaves the system
    prompts out. `concurrency` bounds the items in flight of a batch (the client also limits
    requests per model)."""

    def __init__(
        self,
        *,
        client: LLMClient,
        model: str,
        sampling: SamplingConfig | None = None,
        seed: int | None = 0,
        position_swap: bool = True,
        system_in_user: bool = False,
        absolute_template: str | None = None,
        relative_template: str | None = None,
        system_prompts: bool = True,
        concurrency: int = 8,
    ):
        client.config.get(model).require("chat")  # fail now, naming the configured models
        if concurrency < 1:
            raise ValueError(f"PrometheusJudge: concurrency={concurrency} must be >= 1")
        self.client = client
        self.model = model
        self.sampling = sampling if sampling is not None else SamplingConfig()
        self.seed = seed
        self.position_swap = position_swap
        self.system_in_user = system_in_user
        self.concurrency = concurrency
        self.absolute_template = absolute_template
        self.relative_template = relative_template
        self.system_prompts = system_prompts

    # -- one request ------------------------------------------------------------------------

    async def _ask(self, messages: list[dict[str, str]], parse) -> Completion:
        if self.system_in_user and messages[0]["role"] == "system":
            system, user = messages
            messages = [{"role": "user", "content": f"{system['content']}\n\n{user['content']}"}]
        s = self.sampling
        return await self.client.chat(
            self.model,
            messages,
            temperature=s.temperature,
            top_p=s.top_p,
            max_tokens=s.max_tokens,
            seed=self.seed,
            parse=parse,
            parse_retries=s.parse_retries,
            # vLLM reads repetition_penalty from the body; servers without it ignore the field
            extra_body=(
                {"repetition_penalty": s.repetition_penalty}
                if s.repetition_penalty != 1.0
                else None
            ),
        )

    # -- single items -----------------------------------------------------------------------

    async def absolute_grade(
        self,
        instruction: str,
        response: str,
        rubric: Rubric | str,
        reference_answer: str | None = None,
    ) -> AbsoluteGrade:
        """Grade one response 1..5 against `rubric` (direct assessment, Sec. 2)."""
        messages = prompts.absolute_messages(
            instruction,
            response,
            rubric,
            reference_answer,
            template=self.absolute_template,
            system=self.system_prompts,
        )
        out = await self._ask(messages, parse_absolute)
        grade = out.parsed
        return AbsoluteGrade(
            feedback=grade.feedback if grade else None,
            score=grade.result if grade else None,
            completion=out,
        )

    async def relative_grade(
        self,
        instruction: str,
        response_a: str,
        response_b: str,
        rubric: Rubric | str,
        reference_answer: str | None = None,
    ) -> RelativeGrade:
        """Choose the better of two responses (pairwise ranking, Sec. 2); with
        `position_swap` the B/A ordering is graded too, concurrently."""
        kw = dict(template=self.relative_template, system=self.system_prompts)
        first = prompts.relative_messages(
            instruction, response_a, response_b, rubric, reference_answer, **kw
        )
        asks = [self._ask(first, parse_relative)]
        if self.position_swap:
            second = prompts.relative_messages(
                instruction, response_b, response_a, rubric, reference_answer, **kw
            )
            asks.append(self._ask(second, parse_relative))
        outs = await asyncio.gather(*asks)
        g = outs[0].parsed
        grade = RelativeGrade(
            feedback=g.feedback if g else None,
            winner=g.result if g else None,
            completion=outs[0],
        )
        if self.position_swap:
            s = outs[1].parsed
            grade.swapped_completion = outs[1]
            grade.swapped_feedback = s.feedback if s else None
            grade.swapped_winner = _SWAP[s.result] if s else None
        return grade

    # -- batches ----------------------------------------------------------------------------

    async def absolute_grade_batch(
        self,
        *,
        instructions: Sequence[str],
        responses: Sequence[str],
        rubric: Rubric | str | Sequence[Rubric | str],
        reference_answers: Sequence[str | None] | None = None,
    ) -> list[AbsoluteGrade]:
        """`absolute_grade` over a batch, `concurrency` items at a time, in order. `rubric`
        is one rubric for all or one per item; `reference_answers` one per item (or None)."""
        n = _same_length(instructions=instructions, responses=responses)
        rubrics = _per_item(rubric, n, "rubric")
        refs = _per_item_optional(reference_answers, n, "reference_answers")
        return await gather_bounded(
            range(n),
            lambda i: self.absolute_grade(instructions[i], responses[i], rubrics[i], refs[i]),
            self.concurrency,
        )

    async def relative_grade_batch(
        self,
        *,
        instructions: Sequence[str],
        responses_a: Sequence[str],
        responses_b: Sequence[str],
        rubric: Rubric | str | Sequence[Rubric | str],
        reference_answers: Sequence[str | None] | None = None,
    ) -> list[RelativeGrade]:
        """`relative_grade` over a batch, `concurrency` pairs at a time, in order."""
        n = _same_length(
            instructions=instructions, responses_a=responses_a, responses_b=responses_b
        )
        rubrics = _per_item(rubric, n, "rubric")
        refs = _per_item_optional(reference_answers, n, "reference_answers")
        return await gather_bounded(
            range(n),
            lambda i: self.relative_grade(
                instructions[i], responses_a[i], responses_b[i], rubrics[i], refs[i]
            ),
            self.concurrency,
        )


def _same_length(**seqs: Sequence[Any]) -> int:
    lengths = {name: len(s) for name, s in seqs.items()}
    if len(set(lengths.values())) != 1:
        shown = ", ".join(f"{k}={v}" for k, v in lengths.items())
        raise ValueError(f"batch inputs differ in length ({shown})")
    return next(iter(lengths.values()))


def _per_item(value: Any, n: int, name: str) -> list[Any]:
    if isinstance(value, Rubric | str):
        return [value] * n
    value = list(value)
    if len(value) != n:
        raise ValueError(f"{name}: {len(value)} given for {n} items")
    return value


def _per_item_optional(value: Sequence[Any] | None, n: int, name: str) -> list[Any]:
    if value is None:
        return [None] * n
    if isinstance(value, str):
        raise ValueError(f"{name}: give one per item (a list), not one string")
    return _per_item(value, n, name)


def summarize_absolute(grades: Sequence[AbsoluteGrade]) -> dict[str, float]:
    """Counts over a batch: items, parsed, parse-failure rate, mean attempts."""
    return _counts(grades)


def _counts(grades: Sequence[AbsoluteGrade | RelativeGrade]) -> dict[str, float]:
    n = len(grades)
    parsed = sum(g.parsed for g in grades)
    return {
        "items": float(n),
        "parsed": float(parsed),
        "parse_failure_rate": (n - parsed) / n if n else float("nan"),
        "mean_attempts": sum(g.completion.attempts for g in grades) / n if n else float("nan"),
    }


def summarize_relative(grades: Sequence[RelativeGrade]) -> dict[str, float]:
    """Counts over a batch of pairs: parse-failure rate (of the first ordering) and, with
    swapping, the fraction of pairs whose two orderings agreed among those both parsed."""
    out = _counts(grades)
    both = [g.consistent for g in grades if g.consistent is not None]
    out["swapped_pairs"] = float(len(both))
    out["position_consistency"] = sum(both) / len(both) if both else float("nan")
    return out
