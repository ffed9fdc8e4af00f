"""The prompt judge: a small CNN trained here on frames of the procedural clips, predicting the
colour and the shape of the moving object; a clip's verdict averages its frames' logits. Its
held-out accuracy on real clips is the powering figure of the prompt-adherence claim."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from paperlab.core.train import TrainConfig, train
from paperlab.papers.motionclone.data import COLOURS, SHAPES, ClipSet


class FrameJudge(nn.Module):
    def __init__(self, width: int = 16) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, width, 3, padding=1),
            nn.GELU(),
            nn.Conv2d(width, 2 * width, 3, padding=1, stride=2),
            nn.GELU(),
            nn.Conv2d(2 * width, 2 * width, 3, padding=1),
            nn.GELU(),
            nn.AdaptiveMaxPool2d(1),
            nn.Flatten(),
        )
        self.colour = nn.Linear(2 * width, len(COLOURS))
        self.shape = nn.Linear(2 * width, len(SHAPES))

    def forward(self, frames: Tensor) -> tuple[Tensor, Tensor]:
        """frames (N, 3, H, W) -> (colour logits, shape logits)."""
        h = self.body(frames)
        return self.colour(h), self.shape(h)


def _frames(clips: Tensor) -> Tensor:
    b, c, f, h, w = clips.shape
    return clips.permute(0, 2, 1, 3, 4).reshape(b * f, c, h, w)


def train_judge(
    data: ClipSet, *, steps: int, seed: int, device: str = "cpu"
) -> tuple[FrameJudge, dict]:
    """Cross-entropy on random frames (colour + shape heads)."""
    torch.manual_seed(seed)
    judge = FrameJudge()
    frames = _frames(data.clips)
    labels = data.prompts.repeat_interleave(data.clips.shape[2], dim=0)
    gen = torch.Generator().manual_seed(seed)

    def batch(step: int) -> tuple[Tensor, Tensor]:
        idx = torch.randint(frames.shape[0], (64,), generator=gen)
        noisy = frames[idx] + 0.1 * torch.randn(
            frames[idx].shape, generator=gen
        )  # generated clips are not clean
        return noisy, labels[idx]

    def loss_fn(model: nn.Module, b: tuple[Tensor, Tensor]) -> Tensor:
        colour, shape = model(b[0])
        return F.cross_entropy(colour, b[1][:, 0]) + F.cross_entropy(shape, b[1][:, 1])

    cfg = TrainConfig(
        steps=steps, lr=3e-3, warmup_steps=10, seed=seed, progress=False, desc="judge"
    )
    history = train(judge, loss_fn, batch, cfg, device=device)
    return judge.eval(), {"final_loss": history["loss"][-1]}


@torch.no_grad()
def judge_clips(judge: FrameJudge, clips: Tensor) -> Tensor:
    """(N, 2) predicted (colour id, shape id) per clip, from its frames' mean logits."""
    b, f = clips.shape[0], clips.shape[2]
    colour, shape = judge(_frames(clips.to(next(judge.parameters()).device)))
    colour = colour.view(b, f, -1).mean(1).argmax(-1)
    shape = shape.view(b, f, -1).mean(1).argmax(-1)
    return torch.stack([colour, shape], dim=1).cpu()
