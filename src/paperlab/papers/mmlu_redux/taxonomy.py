"""MMLU-Redux's error taxonomy (Sec. 2, Figure 2) and the official detection prompt.

Two groups of errors:
- question assessment: (1a) ``bad_question_clarity``, (1b) ``bad_options_clarity``;
- ground-truth verification: (2a) ``no_correct_answer``, (2b) ``multiple_correct_answers``,
  (2c) ``wrong_groundtruth``;
plus ``ok``, and MMLU-Redux 2.0's ``expert`` (the annotators' "needs an expert to decide").

The released annotations spell the labels in several ways ("OK", "Wrong Groundtruth",
"wrong_groundtruth", "No Correct Answer", "Multiple Correct Answer"...): `normalize_label` maps
every spelling seen to the snake_case labels of the data set, and raises for anything else.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

OK = "ok"
ERROR_TYPES = (
    "bad_question_clarity",
    "bad_options_clarity",
    "no_correct_answer",
    "multiple_correct_answers",
    "wrong_groundtruth",
)
LABELS = (OK, *ERROR_TYPES, "expert")
CODES = {  # the paper's numbering (Figure 2)
    "bad_question_clarity": "1a",
    "bad_options_clarity": "1b",
    "no_correct_answer": "2a",
    "multiple_correct_answers": "2b",
    "wrong_groundtruth": "2c",
}
GROUPS = {
    "question assessment": ("bad_question_clarity", "bad_options_clarity"),
    "ground truth verification": (
        "no_correct_answer",
        "multiple_correct_answers",
        "wrong_groundtruth",
    ),
}
# The paper's corruption mix (Sec. 4): each error type with probability 0.1, the rest correct.
PAPER_MIX = {t: 0.1 for t in ERROR_TYPES}

_ALIASES = {
    "ok": OK,
    "correct": OK,
    "badquestionclarity": "bad_question_clarity",
    "badoptionsclarity": "bad_options_clarity",
    "badoptionclarity": "bad_options_clarity",
    "nocorrectanswer": "no_correct_answer",
    "multiplecorrectanswers": "multiple_correct_answers",
    "multiplecorrectanswer": "multiple_correct_answers",
    "wronggroundtruth": "wrong_groundtruth",
    "wronggroundtruths": "wrong_groundtruth",
    "expert": "expert",
}


def normalize_label(label: str) -> str:
    """The snake_case label for any released spelling; ValueError naming it otherwise."""
    if not isinstance(label, str):
        raise ValueError(f"label must be a string, got {label!r}")
    key = re.sub(r"[^a-z]", "", label.lower())
    if key not in _ALIASES:
        raise ValueError(f"unknown label {label!r}; expected one of {', '.join(LABELS)}")
    return _ALIASES[key]


def is_error(label: str) -> bool:
    """Whether a (normalised) label marks an erroneous question. ``expert`` is not counted as
    an error: the annotators could not decide it."""
    return label in ERROR_TYPES


# -- the official detection prompts (the repository's taxonomy instruction and verbaliser) ----

INSTRUCTION = (
    "# Task:\n"
    "Given a triple consisting of a multiple choice question, its choices, and the corresponding "
    "ground truth answer, your task is to determine whether the ground truth answer is correct "
    "or not.\n\n"
    "# Instructions:\n"
    "1. Question Presentation: Is the question well-presented? Assess clarity, grammar, and "
    "sufficiency of information.\n"
    "1.1 If Yes, assess the presentation of the MC options.\n"
    "1.2 If No, classify the issue as Bad Question Clarity.\n"
    "2. MC Options Presentation: Are the MC options well-presented? Check if the options are "
    "clear, distinct, and relevant to the question.\n"
    "2.1 If Yes, determine if there is one potentially correct answer.\n"
    "2.2 If No, classify the issue as Bad Options Clarity.\n"
    "3. Answer Evaluation: Is there one, more than one, or no potentially correct answer in the "
    "options list?\n"
    "3.1 If one, continue to Ground Truth Answer Evaluation.\n"
    "3.2 If more than one, classify the issue as Multiple Correct Answer.\n"
    "3.3 If no correct answer, classify the issue as No Correct Answer.\n"
    "4. Ground Truth Answer Evaluation: Is the ground truth answer correct?\n"
    "4.1. If Yes, classify as ok.\n"
    "4.2. If No, classify as Wrong Groundtruth.\n"
    "Provide your assessment in JSON format with keys 'Question Presentation', 'MC Options "
    "Presentation', 'Answer Evaluation', 'Ground Truth Answer Evaluation', 'Classification'. "
    "The 'classification' is either OK, Wrong Groundtruth, No Correct Answer, Multiple Correct "
    "Answers, Bad Options Clarity, or Bad Question Clarity.\n\n"
    "FOLLOW THE EXACT EXAMPLE ANSWER FORMAT WITHOUT PROVIDING EXPLANATION"
    "# Example Answer:\n"
    '{"Question Presentation": "OK", "MC Options Presentation": "OK", "Answer Evaluation": '
    '"One", "Ground Truth Answer Evaluation": "Correct", "Classification": "OK"}'
)
QUESTION_TEMPLATE = (
    "Question: {question}\nChoices:\n{choices}\nGround Truth Answer: {answer}\nYour Response: "
)


def letter(i: int) -> str:
    return chr(65 + i)


def verbalise(question: str, choices: Sequence[str], answer: int | None) -> str:
    """The repository's verbaliser: the question, its lettered choices (any number), and the
    ground-truth answer as "X. text" ("n/a" when the record has none)."""
    listed = "\n".join(f"{letter(i)}. {c}" for i, c in enumerate(choices))
    shown = "n/a" if answer is None else f"{letter(answer)}. {choices[answer]}"
    return QUESTION_TEMPLATE.format(question=question, choices=listed, answer=shown)


_CLASSIFICATION = re.compile(r"[\"']?classification[\"']?\s*[:=]\s*[\"']?([A-Za-z _-]+)", re.I)


def parse_classification(text: str) -> str | None:
    """The label a detector's reply gives: the JSON object's "Classification" (any casing),
    else a "Classification: X" line, else a label named alone; None when there is none."""
    match = re.search(r"\{.*?\}", text, re.S)
    if match:
        try:
            obj = json.loads(match.group(0))
        except ValueError:
            obj = None
        if isinstance(obj, dict):
            for key, value in obj.items():
                if key.strip().lower() == "classification" and isinstance(value, str):
                    try:
                        return normalize_label(value)
                    except ValueError:
                        return None
    found = _CLASSIFICATION.findall(text)
    candidates = [found[-1]] if found else [text.strip()]
    for c in candidates:
        try:
            return normalize_label(c.strip().split("\n")[0])
        except ValueError:
            continue
    return None
