"""Transformers meet Neural Algorithmic Reasoners (TransNAR; Bounsi, Ibarz, Dudzik, Hamrick,
Markeeva, Vitvitskyi, Pascanu, Veličković; arXiv 2406.09308, 2024).

Idea: language models are fragile at algorithmic reasoning, most of all on inputs larger than
those they trained on; graph neural networks trained to execute algorithms (neural algorithmic
reasoners, NARs) generalise far better but need their input as a graph. TransNAR gives a
decoder-only transformer Flamingo-style gated cross-attention layers (gate closed at init) in
which the text tokens query the node embeddings of a pre-trained, frozen NAR (Triplet-GMPNN)
run on the graph form of the same problem. Training has two phases: the NAR on graphs, then the
transformer (with cross-attention) on CLRS-Text.

Claim: on CLRS-Text, TransNAR beats the transformer-only baseline, most of all out of
distribution (larger inputs), by the CLRS (element-wise) score and the shape score.

Public API: ``ALGORITHMS``, ``Instance``, ``sample``, ``sample_many``, ``graph_form``,
``format_example``, ``parse_example``, ``score_answer`` (CLRS tasks in graph and CLRS-Text
form); ``NAR``, ``TripletGMPNN``, ``masked_max``, ``collate_graphs`` (the reasoner);
``TextDecoder``, ``GatedCrossAttention``, ``greedy_decode``, ``random_positions``, ``encode``,
``decode`` (the transformer side); ``pretrain_nar``, ``text_examples``, ``fit_text_model``
(the two phases). See README.md for what is scaled down and the differences from the paper.
"""

from paperlab.papers.transnar.clrs import (
    ALGORITHMS,
    Instance,
    format_example,
    graph_form,
    parse_example,
    sample,
    sample_many,
    score_answer,
)
from paperlab.papers.transnar.model import (
    GatedCrossAttention,
    TextDecoder,
    decode,
    encode,
    greedy_decode,
    random_positions,
)
from paperlab.papers.transnar.nar import NAR, TripletGMPNN, collate_graphs, masked_max
from paperlab.papers.transnar.training import fit_text_model, pretrain_nar, text_examples

__all__ = [
    "ALGORITHMS",
    "NAR",
    "GatedCrossAttention",
    "Instance",
    "TextDecoder",
    "TripletGMPNN",
    "collate_graphs",
    "decode",
    "encode",
    "fit_text_model",
    "format_example",
    "graph_form",
    "greedy_decode",
    "masked_max",
    "parse_example",
    "pretrain_nar",
    "random_positions",
    "sample",
    "sample_many",
    "score_answer",
    "text_examples",
]
