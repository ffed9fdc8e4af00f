"""Conversion between `paperlab.core.llama.Llama` and Hugging Face `LlamaForCausalLM`.

Module names and the rotary layout ("rotate_half") already match HF, so the conversion renames
keys (`model.` prefix on everything but `lm_head`) and maps config fields; no q/k permutation.
transformers is an optional extra, imported only by `to_hf_model` / `from_hf_model`;
`load_hf_directory` (what `Llama.from_pretrained` calls on a Hugging Face directory) reads
`config.json` and the safetensors (single or sharded) without it.

Only what `Llama` computes is accepted: a config that asks for anything else (a sliding window,
q/k/v biases, partial rotary, scaled rope, another architecture) is refused in one line that
names the field, rather than converted into a model that gives other logits.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
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


# Architectures whose decoder is exactly ours once the checks below pass (Mistral is Llama plus
# a sliding window, refused unless it covers the whole context).
SUPPORTED_MODEL_TYPES = ("llama", "mistral")


def config_from_hf(hf_config) -> LlamaConfig:
    """`LlamaConfig` from a `transformers.LlamaConfig` or its dict (config.json)."""
    model_type = _get(hf_config, "model_type", "llama")
    if model_type not in SUPPORTED_MODEL_TYPES:
        extra = " (its q/k/v projections have biases)" if model_type.startswith("qwen") else ""
        raise ValueError(
            f"HF config model_type={model_type!r} is not supported{extra}; "
            f"only {list(SUPPORTED_MODEL_TYPES)}"
        )
    hidden, heads = _get(hf_config, "hidden_size"), _get(hf_config, "num_attention_heads")
    rope = _get(hf_config, "rope_parameters") or _get(hf_config, "rope_scaling") or {}
    rope_type = "default"
    for ropes in (_get(hf_config, "rope_parameters"), _get(hf_config, "rope_scaling")):
        kind = (ropes or {}).get("rope_type", (ropes or {}).get("type", "default"))
        rope_type = kind if kind != "default" else rope_type  # either one may carry a scaling
    max_pos = _get(hf_config, "max_position_embeddings")
    window = _get(hf_config, "sliding_window")
    if window is not None and max_pos is not None and window >= max_pos:
        window = None  # a window over the whole context is no window
    unsupported = {
        "attention_bias": (bool(_get(hf_config, "attention_bias", False)), False),
        "mlp_bias": (bool(_get(hf_config, "mlp_bias", False)), False),
        "qkv_bias": (bool(_get(hf_config, "qkv_bias", False)), False),
        "head_dim": (_get(hf_config, "head_dim") or hidden // heads, hidden // heads),
        "rope_type": (rope_type, "default"),
        "partial_rotary_factor": (_get(hf_config, "partial_rotary_factor", 1.0), 1.0),
        "sliding_window": (window, None),
        "use_sliding_window": (bool(_get(hf_config, "use_sliding_window", False)), False),
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
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(
            "HF weights do not match the config: "
            + (f"missing {sorted(missing)[:4]} " if missing else "")
            + (f"unexpected {sorted(unexpected)[:4]}" if unexpected else "")
        )
    dtype = state["embed_tokens.weight"].dtype
    return model.to(dtype=dtype)


def load_hf_directory(
    path: str | os.PathLike,
    *,
    device: torch.device | str = "cpu",
    dtype: torch.dtype | None = None,
) -> Llama:
    """A `Llama` from a Hugging Face model directory: `config.json` plus `model.safetensors`
    or the shards listed in `model.safetensors.index.json`. No transformers needed. The
    checkpoint's dtype is kept unless `dtype` is given."""
    from safetensors.torch import load_file

    root = Path(path)
    config_file = root / "config.json"
    if not config_file.is_file():
        raise FileNotFoundError(f"path: no config.json in {root} (not a Hugging Face directory)")
    try:
        hf_config = json.loads(config_file.read_text())
    except (ValueError, UnicodeDecodeError) as e:
        raise ValueError(f"path: {config_file} is not valid JSON ({e})") from e
    index = root / "model.safetensors.index.json"
    if index.is_file():
        weight_map = json.loads(index.read_text()).get("weight_map")
        if not isinstance(weight_map, dict) or not weight_map:
            raise ValueError(f"path: {index} has no weight_map")
        files = [root / name for name in dict.fromkeys(weight_map.values())]
    elif (root / "model.safetensors").is_file():
        files = [root / "model.safetensors"]
    else:
        found = sorted(p.name for p in root.glob("*.bin"))
        hint = f" (found {found[:3]}: convert them to safetensors first)" if found else ""
        raise FileNotFoundError(f"path: no model.safetensors or its index in {root}{hint}")
    missing = [f.name for f in files if not f.is_file()]
    if missing:
        raise FileNotFoundError(f"path: shards listed in {index.name} are missing: {missing}")
    state: dict[str, torch.Tensor] = {}
    for file in files:
        state.update(load_file(str(file)))
    model = from_hf_state_dict(state, hf_config)
    return model.to(device=device, dtype=dtype)


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
