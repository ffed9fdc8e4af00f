"""MotionClone: Training-Free Motion Cloning for Controllable Video Generation (Ling, Bu,
Zhang, Dong, Zang, Wu, Chen, Wang, Jin; arXiv 2406.05338).

Idea: a text-to-video diffusion model's temporal attention already encodes motion. Noise a
reference video once (t ~ 0.4 T), run the UNet once with the empty prompt, and keep from each
temporal self-attention map only the top-1 value per query frame and its index: a sparse
"primary" motion representation that drops the appearance-laden rest. While sampling a new
video from a new prompt, the early (noisy) steps are guided by the gradient of the MSE between
the new video's attention at those indices and the reference's values; no training, no
inversion. Claims: better motion fidelity and text alignment than earlier training-free (and
several trained) methods, for object and camera motion.

Miniature: a tiny AnimateDiff-style diffusers ``UNetMotionModel`` trained here on 16 px,
8-frame procedural clips of coloured shapes on linear / circular / zig-zag paths, prompted by
"{colour} {shape}"; clones judged by centroid trajectory error and a colour/shape classifier.

Public API: ``make_clips``, ``parse_prompt``, ``centroids``; ``ClipDenoiser``,
``VideoModelConfig``, ``empty_prompt``; ``CloneConfig``, ``clone_motion``,
``motion_representation``, ``temporal_loss``, ``uneven_timesteps``; ``FrameJudge``,
``train_judge``, ``judge_clips``. See README.md.
"""

from paperlab.papers.motionclone.data import COLOURS, SHAPES, centroids, make_clips, parse_prompt
from paperlab.papers.motionclone.judge import FrameJudge, judge_clips, train_judge
from paperlab.papers.motionclone.model import (
    ClipDenoiser,
    VideoModelConfig,
    empty_prompt,
    temporal_attention_names,
)
from paperlab.papers.motionclone.motionclone import (
    CloneConfig,
    clone_motion,
    motion_representation,
    temporal_loss,
    uneven_timesteps,
)

__all__ = [
    "COLOURS",
    "SHAPES",
    "ClipDenoiser",
    "CloneConfig",
    "FrameJudge",
    "VideoModelConfig",
    "centroids",
    "clone_motion",
    "empty_prompt",
    "judge_clips",
    "make_clips",
    "motion_representation",
    "parse_prompt",
    "temporal_attention_names",
    "temporal_loss",
    "train_judge",
    "uneven_timesteps",
]
