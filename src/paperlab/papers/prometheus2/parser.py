"""Parse a Prometheus grader's output: "(feedback) [RESULT] (score or A/B)" (Sec. 2, App. F).

The result is read at the END of the output only. The official library once searched for the
first "Score ..." anywhere in the text, so an output that echoed its own prompt matched
"###Reference Answer (Score 5):" and every grade came back 5 (prometheus-eval issue #58).
Here the marker must be the output's last "[RESULT]" and the value must close the output
(trailing whitespace, a period, a closing bracket or "/5" aside). The value is range-checked:
an integer 1..5 for absolute grading, A or B for relative grading. Anything else is a parse
failure (None), never a default score, so the caller can regenerate the output
(`paperlab.core.llm` parse retries) and count what stays unparseable.

    parse_absolute("The answer is right. [RESULT] 5")    # ("The answer is right.", 5)
    parse_relative("B is wrong. [RESULT] A")             # ("B is wrong.", "A")
    parse_absolute("[RESULT] (an integer number between 1 and 5)")   # None
"""

from __future__ import annotations

import re
from typing import NamedTuple

_ABSOLUTE = re.compile(
    r"\[RESULT\]\s*[:=]?\s*[(\[]?\s*(?:score\s*)?(?P<value>\d+)\s*(?:/\s*5|out\s+of\s+5)?"
    r"\s*[)\]]?\s*\.?\s*\Z",
    re.IGNORECASE,
)
_RELATIVE = re.compile(
    r"\[RESULT\]\s*[:=]?\s*[(\[]?\s*(?:response\s+)?(?P<value>[AB])\s*[)\]]?\s*\.?\s*\Z",
    re.IGNORECASE,
)
_MARKER = re.compile(r"\[RESULT\]", re.IGNORECASE)


class Grade(NamedTuple):
    """A parsed output: the feedback (without the "[RESULT] ..." tail) and the result."""

    feedback: str
    result: int | str


def _tail(text: str) -> tuple[str, str] | None:
    """(feedback, tail) split at the LAST "[RESULT]" marker; None without one."""
    last = None
    for last in _MARKER.finditer(text):  # noqa: B007 - we want the final match
        pass
    if last is None:
        return None
    return text[: last.start()].strip(), text[last.start() :]


def parse_absolute(text: str | None) -> Grade | None:
    """(feedback, score 1..5), or None when the output does not end in "[RESULT] <1..5>"."""
    if not isinstance(text, str):
        return None
    split = _tail(text)
    if split is None:
        return None
    feedback, tail = split
    m = _ABSOLUTE.fullmatch(tail)
    if m is None:
        return None
    score = int(m["value"])
    if not 1 <= score <= 5:
        return None
    return Grade(feedback, score)


def parse_relative(text: str | None) -> Grade | None:
    """(feedback, "A" or "B"), or None when the output does not end in "[RESULT] A|B"."""
    if not isinstance(text, str):
        return None
    split = _tail(text)
    if split is None:
        return None
    feedback, tail = split
    m = _RELATIVE.fullmatch(tail)
    if m is None:
        return None
    return Grade(feedback, m["value"].upper())


def parse_output(text: str | None, mode: str) -> Grade | None:
    """`parse_absolute` or `parse_relative` by `mode` ("absolute" / "relative")."""
    if mode == "absolute":
        return parse_absolute(text)
    if mode == "relative":
        return parse_relative(text)
    raise ValueError(f"parse_output: mode must be 'absolute' or 'relative', got {mode!r}")
