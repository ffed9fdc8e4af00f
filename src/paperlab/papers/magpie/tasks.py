"""The miniature's instruction distribution: exact tasks a tiny byte-level model can learn.

Each task has a few phrasings (the "human-written" instructions the aligned model is tuned on)
and an exact solver, so any instruction can be parsed back into (task, arguments), answered,
and a reply checked. That gives the miniature exact tags where the paper asks a judge model
(`parse` -> well-formed or not, `rule_tags` -> difficulty, input quality, task category).

    rng = random.Random(0)
    inst, reply = human_example(rng)     # ("Add 3 and 4.", "7")
    parse("Add 3 and 4.")                # Parsed(task="add", args=("3", "4"), exact=True, ...)
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from dataclasses import dataclass

from paperlab.core.data.facts import make_facts

LETTERS = "abcdefghijklmnopqrstuvwxyz"
WORD_LEN = (3, 6)  # training words: 3..6 letters
MAX_NUMBER = 9  # training numbers: one digit
N_FACTS = 48  # the made-up facts the aligned model knows ("the code of kiv is K")
FACTS = {f.name: f.code for f in make_facts(N_FACTS, seed=2406)}


@dataclass(frozen=True)
class Task:
    name: str
    category: str  # one of the official 12 task tags (curate.TASK_CATEGORIES)
    phrasings: tuple[str, ...]  # with {w} (a word) or {a} {b} (numbers)
    solve: Callable[..., str | None]
    kind: str  # "word", "fact", "letter" or "numbers"


# Tasks a tiny byte model learns within a CPU budget: look-ups it can memorise (facts, digit
# pairs, letters) and letter counting. Copying tasks (reverse, uppercase a word, the first
# letter) stayed under 15% after 800 tuning steps at this size.
TASKS: dict[str, Task] = {
    t.name: t
    for t in (
        Task(
            "code",
            "Information seeking",
            ("What is the code of {w}?", "Tell me the code of {w}.", "Which code does {w} have?"),
            lambda w: FACTS.get(w),
            "fact",
        ),
        Task(
            "count",
            "Data analysis",
            ("How many letters are in {w}?", "Count the letters of {w}."),
            lambda w: str(len(w)),
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
            "upper",
            "Editing",
            ("Uppercase the letter {w}.", "Write {w} as a capital letter."),
            lambda w: w.upper(),
            "letter",
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
KEYWORDS = ("code", "capital", "uppercase", "letter", "count", "add", "sum", "larger", "bigger")
KEYWORDS += ("what is", "which", "write", "tell me")


@dataclass(frozen=True)
class Parsed:
    task: str
    args: tuple[str, ...]
    exact: bool  # the phrasing verbatim (case and punctuation), not just the relaxed form
    in_domain: bool  # the arguments lie in the training range (word length, number size)

    @property
    def answer(self) -> str | None:
        """The exact answer (None: a made-up fact nobody knows)."""
        return TASKS[self.task].solve(*self.args)


def parse(instruction: str) -> Parsed | None:
    """(task, arguments) of an instruction in one of the task phrasings, else None."""
    text = instruction.strip()
    for task, phrasing, pattern in PATTERNS:
        m = pattern.match(text)
        if m is None:
            continue
        groups = m.groupdict()
        if task.kind != "numbers":
            w = groups["w"]
            args: tuple[str, ...] = (w,)
            if task.kind == "word":
                in_domain = w.islower() and WORD_LEN[0] <= len(w) <= WORD_LEN[1]
            elif task.kind == "fact":
                in_domain = w in FACTS
            else:
                in_domain = len(w) == 1 and w.islower()
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
    if t.kind != "numbers":
        if t.kind == "word":
            w = "".join(rng.choice(LETTERS) for _ in range(rng.randint(*WORD_LEN)))
        elif t.kind == "fact":
            w = rng.choice(sorted(FACTS))
        else:
            w = rng.choice(LETTERS)
        values = {"w": w}
        args: tuple[str, ...] = (w,)
    else:
        nums = [str(rng.randint(0, MAX_NUMBER)) for _ in range(2)]
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


def is_correct(reply: str, answer: str | None) -> bool:
    return answer is not None and reply.strip() == answer


def distinct_rate(instructions: list[str]) -> float:
    return len(set(instructions)) / max(len(instructions), 1)


def human_distinct_rate(n: int, *, seed: int) -> float:
    """The distinct rate of `n` human-written instructions: the reference for an extraction
    (the task family's instance spaces are finite, so its own samples repeat)."""
    rng = random.Random(f"magpie-human-distinct-{seed}")
    return distinct_rate([sample_instruction(rng)[0] for _ in range(n)])
