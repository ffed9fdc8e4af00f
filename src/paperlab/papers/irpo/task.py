"""The miniature reasoning task: multi-step arithmetic with a chain of thought.

A problem is a chain of additions and subtractions, e.g. ``47+8-5+9``. Its chain of thought
(CoT) reduces the chain left to right, one step at a time, and ends with the final answer after
``#`` (GSM8K's ``#### 59`` habit)::

    prompt      47+8-5+9:
    completion  47+8=55,55-5=50,50+9=59#59

Only the final answer is checked (Sec. 2 of the paper: "a completion whose final answer matches
is a winner"), so a wrong intermediate step that still ends at the right number counts as a win,
and a right chain with a typo in the final answer as a loss - as with GSM8K.

Tokens are characters of a 20-symbol vocabulary plus PAD, BOS and EOS (:class:`CharTokenizer`).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

PAD, BOS, EOS = 0, 1, 2
_SYMBOLS = "0123456789+-=,:#"
_SPECIAL = 3


class CharTokenizer:
    """Characters of the task <-> ids (0 PAD, 1 BOS, 2 EOS, then one id per symbol)."""

    pad_id, bos_id, eos_id = PAD, BOS, EOS
    vocab_size = _SPECIAL + len(_SYMBOLS)
    name = "irpo-char-v1"  # checked when a checkpoint is loaded into a run

    def encode(self, text: str) -> list[int]:
        try:
            return [_SPECIAL + _SYMBOLS.index(ch) for ch in text]
        except ValueError:
            bad = next(ch for ch in text if ch not in _SYMBOLS)
            raise ValueError(f"text {text!r}: character {bad!r} is not in the vocabulary") from None

    def decode(self, ids: Sequence[int]) -> str:
        """Text of ``ids``; special tokens are dropped, decoding stops at EOS."""
        out = []
        for i in ids:
            if i == EOS:
                break
            if i >= _SPECIAL:
                out.append(_SYMBOLS[i - _SPECIAL])
        return "".join(out)


TOKENIZER = CharTokenizer()


@dataclass(frozen=True)
class ChainProblem:
    """``numbers[0] ops[0] numbers[1] ops[1] ...`` evaluated left to right."""

    numbers: tuple[int, ...]
    ops: tuple[str, ...]

    def __post_init__(self) -> None:
        if len(self.numbers) < 2 or len(self.ops) != len(self.numbers) - 1:
            raise ValueError("ChainProblem: need >= 2 numbers and one op between each pair")
        if any(op not in "+-" for op in self.ops):
            raise ValueError(f"ChainProblem: ops must be + or -, got {self.ops}")

    @property
    def prompt(self) -> str:
        text = str(self.numbers[0])
        for op, n in zip(self.ops, self.numbers[1:], strict=True):
            text += f"{op}{n}"
        return text + ":"

    def steps(self) -> list[tuple[int, str, int, int]]:
        """``(left, op, right, result)`` per step of the left-to-right reduction."""
        out, acc = [], self.numbers[0]
        for op, n in zip(self.ops, self.numbers[1:], strict=True):
            new = acc + n if op == "+" else acc - n
            out.append((acc, op, n, new))
            acc = new
        return out

    @property
    def answer(self) -> str:
        return str(self.steps()[-1][3])

    @property
    def solution(self) -> str:
        """The gold chain of thought and answer (what M0's SFT examples show)."""
        cot = ",".join(f"{a}{op}{b}={r}" for a, op, b, r in self.steps())
        return f"{cot}#{self.answer}"


def sample_chains(
    n: int, *, steps: int = 3, max_operand: int = 9, seed: int | random.Random = 0
) -> list[ChainProblem]:
    """``n`` problems: a 2-digit start, then ``steps`` additions or subtractions of operands in
    1..``max_operand``; no partial result is negative. ``steps`` and ``max_operand`` set the
    difficulty (each step is one more chance to slip a carry)."""
    if n < 0 or steps < 1 or max_operand < 1:
        raise ValueError(
            f"sample_chains: n >= 0, steps >= 1 and max_operand >= 1 please, got n={n}, "
            f"steps={steps}, max_operand={max_operand}"
        )
    rng = seed if isinstance(seed, random.Random) else random.Random(seed)
    out = []
    for _ in range(n):
        acc = rng.randint(10, 99)
        numbers, ops = [acc], []
        for _ in range(steps):
            b = rng.randint(1, max_operand)
            op = "-" if acc >= b and rng.random() < 0.5 else "+"
            acc = acc + b if op == "+" else acc - b
            numbers.append(b)
            ops.append(op)
        out.append(ChainProblem(tuple(numbers), tuple(ops)))
    return out


def final_answer(completion: str) -> str | None:
    """The final answer of a completion: the digits after its last ``#`` (None if absent)."""
    if "#" not in completion:
        return None
    tail = completion.rsplit("#", 1)[1]
    return tail if tail.isdigit() else None


def is_correct(problem: ChainProblem, completion: str) -> bool:
    """Whether the completion's final answer equals the problem's (the paper's reward)."""
    ans = final_answer(completion)
    return ans is not None and int(ans) == int(problem.answer)
