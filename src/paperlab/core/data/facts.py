"""A knowledge task with checkable answers: made-up facts ("the code of kiv is K").

Models trained on different random subsets of the facts know different things, so their
mistakes on a question differ: one knows the code, another confidently makes one up. That is
the situation ensembles, mixtures and juries of LLMs are built for, reproduced in miniature
with models that memorise their facts in a few hundred steps.
"""

from __future__ import annotations

import random
import re
import string
from collections.abc import Sequence
from dataclasses import dataclass

# one capital letter per code; none of them occurs in the fixed prompt text around it, so a
# reply or a list of references is read without ambiguity
CODES = "BCDFGHJKLMNPQTVXYZ"
_CODE = re.compile(rf"\b[{CODES}]\b")


@dataclass(frozen=True)
class Fact:
    name: str
    code: str

    @property
    def question(self) -> str:
        return f"What is the code of {self.name}?"

    @property
    def answer(self) -> str:
        return self.code

    def read(self, reply: str) -> str | None:
        """The code a reply gives (its last standalone code letter), or None."""
        found = _CODE.findall(reply)
        return found[-1] if found else None


def make_facts(n: int, *, seed: int = 0, name_len: int = 3, n_codes: int = 10) -> list[Fact]:
    """`n` facts with distinct random lowercase names and codes drawn from the first `n_codes`
    letters of CODES (a model that guesses is right 1 time in n_codes)."""
    if not 2 <= n_codes <= len(CODES):
        raise ValueError(f"make_facts: n_codes must be in [2, {len(CODES)}]")
    rng = random.Random(seed)
    if n > 26**name_len // 2:
        raise ValueError(f"make_facts: {n} facts is too many for names of {name_len} letters")
    names: set[str] = set()
    while len(names) < n:
        names.add("".join(rng.choices(string.ascii_lowercase, k=name_len)))
    return [Fact(name, rng.choice(CODES[:n_codes])) for name in sorted(names)]


def knowledge_split(
    facts: Sequence[Fact], rates: Sequence[float], *, seed: int = 0
) -> list[list[Fact]]:
    """For each rate, an independent random subset holding that share of the facts."""
    rng = random.Random(seed)
    out = []
    for rate in rates:
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"knowledge_split: rate {rate} not in [0, 1]")
        out.append(rng.sample(list(facts), round(rate * len(facts))))
    return out


def wrong_code(code: str, rng: random.Random, n_codes: int = 10) -> str:
    """Another code of the same alphabet."""
    return rng.choice([c for c in CODES[:n_codes] if c != code])


def answer_task(known: Sequence[Fact]):
    """Chat examples (messages, reply) asking one of the `known` facts: for
    `paperlab.core.llm.tiny.train_chat_model`."""

    def example(rng: random.Random) -> tuple[list[dict[str, str]], str]:
        f = rng.choice(known)
        return [{"role": "user", "content": f.question}], f.answer

    return example


def unseen_fact(taken: set[str], codes: str, rng: random.Random, name_len: int = 3) -> Fact:
    """A random fact whose name is not in `taken` (a fact no model was taught)."""
    while True:
        name = "".join(rng.choices(string.ascii_lowercase, k=name_len))
        if name not in taken:
            return Fact(name, rng.choice(codes))
