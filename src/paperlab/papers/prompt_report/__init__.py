"""The Prompt Report: A Systematic Survey of Prompting Techniques (Schulhoff, Ilie, Balepur,
et al.; arXiv 2406.06608, 2024).

Idea: a systematic review (PRISMA, 1,565 papers) that fixes a vocabulary of prompting (33
terms) and a taxonomy of 58 text-based prompting techniques in six groups: zero-shot,
few-shot, thought generation, ensembling, self-criticism and decomposition; then benchmarks
six of them on MMLU with gpt-3.5-turbo (few-shot CoT best at 0.692; zero-shot CoT, 0.547,
below plain zero-shot, 0.627).

Here: the taxonomy as data (`load_taxonomy`), the techniques as composable prompt programs over
the LLM layer that record every call (`ZeroShot`, `FewShotCoT`, `SelfConsistency`, ...), and
the case study as a runner over any multiple-choice set and any endpoint:

    from paperlab.papers.prompt_report import Endpoint, SelfConsistency, ZeroShotCoT
    sc = SelfConsistency(ZeroShotCoT(), n=3, temperature=0.5)
    outcome = client.run(sc.run(Endpoint(client, "gpt"), item))   # answer + every call
"""

from paperlab.papers.prompt_report.case_study import (
    CASE_STUDY,
    TECHNIQUES,
    TechniqueResult,
    case_study_techniques,
    load_items,
    make_technique,
    read_mc_csv,
    results_table,
    run_case_study,
    run_technique,
    write_records,
)
from paperlab.papers.prompt_report.multi import (
    ChainOfVerification,
    LeastToMost,
    SelfCalibration,
    SelfConsistency,
    SelfRefine,
    StepBack,
    UniversalSelfConsistency,
)
from paperlab.papers.prompt_report.prompts import (
    BASE_INSTRUCTION,
    FORMATS,
    paper_extract,
    question_text,
    user_prompt,
)
from paperlab.papers.prompt_report.selection import KNNSelector, RandomSelector, minilm_embedder
from paperlab.papers.prompt_report.taxonomy import (
    PAPER_GROUP_COUNTS,
    PAPER_TECHNIQUES,
    PAPER_VOCABULARY,
    Taxonomy,
    load_taxonomy,
    parse_taxonomy,
)
from paperlab.papers.prompt_report.techniques import (
    Call,
    Emotion,
    Endpoint,
    FewShot,
    FewShotCoT,
    Outcome,
    Role,
    ZeroShot,
    ZeroShotCoT,
    plan_and_solve,
    thread_of_thought,
)

__all__ = [
    "BASE_INSTRUCTION",
    "CASE_STUDY",
    "FORMATS",
    "PAPER_GROUP_COUNTS",
    "PAPER_TECHNIQUES",
    "PAPER_VOCABULARY",
    "TECHNIQUES",
    "Call",
    "ChainOfVerification",
    "Emotion",
    "Endpoint",
    "FewShot",
    "FewShotCoT",
    "KNNSelector",
    "LeastToMost",
    "Outcome",
    "RandomSelector",
    "Role",
    "SelfCalibration",
    "SelfConsistency",
    "SelfRefine",
    "StepBack",
    "Taxonomy",
    "TechniqueResult",
    "UniversalSelfConsistency",
    "ZeroShot",
    "ZeroShotCoT",
    "case_study_techniques",
    "load_items",
    "load_taxonomy",
    "make_technique",
    "minilm_embedder",
    "paper_extract",
    "parse_taxonomy",
    "plan_and_solve",
    "question_text",
    "read_mc_csv",
    "results_table",
    "run_case_study",
    "run_technique",
    "thread_of_thought",
    "user_prompt",
    "write_records",
]
