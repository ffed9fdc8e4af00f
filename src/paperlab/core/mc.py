"""Multiple-choice evaluation, shared by the papers that score models on MC questions
(MMLU-Redux, the Prompt Report's MMLU case study).

- `MCItem`: a question, exactly four options and the index of the correct one (or None: the
  "no correct answer" error of MMLU-Redux's taxonomy).
- `mmlu_prompt`: the MMLU prompt of Hendrycks et al. (a subject header, optional solved
  examples, the question, its options lettered A-D, "Answer:").
- `extract_choice`: the letter a free-form reply commits to ("The answer is (C)", "B.", ...).
- `read_mc_jsonl`: items from JSONL; a malformed item is reported and skipped with its line.
- `accuracy`: accuracy with a bootstrap interval; `rank_models` / `ranking_change`: the order
  of several models and how it moves between two scorings (Kendall tau, per-model moves).
- `make_mc_items`: synthetic questions whose answers are exact by construction (arithmetic,
  comparison, sequences, letter counting) in several "subjects" of different difficulty.

    items = make_mc_items(200, seed=0)
    prompt = mmlu_prompt(items[0], shots=items[1:4])
    choice = extract_choice("Let's think. 7 + 5 = 12, so the answer is (B).")   # -> 1
    acc = accuracy([choice == items[0].answer])
"""

from __future__ import annotations

import json
import os
import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from paperlab.core.files import write_jsonl_atomic
from paperlab.core.stats import kendall_tau

LETTERS = "ABCD"
N_OPTIONS = len(LETTERS)


@dataclass(frozen=True)
class MCItem:
    """One four-option question. `answer`: the index (0-3) of the correct option, or None when
    no option is correct (an MMLU-Redux "no correct answer" item)."""

    question: str
    options: tuple[str, ...]
    answer: int | None
    subject: str = ""
    id: str = ""
    meta: Mapping[str, object] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.question, str) or not self.question.strip():
            raise ValueError("MCItem: question must be a non-empty string")
        opts = tuple(self.options) if isinstance(self.options, list | tuple) else None
        if opts is None or len(opts) != N_OPTIONS or not all(isinstance(o, str) for o in opts):
            raise ValueError(
                f"MCItem: options must be {N_OPTIONS} strings, got {self.options!r}"[:200]
            )
        object.__setattr__(self, "options", opts)
        if self.answer is not None and (
            isinstance(self.answer, bool)
            or not isinstance(self.answer, int)
            or not 0 <= self.answer < N_OPTIONS
        ):
            raise ValueError(
                f"MCItem: answer must be 0-{N_OPTIONS - 1} or None, got {self.answer!r}"
            )

    @property
    def answer_letter(self) -> str | None:
        return None if self.answer is None else LETTERS[self.answer]

    def to_dict(self) -> dict:
        out = {"question": self.question, "options": list(self.options), "answer": self.answer}
        out.update({k: v for k, v in (("subject", self.subject), ("id", self.id)) if v})
        if self.meta:
            out["meta"] = dict(self.meta)
        return out


def format_question(item: MCItem) -> str:
    """The question and its lettered options, one per line (the MMLU layout)."""
    lines = [item.question.strip()]
    lines += [f"{letter}. {opt}" for letter, opt in zip(LETTERS, item.options, strict=True)]
    return "\n".join(lines)


def mmlu_prompt(item: MCItem, *, shots: Sequence[MCItem] = (), subject: str | None = None) -> str:
    """Hendrycks et al.'s MMLU prompt: "The following are multiple choice questions (with
    answers) about {subject}.", each solved shot as question + options + "Answer: X", then the
    question with "Answer:" left open."""
    subject = (subject if subject is not None else item.subject).replace("_", " ").strip()
    header = "The following are multiple choice questions (with answers)"
    header += f" about {subject}.\n\n" if subject else ".\n\n"
    parts = []
    for shot in shots:
        if shot.answer is None:
            raise ValueError("mmlu_prompt: shots must have a correct answer")
        parts.append(f"{format_question(shot)}\nAnswer: {shot.answer_letter}\n\n")
    return header + "".join(parts) + f"{format_question(item)}\nAnswer:"


