"""A hand-labelled set of our own: predictions whose CRAG label (correct / missing / incorrect)
we decided by reading the paper's rules, one group per way the scorer decides (the `kind`):

- exact:       the prediction is a gold answer (case and surrounding spaces aside);
- alternative: it is one of the alternative answers, not the main one;
- missing:     "I don't know" in any form, or nothing;
- invalid:     a false-premise question ("invalid question") or an "invalid" answer;
- judged:      none of the rules decides; the LLM judge must (numbers and names in a phrase).

The claim `scorer` scores every case with our scorer (the judged ones with the run's judge) and
counts the agreement per kind; the official script's logic is scored alongside for contrast.
"""

from __future__ import annotations

from dataclasses import dataclass

KINDS = ("exact", "alternative", "missing", "invalid", "judged")


@dataclass(frozen=True)
class Case:
    kind: str
    query: str
    answer: str
    alt_ans: tuple[str, ...]
    prediction: str
    label: str  # correct | missing | incorrect


EPS = "what is the eps of kiv?"
YEAR = "what is the release year of dob?"
WHICH = "which has the higher price, kiv or dob?"
SET = "list the eps of kiv and dob."
AGO = "how many years before 2024 was the release year of dob?"
FALSE = "what is the box office rank of kiv?"

CASES: tuple[Case, ...] = (
    Case("exact", EPS, "41", (), "41", "correct"),
    Case("exact", EPS, "41", (), "  41 ", "correct"),
    Case("exact", WHICH, "kiv", (), "KIV", "correct"),
    Case("exact", YEAR, "1987", (), "1987", "correct"),
    Case("exact", SET, "41, 23", ("23, 41",), "41, 23", "correct"),
    Case("alternative", SET, "41, 23", ("23, 41", "41 and 23"), "23, 41", "correct"),
    Case("alternative", SET, "41, 23", ("23, 41", "41 and 23"), "41 and 23", "correct"),
    Case("alternative", AGO, "37", ("37 years",), "37 years", "correct"),
    Case("alternative", WHICH, "kiv", ("kiv inc",), "Kiv Inc", "correct"),
    Case("missing", EPS, "41", (), "I don't know", "missing"),
    Case("missing", EPS, "41", (), "i don't know.", "missing"),
    Case("missing", EPS, "41", (), "Sorry, I don't know the eps of kiv.", "missing"),
    Case("missing", EPS, "41", (), "I don’t know", "missing"),
    Case("missing", EPS, "41", (), "", "missing"),
    Case("invalid", FALSE, "invalid question", (), "invalid question", "correct"),
    Case("invalid", FALSE, "invalid question", (), "That is an invalid question.", "correct"),
    Case("invalid", FALSE, "invalid question", (), "41", "incorrect"),
    Case("invalid", EPS, "41", (), "invalid question", "incorrect"),
    Case("judged", EPS, "41", (), "it is 41", "correct"),
    Case("judged", EPS, "41", (), "the answer is 41", "correct"),
    Case("judged", EPS, "41", (), "it is 42", "incorrect"),
    Case("judged", EPS, "41", (), "4", "incorrect"),
    Case("judged", YEAR, "1987", (), "i think 1987", "correct"),
    Case("judged", YEAR, "1987", (), "1978", "incorrect"),
    Case("judged", WHICH, "kiv", (), "it is kiv", "correct"),
    Case("judged", WHICH, "kiv", (), "it is dob", "incorrect"),
)
