"""McEval: Massively Multilingual Code Evaluation (Chai, Liu, Yang, et al.; arXiv 2406.07436,
2024).

Idea: evaluate code models by *executing* their answers with tests, in 40 languages, on
generation, completion (single-line, multi-line, span) and explanation (explain, then
regenerate from the explanation) tasks, scored by unbiased pass@k. Everything a model writes
is untrusted: it runs in `paperlab.core.sandbox` (no network, resource limits, scrubbed
environment, process tree killed, temp dir removed), and a timeout, crash or limit hit is a
failure, never a pass.

    from paperlab.papers.mceval import execute, get_language
    ex = execute(get_language("rust"), source_with_tests)
    ex.passed, ex.status            # True, "passed" | False, "timeout" / "compile_error" / ...

    paperlab mceval doctor          # which toolchains this machine has
    paperlab mceval run answers.jsonl --out results.jsonl --workers 2
"""

from paperlab.papers.mceval.extract import extract_code, fenced_blocks, mean_pass_at_k, pass_at_k
from paperlab.papers.mceval.harness import Execution, Sample, evaluate_samples, execute, summarize
from paperlab.papers.mceval.languages import LANGUAGES, LanguageSpec, get_language

__all__ = [
    "LANGUAGES",
    "Execution",
    "LanguageSpec",
    "Sample",
    "evaluate_samples",
    "execute",
    "extract_code",
    "fenced_blocks",
    "get_language",
    "mean_pass_at_k",
    "pass_at_k",
    "summarize",
]
