"""The prompts: the auto-evaluator's instruction (the official `prompts/templates.py`, quoted
verbatim: its text is the evaluation rule), and the RAG baselines' answer prompts.

Two styles: `official` (what a real model gets: the official system prompts) and `mini`
(what the tiny models trained here get: the same content without the long system prompts).
"""

from __future__ import annotations

from collections.abc import Sequence

JUDGE_INSTRUCTIONS = """Assume you are a human expert in grading predictions given by a model. You are given a question and a model prediction. Judge if the prediction matches the ground truth answer by following these steps:
1: Take it as granted that the Ground Truth is always correct.
2: If the Prediction indicates it is not sure about the answer, "score" should be "0"; otherwise, go the next step.
3: If the Prediction exactly matches the Ground Truth, "score" is 1.
4: If the Prediction does not exactly match the Ground Truth, go through the following steps and likely give a score as 0.
5: If the Ground Truth is a number, "score" is 1 if and only if the Prediction gives a number that almost exactly matches the ground truth.
6: If the Prediction is self-contradictory, "score" must be 0.
7: If the prediction is not answering the question, "score" must be 0.
8: If the prediction is a concise and correct summary of the ground truth, "score" is 1.
9: If ground truth contains a set of items, prediction must contain exactly same items for the score to be 1.
10: Otherwise, "score" is 0.

### Output a JSON blob with an "explanation" field explaining your answer as short as possible and an "score" field with value 1 or 0."""  # noqa: E501

# DEVIATION: a selection of the official in-context examples (8 of the official file's 34;
# these cover its rules: unsure, self-contradictory, numbers, sets, summaries, not answering)
JUDGE_EXAMPLES = """You should make the judgment based on provided examples.
Examples:
Question: "which company has higher eps, btu or cma?"
Ground Truth: "cma"
Prediction: "it is not possible to determine which company has a higher eps."
Output: {"score": 0, "explanation": "The prediction is not sure about the answer."}

Question: "who is taller, a or b?"
Ground Truth: "a"
Prediction: "The answer is a. a is of height 1.75 m and b is of height 1.82 m. So b is taller."
Output: {"score": 0, "explanation": "The prediction is self-contradictory."}

Question: "who authored the taming of the shrew?"
Ground Truth: "william shakespeare"
Prediction: "w shakespeare"
Output: {"score": 1, "explanation": "The prediction matches the ground truth as w is the abbreviation of william."}

Question: "what is the current market cap of appl?"
Ground Truth: "2.81 trillion"
Prediction: "2.667 trillion"
Output: {"score": 0, "explanation": "The prediction does not match the number in ground truth."}

Question: "how many seconds is 3 minutes 15 seconds?"
Ground Truth: "195 seconds"
Prediction: "3 minutes 15 seconds is 195 seconds."
Output: {"score": 1, "explanation": "The prediction matches ground truth as it correctly states the number of seconds asked in the question."}

Question: "who are current band members of maroon 5?"
Ground Truth: "adam Levine, jesse carmichael, james valentine, matt flynn, pj morton, sam farrar"
Prediction: "they are jesse carmichael, matt flynn, adam levine, pj morton, sam farrar, and james valentine."
Output: {"score": 1, "explanation": "The prediction exactly matches the ground truth."}

Question: "which movies comprise the matrix franchise?"
Ground Truth: "the matrix, the matrix reloaded, the matrix revolutions, the matrix resurrections"
Prediction: "the matrix, the matrix reloaded, the matrix revolutions, the animatrix, and the matrix resurrections."
Output: {"score": 0, "explanation": "The prediction covers more items than what are given by the ground truth."}

Question: "how old is michael jordan?"
Ground Truth: "61"
Prediction: "mj was born on February 17, 1963."
Output: {"score": 0, "explanation": "The prediction does not explicitly say the age."}
"""  # noqa: E501


def judge_messages(
    query: str, ground_truth: str, prediction: str, *, style: str = "official"
) -> list[dict[str, str]]:
    """The evaluator's messages: the official system message (instructions + examples) and
    the official user message. `mini` leaves the system message out."""
    user = f"Question: {query}\n Ground truth: {ground_truth}\n Prediction: {prediction}\n"
    if style == "mini":
        # DEVIATION: the tiny judge reads only the user message (the instructions are ~5 KB)
        return [{"role": "user", "content": user}]
    if style != "official":
        raise ValueError(f"style={style!r}: 'official' or 'mini'")
    system = JUDGE_INSTRUCTIONS + "\n" + JUDGE_EXAMPLES
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


# The official baselines' system prompts (models/vanilla_llama_baseline.py, rag_llama_baseline.py)
LLM_ONLY_SYSTEM = (
    "You are provided with a question and various references. Your task is to answer the "
    "question succinctly, using the fewest words possible. If the references do not contain "
    "the necessary information to answer the question, respond with 'I don't know'."
)
RAG_SYSTEM = (
    "You are provided with a question and various references. Your task is to answer the "
    "question succinctly, using the fewest words possible. If the references do not contain "
    "the necessary information to answer the question, respond with 'I don't know'. There is "
    "no need to explain the reasoning behind your answers."
)
MAX_REFERENCES_CHARS = 4000  # the official MAX_CONTEXT_REFERENCES_LENGTH


def answer_messages(
    query: str,
    query_time: str,
    references: Sequence[str] | None,
    *,
    style: str = "official",
) -> list[dict[str, str]]:
    """The answer prompt: LLM-only when `references` is None, else the references as a list."""
    if style == "mini":
        # DEVIATION: no system prompt and no query time for the tiny reader (it answers from the
        # references or its memory; the time is the same for every question of the miniature);
        # the question comes *before* the references, and the references come best *last*
        # (next to the answer), so a tiny byte-level reader copies the value at a nearly fixed
        # distance; read the official way round it learned nothing in minutes (LOG.md)
        if references is None:
            return [{"role": "user", "content": f"question: {query}"}]
        refs = "\n".join(reversed(references))
        return [{"role": "user", "content": f"question: {query}\nreferences:\n{refs}"}]
    if style != "official":
        raise ValueError(f"style={style!r}: 'official' or 'mini'")
    if references is None:
        user = f"Question: {query}\nCurrent date: {query_time}\nAnswer:"
        return [{"role": "system", "content": LLM_ONLY_SYSTEM}, {"role": "user", "content": user}]
    refs = ""
    if references:
        refs = "# References \n" + "".join(f"- {r.strip()}\n" for r in references)
    refs = refs[:MAX_REFERENCES_CHARS]
    user = (
        f"{refs}\n------\n\nUsing only the references listed above, answer the following "
        f"question: \nCurrent Time: {query_time}\nQuestion: {query}\n"
    )
    return [{"role": "system", "content": RAG_SYSTEM}, {"role": "user", "content": user}]
