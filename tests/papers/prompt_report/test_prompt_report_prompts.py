"""Golden tests: the exact prompt strings each technique renders, and the paper's extractor."""

from __future__ import annotations

import pytest

from paperlab.core.mc import MCItem
from paperlab.papers.prompt_report import (
    ChainOfVerification,
    Emotion,
    FewShot,
    FewShotCoT,
    LeastToMost,
    Role,
    SelfCalibration,
    SelfRefine,
    StepBack,
    UniversalSelfConsistency,
    ZeroShot,
    ZeroShotCoT,
    paper_extract,
    plan_and_solve,
    question_text,
    thread_of_thought,
)

ITEM = MCItem("What is 7 * 8?", ("54", "56", "58", "63"), 1, subject="arithmetic")
SHOT = MCItem("What is 3 + 4?", ("7", "8", "6", "5"), 0, meta={"reasoning": "3 + 4 = 7."})
INSTR = (
    'Solve the following problem and return your answer as "A", "B", "C" or "D" with quotes '
    "surrounding the correct letter."
)
P2 = "PROBLEM::What is 7 * 8?, OPTIONS:: \n(A): 54 \n(B): 56 \n(C): 58 \n(D): 63, ANSWER::"


class Fixed:
    """A selector that always returns the same exemplars."""

    def __init__(self, shots):
        self.shots = list(shots)

    def select(self, item):
        return self.shots


def content(technique, item=ITEM) -> str:
    return technique.render(item)[-1]["content"]


def test_question_formats() -> None:
    assert question_text(ITEM, "paper2") == P2
    assert question_text(ITEM, "paper1") == (
        "Problem \n\tWhat is 7 * 8?\n Options \n\t\n(A)::54 -- (B)::56 -- (C)::58 -- (D)::63"
        "\n Answer\n\t"
    )
    assert question_text(ITEM, "mmlu") == "What is 7 * 8?\nA. 54\nB. 56\nC. 58\nD. 63\nAnswer:"
    with pytest.raises(ValueError, match="fmt"):
        question_text(ITEM, "yaml")


def test_single_call_prompts() -> None:
    assert ZeroShot().render(ITEM) == [{"role": "user", "content": f"{INSTR}\n{P2}"}]
    assert content(ZeroShotCoT()) == f"{INSTR}\n{P2} Let's think step by step."
    assert content(plan_and_solve()).endswith(
        "ANSWER:: Let's first understand the problem and devise a plan to solve it. Then, "
        "let's carry out the plan and solve the problem step by step."
    )
    assert content(thread_of_thought()).endswith(
        "ANSWER:: Walk me through this context in manageable parts step by step, summarizing "
        "and analyzing as we go."
    )
    shot = "PROBLEM::What is 3 + 4?, OPTIONS:: \n(A): 7 \n(B): 8 \n(C): 6 \n(D): 5, ANSWER::"
    assert content(FewShot(selector=Fixed([SHOT]))) == (
        f"{INSTR}\n{shot} The answer is (A).\n\n{P2}"
    )
    assert content(FewShotCoT(selector=Fixed([SHOT]), instruction="", fmt="mmlu")) == (
        "What is 3 + 4?\nA. 7\nB. 8\nC. 6\nD. 5\nAnswer: 3 + 4 = 7. The answer is (A).\n\n"
        "What is 7 * 8?\nA. 54\nB. 56\nC. 58\nD. 63\nAnswer:"
    )
    # the arithmetic reasoning is derived when the item does not give one
    no_reason = MCItem("What is 12 - 5?", ("7", "6", "8", "9"), 0)
    assert "12 - 5 = 7. The answer is (A)." in content(
        FewShotCoT(selector=Fixed([no_reason]), fmt="mmlu")
    )
    with pytest.raises(ValueError, match="selector"):
        FewShot().render(ITEM)


