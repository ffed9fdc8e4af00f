"""Judge prompts and verdict parsers for PoLL (Verga et al. 2024, Sec. 2 and App. A).

QA judging is reference-based: the judge sees the question, the answer under test and a
reference answer, and must say exactly True or False. Score judging asks for an integer score.
The wording is ours. Parsers are tolerant of the variants models actually produce ("True.",
"**False**", "Verdict: true") and return None for anything else, so an unparseable output is
regenerated (`paperlab.core.llm` parse retries) rather than silently counted.
"""

from __future__ import annotations

import re

QA_REFERENCE = (
    "Question: {question}\nAnswer: {answer}\nReference answer: {reference}\n"
    "Is the answer correct, judged against the reference? Reply with exactly True or False."
)
QA_NO_REFERENCE = (
    "Question: {question}\nAnswer: {answer}\n"
    "Is the answer correct? Reply with exactly True or False."
)
SCORE = (
    "Question: {question}\nAnswer: {answer}\n"
    "Rate the answer's quality from {lo} (worst) to {hi} (best). Reply with the number only."
)

_VERDICT = re.compile(r"\b(true|false)\b", re.IGNORECASE)
_SCORE = re.compile(r"-?\d+")


def qa_messages(question: str, answer: str, reference: str | None = None) -> list[dict[str, str]]:
    """The QA judging conversation; without a reference the judge must check the answer itself."""
    if reference is None:
        text = QA_NO_REFERENCE.format(question=question, answer=answer)
    else:
        text = QA_REFERENCE.format(question=question, answer=answer, reference=reference)
    return [{"role": "user", "content": text}]


def score_messages(question: str, answer: str, lo: int = 1, hi: int = 5) -> list[dict[str, str]]:
    return [
        {"role": "user", "content": SCORE.format(question=question, answer=answer, lo=lo, hi=hi)}
    ]


def parse_verdict(text: str) -> bool | None:
    """True/False from a judge's output; None when it says neither or both."""
    found = {m.lower() for m in _VERDICT.findall(text)}
    if len(found) != 1:
        return None
    return found.pop() == "true"


def parse_score(text: str, lo: int = 1, hi: int = 5) -> int | None:
    """The last integer in the output if it lies in [lo, hi], else None."""
    found = _SCORE.findall(text)
    if not found:
        return None
    score = int(found[-1])
    return score if lo <= score <= hi else None
