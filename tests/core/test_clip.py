"""Tests of paperlab.core.clip: the symmetric InfoNCE loss against a hand computation and
open_clip's formula, recall@k on constructed embeddings, the tokenizer's truncation (what is
after the cut never reaches the model), EOT pooling, zero-shot classification, a short training
run that learns, and a save/load round trip."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from paperlab.core.clip import (
    CLIP,
    EOT,
    PAD,
    SOT,
    CLIPConfig,
    clip_loss,
    encode_images,
    encode_texts,
    retrieval_recall,
    tokenize,
    train_clip,
    zero_shot_classify,
)


def _tiny(**kw) -> CLIPConfig:
    base = dict(
        image_size=8,
        patch_size=4,
        vision_dim=16,
        vision_depth=1,
        vision_heads=2,
        text_dim=16,
        text_depth=1,
        text_heads=2,
        context_length=24,
        embed_dim=8,
    )
    return CLIPConfig(**{**base, **kw})


# -- the loss ------------------------------------------------------------------------------------


def test_loss_matches_a_hand_computed_case():
    # two pairs, orthogonal unit embeddings; scale 2: logits [[2, 0], [0, 2]] both ways
    img = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    txt = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    expected = -math.log(math.exp(2) / (math.exp(2) + 1))
    assert clip_loss(img, txt, torch.tensor(2.0)).item() == pytest.approx(expected, rel=1e-6)
    # texts swapped: every pair is now the negative one
    swapped = -math.log(1 / (math.exp(2) + 1))
    loss = clip_loss(img, txt.flip(0), torch.tensor(2.0)).item()
    assert loss == pytest.approx(swapped, rel=1e-6)


def test_loss_equals_open_clips_formula_and_is_asymmetric_sum():
    g = torch.Generator().manual_seed(0)
    img = F.normalize(torch.randn(6, 5, generator=g), dim=-1)
    txt = F.normalize(torch.randn(6, 5, generator=g), dim=-1)
    scale = torch.tensor(14.3)
    # open_clip ClipLoss (world_size 1): logits_per_text computed as its own product
    logits_per_image = scale * img @ txt.T
    logits_per_text = scale * txt @ img.T
    labels = torch.arange(6)
    reference = (
        F.cross_entropy(logits_per_image, labels) + F.cross_entropy(logits_per_text, labels)
    ) / 2
    assert torch.allclose(clip_loss(img, txt, scale), reference, atol=1e-6)
    # the two directions differ in general: the loss is their mean, not one of them
    one_way = F.cross_entropy(logits_per_image, labels)
    assert not torch.allclose(one_way, F.cross_entropy(logits_per_text, labels))


def test_loss_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="features"):
        clip_loss(torch.zeros(3, 4), torch.zeros(2, 4), torch.tensor(1.0))


# -- retrieval -----------------------------------------------------------------------------------


def test_recall_on_constructed_embeddings():
    # text i points mostly at image perm[i] and a little at its own image i: only pair 0 is
    # first (R@1 = 1/4); every own match is at worst second (R@2 = 1)
    img = torch.eye(4)
    perm = [0, 2, 3, 1]
    txt = F.normalize(torch.stack([img[perm[i]] + 0.5 * img[i] for i in range(4)]), dim=-1)
    r = retrieval_recall(img, txt, ks=(1, 2, 4))
    assert r["i2t_r1"] == pytest.approx(0.25)
    assert r["t2i_r1"] == pytest.approx(0.25)
    assert r["i2t_r2"] == pytest.approx(1.0)  # each image's own text is second at worst
    assert r["t2i_r2"] == pytest.approx(1.0)
    assert r["i2t_r4"] == r["t2i_r4"] == 1.0


def test_recall_perfect_and_groups():
    emb = F.normalize(torch.randn(5, 3, generator=torch.Generator().manual_seed(1)), dim=-1)
    assert retrieval_recall(emb, emb, ks=(1,)) == {"i2t_r1": 1.0, "t2i_r1": 1.0}
    # two images with the very same caption: either one is a correct match for it
    img = torch.eye(3)
    txt = torch.stack([img[1], img[0], img[2]])  # texts 0 and 1 crossed
    assert retrieval_recall(img, txt, ks=(1,))["i2t_r1"] == pytest.approx(1 / 3)
    grouped = retrieval_recall(img, txt, ks=(1,), groups=["a cat", "a cat", "a dog"])
    assert grouped == {"i2t_r1": 1.0, "t2i_r1": 1.0}


def test_recall_rejects_bad_input():
    with pytest.raises(ValueError, match="ks"):
        retrieval_recall(torch.eye(3), torch.eye(3), ks=(0,))
    with pytest.raises(ValueError, match="embeddings"):
        retrieval_recall(torch.eye(3), torch.eye(2), ks=(1,))


# -- tokens and truncation ----------------------------------------------------------------------


def test_tokenize_layout_and_truncation():
    t = tokenize(["ab", "abcdefgh"], context_length=6)
    assert t[0].tolist() == [SOT, ord("a"), ord("b"), EOT, PAD, PAD]
    # too long: the first context-1 tokens, [EOT] in the last slot (open_clip truncate=True)
    assert t[1].tolist() == [SOT, *b"abcd", EOT]
    with pytest.raises(ValueError, match="context_length"):
        tokenize("abcdefgh", context_length=6, truncate=False)


def test_truncation_silently_removes_what_is_after_the_cut():
    torch.manual_seed(0)
    model = CLIP(_tiny(context_length=24)).eval()
    head = "small red circle top left; "  # 27 bytes: the cut falls inside it
    a = head + "large blue square bottom right"
    b = head + "large green cross top right"
    with torch.no_grad():
        ea, eb = model.encode_text([a, b])
    assert torch.equal(ea, eb)  # the two scenes are the same text to this model
    torch.manual_seed(0)
    wide = CLIP(_tiny(context_length=72)).eval()
    with torch.no_grad():
        wa, wb = wide.encode_text([a, b])
    assert not torch.allclose(wa, wb)  # a context long enough keeps them apart


def test_eot_pooling_ignores_padding_and_the_context_width():
    torch.manual_seed(0)
    model = CLIP(_tiny()).eval()
    tokens = tokenize(["red circle"], context_length=24)
    with torch.no_grad():
        full = model.encode_text(tokens)
        trimmed = model.encode_text(tokens[:, :12])
        noisy = tokens.clone()
        noisy[0, 13:] = 99  # garbage after [EOT] cannot reach it through the causal mask
        assert torch.allclose(full, trimmed, atol=1e-6)
        assert torch.allclose(full, model.encode_text(noisy), atol=1e-6)


# -- the model ----------------------------------------------------------------------------------


def _toy_data(n: int = 64, seed: int = 0):
    """8x8 images of one of 4 solid colours, captioned by the colour's name."""
    g = torch.Generator().manual_seed(seed)
    names = ["red", "green", "blue", "white"]
    rgb = torch.tensor([[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0], [1.0, 1.0, 1.0]])
    labels = torch.randint(4, (n,), generator=g)
    images = rgb[labels][:, :, None, None].expand(n, 3, 8, 8).clone()
    images += 0.05 * torch.randn(images.shape, generator=g)
    return images.clamp(0, 1), labels, [names[i] for i in labels], names


