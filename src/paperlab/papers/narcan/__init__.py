"""NaRCan: Natural Refined Canonical Image with Integration of Diffusion Prior for Video Editing
(Chen, Chan, Shiu, Yen, Yeh, Liu; NeurIPS 2024; arXiv 2406.06523).

Idea: represent a video by one canonical image and a deformation field, edit the canonical
once and propagate the edit through the deformation to every frame: temporally consistent
editing by construction. The deformation is hybrid: a homography per frame (an MLP t -> 8
parameters) for the global motion plus a residual SIREN g(x, y, t) for the non-rigid rest; the
canonical is a SIREN f(x', y') -> RGB. Reconstruction alone leaves the canonical unnatural, so a
diffusion prior (Stable Diffusion 2 with a RealFill-style LoRA fine-tuned on the frames) refines
the rendered canonical by SDEdit and an L1 term pulls the canonical toward that target; the
target is refreshed densely at a high strength early and rarely at a low strength later, which
the paper reports trains 14x faster than refreshing at every step.

Claims: the hybrid field beats a homography alone; the prior makes the canonical natural; the
schedule keeps the quality at a fraction of the cost; propagated edits have low warping and
interpolation errors. Miniature: synthetic clips of a photo under a known camera path and
wobble, a tiny pixel diffusion model as the prior.

Public API: ``NaRCan``, ``Siren``, ``HomographyMLP``, ``apply_homography``, ``jacobian``;
``fit_homography``, ``stage_two_model``, ``fit_fields``, ``PriorSchedule``, ``PriorTarget``;
``PriorConfig``, ``pretrain_prior``, ``lora_finetune``, ``DiffusionPrior``; ``make_clip``,
``SyntheticClip``; ``canonical_psnr``, ``warping_error``, ``interpolation_error``;
``save_fit``, ``load_fit``, ``fit_video``. See README.md.
"""

from paperlab.papers.narcan.fields import HomographyMLP, NaRCan, Siren, apply_homography, jacobian
from paperlab.papers.narcan.fit import (
    PriorSchedule,
    PriorTarget,
    fit_fields,
    fit_homography,
    stage_two_model,
)
from paperlab.papers.narcan.metrics import (
    canonical_psnr,
    frame_psnr,
    interpolation_error,
    psnr,
    warping_error,
)
from paperlab.papers.narcan.pipeline import fit_video, load_fit, save_fit
from paperlab.papers.narcan.prior import DiffusionPrior, PriorConfig, lora_finetune, pretrain_prior
from paperlab.papers.narcan.video import SyntheticClip, make_clip

__all__ = [
    "DiffusionPrior",
    "HomographyMLP",
    "NaRCan",
    "PriorConfig",
    "PriorSchedule",
    "PriorTarget",
    "Siren",
    "SyntheticClip",
    "apply_homography",
    "canonical_psnr",
    "fit_fields",
    "fit_homography",
    "fit_video",
    "frame_psnr",
    "interpolation_error",
    "jacobian",
    "load_fit",
    "lora_finetune",
    "make_clip",
    "pretrain_prior",
    "psnr",
    "save_fit",
    "stage_two_model",
    "warping_error",
]
