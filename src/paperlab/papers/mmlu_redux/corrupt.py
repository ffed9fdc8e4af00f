"""The corruption tool (the paper's LabelChaos, Sec. 4): inject each error type of the taxonomy
into clean multiple-choice records, with known labels, at chosen rates.

The strategies are the official corruptors':
- ``wrong_groundtruth``: the ground truth moves to a random wrong choice;
- ``no_correct_answer``: the correct choice is replaced by "every option listed" and the ground
  truth becomes n/a (None);
- ``multiple_correct_answers``: a second choice with the same meaning as the correct one is
  inserted at a random position (five choices);
- ``bad_options_clarity``: a wrong choice is split in the middle into two choices (five choices),
  the parsing accident the paper saw in MMLU;
- ``bad_question_clarity``: the question is rewritten to be less clear (the official code asks an
  LLM, with four instructions: less clear in general, context removed, a reference to external
  content, a reference to another question).

The two rewrites that need an LLM are hooks: ``rephrase(text, rng) -> text`` (same meaning) and
``unclear(question, rng) -> question``; any callable works, e.g. one calling a model through
`paperlab.core.llm`. The defaults are rule-based (see `rule_rephrase`, `rule_unclear`).
"""

from __future__ import annotations

import copy
import random
import re
from collections.abc import Callable, Mapping, Sequence

from paperlab.papers.mmlu_redux.records import Record
from paperlab.papers.mmlu_redux.taxonomy import ERROR_TYPES, OK

NO_CORRECT_TEXT = "every option listed"  # the official replacement

Rewrite = Callable[[str, random.Random], str]

_NUMBER_WORDS = "zero one two three four five six seven eight nine ten eleven twelve".split()


# DEVIATION: the official corruptor asks an LLM for a paraphrase; this is a rule.
def rule_rephrase(text: str, rng: random.Random) -> str:
    """The same answer in other words (DEVIATION: the official code asks an LLM): a number
    spelled out or given a decimal, else the text wrapped in a paraphrasing phrase."""
    t = text.strip()
    if re.fullmatch(r"-?\d+", t):
        n = int(t)
        return _NUMBER_WORDS[n] if 0 <= n < len(_NUMBER_WORDS) else f"{n}.0"
    return rng.choice([f"the one called {t}", f"{t} (that is the one)", f"it is {t}"])


