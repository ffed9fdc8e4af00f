"""A user's own images in, pictures out (Pillow).

- :func:`read_image`: one file -> a float (C, H, W) tensor in [0, 1], optionally resized.
- :func:`load_image_folder`: a folder of images -> an :class:`ImageDataset`; sub-folders are
  classes (the ``ImageFolder`` convention), a flat folder is one class.
- :func:`read_frames`: a folder of frames (sorted by name, numbers in natural order) -> a clip
  (T, C, H, W); the frames must share one size.
- :func:`save_png`, :func:`save_grid_png`, :func:`save_gif`: tensors in [0, 1] -> files, written
  atomically (a crash leaves no half-written picture).

Every mistake is one :class:`~paperlab.core.errors.UserError` naming the argument.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from paperlab.core.data.images import ImageDataset, image_grid
from paperlab.core.errors import UserError
from paperlab.core.files import atomic_path

IMAGE_SUFFIXES: tuple[str, ...] = (
    ".png",
    ".jpg",
    ".jpeg",
    ".bmp",
    ".gif",
    ".webp",
    ".tif",
    ".tiff",
)


def _natural_key(path: Path) -> list:
    """frame2.png before frame10.png."""
    return [int(s) if s.isdigit() else s.lower() for s in re.split(r"(\d+)", path.name)]


def image_files(folder: str | os.PathLike, *, arg: str = "folder") -> list[Path]:
    """The image files directly in ``folder``, in natural name order."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"{arg}: {folder} is not a folder")
    files = [p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
    return sorted(files, key=_natural_key)


def _size_pair(size: int | tuple[int, int] | None, arg: str) -> tuple[int, int] | None:
    if size is None:
        return None
    pair = (size, size) if isinstance(size, int) else tuple(size)
    if len(pair) != 2 or not all(isinstance(s, int) and not isinstance(s, bool) for s in pair):
        raise UserError(f"{arg} must be an int or (height, width), got {size!r}")
    if min(pair) < 1:
        raise UserError(f"{arg} must be positive, got {size!r}")
    return pair  # type: ignore[return-value]


def read_image(
    path: str | os.PathLike, *, size: int | tuple[int, int] | None = None, channels: int = 3
) -> torch.Tensor:
    """``path`` as float32 (channels, H, W) in [0, 1]; ``size`` (an int or (H, W)) resizes with
    Lanczos (Pillow). ``channels`` 1 (grey) or 3 (RGB)."""
    from PIL import Image, UnidentifiedImageError

    if channels not in (1, 3):
        raise UserError(f"channels must be 1 or 3, got {channels!r}")
    hw = _size_pair(size, "size")
    path = Path(path)
    try:
        with Image.open(path) as im:
            im = im.convert("L" if channels == 1 else "RGB")
            if hw is not None and im.size != (hw[1], hw[0]):
                im = im.resize((hw[1], hw[0]), Image.Resampling.LANCZOS)
            array = np.asarray(im, dtype=np.float32) / 255.0
    except (UnidentifiedImageError, OSError) as e:
        raise UserError(f"{path}: not a readable image ({e.__class__.__name__})") from None
    if array.ndim == 2:
        array = array[:, :, None]
    return torch.from_numpy(array.transpose(2, 0, 1).copy())


def load_image_folder(
    folder: str | os.PathLike,
    *,
    size: int | tuple[int, int] | None = None,
    channels: int = 3,
    name: str | None = None,
) -> ImageDataset:
    """Every image under ``folder`` as one :class:`ImageDataset`. Sub-folders holding images
    are the classes (sorted names; label = index); a folder with images only at its top level
    is one class named after it. Without ``size`` all images must share one size."""
    root = Path(folder)
    if not root.is_dir():
        raise UserError(f"folder: {root} is not a folder")
    classes = [d for d in sorted(root.iterdir()) if d.is_dir() and image_files(d)]
    groups = [(d.name, image_files(d)) for d in classes] or [(root.name, image_files(root))]
    if not any(files for _, files in groups):
        raise UserError(f"folder: no images ({', '.join(IMAGE_SUFFIXES)}) in {root}")
    images, labels = [], []
    for label, (_, files) in enumerate(groups):
        for f in files:
            images.append(read_image(f, size=size, channels=channels))
            labels.append(label)
    shapes = {tuple(x.shape) for x in images}
    if len(shapes) > 1:
        raise UserError(
            f"folder: images of different sizes in {root} ({len(shapes)} sizes, e.g. "
            f"{sorted(shapes)[:2]}); pass size= (or --size) to resize them"
        )
    return ImageDataset(
        name=name or root.name,
        images=torch.stack(images),
        labels=torch.tensor(labels, dtype=torch.long),
        class_names=tuple(n for n, _ in groups),
    )


def class_index(value: str, classes: Sequence[str], *, arg: str = "--class") -> int:
    """A class given by name (as in ``classes``) or by index -> its index."""
    if value in classes:
        return list(classes).index(value)
    if value.isdigit() and int(value) < len(classes):
        return int(value)
    raise UserError(f"{arg} {value!r}: not one of {', '.join(classes)} (or 0..{len(classes) - 1})")


def read_frames(
    folder: str | os.PathLike,
    *,
    size: int | tuple[int, int] | None = None,
    channels: int = 3,
    min_frames: int = 2,
    num_frames: int | None = None,
) -> torch.Tensor:
    """A clip from a folder of frames, (T, C, H, W) float32 in [0, 1]. Frames must share one
    size (or pass ``size``); at least ``min_frames``; ``num_frames`` demands exactly that many."""
    files = image_files(folder, arg="frames folder")
    if len(files) < min_frames:
        raise UserError(
            f"frames folder: {folder} has {len(files)} frame(s); need at least {min_frames}"
        )
    if num_frames is not None and len(files) != num_frames:
        raise UserError(f"frames folder: {folder} has {len(files)} frames; need {num_frames}")
    frames = [read_image(f, size=size, channels=channels) for f in files]
    sizes = {tuple(x.shape[1:]) for x in frames}
    if len(sizes) > 1:
        first = tuple(frames[0].shape[1:])
        odd = next(f for f, x in zip(files, frames, strict=True) if tuple(x.shape[1:]) != first)
        raise UserError(
            f"frames folder: frames of different sizes ({files[0].name} is {first[0]}x{first[1]}, "
            f"{odd.name} is {tuple(frames[files.index(odd)].shape[1:])}); pass a size to resize"
        )
    return torch.stack(frames)


def _to_uint8(image: torch.Tensor, arg: str) -> np.ndarray:
    if not isinstance(image, torch.Tensor) or image.dim() != 3 or image.shape[0] not in (1, 3):
        shape = tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
        raise UserError(f"{arg}: want a (1 or 3, H, W) tensor in [0, 1], got {shape}")
    if not torch.isfinite(image).all():
        raise UserError(f"{arg}: has NaN or infinite values")
    x = (image.detach().float().cpu().clamp(0, 1) * 255.0).round().to(torch.uint8).numpy()
    return x[0] if x.shape[0] == 1 else x.transpose(1, 2, 0)


def save_png(image: torch.Tensor, path: str | os.PathLike) -> Path:
    """One (C, H, W) image in [0, 1] as a PNG at ``path`` (written atomically)."""
    from PIL import Image

    array = _to_uint8(image, "image")
    path = Path(path)
    with atomic_path(path) as tmp:
        Image.fromarray(array).save(tmp, format="PNG")
    return path


def save_grid_png(
    images: torch.Tensor, path: str | os.PathLike, *, nrow: int = 8, pad: int = 1
) -> Path:
    """(N, C, H, W) images in [0, 1] tiled ``nrow`` per row into one PNG."""
    if not isinstance(images, torch.Tensor) or images.dim() != 4 or images.shape[1] not in (1, 3):
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise UserError(f"images: want (N, 1 or 3, H, W) in [0, 1], got {shape}")
    grid = torch.from_numpy(image_grid(images, nrow=nrow, pad=pad).transpose(2, 0, 1).copy())
    return save_png(grid, path)


def save_gif(
    frames: torch.Tensor | Sequence[torch.Tensor],
    path: str | os.PathLike,
    *,
    fps: float = 8.0,
    scale: int = 1,
) -> Path:
    """A clip (T, C, H, W) in [0, 1] as a looping GIF; ``scale`` enlarges tiny frames (nearest)."""
    from PIL import Image

    if fps <= 0:
        raise UserError(f"fps must be > 0, got {fps}")
    if not isinstance(scale, int) or scale < 1:
        raise UserError(f"scale must be an int >= 1, got {scale!r}")
    frames = list(frames)
    if not frames:
        raise UserError("frames: empty clip")
    pictures = []
    for i, f in enumerate(frames):
        im = Image.fromarray(_to_uint8(f, f"frames[{i}]"))
        if scale > 1:
            im = im.resize((im.width * scale, im.height * scale), Image.Resampling.NEAREST)
        pictures.append(im.convert("RGB"))
    path = Path(path)
    with atomic_path(path) as tmp:
        pictures[0].save(
            tmp,
            format="GIF",
            save_all=True,
            append_images=pictures[1:],
            duration=round(1000 / fps),
            loop=0,
        )
    return path