def test_training_learns_a_toy_matching_and_zero_shot():
    torch.manual_seed(0)
    images, labels, captions, names = _toy_data()
    model = CLIP(_tiny())
    history = train_clip(
        model, images, captions, steps=60, batch_size=16, lr=3e-3, seed=0, progress=False
    )
    assert history["loss"][-1] < history["loss"][0]
    assert history["logit_scale"][-1] <= 100.0
    pred = zero_shot_classify(model, images, names)
    assert (pred == labels).float().mean() > 0.9
    r = retrieval_recall(
        encode_images(model, images), encode_texts(model, captions), ks=(1,), groups=captions
    )
    assert r["i2t_r1"] > 0.9


def test_logit_scale_init_and_clamp():
    model = CLIP(_tiny())
    assert model.scale().item() == pytest.approx(1 / 0.07, rel=1e-5)
    with torch.no_grad():
        model.logit_scale.fill_(10.0)
    assert model.scale().item() == pytest.approx(100.0)


def test_prompt_ensembles_and_bad_classes():
    torch.manual_seed(0)
    model = CLIP(_tiny()).eval()
    images = torch.rand(3, 3, 8, 8)
    pred = zero_shot_classify(model, images, [["red", "a red thing"], ["blue"]])
    assert pred.shape == (3,) and set(pred.tolist()) <= {0, 1}
    with pytest.raises(ValueError, match="classes"):
        zero_shot_classify(model, images, ["red"])


def test_save_and_load_round_trip(tmp_path):
    torch.manual_seed(0)
    model = CLIP(_tiny(causal=False)).eval()
    model.save_pretrained(tmp_path / "clip")
    again = CLIP.from_pretrained(tmp_path / "clip")
    assert again.config == model.config
    images = torch.rand(2, 3, 8, 8)
    with torch.no_grad():
        assert torch.equal(model.encode_image(images), again.encode_image(images))
        assert torch.equal(model.encode_text(["a b"]), again.encode_text(["a b"]))
    with pytest.raises(ValueError, match="CLIP"):
        from paperlab.core.checkpoint import save_model

        save_model(tmp_path / "other.safetensors", model, kind="other", config={})
        CLIP.from_pretrained(tmp_path / "other.safetensors")


def test_config_and_train_arguments_are_checked():
    with pytest.raises(ValueError, match="text_dim"):
        CLIPConfig(text_dim=10, text_heads=4)
    with pytest.raises(ValueError, match="patch_size"):
        CLIPConfig(image_size=10, patch_size=4)
    images, _, captions, _ = _toy_data(8)
    with pytest.raises(ValueError, match="texts"):
        train_clip(CLIP(_tiny()), images, captions[:3], steps=1, progress=False)
    with pytest.raises(ValueError, match="batch_size"):
        train_clip(CLIP(_tiny()), images, captions, steps=1, batch_size=9, progress=False)
