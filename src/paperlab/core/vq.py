"""Vector quantisation: a learned codebook with a straight-through estimator.

VQ-VAE (van den Oord et al. 2017, "Neural Discrete Representation Learning", arXiv 1711.00937):
each vector z is replaced by its nearest code e_k, gradients pass straight through the
non-differentiable lookup, and the codebook is trained by Eq. 3

    L = ||sg[z] - e||^2 + beta * ||z - sg[e]||^2        (plus the reconstruction term)

(the second term moves the codes towards the encoder outputs, the third "commits" the encoder
to its codes). Optionally the inputs and the codes are l2-normalised before the lookup, so the
nearest code is the one with the largest cosine similarity: the factorised, l2-normalised codes
of ViT-VQGAN (Yu et al. 2021, "Vector-quantized Image Modeling with Improved VQGAN",
arXiv 2110.04627, Sec. 3.2), used by LlamaGen and TiTok with low-dimensional (e.g. 8 or 12) codes.

    vq = VectorQuantizer(codebook_size=512, dim=8, l2_norm=True)
    out = vq(z)                        # z channel-last (..., 8)
    loss = recon_loss + out.loss
    vq.usage(); vq.restart_dead_codes(z)   # codebook health, counted since the last reset
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn


@dataclass
class VQOutput:
    quantized: Tensor  # shape of z (..., D): z + (q - z).detach()  (straight-through)
    indices: Tensor  # z.shape[:-1], int64
    loss: Tensor  # codebook_loss + beta * commitment_loss (scalar)
    codebook_loss: Tensor  # mean ||sg[z] - e||^2   (Eq. 3, second term)
    commitment_loss: Tensor  # mean ||z - sg[e]||^2   (Eq. 3, third term)


class VectorQuantizer(nn.Module):
    """Nearest-code quantiser with a codebook of ``codebook_size`` codes of size ``dim``.

    ``l2_norm=True``: z and the codes are l2-normalised and the lookup is by cosine similarity
    (ViT-VQGAN Sec. 3.2); the quantised output is then unit-norm and the losses are computed on
    the normalised vectors. ``init``: "uniform" draws codes from U(-1/K, 1/K) (the VQ-VAE
    reference habit), "normal" from N(0, 1).
    """

    def __init__(
        self,
        *,
        codebook_size: int,
        dim: int,
        l2_norm: bool = False,
        beta: float = 0.25,
        init: Literal["uniform", "normal"] = "uniform",
    ):
        super().__init__()
        if codebook_size < 1 or dim < 1:
            raise ValueError(
                f"VectorQuantizer: codebook_size ({codebook_size}) and dim ({dim}) must be >= 1"
            )
        if init not in ("uniform", "normal"):
            raise ValueError(f"VectorQuantizer: unknown init {init!r}; choose uniform or normal")
        self.codebook_size = codebook_size
        self.dim = dim
        self.l2_norm = l2_norm
        self.beta = beta
        self.embedding = nn.Embedding(codebook_size, dim)
        if init == "uniform":
            nn.init.uniform_(self.embedding.weight, -1.0 / codebook_size, 1.0 / codebook_size)
        else:
            nn.init.normal_(self.embedding.weight)
        # code hits since the last reset, in train and eval mode (usage, dead-code restarts);
        # not part of a checkpoint and not synchronised across DDP processes
        self.register_buffer("code_counts", torch.zeros(codebook_size), persistent=False)

    @property
    def codebook(self) -> Tensor:
        """(K, D) codes as used for the lookup (l2-normalised if ``l2_norm``)."""
        weight = self.embedding.weight
        return F.normalize(weight, dim=-1) if self.l2_norm else weight

    def _nearest(self, flat: Tensor, codebook: Tensor) -> Tensor:
        """Nearest code for each row of ``flat`` (M, D), without building an (M, K, D) tensor."""
        with torch.no_grad():
            if self.l2_norm:  # unit vectors: nearest in l2 == largest cosine similarity
                return (flat @ codebook.t()).argmax(dim=1)
            distances = (
                flat.pow(2).sum(dim=1, keepdim=True)
                - 2.0 * flat @ codebook.t()
                + codebook.pow(2).sum(dim=1)[None, :]
            )  # ||z||^2 - 2 z.e + ||e||^2, (M, K)
            return distances.argmin(dim=1)

    def forward(self, z: Tensor) -> VQOutput:
        if z.shape[-1] != self.dim:
            raise ValueError(
                f"VectorQuantizer: z has last dimension {z.shape[-1]} but the codes have "
                f"dim={self.dim}; pass z channel-last (..., {self.dim})"
            )
        z = F.normalize(z, dim=-1) if self.l2_norm else z
        codebook = self.codebook
        indices = self._nearest(z.reshape(-1, self.dim), codebook).reshape(z.shape[:-1])
        q = F.embedding(indices, codebook)  # differentiable w.r.t. the codebook
        # DEVIATION: means over all elements (as LlamaGen's and TiTok's code), i.e. Eq. 3's
        # squared norms averaged over vectors and divided by D: both terms shrink by 1/D
        # relative to a reconstruction loss; beta keeps its meaning.
        codebook_loss = F.mse_loss(q, z.detach())  # Eq. 3, ||sg[z] - e||^2
        commitment_loss = F.mse_loss(q.detach(), z)  # Eq. 3, ||z - sg[e]||^2
        quantized = z + (q - z).detach()  # straight-through estimator (Sec. 3.2)
        with torch.no_grad():
            counts = torch.bincount(indices.reshape(-1), minlength=self.codebook_size)
            self.code_counts += counts.to(self.code_counts.dtype)
        return VQOutput(
            quantized=quantized,
            indices=indices,
            loss=codebook_loss + self.beta * commitment_loss,
            codebook_loss=codebook_loss,
            commitment_loss=commitment_loss,
        )

    def lookup(self, indices: Tensor) -> Tensor:
        """(...,) int -> (..., D), equal to ``codebook[indices]`` (e.g. to decode sampled ids)."""
        return F.embedding(indices, self.codebook)

    def usage(self) -> float:
        """Share of codes hit at least once since the last ``reset_usage()``."""
        return (self.code_counts > 0).float().mean().item()

    def reset_usage(self) -> None:
        self.code_counts.zero_()

    @torch.no_grad()
    def restart_dead_codes(
        self,
        z: Tensor,
        *,
        min_count: float = 1.0,
        generator: torch.Generator | None = None,
        noise: float = 1e-4,
    ) -> int:
        """Replace codes hit fewer than ``min_count`` times since the last reset by random rows
        of ``z`` (detached; normalised if ``l2_norm``); return how many; reset the counts.

        Not part of VQ-VAE: the random restarts of Jukebox (Dhariwal et al. 2020, arXiv
        2005.00341), a common cure for codebook collapse. Optimiser state of the restarted rows
        (e.g. Adam moments) is left as it is.

        Rows are drawn without replacement when z has enough rows, else with replacement; a
        small gaussian perturbation (``noise`` times the rows' rms) keeps restarted codes apart.
        ``generator`` must be a CPU generator (the draws are made on the CPU, then moved).
        """
        flat = z.detach().reshape(-1, self.dim).to(self.embedding.weight.dtype)
        if self.l2_norm:
            flat = F.normalize(flat, dim=-1)
        dead = (self.code_counts < min_count).nonzero().reshape(-1)
        n_dead = int(dead.numel())
        if n_dead and flat.shape[0] == 0:
            raise ValueError("restart_dead_codes: z has no rows to restart the dead codes from")
        if n_dead:
            if flat.shape[0] >= n_dead:
                rows = torch.randperm(flat.shape[0], generator=generator)[:n_dead]
            else:
                rows = torch.randint(flat.shape[0], (n_dead,), generator=generator)
            new = flat[rows.to(flat.device)]
            rms = new.pow(2).mean().sqrt().clamp_min(1e-12)
            jitter = torch.randn(new.shape, generator=generator).to(new.device, new.dtype)
            self.embedding.weight[dead] = new + noise * rms * jitter
        self.reset_usage()
        return n_dead


def codebook_usage(indices: Tensor, codebook_size: int) -> float:
    """Share of the ``codebook_size`` codes that occur in ``indices``."""
    return torch.unique(indices).numel() / codebook_size
