"""Faces, boxes, the embedding stack, the encoders and the judge's measures."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from paperlab.papers.instantfamily import (
    Condition,
    EncoderConfig,
    GeneratorConfig,
    IdentityEncoder,
    InstantFamily,
    check_boxes,
    generate,
    grid_boxes,
    id_images,
    make_scene,
    random_identities,
)
from paperlab.papers.instantfamily.metrics import adherence, per_box

TINY = dict(size=16, widths=(8, 16), token_dim=16, local_size=2, id_global_dim=32, id_local_dim=16)


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_renders_are_seeded_and_an_identity_is_stable_under_nuisance():
    ids = random_identities(6, _gen())
    a, b = id_images(ids, _gen(1)), id_images(ids, _gen(1))
    assert a.shape == (6, 3, 16, 16) and torch.equal(a, b) and 0 <= a.min() and a.max() <= 1
    c = id_images(ids, _gen(2))  # other pose and light
    same = (a - c).flatten(1).norm(dim=1).mean()
    other = (a - c.roll(1, 0)).flatten(1).norm(dim=1).mean()
    assert same < other


@pytest.mark.parametrize(
    "boxes, message",
    [
        ([[20.0, 2.0, 8.0]], "not inside"),
        ([[-1.0, 2.0, 8.0]], "not inside"),
        ([[2.0, 2.0, 2.0]], "not inside"),
        ([[2.0, 2.0, 8.0], [11.0, 2.0, 8.0]], "overlap"),  # 1 px apart: regions overlap
    ],
)
def test_check_boxes_rejects(boxes, message):
    with pytest.raises(ValueError, match=message):
        check_boxes(torch.tensor(boxes), 24, arg="boxes")


def test_layouts_and_random_scenes_pass_the_margin_rule():
    for k in (1, 2, 3, 4):
        check_boxes(grid_boxes(k, 24), 24)
    scene = make_scene(3, 2, _gen(), size=24)
    for b in scene.boxes:
        check_boxes(b, 24)
    assert scene.images.shape == (3, 3, 24, 24) and scene.control.shape == (3, 3, 24, 24)
    assert scene.control.amax((1, 2, 3)).min() == 1  # a disc per canvas


def _cond(k: int, b: int = 2) -> Condition:
    scene = make_scene(b, k, _gen(k), size=16, boxes=grid_boxes(k, 16).expand(b, k, 3))
    return Condition(
        scene.colour, torch.randn(b, k, 32), torch.randn(b, k, 16, 2, 2), scene.boxes, scene.control
    )


@pytest.mark.parametrize("features, per_person", [("global_local", 5), ("global", 1)])
def test_embedding_stack_grows_with_people(features, per_person):
    torch.manual_seed(0)
    model = InstantFamily(GeneratorConfig(**TINY, features=features))
    for k in (1, 3):
        tokens, owner = model.embedding_stack(_cond(k))
        assert tokens.shape == (2, 2 + k * per_person, 16)
        assert owner.tolist() == [-1, -1] + [i for i in range(k) for _ in range(per_person)]
    cond = _cond(2)
    base, _ = model.embedding_stack(cond)
    tokens, owner = model.embedding_stack(dataclasses.replace(cond, order=[1, 0]))
    assert owner[2] == 1
    torch.testing.assert_close(tokens[:, 2 : 2 + per_person], base[:, 2 + per_person :])


def test_null_rows_drop_the_identity_tokens_and_forward_runs():
    torch.manual_seed(0)
    model = InstantFamily(GeneratorConfig(**TINY, mask="neg_inf"))
    cond = _cond(2)
    cond.null = torch.tensor([True, False])
    tokens, _ = model.embedding_stack(cond)
    assert tokens[0, 2:].abs().max() == 0 and tokens[1, 2:].abs().max() > 0
    out = model(torch.randn(2, 3, 16, 16), torch.tensor(10), cond)
    assert out.shape == (2, 3, 16, 16) and torch.isfinite(out).all()


def test_generate_checks_its_inputs():
    torch.manual_seed(0)
    model = InstantFamily(GeneratorConfig(**TINY)).eval()
    enc = IdentityEncoder(EncoderConfig(width=8, local_size=2)).eval()
    refs = id_images(random_identities(2, _gen()), _gen()).view(1, 2, 3, 16, 16)
    boxes = torch.tensor([[[1.0, 5.0, 6.0], [9.0, 5.0, 6.0]]])
    out = generate(model, enc, refs, boxes, torch.tensor([0]), steps=2)
    assert out.shape == (1, 3, 16, 16)
    with pytest.raises(ValueError, match="refs"):
        generate(model, enc, refs[..., :8, :8], boxes, torch.tensor([0]), steps=2)
    with pytest.raises(ValueError, match="boxes"):
        generate(model, enc, refs, boxes[:, :1], torch.tensor([0]), steps=2)
    with pytest.raises(ValueError, match="colour"):
        generate(model, enc, refs, boxes, torch.tensor([9]), steps=2)


def test_judge_measures_on_real_and_swapped_canvases():
    torch.manual_seed(0)
    judge = IdentityEncoder(EncoderConfig(width=8, judge=True)).eval()
    ids = random_identities(6, _gen()).view(3, 2, -1)
    boxes = grid_boxes(2, 24).expand(3, 2, 3)
    scene = make_scene(3, 2, _gen(1), size=24, ids=ids, boxes=boxes)
    refs = id_images(ids.flatten(0, 1), _gen(2)).view(3, 2, 3, 16, 16)
    m = per_box(judge, scene.images, boxes, refs)
    swapped = per_box(judge, scene.images, boxes, refs.flip(1))
    # a box is "mixed" exactly when it is closer to the other person's reference: swapping
    # the two references flips every box
    assert (swapped["mixed"] ^ m["mixed"]).all()
    assert torch.isfinite(m["between"]).all() and m["random"].shape == (3, 2)
    assert adherence(scene.images, boxes, scene.colour).all()