# Commitments, strongest first; within a pattern the last match wins (a chain of thought may
# mention other options before concluding).
_PATTERNS = [
    re.compile(r"answer\s*(?:is|:)?\s*(?:option\s*)?\(?\s*([A-D])\s*\)?(?![A-Za-z])", re.I),
    re.compile(r"^\s*\(?([A-D])\)?(?:[.):]|\s*$)"),
    re.compile(r"\(([A-D])\)"),
]
_LONE = re.compile(r"(?<![A-Za-z])([A-D])(?![A-Za-z])")


def extract_choice(text: str) -> int | None:
    """The option (0-3) a reply commits to, or None. In order: the last "answer is X" /
    "Answer: (X)"; a reply that starts with the letter ("B", "(B)", "B. 12"); the last
    parenthesised letter; a single distinct lone capital A-D in the whole reply."""
    if not isinstance(text, str):
        raise TypeError(f"extract_choice: text must be a string, got {type(text).__name__}")
    for pattern in _PATTERNS:
        found = pattern.findall(text)
        if found:
            return LETTERS.index(found[-1].upper())
    lone = set(_LONE.findall(text))
    return LETTERS.index(lone.pop()) if len(lone) == 1 else None


# ---------------------------------------------------------------------------------------------
# Data in


@dataclass
class ReadReport:
    items: list[MCItem]
    skipped: list[str]  # "line N: why", one per skipped line

    def summary(self) -> str:
        return f"{len(self.items)} items read, {len(self.skipped)} skipped"


def item_from_dict(d: Mapping) -> MCItem:
    """An `MCItem` from {"question", "options"|"choices", "answer"} (answer: 0-3, a letter,
    or null); ValueError naming the field otherwise."""
    if not isinstance(d, Mapping):
        raise ValueError("an item must be a JSON object")
    options = d.get("options", d.get("choices"))
    answer = d.get("answer")
    if isinstance(answer, str):
        if answer.strip().upper() not in LETTERS or not answer.strip():
            raise ValueError(f"answer {answer!r} is not a letter A-D, an index 0-3 or null")
        answer = LETTERS.index(answer.strip().upper())
    return MCItem(
        question=d.get("question", ""),
        options=options if isinstance(options, list | tuple) else (),
        answer=answer,
        subject=str(d.get("subject", "")),
        id=str(d.get("id", "")),
        meta=dict(d.get("meta", {})) if isinstance(d.get("meta", {}), Mapping) else {},
    )


def read_mc_jsonl(path: str | os.PathLike) -> ReadReport:
    """Items of a JSONL file. A line that is not an item (bad JSON, not four options, an answer
    out of range) is skipped and reported with its line number: never silently dropped."""
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"path: no such file {file}")
    items, skipped = [], []
    with open(file, "rb") as f:
        for n, raw in enumerate(f, 1):
            if not raw.strip():
                continue
            try:
                items.append(item_from_dict(json.loads(raw.decode("utf-8"))))
            except UnicodeDecodeError:
                skipped.append(f"line {n}: not UTF-8")
            except (ValueError, TypeError) as e:
                skipped.append(f"line {n}: {e}")
    return ReadReport(items, skipped)


def write_mc_jsonl(items: Sequence[MCItem], path: str | os.PathLike) -> Path:
    """Write items as JSONL atomically (a temp file renamed into place)."""
    return write_jsonl_atomic(path, (item.to_dict() for item in items))


# ---------------------------------------------------------------------------------------------
# Scores


@dataclass(frozen=True)
class Accuracy:
    value: float
    low: float
    high: float
    n: int

    def __str__(self) -> str:
        return f"{self.value:.3f} [{self.low:.3f}, {self.high:.3f}] (n={self.n})"


def accuracy(
    correct: Sequence[bool], *, level: float = 0.95, n_boot: int = 2000, seed: int = 0
) -> Accuracy:
    """Accuracy and its percentile-bootstrap `level` interval over items."""
    if not len(correct):
        raise ValueError("accuracy: correct is empty")
    if not 0 < level < 1:
        raise ValueError(f"accuracy: level must be in (0, 1), got {level}")
    x = np.asarray(correct, dtype=float)
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, len(x), size=(n_boot, len(x)))].mean(axis=1)
    tail = (1 - level) / 2
    return Accuracy(
        float(x.mean()),
        float(np.quantile(means, tail)),
        float(np.quantile(means, 1 - tail)),
        len(x),
    )


