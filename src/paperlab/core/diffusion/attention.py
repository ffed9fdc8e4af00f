"""LoRA on a diffusers UNet (peft) and a recorder of attention probabilities."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from diffusers.models.attention_processor import Attention
from torch import Tensor, nn

# ---------------------------------------------------------------------------------------------
# LoRA and attention


def add_lora(
    model: nn.Module,
    *,
    r: int = 4,
    alpha: float = 4.0,
    target_modules: Sequence[str] = ("to_q", "to_k", "to_v", "to_out.0"),
) -> nn.Module:
    """peft LoRA (Hu et al. 2022) on the named linear layers; the rest of the model is frozen.
    Returns the same module, with ``lora_A`` / ``lora_B`` the only trainable parameters."""
    from peft import LoraConfig, inject_adapter_in_model

    if r < 1 or alpha <= 0:
        raise ValueError(f"r={r}, alpha={alpha}: need r >= 1 and alpha > 0")
    names = {name for name, _ in model.named_modules()}
    if not any(n.endswith(target) for n in names for target in target_modules):
        raise ValueError(f"target_modules={tuple(target_modules)}: none is in the model")
    model.requires_grad_(False)
    config = LoraConfig(
        r=r, lora_alpha=alpha, target_modules=list(target_modules), init_lora_weights=True
    )
    inject_adapter_in_model(config, model)
    for name, p in model.named_parameters():
        p.requires_grad_("lora_" in name)
    return model


class _RecordingProcessor:
    """diffusers' plain ``AttnProcessor`` with the probabilities exposed (and editable)."""

    def __init__(self, recorder: AttentionRecorder, name: str) -> None:
        self.recorder, self.name = recorder, name

    def __call__(
        self,
        attn: Attention,
        hidden_states,
        encoder_hidden_states=None,
        attention_mask=None,
        temb=None,
        *args,
        **kwargs,
    ) -> Tensor:
        residual = hidden_states
        if attn.spatial_norm is not None:
            hidden_states = attn.spatial_norm(hidden_states, temb)
        ndim = hidden_states.ndim
        if ndim == 4:
            b, c, h, w = hidden_states.shape
            hidden_states = hidden_states.view(b, c, h * w).transpose(1, 2)
        context = hidden_states if encoder_hidden_states is None else encoder_hidden_states
        batch, seq_len, _ = context.shape
        attention_mask = attn.prepare_attention_mask(attention_mask, seq_len, batch)
        if attn.group_norm is not None:
            hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)
        query = attn.head_to_batch_dim(attn.to_q(hidden_states))
        if encoder_hidden_states is not None and attn.norm_cross:
            context = attn.norm_encoder_hidden_states(context)
        key = attn.head_to_batch_dim(attn.to_k(context))
        value = attn.head_to_batch_dim(attn.to_v(context))
        probs = attn.get_attention_scores(query, key, attention_mask)  # (B*heads, Lq, Lk)
        probs = self.recorder._seen(self.name, probs, attn.heads)
        out = attn.batch_to_head_dim(torch.bmm(probs, value))
        out = attn.to_out[1](attn.to_out[0](out))
        if ndim == 4:
            out = out.transpose(-1, -2).reshape(b, c, h, w)
        if attn.residual_connection:
            out = out + residual
        return out / attn.rescale_output_factor


class AttentionRecorder:
    """Records (and optionally rewrites) the attention probabilities of chosen attention layers.

        with AttentionRecorder(unet, select=lambda name: "motion_modules" in name) as rec:
            predict_eps(unet, x_t, t, cond)
        rec.maps[name]            # (batch, heads, L_query, L_key), in the autograd graph

    ``select(name)`` picks diffusers ``Attention`` modules by their dotted name in ``model``
    (any module holding diffusers UNets works, e.g. a wrapper with a text embedding); each gets
    a processor that computes the softmax explicitly, keeps it in ``maps`` (the last call
    wins) and, when ``edit(name, probs) -> probs`` is given, uses the edited probabilities.
    Leaving the block restores the previous processors. Temporal attention of a motion module
    has batch = B*H*W sequences over the F frames; cross-attention has L_key = text length.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        select: Callable[[str], bool] = lambda name: True,
        edit: Callable[[str, Tensor], Tensor] | None = None,
    ) -> None:
        self.model, self.select, self.edit = model, select, edit
        self.maps: dict[str, Tensor] = {}
        self._saved: dict[str, Any] = {}
        self.names = [n for n, m in model.named_modules() if isinstance(m, Attention) and select(n)]
        if not self.names:
            raise ValueError("select: no attention module of the model matches")

    def _seen(self, name: str, probs: Tensor, heads: int) -> Tensor:
        if self.edit is not None:
            probs = self.edit(name, probs.reshape(-1, heads, *probs.shape[1:])).reshape(probs.shape)
        self.maps[name] = probs.reshape(-1, heads, *probs.shape[1:])
        return probs

    def __enter__(self) -> AttentionRecorder:
        modules = dict(self.model.named_modules())
        for name in self.names:
            self._saved[name] = modules[name].processor
            modules[name].set_processor(_RecordingProcessor(self, name))
        return self

    def __exit__(self, *exc: object) -> None:
        modules = dict(self.model.named_modules())
        for name, processor in self._saved.items():
            modules[name].set_processor(processor)
        self._saved.clear()
