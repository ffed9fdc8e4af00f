"""The miniature's world and the paper's mixing: scenes' invariants and rendering, captions
read back against the truth, the web captions' mismatch rate, the per-sample mixing ratio p,
and the CLI end to end at toy size (scenes -> captioner -> caption -> CLIP -> eval; p outside
[0, 1] is one line, exit 2)."""

from __future__ import annotations

import json

import pytest
import torch

from paperlab.cli import main
from paperlab.papers.recap import (
    caption_scores,
    check_p,
    long_caption,
    mixed_captions,
    parse_caption,
    render_scenes,
    sample_scenes,
    short_query,
    web_captions,
)
from paperlab.papers.recap.scenes import CELLS, COLOURS, IMAGE_SIZE, MAX_CAPTION_BYTES


def test_scenes_are_well_formed_and_seeded():
    scenes = sample_scenes(300, seed=3)
    assert scenes == sample_scenes(300, seed=3) and scenes != sample_scenes(300, seed=4)
    for s in scenes:
        cells = [o.cell for o in s.objects]
        assert 2 <= len(cells) <= 4 and len(set(cells)) == len(cells)
        assert sum(o.size == "large" for o in s.objects) == 1
        assert len(long_caption(s).encode()) <= MAX_CAPTION_BYTES
    assert {len(s.objects) for s in scenes} == {2, 3, 4}


def test_each_object_is_drawn_in_its_cell_in_its_colour():
    scenes = sample_scenes(20, seed=0)
    images = render_scenes(scenes, seed=0, noise=0.0)
    assert images.shape == (20, 3, IMAGE_SIZE, IMAGE_SIZE)
    assert 0.0 <= images.min() and images.max() <= 1.0
    half = IMAGE_SIZE // 2
    for image, scene in zip(images, scenes, strict=True):
        for k in range(4):
            row, col = divmod(k, 2)
            cell = image[:, row * half : (row + 1) * half, col * half : (col + 1) * half]
            brightest = cell.flatten(1)[:, cell.sum(0).flatten().argmax()]  # (3,)
            obj = [o for o in scene.objects if o.cell == k]
            if not obj:
                assert cell.max() < 0.2  # an empty cell is background only
                continue
            target = torch.tensor(COLOURS[obj[0].colour])
            assert (brightest - target).abs().max() < 0.2


def test_captions_read_back_and_score_against_the_truth():
    scenes = sample_scenes(50, seed=1)
    truth = [long_caption(s) for s in scenes]
    assert all(parse_caption(t) == set(s.objects) for t, s in zip(truth, scenes, strict=True))
    perfect = caption_scores(scenes, truth)
    assert perfect["object_f1"] == 1.0 and perfect["exact"] == 1.0
    assert perfect["subject_acc"] == 1.0
    # shift every caption by one scene: mostly wrong objects, a chance-level subject
    wrong = caption_scores(scenes, truth[1:] + truth[:1])
    assert wrong["object_f1"] < 0.2 and wrong["subject_acc"] < 0.3
    # a half caption (the subject only) is precise but recalls less
    half = caption_scores(scenes, [t.split(";")[0] for t in truth])
    assert half["object_precision"] == 1.0 and half["object_recall"] < 0.5
    assert short_query(scenes[0]).startswith("a ")
    assert CELLS[0] == "top left"


def test_web_captions_mismatch_at_the_given_rate():
    scenes = sample_scenes(4000, seed=2)
    clean = web_captions(scenes, mismatch=0.0, seed=0)
    assert all(
        s.subject.colour in c and s.subject.shape in c for s, c in zip(scenes, clean, strict=True)
    )
    noisy = web_captions(scenes, mismatch=0.25, seed=0)
    right = sum(
        s.subject.colour in c and s.subject.shape in c for s, c in zip(scenes, noisy, strict=True)
    )
    # 75% matched, plus the mismatched ones that name an equal subject by chance (1/16)
    assert 0.73 < right / len(scenes) < 0.80
    with pytest.raises(ValueError, match="mismatch"):
        web_captions(scenes, mismatch=1.5)


def test_mixing_ratio_p_is_the_share_of_original_captions():
    org = [f"org {i}" for i in range(1000)]
    re = [f"re {i}" for i in range(1000)]
    index = torch.arange(1000)
    assert mixed_captions(org, re, p=0.0)(index, 0) == re
    assert mixed_captions(org, re, p=1.0)(index, 0) == org
    texts = mixed_captions(org, re, p=0.8, seed=1)
    a = texts(index, 5)
    assert a == texts(index, 5)  # fixed by (seed, step): a resumed run sees the same texts
    assert a != texts(index, 6)  # drawn afresh each step
    share = sum(t.startswith("org") for t in a) / len(a)
    assert 0.75 < share < 0.85
    assert all(t.split()[1] == str(i) for t, i in zip(a, index.tolist(), strict=True))


@pytest.mark.parametrize("bad", [-0.1, 1.01, float("nan"), "0.5", True])
def test_p_outside_the_unit_interval_is_refused(bad):
    with pytest.raises(ValueError, match="p="):
        check_p(bad)


def test_cli_end_to_end_at_toy_size(tmp_path, capsys):
    demo, cap, rc, clip = (tmp_path / n for n in ("demo", "cap", "rc", "clip"))
    assert main(["recap", "scenes", str(demo), "--n", "12"]) == 0
    assert json.loads((demo / "000003.json").read_text())["long_caption"]
    flags = ["--device", "cpu", "--no-progress"]
    assert (
        main(
            [
                "recap",
                "train-captioner",
                str(demo),
                "--out",
                str(cap),
                "--steps",
                "2",
                "--vision-steps",  # the encoder stage, then the frozen-encoder captioning
                "2",
                "--dim",
                "16",
                *flags,
            ]
        )
        == 0
    )
    assert "encoder: per-cell accuracy" in capsys.readouterr().out
    bad = ["recap", "train-captioner", str(demo), "--out", str(tmp_path / "x")]
    assert main([*bad, "--vision-steps", "-1"]) == 2
    assert "--vision-steps" in capsys.readouterr().err and not (tmp_path / "x").exists()
    argv = ["recap", "caption", str(demo), "--captioner", str(cap), "--out", str(rc)]
    assert main([*argv, "--batch-size", "5", "--max-new-tokens", "8", *flags]) == 0
    assert "12 of 12 images captioned" in capsys.readouterr().out
    assert (
        main(
            [
                "recap",
                "train-clip",
                str(rc),
                "--p",
                "0.5",
                "--out",
                str(clip),
                "--steps",
                "2",
                "--batch-size",
                "4",
                "--dim",
                "8",
                *flags,
            ]
        )
        == 0
    )
    assert main(["recap", "eval", str(clip), "--scenes", "8", *flags]) == 0
    assert "zero-shot subject accuracy" in capsys.readouterr().out
    code = main(["recap", "train-clip", str(rc), "--p", "1.5", "--out", str(clip), *flags])
    err = capsys.readouterr().err
    assert code == 2 and "--p" in err and len(err.strip().splitlines()) == 1
