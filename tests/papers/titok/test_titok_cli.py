"""`paperlab titok train|sample` (an image folder -> a checkpoint folder -> a PNG grid) and the
generators' save_pretrained / from_pretrained."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from paperlab.cli import main
from paperlab.core.data.image_io import read_image, save_png
from paperlab.papers.titok import ARGenerator, MaskGIT

TINY = ["--size", "8", "--tokens", "4", "--codebook-size", "16", "--width", "32"]
TINY += ["--tok-steps", "2", "--gen-steps", "2", "--batch-size", "4", "--no-progress"]


@pytest.mark.parametrize("kind", ["maskgit", "ar"])
def test_generators_round_trip(kind: str, tmp_path: Path) -> None:
    kw = dict(codebook_size=16, seq_len=4, num_classes=3, dim=32, n_heads=2)
    model = MaskGIT(**kw, depth=1) if kind == "maskgit" else ARGenerator(**kw, n_layers=1)
    path = model.save_pretrained(tmp_path / "g")
    loaded = type(model).from_pretrained(tmp_path / "g")
    ids, labels = torch.randint(0, 16, (2, 4)), torch.tensor([0, 2])
    assert path.name == "generator.safetensors"
    assert torch.equal(model.eval()(ids, labels), loaded(ids, labels))
    other = ARGenerator if kind == "maskgit" else MaskGIT
    with pytest.raises(ValueError, match="expected a titok-"):
        other.from_pretrained(tmp_path / "g")


def test_train_then_sample(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    gen = torch.Generator().manual_seed(0)
    for name, channel in (("reds", 0), ("greens", 1)):
        for i in range(3):
            image = torch.rand(3, 8, 8, generator=gen) * 0.2
            image[channel] += 0.7
            save_png(image, tmp_path / "images" / name / f"{i}.png")
    ckpt = tmp_path / "ckpt"
    assert main(["titok", "train", str(tmp_path / "images"), "--out", str(ckpt), *TINY]) == 0
    assert (ckpt / "tokenizer" / "model.safetensors").is_file()
    assert (ckpt / "generator.safetensors").is_file() and (ckpt / "samples.png").is_file()
    grid = tmp_path / "grid.png"
    argv = ["titok", "sample", str(ckpt), "--out", str(grid), "--class", "greens"]
    assert main([*argv, "--per-class", "3", "--steps", "2"]) == 0
    assert read_image(grid).shape == (3, 8 + 2, 3 * 9 + 1)
    assert "1 class(es) x 3" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "--out", "{out}"], "image folder or --demo"),
        (["train", "--demo", "--out", "{out}", "--size", "10"], "divisible by --patch-size"),
        (["train", "--demo", "--out", "{out}", "--tokens", "0"], "--tokens"),
        (["sample", "{missing}", "--out", "{png}"], "classes.json"),
        (["sample", "{missing}", "--out", "{png}", "--temperature", "0"], "--temperature"),
    ],
)
def test_bad_input_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture, argv: list[str], message: str
) -> None:
    paths = {"out": tmp_path / "out", "missing": tmp_path / "nope", "png": tmp_path / "g.png"}
    assert main(["titok", *[a.format(**paths) for a in argv]]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not paths["out"].exists() and not paths["png"].exists()


def test_tokenizer_refuses_pixels_outside_zero_one() -> None:
    from paperlab.papers.titok import TiTokTokenizer

    tok = TiTokTokenizer(image_size=8, patch_size=4, num_latent_tokens=2, width=16, n_heads=2)
    with pytest.raises(ValueError, match="uint8 pixels: divide by 255"):
        tok.encode((torch.rand(1, 3, 8, 8) * 255).to(torch.uint8))
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        tok.encode(torch.rand(1, 3, 8, 8) * 3)


@pytest.mark.parametrize("kind", ["maskgit", "ar"])
def test_generators_refuse_class_ids_out_of_range(kind: str) -> None:
    kw = dict(codebook_size=16, seq_len=4, num_classes=3, dim=32, n_heads=2)
    model = MaskGIT(**kw, depth=1) if kind == "maskgit" else ARGenerator(**kw, n_layers=1)
    steps = {"num_steps": 2} if kind == "maskgit" else {}
    for labels in (torch.tensor([3]), torch.tensor([-1])):
        with pytest.raises(ValueError, match=r"class ids must be in \[0, 3\)"):
            model.generate(labels, **steps)
    with pytest.raises(ValueError, match="1-D integer tensor"):
        model.generate(torch.tensor([0.5]), **steps)
