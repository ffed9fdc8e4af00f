"""Masked autoencoding with pixel tokens (PiT Sec. 4.2; MAE, He et al. 2021, arXiv 2111.06377).

MAE (Sec. 3 of MAE): drop a random 75% of the tokens of each image, run the encoder on the
visible 25% only (no mask tokens in the encoder), then a light decoder sees the encoded visible
tokens plus one shared learned mask token at every dropped position, each with its position
embedding, and predicts the dropped tokens' pixels; the loss is the MSE on the dropped tokens
only. With PiT a "token" is one pixel, so the model fills in 75% of the pixels of an image from
the other 25%. After pre-training the decoder is thrown away and the encoder is fine-tuned as a
classifier (:func:`classifier_from_mae`).

The encoder *is* a ``paperlab.core.vit.ViT`` (its patch embedding, class token, positions and
transformer); ``core.vit`` has no "run on a subset of tokens" entry point, so
:meth:`MAE.encode` below assembles it from the ViT's parts. The decoder is a
``core.vit.Transformer``.

    mae = MAE(image_size=8, patch_size=1, in_channels=1)       # PiT-MAE on 8x8 images
    loss, m = mae.loss(images)                                 # MSE on the masked pixels
    clf = classifier_from_mae(mae, num_classes=10)             # ViT with the encoder's weights
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from paperlab.core.vit import (
    Transformer,
    ViT,
    init_weights,
    patchify,
    sincos_position_embedding,
    unpatchify,
)
from paperlab.papers.pit.model import PosEmbed, patch_vit


def random_masking(
    batch: int,
    n_tokens: int,
    mask_ratio: float,
    *,
    generator: torch.Generator | None = None,
    device: str | torch.device = "cpu",
) -> tuple[Tensor, Tensor]:
    """MAE's per-image random masking: ``(keep, mask)`` with ``keep`` (B, K) the indices of the
    K = int(N * (1 - mask_ratio)) visible tokens (ascending) and ``mask`` (B, N) float, 1 on
    the dropped tokens (the loss positions) and 0 on the visible ones."""
    if not 0.0 < mask_ratio < 1.0:
        raise ValueError(f"random_masking: mask_ratio={mask_ratio} must be in (0, 1)")
    n_keep = int(n_tokens * (1 - mask_ratio))  # MAE: len_keep = int(L * (1 - mask_ratio))
    if n_keep < 1:
        raise ValueError(f"random_masking: mask_ratio={mask_ratio} keeps no token of {n_tokens}")
    noise = torch.rand(batch, n_tokens, generator=generator, device=device)
    keep = noise.argsort(dim=1)[:, :n_keep].sort(dim=1).values  # (B, K)
    mask = torch.ones(batch, n_tokens, device=device)
    mask.scatter_(1, keep, 0.0)
    return keep, mask


def masked_mse(pred: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """MAE's loss: per-token MSE (B, N), averaged over the masked tokens only (mask = 1)."""
    per_token = (pred - target).pow(2).mean(dim=-1)  # (B, N)
    return (per_token * mask).sum() / mask.sum()


def normalise_tokens(target: Tensor, eps: float = 1e-6) -> Tensor:
    """MAE's ``norm_pix_loss`` target: each token's values standardised by their own mean and
    variance. Needs tokens of more than one value (a 1-channel pixel has a zero variance)."""
    if target.shape[-1] < 2:
        raise ValueError("normalise_tokens: tokens of one value cannot be normalised per token")
    mean = target.mean(dim=-1, keepdim=True)
    var = target.var(dim=-1, keepdim=True)
    return (target - mean) / (var + eps).sqrt()


