"""Prometheus 2: An Open Source Language Model Specialized in Evaluating Other Language Models
(Kim, Suk, Longpre, Lin, Shin, Welleck, Neubig, Lee, Lee, Seo; arXiv 2405.01535, 2024).

Idea: an open evaluator LM that does both formats of LM-as-a-judge with a user-defined score
rubric: direct assessment (instruction, response, rubric, reference -> feedback and a score
1-5) and pairwise ranking (instruction, two responses, rubric, reference -> feedback and A or
B). One evaluator is fine-tuned per format from the same base (Mistral-7B / Mixtral-8x7B) and
the two are merged in weight space (Sec. 3: linear merging for the 7B; task arithmetic, TIES
and DARE compared in Sec. 6).

Claim: the merged evaluator matches or beats each single-format expert on its own format and
beats one model trained jointly on both formats; it correlates with GPT-4 and humans (Pearson
0.6-0.7 with GPT-4-1106 on direct assessment benchmarks, Tables 2-3).

The library: the official prompts and sampling defaults, a parser anchored at the end of the
output, a judge over any OpenAI-compatible endpoint (`PrometheusJudge`), and weight merging
of fine-tuned checkpoints (`merge_state_dicts`, `merge_checkpoints`).

    judge = PrometheusJudge(client=client, model="prometheus-7b-v2.0")
    grade = client.run(judge.absolute_grade(instruction, response, rubric, reference))
    merged = merge_state_dicts(base, [absolute_expert, relative_expert], method="linear")
"""

from paperlab.papers.prometheus2.inprocess import InProcessClient
from paperlab.papers.prometheus2.judge import (
    AbsoluteGrade,
    PrometheusJudge,
    RelativeGrade,
    SamplingConfig,
    summarize_absolute,
    summarize_relative,
)
from paperlab.papers.prometheus2.merge import (
    METHODS,
    load_checkpoint,
    merge_checkpoints,
    merge_state_dicts,
)
from paperlab.papers.prometheus2.parser import Grade, parse_absolute, parse_output, parse_relative
from paperlab.papers.prometheus2.prompts import (
    ABS_SYSTEM_PROMPT,
    ABSOLUTE_PROMPT,
    ABSOLUTE_PROMPT_WO_REF,
    REL_SYSTEM_PROMPT,
    RELATIVE_PROMPT,
    RELATIVE_PROMPT_WO_REF,
    SCORE_RUBRIC_TEMPLATE,
    Rubric,
    absolute_messages,
    relative_messages,
)

__all__ = [
    "InProcessClient",
    "ABSOLUTE_PROMPT",
    "ABSOLUTE_PROMPT_WO_REF",
    "ABS_SYSTEM_PROMPT",
    "METHODS",
    "RELATIVE_PROMPT",
    "RELATIVE_PROMPT_WO_REF",
    "REL_SYSTEM_PROMPT",
    "SCORE_RUBRIC_TEMPLATE",
    "AbsoluteGrade",
    "Grade",
    "PrometheusJudge",
    "RelativeGrade",
    "Rubric",
    "SamplingConfig",
    "absolute_messages",
    "load_checkpoint",
    "merge_checkpoints",
    "merge_state_dicts",
    "parse_absolute",
    "parse_output",
    "parse_relative",
    "relative_messages",
    "summarize_absolute",
    "summarize_relative",
]
