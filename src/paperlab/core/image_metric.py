"""Judging generated images without Inception: a classifier trained here, and the Fréchet
distance in its feature space.

FID (Heusel et al. 2017, arXiv 1706.08500) compares the Gaussian statistics of Inception-v3
features of real and generated images. We have no pretrained Inception network (nothing is
downloaded), so the feature extractor is a small CNN trained here on the real data set, and the
score is named for what it is: ``FD-shapes`` / ``FD-digits``, not FID. Numbers are comparable
only between runs that use the same judge (same data, steps and seed).

    judge = train_judge(train, reference, seed=0)       # ImageDataset x 2 (held-out reference)
    judge.fd(samples)                                   # Fréchet distance to the reference
    judge.class_accuracy(samples, intended_labels)      # do samples show their class?
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy import linalg
from torch import Tensor, nn

from paperlab.core.data.images import ImageDataset
from paperlab.core.train import TrainConfig
from paperlab.core.train import train as run_training


class FeatureNet(nn.Module):
    """A small CNN classifier; ``features`` is its penultimate layer (the space FD is taken in)."""

    def __init__(
        self, *, in_channels: int, num_classes: int, image_size: int, feature_dim: int = 64
    ):
        super().__init__()
        self.image_size, self.in_channels = image_size, in_channels
        second_stride = 2 if image_size >= 16 else 1  # 8 px digits keep a 4x4 map
        self.conv = nn.Sequential(
            nn.Conv2d(in_channels, 32, 3, padding=1),
            nn.BatchNorm2d(32),
            nn.ReLU(),
            nn.Conv2d(32, 64, 3, stride=2, padding=1),
            nn.BatchNorm2d(64),
            nn.ReLU(),
            nn.Conv2d(64, 64, 3, stride=second_stride, padding=1),
            nn.BatchNorm2d(64),
            nn.ReLU(),
        )
        self.fc = nn.Linear(64, feature_dim)
        self.head = nn.Linear(feature_dim, num_classes)

    def features(self, x: Tensor) -> Tensor:
        h = self.conv(x).mean(dim=(2, 3))  # global average pool, (N, 64)
        return F.relu(self.fc(h))  # (N, feature_dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


def feature_stats(features: np.ndarray | Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance (float64) of features (N, F)."""
    if isinstance(features, Tensor):
        features = features.detach().cpu().numpy()
    feats = np.asarray(features, dtype=np.float64)
    if feats.ndim != 2 or feats.shape[0] < 2:
        raise ValueError(f"feature_stats: need (N >= 2, F) features, got shape {feats.shape}")
    return feats.mean(axis=0), np.cov(feats, rowvar=False)


def frechet_distance(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray, eps: float = 1e-6
) -> float:
    """||mu1 - mu2||^2 + Tr(S1 + S2 - 2 sqrtm(S1 S2)), the Fréchet distance of two Gaussians
    (FID's formula, Heusel et al. 2017, Eq. 6)."""
    mu1, mu2 = np.atleast_1d(mu1), np.atleast_1d(mu2)
    sigma1, sigma2 = np.atleast_2d(sigma1), np.atleast_2d(sigma2)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
        raise ValueError("frechet_distance: the two Gaussians have different dimensions")
    diff = mu1 - mu2
    with warnings.catch_warnings():  # dead ReLU features make the product singular: handled
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        covmean = linalg.sqrtm(sigma1 @ sigma2)
        if not np.isfinite(covmean).all():  # offset both, as the FID reference code does
            offset = np.eye(sigma1.shape[0]) * eps
            covmean = linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError(
                f"frechet_distance: sqrtm has a large imaginary part "
                f"({np.max(np.abs(covmean.imag)):.3g}); the covariances are ill-conditioned"
            )
        covmean = covmean.real
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.trace(covmean))