class MAE(nn.Module):
    """Masked autoencoder over patch tokens; ``patch_size=1`` is PiT's pixel-token MAE.

    Encoder: a ``ViT`` (class token, ``pos_embed`` learned or sincos) run on the visible
    tokens. Decoder (MAE Sec. 3): Linear(dim -> decoder_dim), the mask token, fixed 2D sin-cos
    positions, ``decoder_depth`` blocks, Linear(decoder_dim -> p*p*C) per token.
    """

    def __init__(
        self,
        *,
        image_size: int,
        patch_size: int,
        in_channels: int,
        dim: int = 64,
        depth: int = 2,
        n_heads: int = 2,
        decoder_dim: int = 32,
        decoder_depth: int = 1,
        decoder_heads: int = 2,
        mask_ratio: float = 0.75,
        pos_embed: PosEmbed = "learned",
        # DEVIATION: unnormalised pixel targets by default; a small decoder with fixed
        # sin-cos positions (MAE: 512 x 8); see the README.
        norm_target: bool = False,
    ):
        super().__init__()
        if pos_embed == "none":
            raise ValueError(
                "MAE: pos_embed='none' leaves the decoder no way to place a mask "
                "token; use learned or sincos"
            )
        if not 0.0 < mask_ratio < 1.0:
            raise ValueError(f"MAE: mask_ratio={mask_ratio} must be in (0, 1)")
        token_len = patch_size * patch_size * in_channels
        if norm_target and token_len < 2:
            raise ValueError(
                "MAE: norm_target needs tokens of more than one value (1-channel "
                "pixels have none); use norm_target=False"
            )
        self.patch_size, self.in_channels = patch_size, in_channels
        self.mask_ratio, self.norm_target = mask_ratio, norm_target
        # num_classes=1: the head is unused here; classifier_from_mae builds a fresh one
        self.encoder = patch_vit(
            image_size=image_size,
            patch_size=patch_size,
            in_channels=in_channels,
            num_classes=1,
            dim=dim,
            depth=depth,
            n_heads=n_heads,
            pos_embed=pos_embed,
        )
        self.num_tokens = self.encoder.patch_embed.num_patches
        self.decoder_embed = nn.Linear(dim, decoder_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, decoder_dim))
        # MAE Sec. 3 / its code: the decoder's positions are the fixed 2D sin-cos embedding
        # (the class token's a zero vector); they let every mask token know its place from
        # step 0, where learned ones start near zero and the decoder predicts the mean image.
        grid = sincos_position_embedding(self.encoder.patch_embed.grid_size, decoder_dim)
        decoder_pos = torch.cat([torch.zeros(1, decoder_dim), grid])[None]
        self.register_buffer("decoder_pos", decoder_pos, persistent=False)  # (1, N + 1, Dd)
        self.decoder = Transformer(dim=decoder_dim, depth=decoder_depth, n_heads=decoder_heads)
        self.decoder_pred = nn.Linear(decoder_dim, token_len)
        for module in (self.decoder_embed, self.decoder, self.decoder_pred):
            module.apply(init_weights)
        nn.init.trunc_normal_(self.mask_token, std=0.02)

    def _positions(self) -> tuple[Tensor | None, Tensor | None]:
        """(class-token position (1, 1, D) or None, token positions (1, N, D) or None)."""
        enc = self.encoder
        if enc.pos_embed_kind == "learned":
            return enc.pos_embed[:, :1], enc.pos_embed[:, 1:]
        return None, enc.pos_embed  # sincos: the class token gets no position (as MAE)

    def encode(self, images: Tensor, keep: Tensor) -> Tensor:
        """(B, 1 + K, dim): encoder states of the class token and the K visible tokens."""
        enc = self.encoder
        x = enc.patch_embed(images)  # (B, N, D)
        cls_pos, pos = self._positions()
        x = x + pos
        B, _, D = x.shape
        x = x.gather(1, keep[..., None].expand(-1, -1, D))  # (B, K, D) visible tokens only
        cls = enc.cls_token if cls_pos is None else enc.cls_token + cls_pos
        x = torch.cat([cls.expand(B, -1, -1), x], dim=1)
        return enc.transformer(x)

    def decode(self, latent: Tensor, keep: Tensor) -> Tensor:
        """(B, N, p*p*C) predictions for every token from the encoded visible ones."""
        y = self.decoder_embed(latent)  # (B, 1 + K, Dd)
        B, _, Dd = y.shape
        full = self.mask_token.expand(B, self.num_tokens, Dd)
        full = full.scatter(1, keep[..., None].expand(-1, -1, Dd), y[:, 1:])  # unshuffle
        full = torch.cat([y[:, :1], full], dim=1) + self.decoder_pos
        return self.decoder_pred(self.decoder(full)[:, 1:])

    def target(self, images: Tensor) -> Tensor:
        target = patchify(images, self.patch_size)  # (B, N, p*p*C)
        return normalise_tokens(target) if self.norm_target else target

    def forward(self, images: Tensor, keep: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """(pred (B, N, p*p*C), mask (B, N)); a fresh random mask unless ``keep`` is given."""
        if keep is None:
            keep, mask = random_masking(
                images.shape[0], self.num_tokens, self.mask_ratio, device=images.device
            )
        else:
            mask = torch.ones(images.shape[0], self.num_tokens, device=images.device)
            mask.scatter_(1, keep, 0.0)
        return self.decode(self.encode(images, keep), keep), mask

    def loss(self, images: Tensor) -> tuple[Tensor, dict[str, float]]:
        pred, mask = self(images)
        return masked_mse(pred, self.target(images), mask), {}

    @torch.no_grad()
    def reconstruct(self, images: Tensor, *, seed: int = 0) -> tuple[Tensor, Tensor]:
        """(masked input, reconstruction) images: visible pixels kept, dropped ones predicted
        (un-normalised targets only); the masked input shows dropped tokens as 0. Computed on
        the model's device."""
        g = torch.Generator().manual_seed(seed)  # the mask is drawn on the CPU, then moved
        keep, mask = random_masking(images.shape[0], self.num_tokens, self.mask_ratio, generator=g)
        device = self.mask_token.device
        images, keep, mask = images.to(device), keep.to(device), mask.to(device)
        pred, _ = self(images, keep)
        tokens = patchify(images, self.patch_size)
        m = mask[..., None]
        shown = unpatchify(tokens * (1 - m), self.patch_size, self.in_channels)
        filled = unpatchify(tokens * (1 - m) + pred * m, self.patch_size, self.in_channels)
        return shown, filled.clamp(0, 1)


def classifier_from_mae(mae: MAE, *, num_classes: int) -> ViT:
    """A fresh ViT classifier of the encoder's shape, carrying the pre-trained encoder weights
    (patch embedding, class token, positions, blocks, final norm) and a new linear head."""
    enc = mae.encoder
    clf = patch_vit(
        image_size=enc.patch_embed.image_size,
        patch_size=enc.patch_embed.patch_size,
        in_channels=enc.patch_embed.in_channels,
        num_classes=num_classes,
        dim=enc.head.in_features,
        depth=len(enc.transformer.blocks),
        n_heads=enc.transformer.blocks[0].attn.n_heads,
        pos_embed=enc.pos_embed_kind,
    )
    state = {k: v for k, v in enc.state_dict().items() if not k.startswith("head.")}
    missing, unexpected = clf.load_state_dict(state, strict=False)
    assert not unexpected and set(missing) == {"head.weight", "head.bias"}, (missing, unexpected)
    return clf
