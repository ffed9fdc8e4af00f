"""A graded-answer task whose true quality is known by construction: 2-digit arithmetic answered
by rule-defined "systems" that make graded errors.

    items = make_graded_items(200, seed=0)
    items[0]   # GradedItem(instruction="What is 47+38?", response="86", reference="85",
               #            score=4, correct=False, system="careless", ...)
    grade("85", "86")   # 4: the score is a rule of the response and the reference

The rubric (`grade`), from the difference between the response's last integer and the reference:

    5  exact                        4  off by one
    3  a small error (off by 2-9)   2  a big error (off by 10 or more: a digit wrong)
    1  nonsense (no number at all)

`correct` is `score == 5`. Each `GradedSystem` draws the grade of its next answer from its own
distribution (an exact system, a careless one, ...), and the response is built to have exactly
that grade, so judges trained on such items can be checked against the truth. `Question` is the
problem itself ("What is 47+38?" / "What is 47-38?", never negative).
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

_INT = re.compile(r"-?\d+")
SCORES = (1, 2, 3, 4, 5)
# replies without a number: what a confused system says (grade 1)
NONSENSE = ("unknown", "no idea", "many", "a lot", "none", "maybe", "yes", "the sum", "ok")


@dataclass(frozen=True)
class Question:
    """`a op b` with 2-digit operands (by default); subtraction puts the larger operand first."""

    a: int
    b: int
    op: str = "+"

    def __post_init__(self) -> None:
        if self.op not in ("+", "-"):
            raise ValueError(f"Question.op must be '+' or '-', got {self.op!r}")
        if self.op == "-" and self.a < self.b:
            raise ValueError(f"Question: {self.a}-{self.b} is negative; put the larger first")

    @property
    def question(self) -> str:
        return f"What is {self.a}{self.op}{self.b}?"

    @property
    def value(self) -> int:
        return self.a + self.b if self.op == "+" else self.a - self.b

    @property
    def answer(self) -> str:
        return str(self.value)

    def read(self, reply: str) -> str | None:
        """The answer a reply gives (its last integer, without leading zeros), or None."""
        return read_int(reply)


def read_int(text: str) -> str | None:
    """The last integer in `text` (leading zeros dropped), or None."""
    found = _INT.findall(text)
    if not found:
        return None
    value = found[-1]
    sign, digits = ("-", value[1:]) if value.startswith("-") else ("", value)
    return sign + (digits.lstrip("0") or "0")


def grade(reference: str, response: str) -> int:
    """The rubric score 1..5 of `response` against the integer `reference` (module docstring)."""
    ref = read_int(reference)
    if ref is None:
        raise ValueError(f"grade: reference {reference!r} holds no integer")
    got = read_int(response)
    if got is None:
        return 1
    diff = abs(int(got) - int(ref))
    if diff == 0:
        return 5
    if diff == 1:
        return 4
    return 3 if diff < 10 else 2


def sample_questions(
    n: int, *, seed: int | random.Random = 0, digits: int = 2, ops: str = "+-"
) -> list[Question]:
    """`n` random questions with operands of exactly `digits` digits and an op from `ops`."""
    if n < 0:
        raise ValueError(f"sample_questions: n={n} must be >= 0")
    if digits < 1:
        raise ValueError(f"sample_questions: digits={digits} must be >= 1")
    if not ops or set(ops) - {"+", "-"}:
        raise ValueError(f"sample_questions: ops={ops!r} must be made of '+' and '-'")
    rng = seed if isinstance(seed, random.Random) else random.Random(seed)
    lo, hi = 10 ** (digits - 1), 10**digits - 1
    out = []
    for _ in range(n):
        a, b, op = rng.randint(lo, hi), rng.randint(lo, hi), rng.choice(ops)
        if op == "-" and a < b:
            a, b = b, a
        out.append(Question(a, b, op))
    return out


def response_with_score(q: Question, score: int, rng: random.Random) -> str:
    """A response to `q` whose `grade` is exactly `score` (never negative)."""
    if score not in SCORES:
        raise ValueError(f"response_with_score: score={score} must be one of {SCORES}")
    v = q.value
    if score == 5:
        return str(v)
    if score == 1:
        return rng.choice(NONSENSE)
    if score == 4:
        offsets = [1, -1]
    elif score == 3:
        offsets = [d for d in range(2, 10)] + [-d for d in range(2, 10)]
    elif rng.random() < 0.6:  # score 2: a digit wrong (the tens or the hundreds)
        offsets = [10, 20, 30, -10, -20, -30, 100, -100]
    else:  # score 2: a big error
        offsets = [d for d in range(11, 60)] + [-d for d in range(11, 60)]
    offsets = [d for d in offsets if v + d >= 0]
    return str(v + rng.choice(offsets))


@dataclass(frozen=True)
class GradedSystem:
    """A rule-defined answering system: the probability of each grade 1..5 of its answers."""

    name: str
    grade_probs: Mapping[int, float]

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("GradedSystem.name must be non-empty")
        if set(self.grade_probs) - set(SCORES):
            raise ValueError(f"GradedSystem.grade_probs: keys must be in {SCORES}")
        if any(p < 0 for p in self.grade_probs.values()) or sum(self.grade_probs.values()) <= 0:
            raise ValueError("GradedSystem.grade_probs: weights >= 0, not all 0")

    def draw(self, rng: random.Random) -> int:
        scores = sorted(self.grade_probs)
        return rng.choices(scores, weights=[self.grade_probs[s] for s in scores])[0]


# three systems of different quality; over them every grade is common and about 40% of the
# answers are exactly right (a balanced binary label)
SYSTEMS: tuple[GradedSystem, ...] = (
    GradedSystem("strong", {5: 0.65, 4: 0.15, 3: 0.1, 2: 0.07, 1: 0.03}),
    GradedSystem("careless", {5: 0.35, 4: 0.25, 3: 0.2, 2: 0.15, 1: 0.05}),
    GradedSystem("weak", {5: 0.2, 4: 0.15, 3: 0.2, 2: 0.3, 1: 0.15}),
)


@dataclass(frozen=True)
class GradedItem:
    """One answer to grade, with its true rubric score (by construction)."""

    instruction: str  # the question ("What is 47+38?")
    response: str  # the answer under test
    reference: str  # the exact answer
    score: int  # 1..5, grade(reference, response)
    correct: bool  # score == 5
    system: str  # the system that answered
    question: Question


def graded_item(q: Question, response: str, system: str) -> GradedItem:
    """A `GradedItem` for any response (its score from `grade`)."""
    score = grade(q.answer, response)
    return GradedItem(q.question, response, q.answer, score, score == 5, system, q)


def make_graded_items(
    n: int,
    *,
    seed: int | random.Random = 0,
    systems: Sequence[GradedSystem] = SYSTEMS,
    questions: Sequence[Question] | None = None,
    digits: int = 2,
    ops: str = "+-",
) -> list[GradedItem]:
    """`n` graded items: for each, a question (random, or drawn from `questions`), a system
    (uniformly from `systems`) and a response with the grade that system drew."""
    if n < 0:
        raise ValueError(f"make_graded_items: n={n} must be >= 0")
    if not systems:
        raise ValueError("make_graded_items: systems must be non-empty")
    if questions is not None and not questions:
        raise ValueError("make_graded_items: questions, when given, must be non-empty")
    rng = seed if isinstance(seed, random.Random) else random.Random(seed)
    items = []
    for _ in range(n):
        if questions is None:
            q = sample_questions(1, seed=rng, digits=digits, ops=ops)[0]
        else:
            q = rng.choice(list(questions))
        system = rng.choice(list(systems))
        items.append(graded_item(q, response_with_score(q, system.draw(rng), rng), system.name))
    return items