def test_role_and_emotion_compose() -> None:
    msgs = Role(Emotion(ZeroShot(instruction="", fmt="mmlu"))).render(ITEM)
    assert msgs[0] == {
        "role": "system",
        "content": "You are an expert who answers multiple-choice questions carefully and "
        "correctly.",
    }
    assert msgs[1]["content"] == (
        "What is 7 * 8?\nA. 54\nB. 56\nC. 58\nD. 63\nAnswer:\nThis is very important to my career."
    )
    assert Role(Emotion(ZeroShot())).name == "role+emotion+zero-shot"


def test_multi_step_prompts() -> None:
    sb = StepBack()
    assert sb.render_step_back(ITEM)[0]["content"] == (
        "You are an expert at the subject of this question. Step back and state the general "
        f"principle or concept needed to solve it, without solving it.\n{P2}"
    )
    assert sb.render_answer(ITEM, " Multiply. ")[0]["content"] == (
        f"Principle: Multiply.\n\n{INSTR}\n{P2} Let's think step by step."
    )
    l2m = LeastToMost()
    assert l2m.render_solve(ITEM, [("What is 7 * 4?", "28")], "Double it?")[0]["content"] == (
        f"{P2}\n\nQ: What is 7 * 4?\nA: 28\n\nQ: Double it?\nA:"
    )
    assert l2m.render_final(ITEM, [])[0]["content"] == (
        f'{P2}\n\nNow answer the original question. Finish with "The answer is (X)".'
    )
    refine = SelfRefine().render_refine(ITEM, "(A)", "7 * 8 is 56")[0]["content"]
    assert refine.endswith(
        "Proposed answer: (A)\n\nFeedback: 7 * 8 is 56\n\nUsing the feedback, give an improved "
        'answer. Finish with "The answer is (X)".'
    )
    cove = ChainOfVerification().render_final(ITEM, "B", [("7 * 8?", "56")])[0]["content"]
    assert cove.endswith(
        "Verification:\nQ: 7 * 8?\nA: 56\n\nGiven the verification, give the final answer. "
        'Finish with "The answer is (X)".'
    )
    assert SelfCalibration().render_check(ITEM, 1)[0]["content"] == (
        "Question: What is 7 * 8?\nA. 54\nB. 56\nC. 58\nD. 63\nProposed Answer: (B) 56\n"
        "Is the proposed answer:\n(A) True\n(B) False\nThe proposed answer is:"
    )
    usc = UniversalSelfConsistency(ZeroShotCoT()).render_select(ITEM, ["x (A)", "y (B)"])
    assert usc[0]["content"].startswith(
        "I have generated the following responses to the question: What is 7 * 8?\n\n"
        "Response 1: x (A)\nResponse 2: y (B)\n\n"
    )


@pytest.mark.parametrize(
    ("text", "choice"),
    [
        ("The answer is (C).", 2),
        ("7 * 8 = 56, so the correct answer is (B)", 1),
        ("(D) is the correct answer", 3),
        ("I pick (A)", 0),
        ("(A) or (B)?", None),
        ('"B"', None),  # the paper's extractor reads parentheses and triggers only
        ("The answer is B", None),
        ("", None),
    ],
)
def test_paper_extract(text: str, choice: int | None) -> None:
    assert paper_extract(text) == choice


def test_value_style_writes_and_reads_option_text() -> None:
    from paperlab.papers.prompt_report.prompts import read_answer, value_extract

    fs = FewShot(selector=Fixed([SHOT]), instruction="", fmt="mmlu", style="value")
    assert content(fs).startswith(
        "What is 3 + 4?\nA. 7\nB. 8\nC. 6\nD. 5\nAnswer: The answer is 7.\n\n"
    )
    assert value_extract("7 * 8 = 56. The answer is 56.", ITEM) == 1
    assert value_extract("The answer is 57.", ITEM) is None  # not an option
    assert value_extract("The answer is (D).", ITEM) == 3  # a letter still reads
    assert read_answer("The answer is (D).", ITEM, "letter") == 3
    with pytest.raises(ValueError, match="style"):
        content(FewShot(selector=Fixed([SHOT]), style="emoji"))
