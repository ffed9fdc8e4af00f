"""Tests of paperlab.core.imagellm: shapes, the answer-only loss against a per-position
reference, padding-independence of loss and decoding, a toy task that training learns,
a bit-exact save/load round trip, seeded sampling, and one clear error per bad argument."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from paperlab.core.device import torch_threads
from paperlab.core.imagellm import (
    BOS,
    EOS,
    SEP,
    ImageLLM,
    ImageLLMConfig,
    encode_text,
    train_image_llm,
)


def _cfg(**kw) -> ImageLLMConfig:
    base = dict(image_size=8, patch_size=4, vit_dim=16, vit_depth=1, vit_heads=2, dim=16)
    base.update(n_layers=1, n_heads=2, max_text_len=40)
    return ImageLLMConfig(**(base | kw))


def _model(seed: int = 0, **kw) -> ImageLLM:
    torch.manual_seed(seed)
    return ImageLLM(_cfg(**kw)).eval()


def _images(B: int = 3, seed: int = 0) -> torch.Tensor:
    return torch.rand(B, 3, 8, 8, generator=torch.Generator().manual_seed(seed))


def test_shapes():
    model = _model()
    feats = model.encode_images(_images(3))
    assert feats.shape == (3, 4, 16)  # 8x8 image, 4x4 patches -> 4 tokens of vit_dim
    vis = model.project(feats)
    assert vis.shape == (3, 4, 16)
    assert model.loss(vis, ["a", "bb", "c"], ["x", "yy", ""]).ndim == 0


def test_loss_is_answer_only_reference():
    model = _model()
    vis = model.visual_tokens(_images(1))
    prompt, answer = "what?", "red"
    ids = [BOS, *encode_text(prompt), SEP, *encode_text(answer), EOS]
    h = torch.cat([vis, model.llm.embed(torch.tensor([ids]))], dim=1)
    logits = model.llm.head(model.llm.run_layers(h))[0]  # (N + T, V)
    N, first = vis.shape[1], ids.index(SEP) + 1
    # the answer token at text index j is predicted at position N + j - 1
    pos = [N + j - 1 for j in range(first, len(ids))]
    ref = F.cross_entropy(logits[pos], torch.tensor(ids[first:]))
    got = model.loss(vis, [prompt], [answer])
    torch.testing.assert_close(got, ref)
    # the prompt carries no loss: a different prompt changes the context, not what is scored
    # (so the loss stays finite and the count of scored tokens is the answer's + EOS)
    assert torch.isfinite(model.loss(vis, ["x" * 30], [answer]))


def test_loss_padding_does_not_leak():
    model = _model()
    vis = model.visual_tokens(_images(2))
    prompts, answers = ["short", "a much longer prompt"], ["ab", "abcdef"]
    both = model.loss(vis, prompts, answers)
    each = [model.loss(vis[k : k + 1], prompts[k : k + 1], answers[k : k + 1]) for k in range(2)]
    counts = [len(a) + 1 for a in answers]  # answer bytes + EOS
    mean = sum(e * c for e, c in zip(each, counts, strict=True)) / sum(counts)
    torch.testing.assert_close(both, mean)


def test_generate_batched_equals_single_and_seeded():
    model = _model(seed=1)
    images = _images(3, seed=2)
    prompts = ["q", "a longer question", "mid q"]
    batched = model.generate(images, prompts, max_new_tokens=8)
    single = [
        model.generate(images[k : k + 1], [p], max_new_tokens=8)[0] for k, p in enumerate(prompts)
    ]
    assert batched == single
    a = model.generate(images, prompts, max_new_tokens=8, temperature=1.0, seed=3)
    b = model.generate(images, prompts, max_new_tokens=8, temperature=1.0, seed=3)
    assert a == b


def test_training_lowers_loss_on_toy_task():
    torch.manual_seed(0)
    n = 32
    red = torch.arange(n) % 2 == 0
    images = torch.zeros(n, 3, 8, 8)
    images[red, 0], images[~red, 2] = 1.0, 1.0
    examples = [(images[k], "colour?", "red" if red[k] else "blue") for k in range(n)]
    model = ImageLLM(_cfg())
    with torch_threads(1):
        history = train_image_llm(
            model, examples, steps=40, batch_size=8, lr=3e-2, seed=0, progress=False
        )
    assert history["loss"][-1] < 0.1 * history["loss"][0]
    out = model.generate(images[:4], ["colour?"] * 4, max_new_tokens=8)
    assert out == ["red", "blue", "red", "blue"]


def test_freeze_vision_trains_the_rest_only():
    model = ImageLLM(_cfg())
    vision = {k: v.clone() for k, v in model.vision.state_dict().items()}
    projector = model.projector.linear_1.weight.clone()
    examples = [(_images(1, seed=k)[0], "q", "a") for k in range(4)]
    with torch_threads(1):
        train_image_llm(
            model,
            examples,
            steps=3,
            batch_size=2,
            lr=1e-2,
            seed=0,
            progress=False,
            freeze_vision=True,
        )
    assert all(torch.equal(v, model.vision.state_dict()[k]) for k, v in vision.items())
    assert not torch.equal(projector, model.projector.linear_1.weight)
    assert all(p.requires_grad for p in model.vision.parameters())  # restored after


def test_save_load_round_trip(tmp_path):
    model = _model(seed=4)
    file = model.save_pretrained(tmp_path / "ckpt")
    assert file.name == "model.safetensors"
    loaded = ImageLLM.from_pretrained(tmp_path / "ckpt")
    assert loaded.config == model.config
    for (k, v), (k2, v2) in zip(
        model.state_dict().items(), loaded.state_dict().items(), strict=True
    ):
        assert k == k2 and torch.equal(v, v2)
    images = _images(2)
    assert loaded.generate(images, ["x", "y"], max_new_tokens=6) == model.generate(
        images, ["x", "y"], max_new_tokens=6
    )
    with pytest.raises(FileNotFoundError, match="no ImageLLM checkpoint"):
        ImageLLM.from_pretrained(tmp_path / "missing")


def test_bad_input_names_the_argument():
    model = _model()
    with pytest.raises(ValueError, match="images"):
        model.encode_images(torch.rand(2, 3, 16, 16))
    vis = model.visual_tokens(_images(2))
    with pytest.raises(ValueError, match="prompts"):
        model.loss(vis, [], [])
    with pytest.raises(ValueError, match="prompts"):
        model.generate(_images(2), [])
    with pytest.raises(ValueError, match="answers"):
        model.loss(vis, ["a", "b"], ["only one"])
    with pytest.raises(ValueError, match="max_text_len"):
        model.loss(vis, ["a" * 50, "b"], ["x", "y"])
    with pytest.raises(ValueError, match="patch_size"):
        ImageLLMConfig(image_size=10, patch_size=4)
    with pytest.raises(ValueError, match="vit_heads"):
        ImageLLMConfig(vit_dim=10, vit_heads=4)