def rank_models(scores: Mapping[str, float]) -> list[str]:
    """Model names, best first (ties broken by name, so the order is deterministic)."""
    return sorted(scores, key=lambda m: (-float(scores[m]), m))


def ranking_change(before: Mapping[str, float], after: Mapping[str, float]) -> dict[str, float]:
    """How the order of the same models moves between two scorings: Kendall tau-b between the
    scores (1 = same order), the number of models whose rank changed, the largest move, and
    each model's move (positive = up)."""
    if set(before) != set(after) or len(before) < 2:
        raise ValueError("ranking_change: need the same >= 2 models in before and after")
    names = sorted(before)
    r0 = {m: i for i, m in enumerate(rank_models(before))}
    r1 = {m: i for i, m in enumerate(rank_models(after))}
    moves = {m: r0[m] - r1[m] for m in names}
    out = {
        "kendall_tau": kendall_tau([before[m] for m in names], [after[m] for m in names]),
        "n_moved": float(sum(v != 0 for v in moves.values())),
        "max_move": float(max(abs(v) for v in moves.values())),
    }
    out.update({f"move_{m}": float(v) for m, v in moves.items()})
    return out


# ---------------------------------------------------------------------------------------------
# Synthetic questions with exact answers

SUBJECTS = ("addition", "subtraction", "multiplication", "comparison", "sequences", "counting")


def _distractors(right: int, rng: random.Random, spread: int) -> list[int]:
    """Three distinct plausible wrong values near `right` (off by small amounts)."""
    wrong: set[int] = set()
    while len(wrong) < N_OPTIONS - 1:
        v = right + rng.choice([-1, 1]) * rng.randint(1, max(1, spread))
        if v != right and v >= 0:
            wrong.add(v)
    return sorted(wrong)


def _question(subject: str, rng: random.Random) -> tuple[str, int, list[int]]:
    """(question, right value, three wrong values) for one subject."""
    if subject == "addition":
        a, b = rng.randint(10, 99), rng.randint(10, 99)
        return f"What is {a} + {b}?", a + b, _distractors(a + b, rng, 11)
    if subject == "subtraction":
        a, b = rng.randint(50, 99), rng.randint(10, 49)
        return f"What is {a} - {b}?", a - b, _distractors(a - b, rng, 11)
    if subject == "multiplication":
        a, b = rng.randint(3, 12), rng.randint(3, 12)
        return f"What is {a} * {b}?", a * b, _distractors(a * b, rng, max(a, b))
    if subject == "comparison":
        values = rng.sample(range(10, 100), N_OPTIONS)
        best = max(values)
        return "Which number is the largest?", best, [v for v in values if v != best]
    if subject == "sequences":
        start, step = rng.randint(1, 20), rng.randint(2, 9)
        seq = [start + i * step for i in range(4)]
        nxt = start + 4 * step
        return f"What comes next: {', '.join(map(str, seq))}, ...?", nxt, _distractors(nxt, rng, 7)
    if subject == "counting":
        letter = rng.choice("abcde")
        word = "".join(rng.choice("abcde") for _ in range(rng.randint(6, 10)))
        n = word.count(letter)
        return f"How many times does '{letter}' occur in '{word}'?", n, _distractors(n, rng, 3)
    raise ValueError(f"subject: unknown {subject!r}; choose from {', '.join(SUBJECTS)}")


def make_mc_items(
    n: int, *, seed: int = 0, subjects: Sequence[str] = SUBJECTS, prefix: str = "q"
) -> list[MCItem]:
    """`n` synthetic questions, subjects in turn, the correct option at a uniformly random
    position; the same (n, seed, subjects) always gives the same items."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"make_mc_items: n must be a non-negative int, got {n!r}")
    if not subjects:
        raise ValueError("make_mc_items: subjects is empty")
    for s in subjects:
        if s not in SUBJECTS:
            raise ValueError(f"subjects: unknown {s!r}; choose from {', '.join(SUBJECTS)}")
    rng = random.Random(seed)
    items = []
    for i in range(n):
        subject = subjects[i % len(subjects)]
        question, right, wrong = _question(subject, rng)
        values = wrong[: N_OPTIONS - 1]
        pos = rng.randrange(N_OPTIONS)
        values.insert(pos, right)
        options = tuple(str(v) for v in values)
        items.append(MCItem(question, options, pos, subject=subject, id=f"{prefix}{i}"))
    return items