# DEVIATION: the official corruptor asks an LLM for a less clear question; this is a rule.
def rule_unclear(question: str, rng: random.Random) -> str:
    """The question made less clear by one of the official four strategies, applied by rule
    (DEVIATION: the official code asks an LLM): vaguer wording, context removed (its last
    content words dropped), a reference to external content, a reference to another question."""
    q = question.strip()
    words = q.rstrip("?.").split()
    strategy = rng.randrange(4)
    if strategy == 0 and len(words) > 2:
        return f"Regarding the earlier case, {words[0].lower()} {' '.join(words[1:-1])} it?"
    if strategy == 1 and len(words) > 3:
        keep = max(2, len(words) // 2)
        return " ".join(words[:keep]) + "?"
    if strategy == 2:
        return f"{q.rstrip('?.')} in the table above?"
    return f"{q.rstrip('?.')}, as in question {rng.randint(2, 60)}?"


def wrong_groundtruth(r: Record, rng: random.Random) -> Record:
    wrong = [i for i in range(len(r.choices)) if i != r.answer]
    out = copy.deepcopy(r)
    out.answer = rng.choice(wrong)
    out.meta["original_groundtruth"] = r.answer
    return out


def no_correct_answer(r: Record, rng: random.Random) -> Record:
    out = copy.deepcopy(r)
    out.meta["original_correct"] = r.choices[r.answer]
    out.choices[r.answer] = NO_CORRECT_TEXT
    out.answer = None
    return out


def multiple_correct_answers(r: Record, rng: random.Random, rephrase: Rewrite) -> Record:
    out = copy.deepcopy(r)
    correct = r.choices[r.answer]
    added = rephrase(correct, rng)
    out.choices.insert(rng.randrange(len(out.choices)), added)
    out.answer = out.choices.index(correct)
    out.meta["added_correct_answer"] = added
    return out


def bad_options_clarity(r: Record, rng: random.Random) -> Record:
    out = copy.deepcopy(r)
    correct = r.choices[r.answer]
    i = rng.choice([j for j in range(len(r.choices)) if j != r.answer])
    split = out.choices.pop(i)
    middle = len(split) // 2
    out.choices[i:i] = [split[:middle], split[middle:]]
    out.answer = out.choices.index(correct)
    return out


def bad_question_clarity(r: Record, rng: random.Random, unclear: Rewrite) -> Record:
    out = copy.deepcopy(r)
    out.question = unclear(r.question, rng)
    out.meta["original_question"] = r.question
    return out


def corrupt(
    record: Record,
    error_type: str,
    rng: random.Random,
    *,
    rephrase: Rewrite = rule_rephrase,
    unclear: Rewrite = rule_unclear,
) -> Record:
    """A copy of a clean record (``error_type`` ok, a ground truth) with one error injected,
    labelled with it."""
    if record.error_type != OK or record.answer is None:
        raise ValueError("record: only clean records (ok, with a ground truth) can be corrupted")
    if error_type == OK:
        return copy.deepcopy(record)
    if error_type not in ERROR_TYPES:
        raise ValueError(f"error_type: unknown {error_type!r}; one of {', '.join(ERROR_TYPES)}")
    out = {
        "wrong_groundtruth": lambda: wrong_groundtruth(record, rng),
        "no_correct_answer": lambda: no_correct_answer(record, rng),
        "multiple_correct_answers": lambda: multiple_correct_answers(record, rng, rephrase),
        "bad_options_clarity": lambda: bad_options_clarity(record, rng),
        "bad_question_clarity": lambda: bad_question_clarity(record, rng, unclear),
    }[error_type]()
    out.error_type = error_type
    out.meta["corrupted_from"] = record.id or None
    return out


def check_rates(rates: Mapping[str, float]) -> dict[str, float]:
    """The rates as a dict, validated: known error types, each in [0, 1], sum <= 1."""
    out = {}
    for k, v in dict(rates).items():
        if k not in ERROR_TYPES:
            raise ValueError(f"rates: unknown error type {k!r}; one of {', '.join(ERROR_TYPES)}")
        if isinstance(v, bool) or not isinstance(v, int | float) or not 0 <= v <= 1:
            raise ValueError(f"rates: {k}={v!r} must be a number in [0, 1]")
        out[k] = float(v)
    if sum(out.values()) > 1 + 1e-9:
        raise ValueError(f"rates: they sum to {sum(out.values()):.3f} > 1")
    return out


def corrupt_records(
    records: Sequence[Record],
    rates: Mapping[str, float],
    *,
    seed: int = 0,
    rephrase: Rewrite = rule_rephrase,
    unclear: Rewrite = rule_unclear,
) -> list[Record]:
    """Each clean record gets error type t with probability ``rates[t]`` (one draw per record;
    the remaining probability keeps it ok), as the official pipeline's per-sample
    probabilities. Records that are not clean are passed through unchanged."""
    rates = check_rates(rates)
    rng = random.Random(seed)
    kinds, weights = list(rates), list(rates.values())
    out = []
    for r in records:
        if r.error_type != OK or r.answer is None:
            out.append(copy.deepcopy(r))
            continue
        u, acc, chosen = rng.random(), 0.0, OK
        for k, w in zip(kinds, weights, strict=True):
            acc += w
            if u < acc:
                chosen = k
                break
        out.append(corrupt(r, chosen, rng, rephrase=rephrase, unclear=unclear))
    return out
