"""The 25 papers of the project: slug, title, arXiv id, section.

A paper is *implemented* when ``paperlab.papers.<slug>.claims`` exists and exports ``PAPER``;
every other paper is *planned* and is never shown with a verdict."""

from __future__ import annotations

import ast
import importlib
from dataclasses import dataclass
from pathlib import Path

from paperlab.claims import PaperClaims, UserError


@dataclass(frozen=True)
class PaperInfo:
    slug: str
    title: str
    arxiv: str
    section: str

    @property
    def url(self) -> str:
        return f"https://arxiv.org/abs/{self.arxiv}"


DECODING = "Decoding and inference engines"
MODELS = "Models and representations"
ENSEMBLES = "Many models together: ensembles, judges, routers"
BENCHMARKS = "Benchmarks and data"
VISION = "Vision, video, image generation with pretrained priors"

PAPERS: dict[str, PaperInfo] = {
    "mtp": PaperInfo(
        "mtp", "Better & Faster LLMs via Multi-token Prediction", "2404.19737", DECODING
    ),
    "kangaroo": PaperInfo(
        "kangaroo",
        "Lossless Self-Speculative Decoding via Double Early Exiting",
        "2404.18911",
        DECODING,
    ),
    "powerinfer2": PaperInfo(
        "powerinfer2", "PowerInfer-2: Fast LLM Inference on a Smartphone", "2406.06282", DECODING
    ),
    "llamagen": PaperInfo(
        "llamagen",
        "Autoregressive Model Beats Diffusion: Llama for Scalable Image Generation",
        "2406.06525",
        DECODING,
    ),
    "titok": PaperInfo(
        "titok",
        "An Image is Worth 32 Tokens for Reconstruction and Generation",
        "2406.07550",
        DECODING,
    ),
    "kan": PaperInfo("kan", "KAN: Kolmogorov-Arnold Networks", "2404.19756", MODELS),
    "pit": PaperInfo(
        "pit",
        "An Image is Worth More Than 16×16 Patches: Transformers on Individual Pixels",
        "2406.09415",
        MODELS,
    ),
    "transnar": PaperInfo(
        "transnar", "Transformers meet Neural Algorithmic Reasoners", "2406.09308", MODELS
    ),
    "moa": PaperInfo("moa", "Mixture-of-Agents Enhances LLM Capabilities", "2406.04692", ENSEMBLES),
    "poll": PaperInfo(
        "poll", "Replacing Judges with Juries: a Panel of LLM Evaluators", "2404.18796", ENSEMBLES
    ),
    "prometheus2": PaperInfo(
        "prometheus2",
        "Prometheus 2: an Open Source LM Specialized in Evaluating Other LMs",
        "2405.01535",
        ENSEMBLES,
    ),
    "octopus_v4": PaperInfo(
        "octopus_v4", "Octopus v4: Graph of Language Models", "2404.19296", ENSEMBLES
    ),
    "magpie": PaperInfo(
        "magpie",
        "Alignment Data Synthesis from Scratch by Prompting Aligned LLMs with Nothing",
        "2406.08464",
        ENSEMBLES,
    ),
    "advprompter": PaperInfo(
        "advprompter",
        "AdvPrompter: Fast Adaptive Adversarial Prompting for LLMs",
        "2404.16873",
        ENSEMBLES,
    ),
    "irpo": PaperInfo(
        "irpo", "Iterative Reasoning Preference Optimization", "2404.19733", ENSEMBLES
    ),
    "prompt_report": PaperInfo(
        "prompt_report",
        "The Prompt Report: a Systematic Survey of Prompting Techniques",
        "2406.06608",
        ENSEMBLES,
    ),
    "crag": PaperInfo("crag", "CRAG: Comprehensive RAG Benchmark", "2406.04744", BENCHMARKS),
    "mceval": PaperInfo(
        "mceval", "McEval: Massively Multilingual Code Evaluation", "2406.07436", BENCHMARKS
    ),
    "mmlu_redux": PaperInfo("mmlu_redux", "Are We Done with MMLU?", "2406.04127", BENCHMARKS),
    "recap": PaperInfo(
        "recap",
        "What If We Recaption Billions of Web Images with LLaMA-3?",
        "2406.08478",
        BENCHMARKS,
    ),
    "depth_anything_v2": PaperInfo("depth_anything_v2", "Depth Anything V2", "2406.09414", VISION),
    "narcan": PaperInfo(
        "narcan",
        "NaRCan: Natural Refined Canonical Image with Diffusion Prior for Video Editing",
        "2406.06523",
        VISION,
    ),
    "motionclone": PaperInfo(
        "motionclone",
        "MotionClone: Training-Free Motion Cloning for Controllable Video Generation",
        "2406.05338",
        VISION,
    ),
    "instantfamily": PaperInfo(
        "instantfamily",
        "InstantFamily: Masked Attention for Zero-shot Multi-ID Image Generation",
        "2404.19427",
        VISION,
    ),
    "pllava": PaperInfo(
        "pllava",
        "PLLaVA: Parameter-free LLaVA Extension from Images to Videos",
        "2404.16994",
        VISION,
    ),
}


PAPERS_DIR = Path(__file__).resolve().parent / "papers"


def is_implemented(slug: str) -> bool:
    """True if the paper's package has a ``claims`` module (its claims can be re-run). Looks at
    the files only: nothing is imported (``paperlab list`` stays free of torch)."""
    return slug in PAPERS and (PAPERS_DIR / slug / "claims.py").is_file()


def claim_ids(slug: str) -> list[str]:
    """The ids of a paper's claims, read from its ``claims.py`` without importing it: the
    string ``id=`` of every ``Claim(...)`` call, in order (the registry test checks that this
    equals ``load_paper(slug).claims``)."""
    tree = ast.parse((PAPERS_DIR / slug / "claims.py").read_text(encoding="utf-8"))
    ids = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "Claim":
            for kw in node.keywords:
                if kw.arg == "id" and isinstance(kw.value, ast.Constant):
                    ids.append((node.lineno, node.col_offset, kw.value.value))
    return [i for *_, i in sorted(ids)]


def implemented() -> list[str]:
    return [s for s in PAPERS if is_implemented(s)]


def load_paper(slug: str) -> PaperClaims:
    """The ``PAPER`` object of an implemented paper; a clear UserError otherwise."""
    if slug not in PAPERS:
        close = [s for s in PAPERS if s.startswith(slug[:3])] if len(slug) >= 3 else []
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise UserError(f"unknown paper {slug!r}{hint}; `paperlab list` shows all 25 slugs")
    if not is_implemented(slug):
        raise UserError(
            f"paper {slug!r} is planned, not implemented yet; `paperlab list` shows "
            "which papers can be reproduced"
        )
    module = importlib.import_module(f"paperlab.papers.{slug}.claims")
    return module.PAPER
