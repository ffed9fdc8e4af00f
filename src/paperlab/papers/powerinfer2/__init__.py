"""PowerInfer-2: Fast Large Language Model Inference on a Smartphone (Xue, Song, Mi, Chen, Xia,
Chen; arXiv 2406.06282, 2024).

Idea: in a ReLU-family LLM most FFN neurons output exactly zero on a given token, and which
ones fire is skewed (a few "hot" neurons fire on most tokens) and predictable from the layer's
input. So a model larger than memory can be served from storage by reading only the neurons a
token needs: PowerInfer-2 breaks the FFN matrices into *neuron clusters* as the unit of compute
and I/O (Sec. 3.1); stores each neuron's gate row, up row and down column together as one
*bundle* so one read fetches a neuron (Sec. 4.3); keeps a *segmented neuron cache* in memory
(hot neurons pinned, cold ones least-recently-used, Sec. 4.2); overlaps storage reads of the
missing clusters with the computation of the resident ones (Sec. 4.4); and is *polymorphic*:
dense matrix compute for the prompt (many tokens, little sparsity left), sparse cluster compute
with per-layer activation predictors for decoding (Sec. 4.1). An offline planner chooses what
is hot under the memory budget from an activation profile (Sec. 5).

Claims: up to 29.2x faster decoding than llama.cpp / MLC-LLM on two phones, 11.68 tokens/s for
TurboSparse-Mixtral-47B, the gap growing as memory shrinks; far fewer bytes read per token;
negligible accuracy loss from predictor misses; for models that fit, ~40% less memory at the
same speed.

Public API:
- model side (the ReLU decoder, profile, predictors, planner): ``ReluModelConfig``,
  ``train_relu_model``, ``fit_relu_model``, ``ActivationProfile``, ``profile_activations``,
  ``ActivationPredictor``, ``train_predictors``, ``Plan``, ``plan_hot_neurons``,
  ``hot_first_order``;
- engine side: ``convert`` (a ``Llama`` checkpoint -> an engine folder),
  ``PowerInferEngine.from_pretrained(dir, memory_budget="25%").generate(...)``, ``stats``;
  the on-disk layout ``write_bundles`` / ``BundleFile`` / ``CorruptWeightsError``; the cache
  ``NeuronCache``; the baselines ``MmapDense`` (llama.cpp-style memory-mapped dense decode under
  the same budget) and ``InMemoryDense``.

CLI: ``paperlab powerinfer2 convert | plan | generate``; claims: ``paperlab reproduce
powerinfer2``. See README.md for what is scaled down and the differences from the paper.
"""

from paperlab.papers.powerinfer2.baseline import InMemoryDense, MmapDense, decode
from paperlab.papers.powerinfer2.cache import NeuronCache, parse_budget
from paperlab.papers.powerinfer2.engine import (
    ConvertConfig,
    PowerInferEngine,
    convert,
    oracle_predictors,
)
from paperlab.papers.powerinfer2.layout import BundleFile, CorruptWeightsError, write_bundles
from paperlab.papers.powerinfer2.planner import Plan, hot_first_order, plan_hot_neurons
from paperlab.papers.powerinfer2.predictor import ActivationPredictor, train_predictors
from paperlab.papers.powerinfer2.profile import ActivationProfile, profile_activations
from paperlab.papers.powerinfer2.sparse_model import (
    ReluModelConfig,
    fit_relu_model,
    train_relu_model,
)

__all__ = [
    "ActivationPredictor",
    "ActivationProfile",
    "BundleFile",
    "ConvertConfig",
    "CorruptWeightsError",
    "InMemoryDense",
    "MmapDense",
    "NeuronCache",
    "Plan",
    "PowerInferEngine",
    "ReluModelConfig",
    "convert",
    "decode",
    "fit_relu_model",
    "hot_first_order",
    "oracle_predictors",
    "parse_budget",
    "plan_hot_neurons",
    "profile_activations",
    "train_predictors",
    "train_relu_model",
    "write_bundles",
]
