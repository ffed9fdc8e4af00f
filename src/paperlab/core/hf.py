"""Conversion between `paperlab.core.llama.Llama` and Hugging Face `LlamaForCausalLM`.

Module names and the rotary layout ("rotate_half") already match HF, so the conversion renames
keys (`model.` prefix on everything but `lm_head`) and maps config fields; no q/k permutation.
transformers is an optional extra, imported only by `to_hf_model` / `from_hf_model`.
"""

from __future__ import annotations

from typing import Any

import torch

from paperlab.core.llama import FFN_ACTIVATIONS, Llama, LlamaConfig

INSTALL_HINT = "pip install 'paperlab[hf]'"


def _transformers():
    try:
        import transformers
    except ImportError as e:
        raise ImportError(f"this needs Hugging Face transformers: {INSTALL_HINT}") from e
    return transformers


def hf_config_kwargs(config: LlamaConfig) -> dict[str, Any]:
    """Keyword arguments for `transformers.LlamaConfig` describing the same model."""
    return dict(
        vocab_size=config.vocab_size,
        hidden_size=config.dim,
        intermediate_size=config.ffn_hidden,
        num_hidden_layers=config.n_layers,
        num_attention_heads=config.n_heads,
        num_key_value_heads=config.n_kv_heads,
        head_dim=config.head_dim,
        hidden_act=config.hidden_act,
        max_position_embeddings=config.max_seq_len,
        rms_norm_eps=config.norm_eps,
        rope_theta=config.rope_theta,
        tie_word_embeddings=config.tie_embeddings,
        attention_bias=False,
        mlp_bias=False,
        attention_dropout=config.dropout,
        # byte vocabularies have no special tokens; HF's defaults (bos=1, eos=2) would make
        # HF generate stop on byte 2
        bos_token_id=None,
        eos_token_id=None,
        pad_token_id=None,
    )


def to_hf_state_dict(model: Llama) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(state dict in `LlamaForCausalLM` layout, `transformers.LlamaConfig` kwargs)."""
    state = {}
    for name, tensor in model.state_dict().items():
        state[name if name.startswith("lm_head.") else f"model.{name}"] = tensor
    return state, hf_config_kwargs(model.config)


def _get(hf_config, name: str, default=None):
    if isinstance(hf_config, dict):
        return hf_config.get(name, default)
    return getattr(hf_config, name, default)


def config_from_hf(hf_config) -> LlamaConfig:
    """`LlamaConfig` from a `transformers.LlamaConfig` or its dict (config.json)."""
    hidden, heads = _get(hf_config, "hidden_size"), _get(hf_config, "num_attention_heads")
    rope = _get(hf_config, "rope_parameters") or _get(hf_config, "rope_scaling") or {}
    rope_type = rope.get("rope_type", rope.get("type", "default"))
    unsupported = {
        "attention_bias": (bool(_get(hf_config, "attention_bias", False)), False),
        "mlp_bias": (bool(_get(hf_config, "mlp_bias", False)), False),
        "head_dim": (_get(hf_config, "head_dim") or hidden // heads, hidden // heads),
        "rope_type": (rope_type, "default"),
    }
    for name, (value, supported) in unsupported.items():
        if value != supported:
            raise ValueError(f"HF config {name}={value!r} is not supported (only {supported!r})")
    act = _get(hf_config, "hidden_act", "silu")
    if act not in FFN_ACTIVATIONS:
        raise ValueError(
            f"HF config hidden_act={act!r} is not supported (only {sorted(FFN_ACTIVATIONS)})"
        )
    rope_theta = rope.get("rope_theta") or _get(hf_config, "rope_theta") or 10000.0
    return LlamaConfig(
        vocab_size=_get(hf_config, "vocab_size"),
        dim=hidden,
        n_layers=_get(hf_config, "num_hidden_layers"),
        n_heads=heads,
        n_kv_heads=_get(hf_config, "num_key_value_heads") or heads,
        ffn_hidden=_get(hf_config, "intermediate_size"),
        max_seq_len=_get(hf_config, "max_position_embeddings"),
        rope_theta=float(rope_theta),
        norm_eps=_get(hf_config, "rms_norm_eps"),
        tie_embeddings=bool(_get(hf_config, "tie_word_embeddings", False)),
        hidden_act=act,
    )


def from_hf_state_dict(state_dict: dict[str, torch.Tensor], hf_config) -> Llama:
    """A `Llama` with the weights of a `LlamaForCausalLM` state dict."""
    config = config_from_hf(hf_config)
    state = {}
    for name, tensor in state_dict.items():
        if name.endswith("rotary_emb.inv_freq"):  # a buffer in old HF checkpoints
            continue
        state[name.removeprefix("model.")] = tensor
    if config.tie_embeddings:
        state["lm_head.weight"] = state["embed_tokens.weight"]
    model = Llama(config)
    model.load_state_dict(state)
    dtype = state["embed_tokens.weight"].dtype
    return model.to(dtype=dtype)


def to_hf_model(model: Llama):
    """A `transformers.LlamaForCausalLM` (eval mode) with the same weights, device and dtype."""
    transformers = _transformers()
    state, kwargs = to_hf_state_dict(model)
    hf_model = transformers.LlamaForCausalLM(transformers.LlamaConfig(**kwargs))
    hf_model.load_state_dict(state)
    weight = model.embed_tokens.weight
    return hf_model.to(device=weight.device, dtype=weight.dtype).eval()


def from_hf_model(hf_model) -> Llama:
    """A paperlab `Llama` from a loaded `transformers.LlamaForCausalLM`."""
    model = from_hf_state_dict(hf_model.state_dict(), hf_model.config)
    return model.to(hf_model.device)
