"""The Prometheus 2 grading prompts (Kim et al. 2024, arXiv 2405.01535, Sec. 2 and App. F).

The strings are the official `prometheus-eval` library's, verbatim (its `prompts.py`): the
model was fine-tuned on exactly these templates, so a real `prometheus-7b-v2.0` grades well
only when it sees them unchanged. Two formats (Sec. 2):

- direct assessment (absolute grading): instruction, response, rubric, optional reference
  answer -> "feedback [RESULT] 1..5";
- pairwise ranking (relative grading): instruction, response A and B, rubric (its criteria
  line), optional reference answer -> "feedback [RESULT] A|B".

A score rubric is a criterion plus one description per score (`Rubric`, rendered with
`SCORE_RUBRIC_TEMPLATE`). The relative format uses the criterion line only, as the official
`load_rubric(..., "relative")` does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

ABS_SYSTEM_PROMPT = (
    "You are a fair judge assistant tasked with providing clear, objective feedback based on "
    "specific criteria, ensuring each assessment reflects the absolute standards set for "
    "performance."
)
REL_SYSTEM_PROMPT = (
    "You are a fair judge assistant assigned to deliver insightful feedback that compares "
    "individual performances, highlighting how each stands relative to others within the same "
    "cohort."
)

ABSOLUTE_PROMPT = """###Task Description:
An instruction (might include an Input inside it), a response to evaluate, a reference answer that gets a score of 5, and a score rubric representing a evaluation criteria are given.
1. Write a detailed feedback that assess the quality of the response strictly based on the given score rubric, not evaluating in general.
2. After writing a feedback, write a score that is an integer between 1 and 5. You should refer to the score rubric.
3. The output format should look as follows: "(write a feedback for criteria) [RESULT] (an integer number between 1 and 5)"
4. Please do not generate any other opening, closing, and explanations.

###The instruction to evaluate:
{instruction}

###Response to evaluate:
{response}

###Reference Answer (Score 5):
{reference_answer}

###Score Rubrics:
{rubric}

###Feedback: """  # noqa: E501 - the official string, verbatim

ABSOLUTE_PROMPT_WO_REF = """###Task Description:
An instruction (might include an Input inside it), a response to evaluate, and a score rubric representing a evaluation criteria are given.
1. Write a detailed feedback that assess the quality of the response strictly based on the given score rubric, not evaluating in general.
2. After writing a feedback, write a score that is an integer between 1 and 5. You should refer to the score rubric.
3. The output format should look as follows: "(write a feedback for criteria) [RESULT] (an integer number between 1 and 5)"
4. Please do not generate any other opening, closing, and explanations.

###The instruction to evaluate:
{instruction}

###Response to evaluate:
{response}

###Score Rubrics:
{rubric}

###Feedback: """  # noqa: E501

RELATIVE_PROMPT = """###Task Description:
An instruction (might include an Input inside it), a response to evaluate, a reference answer, and a score rubric representing a evaluation criteria are given.
1. Write a detailed feedback that assess the quality of two responses strictly based on the given score rubric, not evaluating in general.
2. After writing a feedback, choose a better response between Response A and Response B. You should refer to the score rubric.
3. The output format should look as follows: "(write a feedback for criteria) [RESULT] (A or B)"
4. Please do not generate any other opening, closing, and explanations.

###Instruction:
{instruction}

###Response A:
{response_A}

###Response B:
{response_B}

###Reference Answer:
{reference_answer}

###Score Rubric:
{rubric}

###Feedback: """  # noqa: E501

RELATIVE_PROMPT_WO_REF = """###Task Description:
An instruction (might include an Input inside it), a response to evaluate, and a score rubric representing a evaluation criteria are given.
1. Write a detailed feedback that assess the quality of two responses strictly based on the given score rubric, not evaluating in general.
2. After writing a feedback, choose a better response between Response A and Response B. You should refer to the score rubric.
3. The output format should look as follows: "(write a feedback for criteria) [RESULT] (A or B)"
4. Please do not generate any other opening, closing, and explanations.

###Instruction:
{instruction}

###Response A:
{response_A}

###Response B:
{response_B}

###Score Rubric:
{rubric}

###Feedback: """  # noqa: E501

SCORE_RUBRIC_TEMPLATE = """[{criteria}]
Score 1: {score1_description}
Score 2: {score2_description}
Score 3: {score3_description}
Score 4: {score4_description}
Score 5: {score5_description}"""

