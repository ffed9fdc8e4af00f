"""The TiTok 1D tokenizer (Sec. 3.2) and the 2D-grid baseline it is compared with.

TiTok: patches + K learnable latent tokens go through a ViT encoder; only the K latent outputs
are kept, projected to a low-dimensional code and vector-quantised (l2-normalised codes). The
decoder sees N mask tokens (one learned token + the patch position embedding) followed by the
K quantised latents, and reads the image back from the mask tokens' outputs.

The grid tokenizer (ViT-VQGAN style, built from the same blocks) quantises every patch token
of the encoder, so its token count is tied to the patch grid: (image_size / patch_size)^2.

    tok = TiTokTokenizer(image_size=16, patch_size=4, num_latent_tokens=8)
    ids = tok.encode(images)              # (B, 8) int64
    recon = tok.decode_indices(ids)       # (B, 3, 16, 16) in [0, 1]
    history = train_tokenizer(tok, train_images, steps=600)
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from paperlab.core.checkpoint import checkpoint_file, checkpoint_kind, load_model, save_model
from paperlab.core.train import TrainConfig, eval_mode, row_batches, train
from paperlab.core.vit import PatchEmbed, Transformer, unpatchify
from paperlab.core.vq import VectorQuantizer, VQOutput


def _embedding(*shape: int) -> nn.Parameter:
    # DEVIATION: unit-variance embeddings and PyTorch's default Linear init, where TiTok uses
    # width**-0.5 * randn and trunc-normal(0.02). With the small init, attention stays uniform
    # for ~1000 steps at this scale (a long plateau near the mean image, MSE ~0.02 on shapes);
    # with this one the same models leave it within ~150 steps.
    return nn.Parameter(torch.randn(*shape))


class _VQTokenizer(nn.Module):
    """What both tokenizers share: quantiser, pixel head, encode/decode, checkpoints.

    Subclasses define ``_encode(x) -> (B, T, width)`` (the features that get quantised, before
    the projection) and ``_decode(h) -> (B, N, width)`` (the decoder's patch outputs) from the
    projected codes ``h`` (B, T, width)."""

    kind = ""

    def _init_common(self, cfg: dict[str, Any]) -> None:
        self.config = dict(cfg)
        width, code_dim = cfg["width"], cfg["code_dim"]
        self.patch_size, self.channels = cfg["patch_size"], cfg["channels"]
        self.patch_embed = PatchEmbed(
            image_size=cfg["image_size"],
            patch_size=cfg["patch_size"],
            in_channels=cfg["channels"],
            dim=width,
        )
        self.num_patches = self.patch_embed.num_patches
        self.pos_embed = _embedding(self.num_patches, width)
        self.encoder = Transformer(dim=width, depth=cfg["enc_depth"], n_heads=cfg["n_heads"])
        # Sec. 3.2: a 1x1 conv (here: a linear map) down to the low-dimensional code
        self.pre_quant = nn.Linear(width, code_dim)
        # ViT-VQGAN / TiTok: l2-normalised, low-dimensional codes (12-d, 4096 codes at full)
        self.quantizer = VectorQuantizer(
            codebook_size=cfg["codebook_size"], dim=code_dim, l2_norm=True, beta=cfg["beta"]
        )
        self.post_quant = nn.Linear(code_dim, width)  # TiTok's decoder_embed
        self.dec_pos_embed = _embedding(self.num_patches, width)
        self.decoder = Transformer(dim=width, depth=cfg["dec_depth"], n_heads=cfg["n_heads"])
        # DEVIATION: a linear head from each mask token to its patch's pixels. TiTok's decoder
        # (a CLIP-style ViT with a class token and ln_pre) ends in a 1x1-conv MLP predicting
        # proxy codes (stage 1), then a VQGAN pixel decoder (stage 2); see train_tokenizer.
        self.to_pixels = nn.Linear(width, cfg["patch_size"] ** 2 * cfg["channels"])

    @property
    def num_tokens(self) -> int:
        raise NotImplementedError

    # -- encode ----------------------------------------------------------------------------

    def _encode(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def _decode(self, h: Tensor) -> Tensor:
        raise NotImplementedError

    def latents(self, images: Tensor) -> Tensor:
        """(B, T, width): the encoder outputs at the tokens that get quantised (after the
        encoder's final norm, before the projection), e.g. for a linear probe."""
        return self._encode(images * 2.0 - 1.0)  # the models work in [-1, 1]

    def quantize(self, images: Tensor) -> VQOutput:
        return self.quantizer(self.pre_quant(self.latents(images)))

    @torch.no_grad()
    def encode(self, images: Tensor) -> Tensor:
        """(B, C, H, W) in [0, 1] -> token indices (B, T) int64."""
        if isinstance(images, Tensor) and not images.is_floating_point():
            raise ValueError(
                f"{type(self).__name__}.encode: images must be floats in [0, 1], got "
                f"{images.dtype} (uint8 pixels: divide by 255)"
            )
        if isinstance(images, Tensor) and images.numel():
            low, high = float(images.min()), float(images.max())
            if not (-1e-3 <= low and high <= 1.0 + 1e-3):  # NaN fails this too
                raise ValueError(
                    f"{type(self).__name__}.encode: images must be in [0, 1], got values in "
                    f"[{low:.3g}, {high:.3g}]"
                )
        return self.quantize(images).indices

    # -- decode ----------------------------------------------------------------------------

    def decode_codes(self, codes: Tensor) -> Tensor:
        """Quantised codes (B, T, code_dim) -> images (B, C, H, W), unclamped, in ~[0, 1]."""
        if codes.shape[1] != self.num_tokens:
            raise ValueError(
                f"{type(self).__name__}: got {codes.shape[1]} tokens per image, expected "
                f"{self.num_tokens}"
            )
        patches = self.to_pixels(self._decode(self.post_quant(codes)))  # (B, N, p*p*C)
        images = unpatchify(patches, self.patch_size, self.channels)
        return (images + 1.0) / 2.0

    @torch.no_grad()
    def decode_indices(self, indices: Tensor) -> Tensor:
        """Token indices (B, T) -> images (B, C, H, W) clamped to [0, 1]."""
        if indices.ndim != 2:
            raise ValueError(f"decode_indices: indices must be (B, T), got {tuple(indices.shape)}")
        return self.decode_codes(self.quantizer.lookup(indices)).clamp(0.0, 1.0)

    def forward(self, images: Tensor) -> tuple[Tensor, VQOutput]:
        """images -> (reconstruction (unclamped), VQOutput) for training."""
        vq = self.quantize(images)
        return self.decode_codes(vq.quantized), vq

    @torch.no_grad()
    def reconstruct(self, images: Tensor, *, batch_size: int = 512) -> Tensor:
        """decode(encode(images)) in eval mode, clamped to [0, 1], in batches; computed on the
        model's device, returned on the device of ``images``."""
        device = self.pos_embed.device
        with eval_mode(self):
            out = [
                self.decode_indices(self.encode(b.to(device))).to(b.device)
                for b in images.split(batch_size)
            ]
        return torch.cat(out)

    # -- checkpoints: model.safetensors (config in its metadata) + config.json -------------

    def save_pretrained(self, path: str | os.PathLike) -> Path:
        """Write ``path/model.safetensors`` (atomically; the config rides in its metadata) and
        ``path/config.json`` (for people); return the folder."""
        folder = Path(path)
        save_model(folder / "model.safetensors", self, kind=self.kind, config=self.config)
        from paperlab.claims import write_text_atomic

        config = {"kind": self.kind, **self.config}
        write_text_atomic(folder / "config.json", json.dumps(config, indent=2) + "\n")
        return folder

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, *, device: str = "cpu") -> _VQTokenizer:
        """Load a tokenizer written by ``save_pretrained`` (either class, as saved)."""
        file = checkpoint_file(path, "model.safetensors")
        kind = checkpoint_kind(file)
        classes = {c.kind: c for c in (TiTokTokenizer, GridTokenizer)}
        if kind not in classes or (cls is not _VQTokenizer and classes[kind] is not cls):
            want = cls.kind or "a TiTok or grid tokenizer"
            raise ValueError(f"{file}: expected {want} checkpoint, found {kind or 'none'}")
        model, _ = load_model(file, lambda c: classes[kind](**c), kind=kind, map_location=device)
        return model.eval()


class TiTokTokenizer(_VQTokenizer):
    """TiTok (Sec. 3.2): a ViT over [patches ; K latent tokens]; only the latents are
    quantised; the decoder reconstructs from [N mask tokens ; K quantised latents]."""

    kind = "titok"

    def __init__(
        self,
        *,
        image_size: int = 16,
        channels: int = 3,
        patch_size: int = 4,
        num_latent_tokens: int = 8,
        width: int = 64,
        enc_depth: int = 2,
        dec_depth: int = 2,
        n_heads: int = 4,
        codebook_size: int = 256,
        code_dim: int = 12,
        beta: float = 0.25,
    ):
        super().__init__()
        if num_latent_tokens < 1:
            raise ValueError(f"TiTokTokenizer: num_latent_tokens={num_latent_tokens} must be >= 1")
        cfg = dict(locals())
        for key in ("self", "__class__"):
            cfg.pop(key, None)
        self._init_common(cfg)
        K = self.num_latent_tokens = num_latent_tokens
        self.latent_tokens = _embedding(K, width)  # the K learnable latent tokens
        self.latent_pos_embed = _embedding(K, width)
        self.mask_token = _embedding(1, 1, width)  # one learned [MASK] token
        self.dec_latent_pos_embed = _embedding(K, width)

    @property
    def num_tokens(self) -> int:
        return self.num_latent_tokens

    def _encode(self, x: Tensor) -> Tensor:
        B = x.shape[0]
        patches = self.patch_embed(x) + self.pos_embed  # (B, N, D)
        latents = (self.latent_tokens + self.latent_pos_embed).expand(B, -1, -1)  # (B, K, D)
        h = self.encoder(torch.cat([patches, latents], dim=1))
        return h[:, self.num_patches :]  # Sec. 3.2: keep only the K latent tokens

    def _decode(self, h: Tensor) -> Tensor:
        B = h.shape[0]
        masks = self.mask_token.expand(B, self.num_patches, -1) + self.dec_pos_embed  # (B, N, D)
        latents = h + self.dec_latent_pos_embed  # (B, K, D)
        out = self.decoder(torch.cat([masks, latents], dim=1))
        return out[:, : self.num_patches]  # the image is read from the mask tokens


class GridTokenizer(_VQTokenizer):
    """2D-grid baseline (ViT-VQGAN style): every patch token of the encoder is quantised, so
    an image becomes (image_size / patch_size)^2 tokens; the decoder maps them back to
    patches. Same blocks, width, depths and codebook as :class:`TiTokTokenizer`."""

    kind = "grid"

    def __init__(
        self,
        *,
        image_size: int = 16,
        channels: int = 3,
        patch_size: int = 4,
        width: int = 64,
        enc_depth: int = 2,
        dec_depth: int = 2,
        n_heads: int = 4,
        codebook_size: int = 256,
        code_dim: int = 12,
        beta: float = 0.25,
    ):
        super().__init__()
        cfg = dict(locals())
        for key in ("self", "__class__"):
            cfg.pop(key, None)
        self._init_common(cfg)

    @property
    def num_tokens(self) -> int:
        return self.num_patches

    def _encode(self, x: Tensor) -> Tensor:
        return self.encoder(self.patch_embed(x) + self.pos_embed)  # (B, N, D)

    def _decode(self, h: Tensor) -> Tensor:
        return self.decoder(h + self.dec_pos_embed)  # (B, N, D)


# ---------------------------------------------------------------------------------------------
# Training: L2 reconstruction + VQ loss, with dead-code restarts


def train_tokenizer(
    model: _VQTokenizer,
    images: Tensor,
    *,
    steps: int = 600,
    batch_size: int = 32,
    lr: float = 3e-3,
    restart_every: int = 50,
    restart_until: float = 0.8,
    seed: int = 0,
    progress: bool = False,
    desc: str = "tokenizer",
    device: str = "cpu",
) -> dict[str, list[float]]:
    """Train ``model`` on ``images`` (N, C, H, W) in [0, 1] with MSE + VQ loss, on ``device``
    (the model is moved there; batches are drawn on the CPU and moved by the training loop).

    DEVIATION: TiTok trains in two stages (stage 1: predict a pretrained MaskGIT-VQGAN's proxy
    codes; stage 2: fine-tune the decoder to pixels with perceptual + GAN losses). Here one
    stage, from scratch, straight to pixels with L2 + the VQ loss.
    DEVIATION: dead-code restarts are ours (the paper needs none: its proxy codes come from a
    pretrained VQGAN). Codebook collapse from scratch is fought with l2-normalised 12-d codes
    and dead-code restarts: every ``restart_every`` steps (until ``restart_until`` of training)
    codes unused since the last restart are re-seeded from the current batch's encoder outputs.
    The history gets ``usage`` (share of codes hit in that window) and ``restarted`` (codes
    re-seeded) at every restart."""
    last_z: dict[str, Tensor] = {}
    gen = torch.Generator().manual_seed(seed)

    def loss_fn(m: _VQTokenizer, x: Tensor):
        z = m.pre_quant(m.latents(x))
        vq = m.quantizer(z)
        recon = m.decode_codes(vq.quantized)
        last_z["z"] = z.detach()
        mse = F.mse_loss(recon, x)
        return mse + vq.loss, {"mse": mse.item(), "vq_loss": vq.loss.item()}

    def on_step(step: int, m: _VQTokenizer, history: dict) -> None:
        done = step + 1
        if restart_every and done % restart_every == 0 and done <= restart_until * steps:
            usage = m.quantizer.usage()
            n = m.quantizer.restart_dead_codes(last_z["z"], generator=gen)
            history.setdefault("usage_step", []).append(done)
            history.setdefault("usage", []).append(usage)
            history.setdefault("restarted", []).append(float(n))

    cfg = TrainConfig(
        steps=steps,
        lr=lr,
        warmup_steps=max(1, steps // 20),
        weight_decay=0.0,
        betas=(0.9, 0.99),
        progress=progress,
        seed=seed,
        desc=desc,
    )
    model.quantizer.reset_usage()
    history = train(
        model,
        loss_fn,
        row_batches(images, batch_size, seed=seed),
        cfg,
        on_step=on_step,
        device=device,
    )
    model.eval()
    return history


@torch.no_grad()
def reconstruction_mse(model: _VQTokenizer, images: Tensor, *, batch_size: int = 512) -> float:
    """Mean squared error of decode(encode(x)) (clamped to [0, 1]) on ``images`` (the model
    runs on its own device)."""
    return F.mse_loss(model.reconstruct(images, batch_size=batch_size), images).item()