@dataclass
class ImageJudge:
    """A classifier trained on real images + the feature statistics of held-out real images."""

    name: str
    net: FeatureNet
    ref_mu: np.ndarray
    ref_sigma: np.ndarray
    test_accuracy: float

    @torch.no_grad()
    def features(self, images: Tensor, *, batch_size: int = 512) -> Tensor:
        want = (self.net.in_channels, self.net.image_size, self.net.image_size)
        if images.dim() != 4 or tuple(images.shape[1:]) != want:
            raise ValueError(
                f"{self.name}: images must be (N, {want[0]}, {want[1]}, {want[2]}) like the "
                f"judge's training data, got {tuple(images.shape)}"
            )
        self.net.eval()
        device = next(self.net.parameters()).device
        parts = [
            self.net.features(images[i : i + batch_size].to(device).float()).cpu()
            for i in range(0, len(images), batch_size)
        ]
        return torch.cat(parts)

    @torch.no_grad()
    def predict(self, images: Tensor, *, batch_size: int = 512) -> Tensor:
        self.net.eval()
        feats = self.features(images, batch_size=batch_size)  # on the CPU
        device = next(self.net.parameters()).device
        with torch.no_grad():
            return self.net.head(feats.to(device)).argmax(dim=1).cpu()

    def fd(self, images: Tensor) -> float:
        mu, sigma = feature_stats(self.features(images))
        return frechet_distance(mu, sigma, self.ref_mu, self.ref_sigma)

    def class_accuracy(self, images: Tensor, labels: Tensor) -> float:
        return (self.predict(images) == labels.cpu()).float().mean().item()

    def score(self, images: Tensor, labels: Tensor) -> dict[str, float]:
        return {"fd": self.fd(images), "class_acc": self.class_accuracy(images, labels)}


def _shift(images: Tensor, generator: torch.Generator, max_shift: int) -> Tensor:
    """Random translation by up to ``max_shift`` pixels (one shift per batch: cheap, enough)."""
    dy, dx = torch.randint(-max_shift, max_shift + 1, (2,), generator=generator).tolist()
    return torch.roll(images, shifts=(dy, dx), dims=(2, 3))


def train_judge(
    train: ImageDataset,
    reference: ImageDataset,
    *,
    steps: int = 400,
    batch_size: int = 128,
    lr: float = 3e-3,
    seed: int = 0,
    device: str = "cpu",
    progress: bool = False,
) -> ImageJudge:
    """Train a FeatureNet on ``train``; reference statistics and accuracy on ``reference``."""
    train_set = train
    if train_set.num_classes != reference.num_classes or train_set.size != reference.size:
        raise ValueError("train_judge: train and reference sets differ in classes or image size")
    torch.manual_seed(seed)
    net = FeatureNet(
        in_channels=train_set.channels,
        num_classes=train_set.num_classes,
        image_size=train_set.size,
    )
    aug = torch.Generator().manual_seed(seed + 1)
    max_shift = max(1, train_set.size // 16)

    def loss_fn(model: nn.Module, batch: tuple[Tensor, Tensor]) -> Tensor:
        images, labels = batch
        return F.cross_entropy(model(_shift(images, aug, max_shift)), labels)

    cfg = TrainConfig(
        steps=steps,
        lr=lr,
        weight_decay=0.0,
        warmup_steps=min(20, steps // 10),
        progress=progress,
        seed=seed,
        desc=f"judge FD-{train_set.name}",
    )
    run_training(net, loss_fn, train_set.batches(batch_size, seed=seed), cfg, device=device)
    judge = ImageJudge(
        name=f"FD-{train_set.name}",
        net=net,
        ref_mu=np.zeros(1),
        ref_sigma=np.zeros((1, 1)),
        test_accuracy=0.0,
    )
    judge.ref_mu, judge.ref_sigma = feature_stats(judge.features(reference.images))
    judge.test_accuracy = judge.class_accuracy(reference.images, reference.labels)
    return judge