MODES = ("absolute", "relative")


@dataclass(frozen=True, kw_only=True)
class Rubric:
    """A score rubric: the criterion (a question such as "Is the answer correct?") and one
    description per score 1..5 (Sec. 2: the rubric is an input of both formats)."""

    criteria: str
    score_descriptions: tuple[str, str, str, str, str]

    def __post_init__(self) -> None:
        if not isinstance(self.criteria, str) or not self.criteria.strip():
            raise ValueError("Rubric: criteria must be a non-empty string")
        descs = self.score_descriptions
        if isinstance(descs, str) or not isinstance(descs, Sequence):
            raise ValueError("Rubric: score_descriptions must be a sequence of five strings")
        if len(descs) != 5:
            raise ValueError(
                f"Rubric: score_descriptions needs five descriptions (scores 1-5), got {len(descs)}"
            )
        for i, d in enumerate(descs, 1):
            if not isinstance(d, str) or not d.strip():
                raise ValueError(f"Rubric: score_descriptions[{i - 1}] (score {i}) is empty")
        object.__setattr__(self, "score_descriptions", tuple(descs))

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> Rubric:
        """From the Feedback Collection's field names: `criteria` and `score1_description` ..
        `score5_description`."""
        if "criteria" not in data:
            raise ValueError("Rubric: missing 'criteria'")
        missing = [
            f"score{i}_description" for i in range(1, 6) if f"score{i}_description" not in data
        ]
        if missing:
            raise ValueError(f"Rubric: missing {', '.join(missing)} (five descriptions needed)")
        return cls(
            criteria=data["criteria"],
            score_descriptions=tuple(data[f"score{i}_description"] for i in range(1, 6)),
        )

    def render(self) -> str:
        """The absolute format's rubric: the criterion in brackets and the five score lines."""
        return SCORE_RUBRIC_TEMPLATE.format(
            criteria=self.criteria,
            **{f"score{i}_description": d for i, d in enumerate(self.score_descriptions, 1)},
        )

    def criteria_line(self) -> str:
        """The relative format's rubric: the criterion line only (official `load_rubric`)."""
        return f"[{self.criteria}]"


def _rubric_text(rubric: Rubric | str, mode: str) -> str:
    if isinstance(rubric, Rubric):
        return rubric.render() if mode == "absolute" else rubric.criteria_line()
    if not isinstance(rubric, str) or not rubric.strip():
        raise ValueError("rubric must be a Rubric or a non-empty string")
    return rubric


def absolute_messages(
    instruction: str,
    response: str,
    rubric: Rubric | str,
    reference_answer: str | None = None,
    *,
    template: str | None = None,
    system: bool = True,
) -> list[dict[str, str]]:
    """The direct-assessment conversation: the official system prompt and the template with
    (`ABSOLUTE_PROMPT`) or without (`ABSOLUTE_PROMPT_WO_REF`) a reference answer. A given
    `template` is used for every item (the official `absolute_grade_template`); `system=False`
    leaves the system prompt out."""
    if template is None:
        template = ABSOLUTE_PROMPT if reference_answer is not None else ABSOLUTE_PROMPT_WO_REF
    content = template.format(
        instruction=instruction,
        response=response,
        rubric=_rubric_text(rubric, "absolute"),
        reference_answer=reference_answer,
    )
    return _conversation(ABS_SYSTEM_PROMPT if system else None, content)


def relative_messages(
    instruction: str,
    response_a: str,
    response_b: str,
    rubric: Rubric | str,
    reference_answer: str | None = None,
    *,
    template: str | None = None,
    system: bool = True,
) -> list[dict[str, str]]:
    """The pairwise-ranking conversation (`RELATIVE_PROMPT` / `RELATIVE_PROMPT_WO_REF`, or
    `template`; `system=False` leaves the system prompt out)."""
    if template is None:
        template = RELATIVE_PROMPT if reference_answer is not None else RELATIVE_PROMPT_WO_REF
    content = template.format(
        instruction=instruction,
        response_A=response_a,
        response_B=response_b,
        rubric=_rubric_text(rubric, "relative"),
        reference_answer=reference_answer,
    )
    return _conversation(REL_SYSTEM_PROMPT if system else None, content)


def _conversation(system: str | None, content: str) -> list[dict[str, str]]:
    user = {"role": "user", "content": content}
    return [user] if system is None else [{"role": "system", "content": system}, user]
