"""CRAG: Comprehensive RAG Benchmark (Yang, Sun, Xin, Sun, Bhalla, Chen, Choudhary, Gui, Jiang,
Jiang, Kong, Moran, Wang, Xu, Yan, Yang, Yang, Yang, Zhang, Zhou, Wang, Dong; arXiv 2406.04744,
2024).

Idea: a question-answering benchmark for retrieval-augmented generation that looks like real
use: 4,409 questions in five domains (finance, music, movie, sports, open) and eight types
(simple, with a condition, comparison, aggregation, set, false premise, post-processing,
multi-hop), labelled by how fast the answer changes (static to real-time) and how popular the
entity is (head, torso, tail); each comes with five web pages (HTML) from a real search and a
mock knowledge-graph API. Answers are scored correct (1), missing ("I don't know", 0) or
incorrect (a hallucination, -1): the truthfulness score is accuracy - hallucination rate.

Claim: most LLMs answer at most 34% of the questions correctly; straightforward RAG reaches
44%; the best industry systems answer 63% without hallucination; accuracy drops for dynamic,
tail and complex questions.

The library: the official data format (`load_crag`, `write_crag`), a synthetic world in the
official format (`make_world`, `make_questions`), the mock API as a FastAPI server with the
official endpoints and client (`serve_api`, `CragApi`), the scorer with the official rules
and the official script's bugs fixed (`score_records`, `LLMJudge`), and the baseline systems
(`RagSystem`: llm-only, rag, rag-kg; `MiniLM` retrieval).

    records = load_crag("crag_task_1_and_2_dev_v4.jsonl.bz2")
    items = score_records(records, predictions, judge=LLMJudge(client, "gpt-4o"))
    summary(items)     # {"accuracy": ..., "hallucination": ..., "missing": ..., "score": ...}
"""

from paperlab.papers.crag.api import (
    ENDPOINTS,
    ApiServer,
    CragApi,
    KnowledgeGraph,
    load_kg,
    serve_api,
)
from paperlab.papers.crag.data import load_crag, parse_alternatives, validate_record, write_crag
from paperlab.papers.crag.prompts import JUDGE_INSTRUCTIONS, answer_messages, judge_messages
from paperlab.papers.crag.rag import (
    SYSTEMS,
    MiniLM,
    RagSystem,
    html_to_text,
    page_chunks,
    sentence_chunks,
    top_k,
)
from paperlab.papers.crag.scoring import (
    LLMJudge,
    Scored,
    breakdown,
    official_script_label,
    parse_judge_reply,
    score_answer,
    score_records,
    summary,
    truncate,
)
from paperlab.papers.crag.world import World, make_questions, make_world

__all__ = [
    "ENDPOINTS",
    "JUDGE_INSTRUCTIONS",
    "SYSTEMS",
    "ApiServer",
    "CragApi",
    "KnowledgeGraph",
    "LLMJudge",
    "MiniLM",
    "RagSystem",
    "Scored",
    "World",
    "answer_messages",
    "breakdown",
    "html_to_text",
    "judge_messages",
    "load_crag",
    "load_kg",
    "make_questions",
    "make_world",
    "official_script_label",
    "page_chunks",
    "parse_alternatives",
    "parse_judge_reply",
    "score_answer",
    "score_records",
    "sentence_chunks",
    "serve_api",
    "summary",
    "top_k",
    "truncate",
    "validate_record",
    "write_crag",
]
