"""Multi-call techniques (Sec. 2.2.2-2.2.5): each wraps a base technique (or renders its own
steps) and records every call. Every step's prompt is a pure function of the item and the
earlier replies, so a run is deterministic at temperature 0 and golden-testable.

- `SelfConsistency` (Wang et al. 2022): n samples of the base at temperature T, majority answer.
- `UniversalSelfConsistency` (Chen et al. 2023): n samples, then the model picks the most
  consistent response.
- `StepBack` (Zheng et al. 2023): a general question first, its answer as context.
- `LeastToMost` (Zhou et al. 2022): list sub-questions, answer them in order, then the question.
- `SelfRefine` (Madaan et al. 2023): answer, feedback, refined answer, until the feedback
  finds nothing to fix or `iterations` run out.
- `ChainOfVerification` (Dhuliawala et al. 2023): baseline, verification questions answered
  independently, final verified answer.
- `SelfCalibration` (Kadavath et al. 2022): the base's answer plus the model's True/False
  judgement of it (kept in `Outcome.info["calibration"]`; the answer is unchanged).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from paperlab.core.mc import LETTERS, MCItem
from paperlab.core.stats import majority
from paperlab.papers.prompt_report import prompts as P
from paperlab.papers.prompt_report.techniques import Call, Endpoint, Outcome, ZeroShotCoT


def _user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


@dataclass(frozen=True)
class SelfConsistency:
    """Self-consistency: `n` samples of `base` at `temperature`, the majority of the parsed
    answers (unparseable samples do not vote; ties: the first seen). The case study uses
    n=3 at T=0.5 (Sec. 6.1.3)."""

    base: Any
    n: int = 3
    temperature: float = 0.5

    def __post_init__(self) -> None:
        if self.n < 1:
            raise ValueError(f"SelfConsistency: n must be >= 1, got {self.n}")
        if self.temperature <= 0:
            raise ValueError("SelfConsistency: temperature must be > 0 (samples must differ)")

    @property
    def name(self) -> str:
        return f"{self.base.name}+sc{self.n}"

    async def samples(self, ep: Endpoint, item: MCItem) -> list[Outcome]:
        return [
            await self.base.run(ep, item, temperature=self.temperature, sample=i)
            for i in range(self.n)
        ]

    async def run(self, ep: Endpoint, item: MCItem, **_: Any) -> Outcome:
        outs = await self.samples(ep, item)
        answers = [o.answer for o in outs]
        calls = [c for o in outs for c in o.calls]
        return Outcome(self.name, majority(answers), calls, {"samples": answers})


USC_PROMPT = (
    "I have generated the following responses to the question: {question}\n\n{responses}\n\n"
    "Evaluate these responses. Select the most consistent response based on majority "
    'consensus. Start your answer with "The most consistent response is Response X" '
    "(without quotes)."
)
_USC_PICK = re.compile(r"most consistent response is Response (\d+)", re.I)


@dataclass(frozen=True)
class UniversalSelfConsistency(SelfConsistency):
    """Universal self-consistency: the samples go back to the model, which names the most
    consistent one; its answer is returned (the plain majority when the pick is unreadable)."""

    @property
    def name(self) -> str:
        return f"{self.base.name}+usc{self.n}"

    def render_select(self, item: MCItem, replies: list[str]) -> list[dict[str, str]]:
        responses = "\n".join(f"Response {i}: {r.strip()}" for i, r in enumerate(replies, 1))
        return _user(USC_PROMPT.format(question=item.question.strip(), responses=responses))

    async def run(self, ep: Endpoint, item: MCItem, **_: Any) -> Outcome:
        outs = await self.samples(ep, item)
        calls = [c for o in outs for c in o.calls]
        replies = [o.calls[-1].reply for o in outs]
        pick = await ep.ask(
            calls, "select", self.render_select(item, replies), temperature=0.0, sample=0
        )
        m = _USC_PICK.search(pick)
        k = int(m[1]) - 1 if m else -1
        answer = outs[k].answer if 0 <= k < len(outs) else majority([o.answer for o in outs])
        return Outcome(self.name, answer, calls, {"picked": k + 1 if m else None})


STEP_BACK_PROMPT = (
    "You are an expert at the subject of this question. Step back and state the general "
    "principle or concept needed to solve it, without solving it.\n{question}"
)
STEP_BACK_ANSWER = "Principle: {principle}\n\n{prompt}"


@dataclass(frozen=True)
class StepBack:
    """Step-back prompting: first a step-back question (the principle behind the problem),
    then the problem with that principle as context, answered with Zero-Shot CoT."""

    base: Any = ZeroShotCoT()
    name: str = "step-back"

    def render_step_back(self, item: MCItem) -> list[dict[str, str]]:
        return _user(STEP_BACK_PROMPT.format(question=P.question_text(item, self.base.fmt)))

    def render_answer(self, item: MCItem, principle: str) -> list[dict[str, str]]:
        prompt = self.base.render(item)[-1]["content"]
        return _user(STEP_BACK_ANSWER.format(principle=principle.strip(), prompt=prompt))

    async def run(
        self, ep: Endpoint, item: MCItem, *, temperature: float = 0.0, sample: int = 0
    ) -> Outcome:
        calls: list[Call] = []
        kw = dict(temperature=temperature, sample=sample)
        principle = await ep.ask(calls, "step-back", self.render_step_back(item), **kw)
        reply = await ep.ask(calls, "answer", self.render_answer(item, principle), **kw)
        calls[-1].parsed = self.base.read(reply, item)
        return Outcome(self.name, calls[-1].parsed, calls)


L2M_DECOMPOSE = (
    "To answer the question below, list the simpler sub-questions that must be answered "
    "first, one per line, without answering them.\n{question}"
)
L2M_SOLVE = "{question}\n\n{solved}Q: {sub}\nA:"
L2M_FINAL = "{question}\n\n{solved}Now answer the original question. {trigger}"


def _sub_questions(text: str, limit: int) -> list[str]:
    lines = [re.sub(r"^\s*(?:\d+[.)]|[-*])\s*", "", ln).strip() for ln in text.splitlines()]
    return [ln for ln in lines if ln][:limit]


@dataclass(frozen=True)
class LeastToMost:
    """Least-to-most: a decomposition call lists sub-questions (at most `max_steps`); each is
    answered in turn with the earlier answers appended; a last call answers the question."""

    fmt: str = "paper2"
    max_steps: int = 3
    name: str = "least-to-most"
    style: str = "letter"

    def render_decompose(self, item: MCItem) -> list[dict[str, str]]:
        return _user(L2M_DECOMPOSE.format(question=P.question_text(item, self.fmt)))

    def render_solve(self, item: MCItem, solved: list[tuple[str, str]], sub: str):
        done = "".join(f"Q: {q}\nA: {a.strip()}\n\n" for q, a in solved)
        return _user(
            L2M_SOLVE.format(question=P.question_text(item, self.fmt), solved=done, sub=sub)
        )

    def render_final(self, item: MCItem, solved: list[tuple[str, str]]):
        done = "".join(f"Q: {q}\nA: {a.strip()}\n\n" for q, a in solved)
        trigger = 'Finish with "The answer is (X)".'
        return _user(
            L2M_FINAL.format(question=P.question_text(item, self.fmt), solved=done, trigger=trigger)
        )

    async def run(
        self, ep: Endpoint, item: MCItem, *, temperature: float = 0.0, sample: int = 0
    ) -> Outcome:
        calls: list[Call] = []
        kw = dict(temperature=temperature, sample=sample)
        plan = await ep.ask(calls, "decompose", self.render_decompose(item), **kw)
        solved: list[tuple[str, str]] = []
        for sub in _sub_questions(plan, self.max_steps):
            answer = await ep.ask(calls, "solve", self.render_solve(item, solved, sub), **kw)
            solved.append((sub, answer))
        reply = await ep.ask(calls, "answer", self.render_final(item, solved), **kw)
        calls[-1].parsed = P.read_answer(reply, item, self.style)
        return Outcome(self.name, calls[-1].parsed, calls, {"sub_questions": len(solved)})


REFINE_FEEDBACK = (
    "{prompt}\n\nProposed answer: {answer}\n\nReview the proposed answer step by step. If it "
    'is correct, reply "NO ISSUES". Otherwise, explain what is wrong.'
)
REFINE_ANSWER = (
    "{prompt}\n\nProposed answer: {answer}\n\nFeedback: {feedback}\n\nUsing the feedback, "
    'give an improved answer. Finish with "The answer is (X)".'
)


@dataclass(frozen=True)
class SelfRefine:
    """Self-refine: `base` answers; the model critiques the answer; if the critique finds an
    issue, the model rewrites the answer with it; up to `iterations` rounds."""

    base: Any = ZeroShotCoT()
    iterations: int = 2
    name: str = "self-refine"

    def render_feedback(self, item: MCItem, answer: str):
        prompt = self.base.render(item)[-1]["content"]
        return _user(REFINE_FEEDBACK.format(prompt=prompt, answer=answer.strip()))

    def render_refine(self, item: MCItem, answer: str, feedback: str):
        prompt = self.base.render(item)[-1]["content"]
        return _user(
            REFINE_ANSWER.format(prompt=prompt, answer=answer.strip(), feedback=feedback.strip())
        )

    async def run(
        self, ep: Endpoint, item: MCItem, *, temperature: float = 0.0, sample: int = 0
    ) -> Outcome:
        first = await self.base.run(ep, item, temperature=temperature, sample=sample)
        calls, answer, reply = first.calls, first.answer, first.calls[-1].reply
        kw = dict(temperature=temperature, sample=sample)
        rounds = 0
        for _ in range(self.iterations):
            feedback = await ep.ask(calls, "feedback", self.render_feedback(item, reply), **kw)
            if "NO ISSUES" in feedback.upper():
                break
            reply = await ep.ask(calls, "refine", self.render_refine(item, reply, feedback), **kw)
            calls[-1].parsed = self.base.read(reply, item)
            answer = calls[-1].parsed if calls[-1].parsed is not None else answer
            rounds += 1
        return Outcome(self.name, answer, calls, {"refinements": rounds})


COVE_PLAN = (
    "{prompt}\n\nBaseline answer: {answer}\n\nWrite up to {k} short verification questions, "
    "one per line, that would check the facts the baseline answer relies on."
)
COVE_VERIFY = "Answer briefly: {question}"
COVE_FINAL = (
    "{prompt}\n\nBaseline answer: {answer}\n\nVerification:\n{checks}\n\nGiven the "
    'verification, give the final answer. Finish with "The answer is (X)".'
)


@dataclass(frozen=True)
class ChainOfVerification:
    """Chain-of-verification: a baseline answer; a plan of verification questions; each
    answered in its own call, without the baseline in view (the "factored" variant); a final
    answer given the question-answer pairs."""

    base: Any = ZeroShotCoT()
    max_questions: int = 3
    name: str = "chain-of-verification"

    def _prompt(self, item: MCItem) -> str:
        return self.base.render(item)[-1]["content"]

    def render_plan(self, item: MCItem, answer: str):
        return _user(
            COVE_PLAN.format(prompt=self._prompt(item), answer=answer.strip(), k=self.max_questions)
        )

    def render_final(self, item: MCItem, answer: str, checks: list[tuple[str, str]]):
        lines = "\n".join(f"Q: {q}\nA: {a.strip()}" for q, a in checks)
        return _user(
            COVE_FINAL.format(prompt=self._prompt(item), answer=answer.strip(), checks=lines)
        )

    async def run(
        self, ep: Endpoint, item: MCItem, *, temperature: float = 0.0, sample: int = 0
    ) -> Outcome:
        first = await self.base.run(ep, item, temperature=temperature, sample=sample)
        calls, baseline = first.calls, first.calls[-1].reply
        kw = dict(temperature=temperature, sample=sample)
        plan = await ep.ask(calls, "plan", self.render_plan(item, baseline), **kw)
        checks = []
        for q in _sub_questions(plan, self.max_questions):
            checks.append(
                (q, await ep.ask(calls, "verify", _user(COVE_VERIFY.format(question=q)), **kw))
            )
        reply = await ep.ask(calls, "answer", self.render_final(item, baseline, checks), **kw)
        calls[-1].parsed = self.base.read(reply, item)
        answer = calls[-1].parsed if calls[-1].parsed is not None else first.answer
        return Outcome(self.name, answer, calls, {"verifications": len(checks)})


CALIBRATION_PROMPT = (
    "Question: {question}\nProposed Answer: ({letter}) {option}\nIs the proposed answer:\n"
    "(A) True\n(B) False\nThe proposed answer is:"
)


@dataclass(frozen=True)
class SelfCalibration:
    """Self-calibration: after `base` answers, the model judges its own answer True/False
    (Kadavath et al.'s P(True) prompt); `info["calibration"]` is True, False or None."""

    base: Any = ZeroShotCoT()
    name: str = "self-calibration"

    def render_check(self, item: MCItem, answer: int) -> list[dict[str, str]]:
        return _user(
            CALIBRATION_PROMPT.format(
                question=P.question_text(item, "mmlu").removesuffix("\nAnswer:"),
                letter=LETTERS[answer],
                option=item.options[answer],
            )
        )

    async def run(
        self, ep: Endpoint, item: MCItem, *, temperature: float = 0.0, sample: int = 0
    ) -> Outcome:
        first = await self.base.run(ep, item, temperature=temperature, sample=sample)
        out = Outcome(self.name, first.answer, first.calls, {"calibration": None})
        if first.answer is None:
            return out
        reply = await ep.ask(
            out.calls,
            "calibrate",
            self.render_check(item, first.answer),
            temperature=0.0,
            sample=sample,
        )
        judged = re.search(r"\(?([AB])\)|\b(True|False)\b", reply)
        if judged:
            out.info["calibration"] = (judged[1] or "") == "A" or (judged[2] or "") == "True"
        return out
