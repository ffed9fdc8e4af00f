"""A task with checkable answers for the miniature LLM-pipeline claims: multi-digit addition.

`Problem.question` is what a user asks ("What is 347+582?"), `Problem.answer` the exact answer
("929"); `is_correct` reads the last integer of a free-form reply. `corrupt` makes the kind of
wrong answer a small model makes (a digit off by one, a dropped carry, a random digit), so
training data for aggregators and judges can hold plausible mistakes.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

_INT = re.compile(r"-?\d+")


@dataclass(frozen=True)
class Problem:
    a: int
    b: int
    op: str = "+"  # "+" for the miniature models; "*" makes a task hard enough for real LLMs

    def __post_init__(self) -> None:
        if self.op not in ("+", "*"):
            raise ValueError(f"Problem: op must be + or *, got {self.op!r}")

    @property
    def question(self) -> str:
        return f"What is {self.a}{self.op}{self.b}?"

    @property
    def answer(self) -> str:
        return str(self.a + self.b if self.op == "+" else self.a * self.b)

    def read(self, reply: str) -> str | None:
        """The answer a reply gives (its last integer), or None."""
        return extract_answer(reply)


def sample_problems(
    n: int, *, digits: int = 3, op: str = "+", seed: int | random.Random = 0
) -> list[Problem]:
    """`n` problems with operands of exactly `digits` digits."""
    rng = seed if isinstance(seed, random.Random) else random.Random(seed)
    lo, hi = 10 ** (digits - 1), 10**digits - 1
    return [Problem(rng.randint(lo, hi), rng.randint(lo, hi), op) for _ in range(n)]


def extract_answer(text: str) -> str | None:
    """The last integer in a reply, or None."""
    found = _INT.findall(text)
    return found[-1].lstrip("0") or "0" if found else None


def is_correct(problem: Problem, reply: str) -> bool:
    return extract_answer(reply) == problem.answer


def corrupt(answer: str, rng: random.Random) -> str:
    """A plausible wrong answer: one digit +-1 (a missed or extra carry) or replaced."""
    digits = list(answer)
    while True:
        i = rng.randrange(len(digits))
        d = int(digits[i])
        if rng.random() < 0.7:
            d = (d + rng.choice((-1, 1))) % 10
        else:
            d = rng.randrange(10)
        out = digits.copy()
        out[i] = str(d)
        wrong = "".join(out).lstrip("0") or "0"
        if wrong != answer:
            return wrong
