"""The miniature's world: answers match what the frames show; the official frame sampling;
the caption score."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from paperlab.papers.pllava import caption_score, make_clips, make_images, sample_frame_indices
from paperlab.papers.pllava.data import COUNTS, image_examples


def _lit(frames: torch.Tensor) -> torch.Tensor:
    """(T, 3, S, S) -> (T, S, S) mask of shape pixels (bright against the dark background)."""
    return frames.max(dim=1).values > 0.5


def test_motion_answers_follow_the_centroid():
    clips = make_clips(12, seed=1, tasks=("motion",))
    for frames, answer, caption in zip(clips.frames, clips.answer, clips.caption, strict=True):
        lit = _lit(frames)
        ys, xs = torch.meshgrid(torch.arange(16.0), torch.arange(16.0), indexing="ij")
        cx = [(xs * m).sum() / m.sum() for m in (lit[0], lit[-1])]
        cy = [(ys * m).sum() / m.sum() for m in (lit[0], lit[-1])]
        dx, dy = float(cx[1] - cx[0]), float(cy[1] - cy[0])
        expected = (
            ("right" if dx > 0 else "left") if abs(dx) > abs(dy) else ("down" if dy > 0 else "up")
        )
        assert answer == expected and caption.endswith(f"moves {answer}")


def test_count_answers_are_the_number_of_bursts():
    clips = make_clips(15, seed=2, tasks=("count",))
    for frames, answer in zip(clips.frames, clips.answer, strict=True):
        on = _lit(frames).flatten(1).any(1).int().tolist()
        bursts = sum(1 for a, b in zip([0, *on], on, strict=False) if b and not a)
        assert COUNTS[bursts - 1] == answer
        # every burst survives the 2x segment sampling, whichever frame "rand" picks
        for seed in range(5):
            idx = sample_frame_indices(16, 8, mode="rand", rng=np.random.default_rng(seed))
            sub = [on[i] for i in idx]
            assert sum(1 for a, b in zip([0, *sub], sub, strict=False) if b and not a) == bursts


def test_order_answer_is_the_first_colour():
    clips = make_clips(6, seed=3, tasks=("order",))
    from paperlab.papers.pllava.data import COLOURS

    for frames, answer in zip(clips.frames, clips.answer, strict=True):
        first = frames[0][:, _lit(frames)[0]].mean(1)  # mean colour of the first frame's shape
        nearest = min(COLOURS, key=lambda c: float(((first - torch.tensor(COLOURS[c])) ** 2).sum()))
        assert nearest == answer


def test_frame_sampling():
    assert sample_frame_indices(16, 8) == [1, 3, 5, 7, 9, 11, 13, 15]
    idx = sample_frame_indices(16, 8, mode="rand", rng=np.random.default_rng(0))
    assert all(2 * k <= i < 2 * k + 2 for k, i in enumerate(idx))
    with pytest.raises(ValueError, match="num_frames"):
        sample_frame_indices(4, 8)
    with pytest.raises(ValueError, match="mode"):
        sample_frame_indices(16, 8, mode="uniform")


def test_images_and_captions():
    images = make_images(8, seed=0)
    examples = image_examples(images)
    assert len(examples) == 32 and examples[3][2].startswith(f"a {images.colour[0]} ")
    assert caption_score("a red circle moves left", "a red circle moves left") == 1.0
    assert caption_score("a red square", "a red circle moves left") == pytest.approx(1 / 3)
    assert make_clips(3, seed=0).task == ["motion", "order", "count"]
    with pytest.raises(ValueError, match="tasks"):
        make_clips(3, tasks=("dance",))
