"""paperlab.core.data.images and paperlab.core.image_metric: determinism, rendering that
matches its labels, the Fréchet distance against closed forms, a judge that tells real from
fake."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from paperlab.claims import UserError
from paperlab.core.data.images import (
    COLOURS,
    SHAPES,
    image_grid,
    load_digits,
    load_images,
    make_shapes,
)
from paperlab.core.device import torch_threads
from paperlab.core.image_metric import feature_stats, frechet_distance, train_judge


def test_shapes_are_deterministic_balanced_and_in_range():
    a, b = make_shapes(120, size=16, seed=3), make_shapes(120, size=16, seed=3)
    c = make_shapes(120, size=16, seed=4)
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    assert not torch.equal(a.images, c.images)
    assert a.images.shape == (120, 3, 16, 16) and a.images.dtype == torch.float32
    assert 0.0 <= a.images.min() and a.images.max() <= 1.0
    assert a.num_classes == len(SHAPES) * len(COLOURS) == 12
    assert torch.bincount(a.labels, minlength=12).tolist() == [10] * 12
    assert a.class_names[0] == "red circle" and a.class_names[-1] == "blue cross"


@pytest.mark.parametrize("size", [8, 16, 32])
def test_every_shape_is_drawn_in_its_colour(size):
    ds = make_shapes(240, size=size, seed=0, noise=0.0)
    for c, name in enumerate(ds.class_names):
        imgs = ds.images[ds.labels == c]
        fg = imgs.amax(dim=1) > 0.5  # foreground pixels (background is below 0.12)
        assert fg.flatten(1).sum(1).min() > 0, f"{name}: an empty image"
        colour = [imgs[:, k][fg].mean() for k in range(3)]
        assert int(np.argmax(colour)) == c % 3, f"{name}: mean foreground colour {colour}"


def test_shapes_differ_in_area_as_geometry_says():
    # same scale range for all: cross < triangle < circle < square in filled area
    ds = make_shapes(1200, size=32, seed=1, noise=0.0)
    area = {}
    for s, shape in enumerate(SHAPES):
        sel = (ds.labels // 3) == s
        area[shape] = (ds.images[sel].amax(dim=1) > 0.5).flatten(1).sum(1).float().mean().item()
    assert area["cross"] < area["circle"] < area["square"]
    assert area["triangle"] < area["square"]


def test_digits_and_dataset_helpers():
    d8, d16 = load_digits(), load_digits(size=16)
    assert d8.images.shape == (1797, 1, 8, 8) and d16.images.shape == (1797, 1, 16, 16)
    assert d8.images.max() <= 1.0 and d8.num_classes == 10
    train, test = d8.split(300, seed=0)
    assert len(train) == 1497 and len(test) == 300
    again = d8.split(300, seed=0)[1]
    assert torch.equal(test.images, again.images)
    batch = d8.batches(32, seed=1)
    assert torch.equal(batch(5)[0], batch(5)[0]) and not torch.equal(batch(5)[0], batch(6)[0])
    with pytest.raises(UserError, match="shapes, digits"):
        load_images("cifar")


def test_image_grid_shapes():
    grey = image_grid(torch.rand(5, 1, 8, 8), nrow=3, pad=1)
    assert grey.shape == (2 * 9 + 1, 3 * 9 + 1, 3)
    assert np.allclose(grey[..., 0], grey[..., 1])
    with pytest.raises(ValueError):
        image_grid(torch.rand(2, 2, 8, 8), nrow=2)


def test_frechet_distance_closed_forms():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(500, 4))
    mu, sigma = feature_stats(a)
    assert frechet_distance(mu, sigma, mu, sigma) == pytest.approx(0.0, abs=1e-6)
    shift = np.array([1.0, -2.0, 0.5, 0.0])
    assert frechet_distance(mu, sigma, mu + shift, sigma) == pytest.approx(5.25, rel=1e-6)
    v1, v2 = np.array([1.0, 4.0, 0.25]), np.array([9.0, 1.0, 1.0])
    expect = 3.0 + ((np.sqrt(v1) - np.sqrt(v2)) ** 2).sum()  # ||mu||^2 = 3 below
    got = frechet_distance(np.zeros(3), np.diag(v1), np.ones(3), np.diag(v2))
    assert got == pytest.approx(expect, rel=1e-6)


def test_judge_separates_real_from_fake():
    with torch_threads(1):
        ds = make_shapes(1200, size=16, seed=0)
        train, ref = ds.split(400, seed=0)
        judge = train_judge(train, ref, steps=150, batch_size=64, seed=0)
        held_out = make_shapes(400, size=16, seed=9)
        fd_real = judge.fd(held_out.images)
        fd_noise = judge.fd(torch.rand(400, 3, 16, 16))
        fd_one_class = judge.fd(held_out.images[held_out.labels == 0].repeat(12, 1, 1, 1))
        acc = judge.class_accuracy(held_out.images, held_out.labels)
    assert judge.name == "FD-shapes"
    assert fd_real * 10 < fd_noise and fd_real * 3 < fd_one_class
    assert acc > 0.7 and judge.test_accuracy > 0.7
