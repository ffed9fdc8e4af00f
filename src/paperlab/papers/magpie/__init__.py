"""Magpie: Alignment Data Synthesis from Scratch by Prompting Aligned LLMs with Nothing (Xu,
Jiang, Niu, Deng, Poovendran, Choi, Lin; arXiv 2406.08464, 2024).

Idea: an aligned chat model, given only the left part of its chat template up to where the
user's message goes (the *pre-query template*, e.g. Llama-3's
`<|begin_of_text|><|start_header_id|>user<|end_header_id|>\\n\\n`), auto-regressively writes a
plausible user query. Sending the query back through the chat template gives its response. No
seed questions, no prompt engineering: millions of (instruction, response) pairs, tagged by a
judge model (difficulty, input quality, task category), deduplicated by sentence embeddings
and filtered; the base model fine-tuned on 300K of them rivals the official instruct model.

    from paperlab.core.llm import LLMClient, load_config
    from paperlab.papers.magpie import Magpie, generate_jsonl

    magpie = Magpie(LLMClient(load_config()), "llama3-8b", family="llama3")
    generate_jsonl(magpie, n=1000, out="data.jsonl", resume=True)
"""

from paperlab.papers.magpie.curate import (
    DEDUP_THRESHOLD,
    QUALITY_LEVELS,
    TASK_CATEGORIES,
    LLMTagger,
    MiniLM,
    RuleTagger,
    curate,
    magpie_filter,
    nearest_neighbours,
    parse_tag_json,
    passes,
    stats,
    to_plain,
    to_sharegpt,
    well_formed,
    write_jsonl,
)
from paperlab.papers.magpie.synthesis import Magpie, SynthesisConfig, generate_jsonl, synthesize
from paperlab.papers.magpie.templates import FAMILIES, ChatFamily, get_family

__all__ = [
    "DEDUP_THRESHOLD",
    "FAMILIES",
    "QUALITY_LEVELS",
    "TASK_CATEGORIES",
    "ChatFamily",
    "LLMTagger",
    "Magpie",
    "MiniLM",
    "RuleTagger",
    "SynthesisConfig",
    "curate",
    "generate_jsonl",
    "get_family",
    "magpie_filter",
    "nearest_neighbours",
    "parse_tag_json",
    "passes",
    "stats",
    "synthesize",
    "to_plain",
    "to_sharegpt",
    "well_formed",
    "write_jsonl",
]
