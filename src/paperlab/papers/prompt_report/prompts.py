"""The prompt text of the techniques: question formats, instructions, thought inducers, and the
exemplar layout. Pure functions of their inputs (the golden tests pin them down exactly).

The case study's question formats and base instruction are those of the paper's MMLU
experiment (Sec. 6.1.1-6.1.2, after Sclar et al.'s format study); the thought inducers are
the ones each technique's paper proposes.
"""

from __future__ import annotations

import re

from paperlab.core.mc import LETTERS, MCItem, format_question

# Sec. 6.1.1: the base instruction (the first of the paper's three phrasings)
BASE_INSTRUCTION = (
    'Solve the following problem and return your answer as "A", "B", "C" or "D" with quotes '
    "surrounding the correct letter."
)
# Thought inducers (Sec. 2.2.2.1, 2.2.3)
ZERO_SHOT_COT = "Let's think step by step."  # Kojima et al. 2022
THREAD_OF_THOUGHT = (  # Zhou et al. 2023
    "Walk me through this context in manageable parts step by step, summarizing and analyzing "
    "as we go."
)
PLAN_AND_SOLVE = (  # Wang et al. 2023
    "Let's first understand the problem and devise a plan to solve it. Then, let's carry out "
    "the plan and solve the problem step by step."
)
EMOTION = "This is very important to my career."  # Li et al. 2023 (EP02)
ROLE = "You are an expert who answers multiple-choice questions carefully and correctly."

FORMATS = ("paper1", "paper2", "mmlu")


def question_text(item: MCItem, fmt: str = "paper2") -> str:
    """The question and its options in one of the case study's layouts (Sec. 6.1.2):
    `paper1` (double colons and dashes), `paper2` (double colons and new lines), or `mmlu`
    (Hendrycks' layout, "Answer:" left open)."""
    q, (a, b, c, d) = item.question.strip(), item.options
    if fmt == "paper1":
        return (
            f"Problem \n\t{q}\n Options \n\t\n(A)::{a} -- (B)::{b} -- (C)::{c} -- (D)::{d}"
            "\n Answer\n\t"
        )
    if fmt == "paper2":
        return f"PROBLEM::{q}, OPTIONS:: \n(A): {a} \n(B): {b} \n(C): {c} \n(D): {d}, ANSWER::"
    if fmt == "mmlu":
        return f"{format_question(item)}\nAnswer:"
    raise ValueError(f"fmt: unknown question format {fmt!r}; choose from {', '.join(FORMATS)}")


STYLES = ("letter", "value")


def answer_phrase(letter: str) -> str:
    """The answer trigger and the letter (Sec. 2.5.3), what the paper's extractor reads."""
    return f"The answer is ({letter})."


def solved_answer(item: MCItem, style: str = "letter") -> str:
    """An exemplar's answer: the letter in parentheses (`letter`, the case study's), or the
    right option's text (`value`, the miniature's; see miniature.py)."""
    if item.answer is None:
        raise ValueError("an exemplar needs a correct answer")
    if style == "letter":
        return answer_phrase(LETTERS[item.answer])
    if style == "value":
        return f"The answer is {item.options[item.answer]}."
    raise ValueError(f"style: unknown {style!r}; choose from {', '.join(STYLES)}")


_ARITH = re.compile(r"^What is (\d+) ([-+*]) (\d+)\?$")


def reasoning(item: MCItem) -> str:
    """The worked reasoning of an exemplar (Few-Shot CoT): `item.meta["reasoning"]` when the
    data set gives it; else, for the synthetic arithmetic questions, the computation; else a
    restatement of the right option."""
    if item.answer is None:
        raise ValueError("reasoning: an exemplar needs a correct answer")
    given = item.meta.get("reasoning") if item.meta else None
    if isinstance(given, str) and given.strip():
        return given.strip()
    m = _ARITH.match(item.question.strip())
    value = item.options[item.answer]
    if m:
        return f"{m[1]} {m[2]} {m[3]} = {value}."
    return f"The right option is {value}."


def exemplar(item: MCItem, fmt: str, *, cot: bool, style: str = "letter") -> str:
    """One solved exemplar: the question, (its reasoning,) the answer phrase."""
    answer = solved_answer(item, style)
    return f"{question_text(item, fmt)} {reasoning(item) + ' ' if cot else ''}{answer}"


def user_prompt(
    item: MCItem,
    *,
    instruction: str = BASE_INSTRUCTION,
    fmt: str = "paper2",
    shots: tuple[MCItem, ...] = (),
    cot_shots: bool = False,
    inducer: str = "",
    style: str = "letter",
) -> str:
    """The user message of a single-call technique, laid out as the paper's harness does:
    the instruction, a new line, the exemplars (a blank line after each), the question, and
    a thought inducer right after the open answer slot (Zero-Shot CoT)."""
    parts = [instruction + "\n"] if instruction else []
    parts += [exemplar(s, fmt, cot=cot_shots, style=style) + "\n\n" for s in shots]
    parts.append(question_text(item, fmt) + (f" {inducer}" if inducer else ""))
    return "".join(parts)


# ---------------------------------------------------------------------------------------------
# Answer extraction (Sec. 6.1.4): "being the only capitalized letter (A-D) within parentheses
# or following a phrase like 'The correct answer is'"

_TRIGGERED = re.compile(
    r"(?:the correct answer is|the answer to the problem is|the answer is|the answer to the "
    r"question is|the solution is|the right answer is|the correct solution is|the correct "
    r"answer is option|the most likely answer is|the most appropriate answer is|the correct "
    r"answer option is)\s*\(([A-D])\)"
    r"|\(([A-D])\) (?:is the correct answer|is the right option|is the most likely option"
    r"|seems to be the most likely answer)",
    re.I,
)
_PAREN = re.compile(r"\(([A-D])\)")


def paper_extract(text: str, item: MCItem | None = None) -> int | None:
    """The case study's extractor: the letter after an answer trigger ("the answer is (C)"),
    the first such match; else the letter of the only parenthesised capital A-D; else None."""
    m = _TRIGGERED.search(text)
    if m:
        return LETTERS.index((m[1] or m[2]).upper())
    found = _PAREN.findall(text)
    return LETTERS.index(found[0]) if len(found) == 1 else None


_VALUE = re.compile(r"the answer is\s*(.+?)\.?\s*$", re.I | re.M)


def value_extract(text: str, item: MCItem) -> int | None:
    """The miniature's extractor: the option whose text follows the last "The answer is"
    (`value` style); else the paper's extractor (a letter)."""
    found = _VALUE.findall(text)
    if found:
        value = found[-1].strip()
        if value in item.options:
            return item.options.index(value)
    return paper_extract(text)


def read_answer(text: str, item: MCItem, style: str = "letter") -> int | None:
    """The answer of a reply in `style`: the paper's extractor for letters, else by value."""
    return paper_extract(text) if style == "letter" else value_extract(text, item)
