"""The InstantFamily generator in miniature: a tiny diffusers ``UNet2DConditionModel`` plus a
ControlNet branch (``ControlNetModel.from_unet``) fed the face-location image, both
conditioned on the multimodal embedding stack through masked cross-attention.

Multimodal embedding stack (Sec. 3.2): ``[text tokens ; person 1's ID tokens ; person 2's ...]``
where a person's ID tokens are the projected global embedding (1 token) and the projected
cells of the encoder's last L x L map (L² tokens): L² + 1 tokens per person, so the stack grows
with the number of people. The identity encoder is frozen; the projections, the text embedding,
the UNet and the control branch are trained. In training, the order of the people in the stack
is shuffled each step (the paper reports a first-slot bias otherwise).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch
from diffusers import ControlNetModel, UNet2DConditionModel
from torch import Tensor, nn

from paperlab.core.diffusion import PREDICTION_TYPES, tiny_unet
from paperlab.papers.instantfamily.attention import MASK_MODES, RegionMask, install_masked_attention
from paperlab.papers.instantfamily.data import COLOURS

TEXT_TOKENS = 2  # "<colour> background", "people": the tiny stand-in for a CLIP text prompt


@dataclass(frozen=True)
class GeneratorConfig:
    size: int = 32
    widths: tuple[int, ...] = (16, 32)
    token_dim: int = 64  # cross_attention_dim
    id_global_dim: int = 32  # the identity encoder's embedding
    id_local_dim: int = 64  # its last map's channels
    local_size: int = 4  # L
    features: str = "global_local"  # or "global": the ablation with the 1-D embedding only
    mask: str = "multiply"  # MASK_MODES: the paper's M ⊙ logits, -inf, or unmasked
    control: bool = True  # the ControlNet branch on the face-location image
    prediction: str = "sample"
    # DEVIATION: 2 heads of 16 channels (SD-1.5: 8 heads); 8 heads of 4 channels cost a
    # fifth more per training step at these widths and learned no faster in our probes
    heads: int = 2
    id_norm: bool = True  # LayerNorm on the projected identity tokens (IP-Adapter's habit)

    def __post_init__(self) -> None:
        if self.features not in ("global_local", "global"):
            raise ValueError(f"features={self.features!r}: choose 'global_local' or 'global'")
        if self.mask not in MASK_MODES:
            raise ValueError(f"mask={self.mask!r}: choose one of {MASK_MODES}")
        if self.prediction not in PREDICTION_TYPES:
            raise ValueError(f"prediction={self.prediction!r}: choose one of {PREDICTION_TYPES}")
        if self.token_dim < 8 or self.token_dim % 8:
            raise ValueError(f"token_dim={self.token_dim}: need a multiple of 8")
        if self.heads < 1 or self.widths[-1] % self.heads:
            raise ValueError(f"heads={self.heads}: must divide widths[-1]={self.widths[-1]}")

    @property
    def tokens_per_person(self) -> int:
        return 1 + (self.local_size**2 if self.features == "global_local" else 0)


@dataclass
class Condition:
    """What one denoising call is conditioned on, for B canvases of K people each:
    ``colour`` (B,) text colour ids; ``id_global`` (B, K, E) and ``id_local`` (B, K, C, L, L)
    the frozen encoder's features of each person's identity image; ``boxes`` (B, K, 3);
    ``control`` (B, 3, S, S) the face-location image; ``null`` (B,) bool rows that are the
    unconditional input of classifier-free guidance (text and identity tokens dropped);
    ``order`` the order of the people in the embedding stack (default 0..K-1)."""

    colour: Tensor
    id_global: Tensor
    id_local: Tensor
    boxes: Tensor
    control: Tensor
    null: Tensor | None = None
    order: list[int] | None = field(default=None)

    def to(self, device: str | torch.device) -> Condition:
        def mv(x):
            return x.to(device) if isinstance(x, Tensor) else x

        return Condition(*(mv(getattr(self, k)) for k in self.__dataclass_fields__))

    def cat_null(self) -> Condition:
        """[self ; the same rows with null=True] (the batch for one CFG call)."""

        def two(x: Tensor) -> Tensor:
            return torch.cat([x, x])

        null = torch.cat([self.null_mask(), torch.ones_like(self.null_mask())])
        return replace(
            self,
            colour=two(self.colour),
            id_global=two(self.id_global),
            id_local=two(self.id_local),
            boxes=two(self.boxes),
            control=two(self.control),
            null=null,
        )

    def null_mask(self) -> Tensor:
        if self.null is None:
            return torch.zeros(self.colour.shape[0], dtype=torch.bool, device=self.colour.device)
        return self.null


def conditional_unet(cfg: GeneratorConfig) -> UNet2DConditionModel:
    """The diffusion core's tiny ``UNet2DConditionModel`` with ``only_cross_attention``: both
    attentions of each transformer block attend to the embedding stack (and are masked)."""
    base = tiny_unet(image_size=cfg.size, widths=cfg.widths, cross_attention_dim=cfg.token_dim)
    config = {k: v for k, v in base.config.items() if not k.startswith("_")}
    # DEVIATION: no spatial self-attention (SD's attn1 attends over all pixels): at 16 x 16 it
    # cost most of a training step on a CPU; attn1 becomes a second masked cross-attention.
    # diffusers reads ``attention_head_dim`` as the number of heads here
    config = {**config, "only_cross_attention": True, "attention_head_dim": cfg.heads}
    return UNet2DConditionModel.from_config(config)


class InstantFamily(nn.Module):
    """x_t (B, 3, S, S), t, :class:`Condition` -> the UNet's output (noise or x0)."""

    def __init__(self, cfg: GeneratorConfig = GeneratorConfig()) -> None:
        super().__init__()
        self.cfg = cfg
        d = cfg.token_dim
        self.text = nn.Embedding(len(COLOURS) + 1, d)  # the last id: the empty prompt
        self.people_token = nn.Parameter(torch.randn(d) * 0.02)
        self.global_proj = nn.Sequential(
            nn.Linear(cfg.id_global_dim, d), nn.SiLU(), nn.Linear(d, d)
        )
        self.local_proj = nn.Linear(cfg.id_local_dim, d)
        self.local_pos = nn.Parameter(torch.randn(cfg.local_size**2, d) * 0.02)
        # DEVIATION: the paper does not detail its projection layers; ours end with a
        # LayerNorm (as IP-Adapter's and InstantID's do), so identity tokens start at the text
        # tokens' scale (without it their norms are 0.7 / 2.7 against the colour token's 7.7
        # and the cross-attention ignores them at first: no identity after 300 steps).
        self.id_norm = nn.LayerNorm(d) if cfg.id_norm else nn.Identity()
        self.unet = conditional_unet(cfg)
        self.controlnet = (
            ControlNetModel.from_unet(self.unet, conditioning_embedding_out_channels=(16,))
            if cfg.control
            else None
        )
        install_masked_attention(self.unet)
        if self.controlnet is not None:
            install_masked_attention(self.controlnet)

    def embedding_stack(self, cond: Condition) -> tuple[Tensor, Tensor]:
        """(tokens (B, TEXT_TOKENS + K (L²+1), D), owner (L,)): text, then each person's
        identity tokens in ``cond.order``; null rows get the empty prompt and zero ID tokens."""
        b, k = cond.id_global.shape[:2]
        null = cond.null_mask()
        colour = torch.where(null, torch.full_like(cond.colour, len(COLOURS)), cond.colour)
        text = torch.stack([self.text(colour), self.people_token.expand(b, -1)], 1)
        per_person = [self.global_proj(cond.id_global).unsqueeze(2)]  # (B, K, 1, D)
        if self.cfg.features == "global_local":
            cells = cond.id_local.flatten(3).transpose(2, 3)  # (B, K, L², C)
            per_person.append(self.local_proj(cells) + self.local_pos)
        ids = self.id_norm(torch.cat(per_person, 2)) * (~null).view(b, 1, 1, 1).to(text.dtype)
        order = list(range(k)) if cond.order is None else cond.order
        n_tok = self.cfg.tokens_per_person
        tokens = torch.cat([text, *(ids[:, i] for i in order)], 1)
        owner = torch.tensor([-1] * TEXT_TOKENS + [i for i in order for _ in range(n_tok)])
        return tokens, owner.to(tokens.device)

    def forward(self, x_t: Tensor, t: Tensor, cond: Condition) -> Tensor:
        t = t.expand(x_t.shape[0]) if t.dim() == 0 else t
        tokens, owner = self.embedding_stack(cond)
        region = RegionMask(cond.boxes, owner, self.cfg.size, self.cfg.mask)
        kwargs = {"cross_attention_kwargs": {"region": region}}
        extra = {}
        if self.controlnet is not None:
            down, mid = self.controlnet(
                x_t,
                t,
                encoder_hidden_states=tokens,
                controlnet_cond=cond.control,
                return_dict=False,
                **kwargs,
            )
            extra = {"down_block_additional_residuals": down, "mid_block_additional_residual": mid}
        return self.unet(x_t, t, encoder_hidden_states=tokens, **kwargs, **extra).sample


class Guided(nn.Module):
    """Classifier-free guidance around :class:`InstantFamily` for ``ddim_sample``:
    out_u + scale (out_c - out_u), both in one batch."""

    def __init__(self, model: InstantFamily, scale: float) -> None:
        super().__init__()
        self.model, self.scale = model, scale

    def forward(self, x_t: Tensor, t: Tensor, cond: Condition) -> Tensor:
        if self.scale == 1.0:
            return self.model(x_t, t, cond)
        t = torch.cat([t, t]) if t.dim() else t
        out_c, out_u = self.model(torch.cat([x_t, x_t]), t, cond.cat_null()).chunk(2)
        return out_u + self.scale * (out_c - out_u)
