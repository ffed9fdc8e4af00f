"""The miniature's instruction distribution: exact tasks a tiny byte-level model can learn.

Each task has a few phrasings (the "human-written" instructions the aligned model is tuned on)
and an exact solver, so any instruction can be parsed back into (task, arguments), answered,
and a reply checked. That gives the miniature exact tags where the paper asks a judge model
(`parse` -> well-formed or not, `rule_tags` -> difficulty, input quality, task category).

    rng = random.Random(0)
    inst, reply = human_example(rng)     # ("Reverse the word kiv.", "vik")
    parse("Reverse the word kiv.")       # Parsed(task="reverse", args=("kiv",), exact=True, ...)
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from dataclasses import dataclass

LETTERS = "abcdefghijklmnopqrstuvwxyz"
WORD_LEN = (3, 5)  # training words: 3..5 letters
MAX_NUMBER = 49  # training numbers: 0..49


@dataclass(frozen=True)
class Task:
    name: str
    category: str  # one of the official 12 task tags (curate.TASK_CATEGORIES)
    phrasings: tuple[str, ...]  # with {w} (a word) or {a} {b} {c} (numbers)
    solve: Callable[..., str]
    kind: str  # "word" or "numbers"


TASKS: dict[str, Task] = {
    t.name: t
    for t in (
        Task(
            "reverse",
            "Editing",
            ("Reverse the word {w}.", "Write {w} backwards.", "Spell {w} in reverse."),
            lambda w: w[::-1],
            "word",
        ),
        Task(
            "upper",
            "Editing",
            ("Write {w} in capital letters.", "Uppercase the word {w}.", "Make {w} all caps."),
            lambda w: w.upper(),
            "word",
        ),
        Task(
            "count",
            "Information seeking",
            ("How many letters are in {w}?", "Count the letters of {w}."),
            lambda w: str(len(w)),
            "word",
        ),
        Task(
            "first",
            "Information seeking",
            ("What is the first letter of {w}?", "Which letter does {w} start with?"),
            lambda w: w[0],
            "word",
        ),
        Task(
            "add",
            "Math",
            ("What is {a}+{b}?", "Add {a} and {b}.", "Compute the sum of {a} and {b}."),
            lambda a, b: str(int(a) + int(b)),
            "numbers",
        ),
        Task(
            "max",
            "Reasoning",
            ("Which is larger, {a} or {b}?", "Pick the bigger number: {a} or {b}."),
            lambda a, b: str(max(int(a), int(b))),
            "numbers",
        ),
        Task(
            "min3",
            "Data analysis",
            ("What is the smallest of {a}, {b} and {c}?", "Find the minimum of {a}, {b}, {c}."),
            lambda a, b, c: str(min(int(a), int(b), int(c))),
            "numbers",
        ),
    )
}


def _pattern(phrasing: str) -> re.Pattern:
    body = re.escape(phrasing)
    body = body.replace(re.escape("{w}"), r"(?P<w>[A-Za-z]+)")
    for k in "abc":
        body = body.replace(re.escape("{" + k + "}"), rf"(?P<{k}>\d+)")
    # the relaxed form: any case, the final punctuation optional
    for end in (re.escape("."), re.escape("?")):
        body = body.removesuffix(end)
    return re.compile("^" + body + r"[.?]?$", re.IGNORECASE)


PATTERNS = [(t, p, _pattern(p)) for t in TASKS.values() for p in t.phrasings]
KEYWORDS = ("reverse", "backwards", "capital", "uppercase", "caps", "letter", "count", "add")
KEYWORDS += ("sum", "larger", "bigger", "smallest", "minimum", "what is", "which", "write")


@dataclass(frozen=True)
class Parsed:
    task: str
    args: tuple[str, ...]
    exact: bool  # the phrasing verbatim (case and punctuation), not just the relaxed form
    in_domain: bool  # the arguments lie in the training range (word length, number size)

    @property
    def answer(self) -> str:
        return TASKS[self.task].solve(*self.args)


def parse(instruction: str) -> Parsed | None:
    """(task, arguments) of an instruction in one of the task phrasings, else None."""
    text = instruction.strip()
    for task, phrasing, pattern in PATTERNS:
        m = pattern.match(text)
        if m is None:
            continue
        groups = m.groupdict()
        if task.kind == "word":
            args: tuple[str, ...] = (groups["w"],)
            in_domain = groups["w"].islower() and WORD_LEN[0] <= len(groups["w"]) <= WORD_LEN[1]
        else:
            args = tuple(groups[k] for k in "abc" if groups.get(k) is not None)
            in_domain = all(str(int(x)) == x and int(x) <= MAX_NUMBER for x in args)
        exact = text == phrasing.format(**groups)
        return Parsed(task.name, args, exact, in_domain)
    return None


def sample_instruction(rng: random.Random, task: str | None = None) -> tuple[str, Parsed]:
    """A random instruction of the training distribution (task drawn uniformly)."""
    t = TASKS[task] if task else rng.choice(list(TASKS.values()))
    phrasing = rng.choice(t.phrasings)
    if t.kind == "word":
        w = "".join(rng.choice(LETTERS) for _ in range(rng.randint(*WORD_LEN)))
        values = {"w": w}
        args: tuple[str, ...] = (w,)
    else:
        n = 3 if "{c}" in phrasing else 2
        nums = [str(rng.randint(0, MAX_NUMBER)) for _ in range(n)]
        values = dict(zip("abc", nums, strict=False))
        args = tuple(nums)
    return phrasing.format(**values), Parsed(t.name, args, True, True)


def human_example(rng: random.Random) -> tuple[str, str]:
    """(instruction, correct reply): one example of the aligned model's tuning data."""
    inst, parsed = sample_instruction(rng)
    return inst, parsed.answer


def held_out_set(n: int, *, seed: int) -> list[tuple[str, str]]:
    """`n` (instruction, answer) pairs from a seed the training never uses, each task equally
    often (the evaluation set of the claims)."""
    rng = random.Random(f"magpie-held-out-{seed}")
    names = list(TASKS)
    out = []
    for i in range(n):
        inst, parsed = sample_instruction(rng, names[i % len(names)])
        out.append((inst, parsed.answer))
    return out


def is_correct(reply: str, answer: str) -> bool:
    return reply.strip() == answer
