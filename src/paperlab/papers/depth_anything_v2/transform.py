"""Inference preprocessing as the official ``image2tensor`` / ``infer_image``.

RGB in [0, 1] -> resized so that the *shorter* side is about ``input_size`` (518 by default)
keeping the aspect ratio ("lower_bound": both sides >= input_size), each side rounded to a
multiple of the patch size (14), bicubic -> ImageNet mean/std. The prediction is resized back
to the photo's size (bilinear, align_corners=True). The output is relative **disparity**.

    x = preprocess(photo, input_size=518, multiple_of=14)     # (1, 3, 518, 770) for 500x741
    disparity = infer_disparity(model, photo)                   # (500, 741) float32
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _multiple(x: float, multiple_of: int, min_val: int) -> int:
    """Round ``x`` to a multiple; up instead when rounding falls below ``min_val`` (official
    ``constrain_to_multiple_of``)."""
    y = int(np.round(x / multiple_of) * multiple_of)
    if y < min_val:
        y = int(math.ceil(x / multiple_of) * multiple_of)
    return y


def target_size(
    height: int, width: int, *, input_size: int = 518, multiple_of: int = 14
) -> tuple[int, int]:
    """(new_height, new_width): the official Resize(keep_aspect_ratio, 'lower_bound')."""
    if height < 1 or width < 1:
        raise ValueError(f"image size {height}x{width}: both sides must be >= 1")
    if input_size < 1 or multiple_of < 1:
        raise ValueError(f"input_size={input_size} and multiple_of={multiple_of} must be >= 1")
    scale = max(input_size / height, input_size / width)  # the larger scale: lower bound
    return (
        _multiple(scale * height, multiple_of, input_size),
        _multiple(scale * width, multiple_of, input_size),
    )


def to_float_rgb(image: np.ndarray) -> np.ndarray:
    """(H, W, 3) float32 RGB in [0, 1] from uint8 / float RGB, RGBA or greyscale."""
    image = np.asarray(image)
    if image.ndim == 2:
        image = np.stack([image] * 3, -1)
    if image.ndim != 3 or image.shape[-1] not in (3, 4):
        raise ValueError(f"image: expected (H, W), (H, W, 3) or (H, W, 4), got {image.shape}")
    image = image[..., :3]
    if image.dtype == np.uint8:
        return image.astype(np.float32) / 255.0
    return image.astype(np.float32).clip(0, 1)


def normalize(images: Tensor) -> Tensor:
    """(B, 3, H, W) RGB in [0, 1] -> ImageNet-normalised."""
    mean = images.new_tensor(IMAGENET_MEAN)[:, None, None]
    std = images.new_tensor(IMAGENET_STD)[:, None, None]
    return (images - mean) / std


def preprocess(image: np.ndarray, *, input_size: int = 518, multiple_of: int = 14) -> Tensor:
    """(1, 3, h, w) network input from an (H, W, 3) photo (uint8 or float in [0, 1])."""
    rgb = torch.from_numpy(to_float_rgb(image)).permute(2, 0, 1)[None]
    h, w = target_size(rgb.shape[2], rgb.shape[3], input_size=input_size, multiple_of=multiple_of)
    # DEVIATION: torch's bicubic (a = -0.75, no antialias) for OpenCV's INTER_CUBIC (the same
    # kernel and sampling grid); values may differ by rounding at the borders.
    resized = F.interpolate(rgb, size=(h, w), mode="bicubic", align_corners=False)
    return normalize(resized)


@torch.no_grad()
def infer_disparity(
    model: nn.Module, image: np.ndarray, *, input_size: int = 518, device: str = "cpu"
) -> np.ndarray:
    """(H, W) float32 relative disparity (inverse depth up to scale and shift; larger =
    closer) of an (H, W, 3) photo, at the photo's resolution."""
    patch = model.config.patch_size
    x = preprocess(image, input_size=input_size, multiple_of=patch).to(device)
    was_training = model.training
    model.eval()
    try:
        disparity = model(x)[:, None]  # (1, 1, h, w)
    finally:
        model.train(was_training)
    h, w = np.asarray(image).shape[:2]
    disparity = F.interpolate(disparity, (h, w), mode="bilinear", align_corners=True)
    return disparity[0, 0].float().cpu().numpy()
