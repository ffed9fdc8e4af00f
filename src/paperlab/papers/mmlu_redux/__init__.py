"""Are We Done with MMLU? (Gema, Leang, Hong, Devoto, Mancino, Saxena, He, Zhao, Du,
Ghasemi Madani, Barale, McHardy, Harris, Kaddour, van Krieken, Minervini; arXiv 2406.04127).

Idea: MMLU's ground truth is wrong more often than people assume (6.49% of questions by the
paper's estimate; 57% of Virology). The paper proposes an error taxonomy (bad question clarity,
bad options clarity, no correct answer, multiple correct answers, wrong ground truth),
re-annotates 5,700 questions with it (MMLU-Redux), shows that model rankings move on the
corrected questions, and finds that detecting the errors automatically (LLMs prompted zero-shot,
few-shot, with chain of thought, with retrieval) is far from solved.

The library: the taxonomy and the official detection prompts (`taxonomy`), a loader for the
released annotations in both shapes (`load_annotations`), the LabelChaos corruption tool
(`corrupt_records`), detection programs over any OpenAI-compatible endpoint (`Detector`,
`detect_all`) and the heuristic baseline, error-positive metrics (`detection_metrics`), and
re-scoring of models' answers with the ranking change (`rescore`).

    report = load_annotations("mmlu_redux/")           # CSVs or JSONL; every oddity reported
    noisy = corrupt_records(clean, PAPER_MIX, seed=0)   # 0.1 per error type, labels known
    flags = client.run(detect_all(client, "gpt-4o", Detector("few_shot_cot", shots=...), noisy))
    metrics = detection_metrics([r.error_type for r in noisy], [f.label for f in flags])
"""

from paperlab.papers.mmlu_redux.corrupt import (
    NO_CORRECT_TEXT,
    check_rates,
    corrupt,
    corrupt_records,
    rule_rephrase,
    rule_unclear,
)
from paperlab.papers.mmlu_redux.detect import (
    COT_INSTRUCTION,
    METHODS,
    Detection,
    Detector,
    assessment,
    compact_verbalise,
    detect_all,
    detect_one,
    detection_metrics,
    heuristic_detect,
)
from paperlab.papers.mmlu_redux.records import (
    LoadReport,
    Record,
    load_annotations,
    read_records,
    write_records,
)
from paperlab.papers.mmlu_redux.rescore import corrected_answer, rescore, scores
from paperlab.papers.mmlu_redux.taxonomy import (
    ERROR_TYPES,
    INSTRUCTION,
    LABELS,
    OK,
    PAPER_MIX,
    normalize_label,
    parse_classification,
    verbalise,
)

__all__ = [
    "COT_INSTRUCTION",
    "ERROR_TYPES",
    "INSTRUCTION",
    "LABELS",
    "METHODS",
    "NO_CORRECT_TEXT",
    "OK",
    "PAPER_MIX",
    "Detection",
    "Detector",
    "LoadReport",
    "Record",
    "assessment",
    "check_rates",
    "compact_verbalise",
    "corrected_answer",
    "corrupt",
    "corrupt_records",
    "detect_all",
    "detect_one",
    "detection_metrics",
    "heuristic_detect",
    "load_annotations",
    "normalize_label",
    "parse_classification",
    "read_records",
    "rescore",
    "rule_rephrase",
    "rule_unclear",
    "scores",
    "verbalise",
    "write_records",
]
