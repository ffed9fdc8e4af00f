"""save_pretrained / from_pretrained for TiTok's generators (MaskGIT and AR): one safetensors
file, the constructor config in its metadata (``core.checkpoint.save_model``), kind-checked."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from paperlab.core.checkpoint import checkpoint_file, load_model, save_model


class Pretrained:
    """Mixin: the class sets ``kind`` and keeps its constructor keywords in ``self.config``."""

    kind: str
    config: dict[str, Any]

    def save_pretrained(self, path: str | os.PathLike) -> Path:
        """Write ``path`` (a ``.safetensors`` file, or a folder -> ``generator.safetensors``)."""
        file = checkpoint_file(path, "generator.safetensors")
        return save_model(file, self, kind=self.kind, config=self.config)  # type: ignore[arg-type]

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, *, device: str = "cpu") -> Any:
        """The generator ``save_pretrained`` wrote (of this class), in eval mode on ``device``."""
        file = checkpoint_file(path, "generator.safetensors")
        model, _ = load_model(file, lambda c: cls(**c), kind=cls.kind, map_location=device)
        return model.eval()


def check_labels(labels: Any, num_classes: int) -> None:
    """Class labels must be integer ids in [0, num_classes) (one ValueError naming them)."""
    import torch

    if not isinstance(labels, torch.Tensor) or labels.is_floating_point() or labels.dim() != 1:
        raise ValueError(f"labels: want a 1-D integer tensor of class ids, got {labels!r:.60}")
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        raise ValueError(
            f"labels: class ids must be in [0, {num_classes}), got "
            f"[{int(labels.min())}, {int(labels.max())}]"
        )
