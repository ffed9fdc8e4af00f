"""Depth Anything V2 (Yang, Kang, Huang, Zhao, Xu, Feng, Zhao; arXiv 2406.09414).

Idea: monocular relative depth from a ViT encoder (DINOv2) with a DPT decoder, trained in
three steps. A large *teacher* learns only from synthetic images, whose depth labels are
exact (real datasets' labels are noisy and coarse: transparent and reflective surfaces,
sensor noise, missing thin structures). The teacher then *pseudo-labels* 62M unlabelled real
images, and *students* of every size learn from those pseudo-labels alone - closing the
synthetic-to-real gap and passing the teacher's knowledge to small models. Losses: the
scale-and-shift-invariant L1 (MiDaS) plus gradient matching (weights 1:2), and on
pseudo-labels the top-10% largest-loss pixels are ignored. The output is **relative inverse
depth (disparity)**: larger = closer, known up to an unknown scale and shift.

Claims: DA-2K pair accuracy V2-S/B/L/G 95.3/97.0/97.1/97.4 vs V1 88.5 and Marigold 86.8;
students on pseudo-labelled real images beat training on synthetic labels alone; gradient
matching sharpens depth edges; ignoring the top-10% loss helps with noisy pseudo-labels; a
small student comes close to its teacher at a fraction of the cost. Miniature: ray-cast
synthetic rooms, crops of bundled photos, DA-2K-mini on ``skimage.data.stereo_motorcycle``.

Public API: ``DepthAnythingV2``, ``DepthConfig``, ``DPTHead``; ``convert_checkpoint``,
``load_official``; ``preprocess``, ``infer_disparity``; ``depth_loss``, ``normalize_ssi``,
``gradient_matching_loss``; ``make_synthetic``, ``make_real``, ``render``, ``motorcycle``,
``sample_pairs``, ``pair_accuracy``, ``depth_metrics``; ``PipelineConfig``, ``train_depth``,
``predict``, ``load_depth_model``. See README.md for what is scaled down.
"""

from paperlab.papers.depth_anything_v2.data import (
    depth_metrics,
    make_real,
    make_synthetic,
    motorcycle,
    pair_accuracy,
    render,
    sample_pairs,
)
from paperlab.papers.depth_anything_v2.losses import (
    depth_loss,
    gradient_matching_loss,
    normalize_ssi,
)
from paperlab.papers.depth_anything_v2.model import DepthAnythingV2, DepthConfig, DPTHead
from paperlab.papers.depth_anything_v2.official import convert_checkpoint, load_official
from paperlab.papers.depth_anything_v2.pipeline import (
    PipelineConfig,
    load_depth_model,
    predict,
    train_depth,
)
from paperlab.papers.depth_anything_v2.transform import infer_disparity, preprocess

__all__ = [
    "DPTHead",
    "DepthAnythingV2",
    "DepthConfig",
    "PipelineConfig",
    "convert_checkpoint",
    "depth_loss",
    "depth_metrics",
    "gradient_matching_loss",
    "infer_disparity",
    "load_depth_model",
    "load_official",
    "make_real",
    "make_synthetic",
    "motorcycle",
    "normalize_ssi",
    "pair_accuracy",
    "predict",
    "preprocess",
    "render",
    "sample_pairs",
    "train_depth",
]
